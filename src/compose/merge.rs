//! Merging of compose documents, as `docker compose -f a.yaml -f b.yaml`
//! does: mappings are merged key by key, scalars of the later file replace
//! earlier ones, and sequences are appended, except where compose replaces
//! them (`command`, `entrypoint`, `healthcheck.test`).
//!
//! The tags `!reset` (drop the earlier value) and `!override` (replace it
//! without merging) of the compose specification are honoured.

use serde_yaml::value::{Tag, TaggedValue};
use serde_yaml::{Mapping, Value};

use super::yaml::key_to_string;

/// Keys of a service whose sequences the later file replaces.
const REPLACED: &[&[&str]] = &[
    &["services", "*", "command"],
    &["services", "*", "entrypoint"],
    &["services", "*", "healthcheck", "test"],
];

/// Keys of a service written either as a `KEY=VALUE` list or as a mapping.
const KEY_VALUE: &[&[&str]] = &[
    &["services", "*", "environment"],
    &["services", "*", "labels"],
    &["services", "*", "annotations"],
    &["services", "*", "sysctls"],
    &["services", "*", "build", "args"],
    &["services", "*", "build", "labels"],
    &["services", "*", "deploy", "labels"],
];

/// Keys of a service written either as a single string or as a list.
const STRING_OR_LIST: &[&[&str]] = &[
    &["services", "*", "env_file"],
    &["services", "*", "dns"],
    &["services", "*", "dns_search"],
    &["services", "*", "tmpfs"],
    &["services", "*", "profiles"],
];

/// Merges `overlay` into `base` at `path` and returns the result.
pub(crate) fn merge(base: Value, overlay: Value, path: &mut Vec<String>) -> Value {
    let overlay = match overlay {
        Value::Tagged(tagged) if is_tag(&tagged, "override") => return strip_tags(tagged.value),
        Value::Tagged(tagged) if is_tag(&tagged, "reset") => return Value::Tagged(tagged),
        Value::Tagged(tagged) => tagged.value,
        other => other,
    };
    let base = match base {
        Value::Tagged(tagged) => tagged.value,
        other => other,
    };
    if matches_any(path, REPLACED) {
        return overlay;
    }
    if matches_pattern(path, &["services", "*", "build"]) {
        return merge_mappings(build_mapping(base), build_mapping(overlay), path);
    }
    if matches_any(path, KEY_VALUE) {
        return merge_mappings(key_value_mapping(base), key_value_mapping(overlay), path);
    }
    if matches_any(path, STRING_OR_LIST) {
        return append_unique(string_list(base), string_list(overlay));
    }
    if matches_pattern(path, &["services", "*", "depends_on"])
        || matches_pattern(path, &["services", "*", "networks"])
    {
        return merge_mappings(name_mapping(base), name_mapping(overlay), path);
    }
    match (base, overlay) {
        (Value::Mapping(base), Value::Mapping(overlay)) => {
            merge_mappings(Value::Mapping(base), Value::Mapping(overlay), path)
        }
        (Value::Sequence(base), Value::Sequence(overlay)) => {
            append_unique(Value::Sequence(base), Value::Sequence(overlay))
        }
        (base, Value::Null) if path.len() <= 2 => base,
        (_, overlay) => overlay,
    }
}

/// Removes the entries tagged `!reset` and the remaining tags of a merged document.
pub(crate) fn strip_tags(value: Value) -> Value {
    match value {
        Value::Tagged(tagged) => strip_tags(tagged.value),
        Value::Mapping(mapping) => Value::Mapping(
            mapping
                .into_iter()
                .filter(
                    |(_, child)| !matches!(child, Value::Tagged(tagged) if is_tag(tagged, "reset")),
                )
                .map(|(key, child)| (key, strip_tags(child)))
                .collect(),
        ),
        Value::Sequence(sequence) => Value::Sequence(
            sequence
                .into_iter()
                .filter(|child| !matches!(child, Value::Tagged(tagged) if is_tag(tagged, "reset")))
                .map(strip_tags)
                .collect(),
        ),
        other => other,
    }
}

fn merge_mappings(base: Value, overlay: Value, path: &mut Vec<String>) -> Value {
    let (Value::Mapping(mut base), Value::Mapping(overlay)) = (base, overlay) else {
        unreachable!("callers pass two mappings")
    };
    for (key, child) in overlay {
        path.push(key_to_string(&key).unwrap_or_default());
        let merged = match base.remove(&key) {
            Some(previous) => merge(previous, child, path),
            None => child,
        };
        path.pop();
        base.insert(key, merged);
    }
    Value::Mapping(base)
}

fn is_tag(tagged: &TaggedValue, name: &str) -> bool {
    tagged.tag == Tag::new(name)
}

fn matches_any(path: &[String], patterns: &[&[&str]]) -> bool {
    patterns
        .iter()
        .any(|pattern| matches_pattern(path, pattern))
}

