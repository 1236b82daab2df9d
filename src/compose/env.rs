//! `.env` files, read as compose reads them: `KEY=VALUE` lines with an
//! optional `export`, `#` comments, single quotes (literal), double quotes
//! (escapes and variables), unquoted values (variables, trailing ` # comment`
//! dropped) and bare `KEY` lines that copy the variable from the environment.
//!
//! Variables inside values use the interpolation syntax; they resolve from
//! the environment first, then from the lines read before.

use std::collections::HashMap;
use std::path::Path;

use super::interpolation::{self, TemplateError};
use crate::error::{Error, Result};

/// Reads env files in order into a map; a later file overrides an earlier one.
///
/// `environment` is the interpolation context (the process environment or
/// the caller's map), and is not changed.
pub(crate) fn read_env_files(
    files: &[impl AsRef<Path>],
    environment: &HashMap<String, String>,
) -> Result<HashMap<String, String>> {
    let mut values = HashMap::new();
    for file in files {
        let file = file.as_ref();
        let text = std::fs::read_to_string(file).map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                Error::not_found(
                    "EnvFileNotFound",
                    format!(
                        "Env file '{}' was not found: check the path, which is relative to the working directory.",
                        file.display()
                    ),
                )
            } else {
                Error::invalid(
                    "InvalidEnvFile",
                    format!("Env file '{}' could not be read: {error}.", file.display()),
                )
            }
            .with_target(file.display().to_string())
        })?;
        let parsed = parse_env(&text, environment, &values).map_err(|(line, reason)| {
            Error::invalid(
                "InvalidEnvFile",
                format!(
                    "Env file '{}' is invalid at line {line}: {reason}.",
                    file.display()
                ),
            )
            .with_target(file.display().to_string())
        })?;
        values.extend(parsed);
    }
    Ok(values)
}

/// Parses the text of one env file; the error is the line number and the reason.
pub(crate) fn parse_env(
    text: &str,
    environment: &HashMap<String, String>,
    earlier: &HashMap<String, String>,
) -> std::result::Result<Vec<(String, String)>, (usize, String)> {
    let mut values: Vec<(String, String)> = Vec::new();
    let mut lookup: HashMap<String, String> = earlier.clone();
    let lines: Vec<&str> = text.lines().collect();
    let mut index = 0;
    while index < lines.len() {
        let line_number = index + 1;
        let line = lines[index].trim_start_matches('\u{feff}').trim();
        index += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some(separator) = line.find('=') else {
            let key = line.trim();
            validate_key(key).map_err(|reason| (line_number, reason))?;
            if let Some(value) = environment.get(key).or_else(|| lookup.get(key)).cloned() {
                lookup.insert(key.to_owned(), value.clone());
                values.push((key.to_owned(), value));
            }
            continue;
        };
        let key = line[..separator].trim();
        validate_key(key).map_err(|reason| (line_number, reason))?;
        let mut raw = line[separator + 1..].trim_start().to_owned();

        let value = if let Some(quote) = raw.chars().next().filter(|c| *c == '\'' || *c == '"') {
            // A quoted value may span lines up to the closing quote.
            let mut body = raw[1..].to_owned();
            loop {
                if let Some(end) = closing_quote(&body, quote) {
                    let rest = body[end + 1..].trim();
                    if !rest.is_empty() && !rest.starts_with('#') {
                        return Err((
                            line_number,
                            format!("unexpected text '{rest}' after the closing quote"),
                        ));
                    }
                    body.truncate(end);
                    break;
                }
                if index >= lines.len() {
                    return Err((
                        line_number,
                        format!("the value of {key} has no closing {quote}"),
                    ));
                }
                body.push('\n');
                body.push_str(lines[index]);
                index += 1;
            }
            if quote == '\'' {
                body
            } else {
                let unescaped = unescape_double_quoted(&body);
                expand(&unescaped, environment, &lookup).map_err(|reason| (line_number, reason))?
            }
        } else {
            if let Some(comment) = raw.find(" #") {
                raw.truncate(comment);
            }
            expand(raw.trim_end(), environment, &lookup).map_err(|reason| (line_number, reason))?
        };
        lookup.insert(key.to_owned(), value.clone());
        values.push((key.to_owned(), value));
    }
    Ok(values)
}

