//! Variable substitution in compose values, as the compose specification
//! defines it: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:?message}`, `${VAR?message}`, `${VAR:+replacement}`,
//! `${VAR+replacement}` and `$$` for a literal `$`.
//!
//! The word after an operator may hold further substitutions
//! (`${A:-${B}}`). As in compose, a `$` followed by anything else is an
//! error, and the first `}` that closes no nested `${` ends the word.

use std::collections::HashMap;

/// Error of a substitution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateError {
    /// The template breaks the syntax; the text names the place.
    Invalid(String),
    /// A `?` or `:?` substitution found its variable missing.
    Required { variable: String, message: String },
}

/// Result of one substitution.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Substituted {
    /// The text with every variable replaced.
    pub value: String,
    /// Variables whose substitution produced an empty string, in order of use.
    pub empty_variables: Vec<String>,
    /// Variables that were not set and had no default, in order of use.
    pub unset_variables: Vec<String>,
}

/// Substitutes the variables of `template` with values from `environment`.
pub fn substitute(
    template: &str,
    environment: &HashMap<String, String>,
) -> Result<Substituted, TemplateError> {
    if !template.contains('$') {
        return Ok(Substituted {
            value: template.to_owned(),
            ..Substituted::default()
        });
    }
    let mut parser = Parser {
        text: template,
        position: 0,
        environment,
        result: Substituted::default(),
    };
    let value = parser.parse_text(false, true)?;
    parser.result.value = value;
    Ok(parser.result)
}

/// Operator of a braced substitution.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Operator {
    /// `-` or `:-`: use the word as default.
    Default,
    /// `?` or `:?`: fail with the word as message.
    Required,
    /// `+` or `:+`: use the word when the variable is set.
    Alternative,
}

struct Parser<'a> {
    text: &'a str,
    position: usize,
    environment: &'a HashMap<String, String>,
    result: Substituted,
}

impl Parser<'_> {
    /// Parses text up to the end, or up to an unmatched `}` when `nested`.
    ///
    /// With `evaluate` false the text is only checked: a word that the
    /// operator does not use must still be well formed, but raises no
    /// required-variable error and records no variable.
    fn parse_text(&mut self, nested: bool, evaluate: bool) -> Result<String, TemplateError> {
        let mut output = String::new();
        loop {
            let rest = &self.text[self.position..];
            let stop = if nested {
                rest.find(['$', '}'])
            } else {
                rest.find('$')
            };
            let Some(offset) = stop else {
                if nested {
                    return Err(TemplateError::Invalid(format!(
                        "a '${{' has no closing '}}' in '{}'",
                        self.text
                    )));
                }
                output.push_str(rest);
                self.position = self.text.len();
                return Ok(output);
            };
            output.push_str(&rest[..offset]);
            self.position += offset;
            if rest[offset..].starts_with('}') {
                return Ok(output);
            }
            output.push_str(&self.parse_dollar(evaluate)?);
        }
    }

    /// Parses what follows a `$` at the current position.
    fn parse_dollar(&mut self, evaluate: bool) -> Result<String, TemplateError> {
        let after = &self.text[self.position + 1..];
        if after.starts_with('$') {
            self.position += 2;
            return Ok("$".to_owned());
        }
        if after.starts_with('{') {
            self.position += 2;
            return self.parse_braced(evaluate);
        }
        let name = variable_name(after);
        if name.is_empty() {
            return Err(TemplateError::Invalid(format!(
                "'$' at position {} of '{}' starts no variable",
                self.position + 1,
                self.text
            )));
        }
        self.position += 1 + name.len();
        Ok(self.lookup_plain(name, evaluate))
    }

    fn lookup_plain(&mut self, name: &str, evaluate: bool) -> String {
        let value = self.environment.get(name).cloned();
        if evaluate {
            if value.is_none() {
                self.result.unset_variables.push(name.to_owned());
            }
            if value.as_deref().unwrap_or_default().is_empty() {
                self.result.empty_variables.push(name.to_owned());
            }
        }
        value.unwrap_or_default()
    }

    /// Parses `${…}` after the opening `${`, through the closing `}`.
    fn parse_braced(&mut self, evaluate: bool) -> Result<String, TemplateError> {
        let start = self.position - 2;
        let rest = &self.text[self.position..];
        let name = variable_name(rest);
        if name.is_empty() {
            return Err(TemplateError::Invalid(format!(
                "'${{' at position {} of '{}' has no variable name",
                start + 1,
                self.text
            )));
        }
        self.position += name.len();
        let rest = &self.text[self.position..];
        if rest.starts_with('}') {
            self.position += 1;
            return Ok(self.lookup_plain(name, evaluate));
        }

        let colon = rest.starts_with(':');
        let operator_text = if colon { &rest[1..] } else { rest };
        let operator = match operator_text.chars().next() {
            Some('-') => Operator::Default,
            Some('?') => Operator::Required,
            Some('+') => Operator::Alternative,
            _ => {
                return Err(TemplateError::Invalid(format!(
                    "'${{{name}' in '{}' must be followed by '}}', ':-', '-', ':?', '?', ':+' or '+'",
                    self.text
                )));
            }
        };
        self.position += if colon { 2 } else { 1 };

        let value = self.environment.get(name);
        let is_set = match value {
            Some(value) => !colon || !value.is_empty(),
            None => false,
        };
        let uses_word = match operator {
            Operator::Default | Operator::Required => !is_set,
            Operator::Alternative => is_set,
        };
        let word = self.parse_text(true, evaluate && uses_word)?;
        // parse_text stopped at the closing brace.
        self.position += 1;
        if !evaluate {
            return Ok(String::new());
        }

        let substituted = match operator {
            Operator::Required if !is_set => {
                return Err(TemplateError::Required {
                    variable: name.to_owned(),
                    message: word,
                });
            }
            Operator::Default if !is_set => word,
            Operator::Alternative if !is_set => String::new(),
            Operator::Alternative => word,
            _ => value.cloned().unwrap_or_default(),
        };
        if substituted.is_empty() {
            self.result.empty_variables.push(name.to_owned());
        }
        Ok(substituted)
    }
}