fn matches_pattern(path: &[String], pattern: &[&str]) -> bool {
    path.len() == pattern.len()
        && path
            .iter()
            .zip(pattern)
            .all(|(key, expected)| *expected == "*" || key == expected)
}

/// Turns `build: ./dir` into `build: {context: ./dir}`.
fn build_mapping(value: Value) -> Value {
    match value {
        Value::Mapping(_) => value,
        Value::Null => Value::Mapping(Mapping::new()),
        other => {
            let mut mapping = Mapping::new();
            mapping.insert(Value::from("context"), other);
            Value::Mapping(mapping)
        }
    }
}

/// Turns `[KEY=VALUE, KEY]` into `{KEY: VALUE, KEY: null}`.
fn key_value_mapping(value: Value) -> Value {
    match value {
        Value::Sequence(sequence) => {
            let mut mapping = Mapping::new();
            for item in sequence {
                let Value::String(text) = item else { continue };
                match text.split_once('=') {
                    Some((key, value)) => mapping.insert(Value::from(key), Value::from(value)),
                    None => mapping.insert(Value::from(text), Value::Null),
                };
            }
            Value::Mapping(mapping)
        }
        Value::Mapping(_) => value,
        _ => Value::Mapping(Mapping::new()),
    }
}

/// Turns `[a, b]` into `{a: null, b: null}` (for `depends_on` and `networks`).
fn name_mapping(value: Value) -> Value {
    match value {
        Value::Sequence(sequence) => Value::Mapping(
            sequence
                .into_iter()
                .map(|item| (item, Value::Null))
                .collect(),
        ),
        Value::Mapping(_) => value,
        _ => Value::Mapping(Mapping::new()),
    }
}

fn string_list(value: Value) -> Value {
    match value {
        Value::Sequence(_) => value,
        Value::Null => Value::Sequence(Vec::new()),
        other => Value::Sequence(vec![other]),
    }
}

fn append_unique(base: Value, overlay: Value) -> Value {
    let (Value::Sequence(mut base), Value::Sequence(overlay)) = (base, overlay) else {
        unreachable!("callers pass two sequences")
    };
    for item in overlay {
        if !base.contains(&item) {
            base.push(item);
        }
    }
    Value::Sequence(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    fn merged(base: &str, overlay: &str) -> Value {
        strip_tags(merge(yaml(base), yaml(overlay), &mut Vec::new()))
    }

    #[test]
    fn merge_scalar_replaced() {
        let result = merged("services: {web: {image: a}}", "services: {web: {image: b}}");
        assert_eq!(result["services"]["web"]["image"], Value::from("b"));
    }

    #[test]
    fn merge_services_by_name() {
        let result = merged("services: {web: {image: a}}", "services: {db: {image: b}}");
        assert_eq!(result["services"]["web"]["image"], Value::from("a"));
        assert_eq!(result["services"]["db"]["image"], Value::from("b"));
    }

    #[test]
    fn merge_command_replaced() {
        let result = merged(
            "services: {web: {command: [a, b]}}",
            "services: {web: {command: [c]}}",
        );
        assert_eq!(result["services"]["web"]["command"], yaml("[c]"));
    }

    #[test]
    fn merge_ports_appended() {
        let result = merged(
            "services: {web: {ports: ['80:80']}}",
            "services: {web: {ports: ['80:80', '443:443']}}",
        );
        assert_eq!(
            result["services"]["web"]["ports"],
            yaml("['80:80', '443:443']")
        );
    }

    #[test]
    fn merge_build_string_and_mapping() {
        let result = merged(
            "services: {web: {build: ./app}}",
            "services: {web: {build: {dockerfile: Dockerfile.prod}}}",
        );
        assert_eq!(
            result["services"]["web"]["build"]["context"],
            Value::from("./app")
        );
        assert_eq!(
            result["services"]["web"]["build"]["dockerfile"],
            Value::from("Dockerfile.prod")
        );
    }

    #[test]
    fn merge_environment_list_and_mapping() {
        let result = merged(
            "services: {web: {environment: [A=1, B=2]}}",
            "services: {web: {environment: {B: 3}}}",
        );
        assert_eq!(
            result["services"]["web"]["environment"],
            yaml("{A: '1', B: 3}")
        );
    }

    #[test]
    fn merge_reset_removes_value() {
        let result = merged(
            "services: {web: {image: a, profiles: [debug]}}",
            "services: {web: {profiles: !reset []}}",
        );
        assert!(result["services"]["web"].get("profiles").is_none());
    }

    #[test]
    fn merge_override_replaces_mapping() {
        let result = merged(
            "services: {web: {build: {context: a, target: t}}}",
            "services: {web: {build: !override {context: b}}}",
        );
        assert_eq!(result["services"]["web"]["build"], yaml("{context: b}"));
    }

    #[test]
    fn merge_null_service_keeps_base() {
        let result = merged("services: {web: {image: a}}", "services: {web: }");
        assert_eq!(result["services"]["web"]["image"], Value::from("a"));
    }
}
