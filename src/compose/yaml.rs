//! Reading a compose file into a YAML tree: parsing, `<<` merge keys, key
//! paths for messages, interpolation of every string value, and conversion
//! to JSON.

use std::collections::HashMap;
use std::path::Path;

use serde_yaml::{Mapping, Value};

use super::interpolation::{self, TemplateError};
use crate::error::{Error, Result};

/// Key of a YAML merge (`<<: *anchor`), from the YAML 1.1 merge key type.
const MERGE_KEY: &str = "<<";

/// Variables of one service's `image` whose substitution was empty, by service name.
pub(crate) type ImageVariables = HashMap<String, Vec<String>>;

/// Parses a compose file into a mapping with string keys and `<<` merge keys applied.
pub(crate) fn parse_document(text: &str, file: &Path) -> Result<Value> {
    let mut document: Value = serde_yaml::from_str(text).map_err(|error| {
        Error::invalid(
            "InvalidComposeFile",
            format!(
                "Compose file '{}' is not valid YAML: {error}. Fix the syntax at that line.",
                file.display()
            ),
        )
        .with_target(file.display().to_string())
    })?;
    let mut path = Vec::new();
    normalize_node(&mut document, &mut path).map_err(|(path, reason)| {
        Error::invalid(
            "InvalidComposeFile",
            format!(
                "Compose file '{}' is invalid at '{}': {reason}.",
                file.display(),
                display_path(&path)
            ),
        )
        .with_target(file.display().to_string())
    })?;
    match document {
        Value::Mapping(_) => Ok(document),
        Value::Null => Err(Error::invalid(
            "InvalidComposeFile",
            format!(
                "Compose file '{}' is empty: define at least a 'services' section.",
                file.display()
            ),
        )
        .with_target(file.display().to_string())),
        _ => Err(Error::invalid(
            "InvalidComposeFile",
            format!(
                "Compose file '{}' must contain a mapping at the top level, with a 'services' section.",
                file.display()
            ),
        )
        .with_target(file.display().to_string())),
    }
}

/// Joins a key path for messages, for example `services.web.image`.
pub(crate) fn display_path(path: &[String]) -> String {
    if path.is_empty() {
        "(top level)".to_owned()
    } else {
        path.join(".")
    }
}

/// Applies merge keys bottom-up and turns number and boolean keys into strings.
///
/// Merged mappings are processed before the mapping that merges them, so a
/// chain of anchors (`b: {<<: *a}`, `c: {<<: *b}`) resolves fully. Keys
/// written in the mapping win over merged keys, and earlier mappings in a
/// merge list win over later ones.
fn normalize_node(
    value: &mut Value,
    path: &mut Vec<String>,
) -> std::result::Result<(), (Vec<String>, String)> {
    match value {
        Value::Mapping(mapping) => {
            let entries = std::mem::take(mapping);
            let mut explicit = Mapping::new();
            let mut merged = Vec::new();
            for (key, mut child) in entries {
                let key_text = key_to_string(&key).ok_or_else(|| {
                    (
                        path.clone(),
                        "a mapping key must be a string, a number or a boolean".to_owned(),
                    )
                })?;
                path.push(key_text.clone());
                normalize_node(&mut child, path)?;
                path.pop();
                if key_text == MERGE_KEY && matches!(key, Value::String(_)) {
                    merged.push(child);
                } else {
                    explicit.insert(Value::String(key_text), child);
                }
            }
            for source in merged {
                for source_mapping in merge_sources(source, path)? {
                    for (key, child) in source_mapping {
                        if !explicit.contains_key(&key) {
                            explicit.insert(key, child);
                        }
                    }
                }
            }
            *mapping = explicit;
        }
        Value::Sequence(sequence) => {
            for (index, child) in sequence.iter_mut().enumerate() {
                path.push(format!("[{index}]"));
                normalize_node(child, path)?;
                path.pop();
            }
        }
        Value::Tagged(tagged) => normalize_node(&mut tagged.value, path)?,
        _ => {}
    }
    Ok(())
}

fn merge_sources(
    source: Value,
    path: &[String],
) -> std::result::Result<Vec<Mapping>, (Vec<String>, String)> {
    let invalid = || {
        (
            path.to_vec(),
            "the merge key '<<' must name a mapping or a list of mappings".to_owned(),
        )
    };
    match source {
        Value::Mapping(mapping) => Ok(vec![mapping]),
        Value::Sequence(sequence) => sequence
            .into_iter()
            .map(|item| match item {
                Value::Mapping(mapping) => Ok(mapping),
                _ => Err(invalid()),
            })
            .collect(),
        _ => Err(invalid()),
    }
}

/// Returns a mapping key as a string; `None` for a null, sequence or mapping key.
pub(crate) fn key_to_string(key: &Value) -> Option<String> {
    match key {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Tagged(tagged) => key_to_string(&tagged.value),
        _ => None,
    }
}

/// Returns a scalar as a string, as compose reads a string field written as a number.
pub(crate) fn scalar_to_string(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// Interpolates every string value of a document (keys are kept as written).
///
/// Returns, for each service, the variables of its `image` that were empty,
/// so that an invalid image can name them.
pub(crate) fn interpolate_document(
    document: &mut Value,
    environment: &HashMap<String, String>,
    file: &Path,
) -> Result<ImageVariables> {
    let mut walker = Interpolator {
        environment,
        file,
        path: Vec::new(),
        image_variables: ImageVariables::new(),
    };
    walker.visit(document)?;
    Ok(walker.image_variables)
}

struct Interpolator<'a> {
    environment: &'a HashMap<String, String>,
    file: &'a Path,
    path: Vec<String>,
    image_variables: ImageVariables,
}