/// Returns the longest prefix that is a variable name: `[_A-Za-z][_A-Za-z0-9]*`.
fn variable_name(text: &str) -> &str {
    let mut end = 0;
    for (index, character) in text.char_indices() {
        let allowed = character == '_'
            || character.is_ascii_alphabetic()
            || (index > 0 && character.is_ascii_digit());
        if !allowed {
            break;
        }
        end = index + character.len_utf8();
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn environment() -> HashMap<String, String> {
        HashMap::from([
            ("TAG".to_owned(), "1.2".to_owned()),
            ("EMPTY".to_owned(), String::new()),
            ("REGISTRY".to_owned(), "example.com".to_owned()),
        ])
    }

    fn run(template: &str) -> Result<String, TemplateError> {
        substitute(template, &environment()).map(|substituted| substituted.value)
    }

    #[test]
    fn substitute_plain_and_braced() {
        assert_eq!(run("app:$TAG").unwrap(), "app:1.2");
        assert_eq!(
            run("${REGISTRY}/app:${TAG}").unwrap(),
            "example.com/app:1.2"
        );
        assert_eq!(run("$TAG-x").unwrap(), "1.2-x");
        assert_eq!(run("${UNSET}x").unwrap(), "x");
    }

    #[test]
    fn substitute_defaults() {
        assert_eq!(run("${UNSET:-d}").unwrap(), "d");
        assert_eq!(run("${EMPTY:-d}").unwrap(), "d");
        assert_eq!(run("${UNSET-d}").unwrap(), "d");
        assert_eq!(run("${EMPTY-d}").unwrap(), "");
        assert_eq!(run("${TAG:-d}").unwrap(), "1.2");
        assert_eq!(run("${UNSET:-}").unwrap(), "");
    }

    #[test]
    fn substitute_alternatives() {
        assert_eq!(run("${TAG:+set}").unwrap(), "set");
        assert_eq!(run("${EMPTY:+set}").unwrap(), "");
        assert_eq!(run("${EMPTY+set}").unwrap(), "set");
        assert_eq!(run("${UNSET+set}").unwrap(), "");
    }

    #[test]
    fn substitute_required() {
        assert_eq!(run("${TAG:?need it}").unwrap(), "1.2");
        assert_eq!(run("${EMPTY?need it}").unwrap(), "");
        assert_eq!(
            run("${EMPTY:?need it}").unwrap_err(),
            TemplateError::Required {
                variable: "EMPTY".to_owned(),
                message: "need it".to_owned()
            }
        );
        assert!(matches!(
            run("${UNSET?}").unwrap_err(),
            TemplateError::Required { .. }
        ));
    }

    #[test]
    fn substitute_nested_defaults() {
        assert_eq!(run("${UNSET:-${TAG}}").unwrap(), "1.2");
        assert_eq!(run("${UNSET:-${ALSO_UNSET:-x}-y}z").unwrap(), "x-yz");
        assert_eq!(run("${UNSET:-$REGISTRY/a}").unwrap(), "example.com/a");
        assert_eq!(run("${TAG:+v${TAG}}").unwrap(), "v1.2");
    }

    #[test]
    fn substitute_unused_word_raises_nothing() {
        assert_eq!(run("${TAG:-${UNSET:?never}}").unwrap(), "1.2");
    }

    #[test]
    fn substitute_escapes() {
        assert_eq!(run("$$").unwrap(), "$");
        assert_eq!(run("$${TAG}").unwrap(), "${TAG}");
        assert_eq!(run("a$$$TAG").unwrap(), "a$1.2");
    }

    #[test]
    fn substitute_brace_in_default_ends_word() {
        assert_eq!(run("${UNSET:-{a}}").unwrap(), "{a}");
    }

    #[test]
    fn substitute_invalid_templates() {
        for template in [
            "$",
            "a $1",
            "${}",
            "${TAG",
            "${TAG:x}",
            "${TAG/a/b}",
            "${ TAG}",
            "${UNSET:-${A}",
        ] {
            assert!(
                matches!(run(template), Err(TemplateError::Invalid(_))),
                "{template} should be invalid"
            );
        }
    }

    #[test]
    fn substitute_records_empty_and_unset() {
        let substituted = substitute("${REGISTRY}/app:${UNSET}$EMPTY", &environment()).unwrap();
        assert_eq!(substituted.empty_variables, ["UNSET", "EMPTY"]);
        assert_eq!(substituted.unset_variables, ["UNSET"]);
    }

    #[test]
    fn substitute_keeps_values_verbatim() {
        let environment = HashMap::from([("A".to_owned(), "$B".to_owned())]);
        assert_eq!(substitute("${A}", &environment).unwrap().value, "$B");
    }

    proptest! {
        #[test]
        fn text_without_dollar_is_identity(text in "[^$]*") {
            prop_assert_eq!(run(&text).unwrap(), text);
        }

        #[test]
        fn escaped_dollars_become_literal(text in "[^$]*") {
            let escaped = text.replace(['}', '{'], "");
            let template = format!("$${{{escaped}}}$$");
            prop_assert_eq!(run(&template).unwrap(), format!("${{{escaped}}}$"));
        }
    }
}