fn validate_key(key: &str) -> std::result::Result<(), String> {
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "'{key}' is not a variable name: use letters, digits, '_', '.' and '-'"
        ))
    }
}

fn closing_quote(body: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (index, character) in body.char_indices() {
        if quote == '"' && character == '\\' && !escaped {
            escaped = true;
            continue;
        }
        if character == quote && !escaped {
            return Some(index);
        }
        escaped = false;
    }
    None
}

fn unescape_double_quoted(body: &str) -> String {
    let mut output = String::with_capacity(body.len());
    let mut characters = body.chars();
    while let Some(character) = characters.next() {
        if character != '\\' {
            output.push(character);
            continue;
        }
        match characters.next() {
            Some('n') => output.push('\n'),
            Some('r') => output.push('\r'),
            Some('t') => output.push('\t'),
            Some('"') => output.push('"'),
            Some('\\') => output.push('\\'),
            // `\$` keeps the dollar literal through the expansion below.
            Some('$') => output.push_str("$$"),
            Some(other) => {
                output.push('\\');
                output.push(other);
            }
            None => output.push('\\'),
        }
    }
    output
}

fn expand(
    text: &str,
    environment: &HashMap<String, String>,
    lookup: &HashMap<String, String>,
) -> std::result::Result<String, String> {
    if !text.contains('$') {
        return Ok(text.to_owned());
    }
    let mut context = lookup.clone();
    context.extend(
        environment
            .iter()
            .map(|(key, value)| (key.clone(), value.clone())),
    );
    interpolation::substitute(text, &context)
        .map(|substituted| substituted.value)
        .map_err(|error| match error {
            TemplateError::Invalid(reason) => reason,
            TemplateError::Required { variable, message } => {
                format!("required variable {variable} is missing a value: {message}")
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> HashMap<String, String> {
        let environment = HashMap::from([("HOST_VAR".to_owned(), "host".to_owned())]);
        parse_env(text, &environment, &HashMap::new())
            .unwrap()
            .into_iter()
            .collect()
    }

    #[test]
    fn env_plain_lines_and_comments() {
        let values = parse("# comment\nA=1\n\nexport B = two \nC=x # note\nD=a#b\n");
        assert_eq!(values["A"], "1");
        assert_eq!(values["B"], "two");
        assert_eq!(values["C"], "x");
        assert_eq!(values["D"], "a#b");
    }

    #[test]
    fn env_quotes() {
        let values = parse("A='$HOST_VAR x'\nB=\"$HOST_VAR\\n\\$y\"\nC=\"multi\nline\"\n");
        assert_eq!(values["A"], "$HOST_VAR x");
        assert_eq!(values["B"], "host\n$y");
        assert_eq!(values["C"], "multi\nline");
    }

    #[test]
    fn env_expansion_uses_earlier_lines() {
        let values = parse("REG=example.com\nIMAGE=${REG}/app:${TAG:-dev}\n");
        assert_eq!(values["IMAGE"], "example.com/app:dev");
    }

    #[test]
    fn env_bare_key_copies_environment() {
        let values = parse("HOST_VAR\nMISSING\n");
        assert_eq!(values["HOST_VAR"], "host");
        assert!(!values.contains_key("MISSING"));
    }

    #[test]
    fn env_invalid_lines_rejected() {
        let environment = HashMap::new();
        assert_eq!(
            parse_env("A B=1", &environment, &HashMap::new())
                .unwrap_err()
                .0,
            1
        );
        assert!(parse_env("A='open", &environment, &HashMap::new()).is_err());
        assert!(parse_env("A='x' y", &environment, &HashMap::new()).is_err());
    }
}