impl Interpolator<'_> {
    fn visit(&mut self, value: &mut Value) -> Result<()> {
        match value {
            Value::String(text) => *text = self.substitute(text)?,
            Value::Mapping(mapping) => {
                for (key, child) in mapping.iter_mut() {
                    self.path.push(key_to_string(key).unwrap_or_default());
                    self.visit(child)?;
                    self.path.pop();
                }
            }
            Value::Sequence(sequence) => {
                for (index, child) in sequence.iter_mut().enumerate() {
                    self.path.push(format!("[{index}]"));
                    self.visit(child)?;
                    self.path.pop();
                }
            }
            Value::Tagged(tagged) => self.visit(&mut tagged.value)?,
            _ => {}
        }
        Ok(())
    }

    fn substitute(&mut self, text: &str) -> Result<String> {
        let location = format!(
            "'{}' in '{}'",
            display_path(&self.path),
            self.file.display()
        );
        let substituted = interpolation::substitute(text, self.environment).map_err(|error| {
            match error {
                TemplateError::Invalid(reason) => Error::invalid(
                    "InvalidInterpolation",
                    format!(
                        "The value of {location} is an invalid template: {reason}. Write '$$' for a literal '$'."
                    ),
                )
                .with_target(display_path(&self.path)),
                TemplateError::Required { variable, message } => Error::invalid(
                    "MissingRequiredVariable",
                    format!(
                        "Required variable {variable} is missing a value in {location}: {message}. Set {variable} in the environment or in the project's .env file."
                    ),
                )
                .with_target(variable),
            }
        })?;
        for variable in &substituted.unset_variables {
            tracing::warn!(
                variable = %variable,
                key = %display_path(&self.path),
                file = %self.file.display(),
                "variable is not set, substituting an empty string"
            );
        }
        if let [section, service, key] = self.path.as_slice() {
            if section == "services" && key == "image" {
                self.image_variables
                    .insert(service.clone(), substituted.empty_variables.clone());
            }
        }
        Ok(substituted.value)
    }
}

/// Converts a YAML value to JSON; tags are dropped and keys become strings.
pub(crate) fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(flag) => serde_json::Value::Bool(*flag),
        Value::Number(number) => {
            if let Some(integer) = number.as_i64() {
                serde_json::Value::from(integer)
            } else if let Some(integer) = number.as_u64() {
                serde_json::Value::from(integer)
            } else {
                number
                    .as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
        }
        Value::String(text) => serde_json::Value::String(text.clone()),
        Value::Sequence(sequence) => {
            serde_json::Value::Array(sequence.iter().map(to_json).collect())
        }
        Value::Mapping(mapping) => serde_json::Value::Object(
            mapping
                .iter()
                .map(|(key, child)| (key_to_string(key).unwrap_or_default(), to_json(child)))
                .collect(),
        ),
        Value::Tagged(tagged) => to_json(&tagged.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Value {
        parse_document(text, Path::new("compose.yaml")).unwrap()
    }

    #[test]
    fn merge_key_explicit_keys_win() {
        let document = parse("base: &b {a: 1, b: 2}\nchild: {<<: *b, b: 3}\n");
        assert_eq!(document["child"]["a"], Value::from(1));
        assert_eq!(document["child"]["b"], Value::from(3));
    }

    #[test]
    fn merge_key_list_earlier_wins() {
        let document = parse("x: &x {a: 1}\ny: &y {a: 2, b: 2}\nz: {<<: [*x, *y]}\n");
        assert_eq!(document["z"]["a"], Value::from(1));
        assert_eq!(document["z"]["b"], Value::from(2));
    }

    #[test]
    fn merge_key_chain_resolves() {
        let document = parse("a: &a {k: 1}\nb: &b {<<: *a, l: 2}\nc: {<<: *b}\n");
        assert_eq!(document["c"]["k"], Value::from(1));
        assert_eq!(document["c"]["l"], Value::from(2));
        assert!(document["c"].get("<<").is_none());
    }

    #[test]
    fn merge_key_scalar_rejected() {
        let error = parse_document("a: {<<: 1}\n", Path::new("c.yaml")).unwrap_err();
        assert_eq!(error.error_id, "InvalidComposeFile");
        assert!(error.message.contains("'a'"), "{}", error.message);
    }

    #[test]
    fn parse_rejects_empty_and_scalar() {
        assert!(parse_document("", Path::new("c.yaml")).is_err());
        assert!(parse_document("just text", Path::new("c.yaml")).is_err());
    }

    #[test]
    fn parse_numeric_keys_become_strings() {
        let document = parse("1: a\n");
        assert_eq!(document["1"], Value::from("a"));
    }

    #[test]
    fn interpolate_names_file_path_and_variable() {
        let mut document = parse("services:\n  web:\n    image: app:${TAG:?set a tag}\n");
        let error =
            interpolate_document(&mut document, &HashMap::new(), Path::new("c.yaml")).unwrap_err();
        assert_eq!(error.error_id, "MissingRequiredVariable");
        assert!(
            error.message.contains("services.web.image"),
            "{}",
            error.message
        );
        assert!(error.message.contains("c.yaml"), "{}", error.message);
        assert!(error.message.contains("TAG"), "{}", error.message);
    }

    #[test]
    fn interpolate_leaves_keys() {
        let mut document = parse("x-$KEY: $VALUE\n");
        let environment = HashMap::from([("VALUE".to_owned(), "v".to_owned())]);
        interpolate_document(&mut document, &environment, Path::new("c.yaml")).unwrap();
        assert_eq!(document["x-$KEY"], Value::from("v"));
    }
}
