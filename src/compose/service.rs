//! Conversion of the merged compose document into [`Service`] values.

use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde_yaml::Value;

use super::extends::is_remote_context;
use super::files::resolve_path;
use super::yaml::{self, ImageVariables};
use super::{BuildSpec, Service};
use crate::error::{Error, Result};

/// Service names allowed by the compose specification schema.
static SERVICE_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9._-]+$").expect("service name pattern is valid"));

/// Builds the services of a merged document, in the order the files define them.
pub(crate) fn build_services(
    document: &Value,
    project_directory: &Path,
    enabled_profiles: &[String],
    image_variables: &ImageVariables,
) -> Result<Vec<Service>> {
    let services = match document.get("services") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Mapping(services)) => services,
        Some(_) => {
            return Err(invalid(
                "services",
                "must be a mapping of service names to definitions",
            ));
        }
    };
    let mut result = Vec::with_capacity(services.len());
    for (key, definition) in services {
        let name = yaml::key_to_string(key).unwrap_or_default();
        if !SERVICE_NAME.is_match(&name) {
            return Err(Error::invalid(
                "InvalidServiceName",
                format!(
                    "Service name '{name}' is invalid: use only letters, digits, '.', '_' and '-'."
                ),
            )
            .with_target(name));
        }
        let service = build_service(
            &name,
            definition,
            project_directory,
            enabled_profiles,
            image_variables.get(&name).cloned().unwrap_or_default(),
        )?;
        result.push(service);
    }
    Ok(result)
}

fn build_service(
    name: &str,
    definition: &Value,
    project_directory: &Path,
    enabled_profiles: &[String],
    image_variables: Vec<String>,
) -> Result<Service> {
    let empty = serde_yaml::Mapping::new();
    let mapping = match definition {
        Value::Null => &empty,
        Value::Mapping(mapping) => mapping,
        _ => return Err(invalid(&format!("services.{name}"), "must be a mapping")),
    };

    let image = match mapping.get("image") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            yaml::scalar_to_string(value)
                .ok_or_else(|| invalid(&format!("services.{name}.image"), "must be a string"))?,
        ),
    };
    // compose treats `image: ""` as no image, unless a variable made it empty:
    // then the plan names that variable.
    let image = image.filter(|image| !image.is_empty() || !image_variables.is_empty());

    let build = match mapping.get("build") {
        None | Some(Value::Null) => None,
        Some(value) => Some(build_spec(name, value, project_directory)?),
    };
    let profiles = string_list(mapping.get("profiles")).ok_or_else(|| {
        invalid(
            &format!("services.{name}.profiles"),
            "must be a list of strings",
        )
    })?;
    let env_files = env_file_list(mapping.get("env_file"))
        .ok_or_else(|| {
            invalid(
                &format!("services.{name}.env_file"),
                "must be a path or a list of paths",
            )
        })?
        .into_iter()
        .map(|path| resolve_path(project_directory, Path::new(&path)))
        .collect();
    let platform = mapping.get("platform").and_then(yaml::scalar_to_string);
    let extensions = mapping
        .iter()
        .filter_map(|(key, value)| {
            let key = yaml::key_to_string(key)?;
            key.starts_with("x-").then(|| (key, yaml::to_json(value)))
        })
        .collect();

    let active = is_active(&profiles, enabled_profiles);
    if active && image.is_none() && build.is_none() {
        return Err(Error::invalid(
            "MissingImage",
            format!(
                "Service '{name}' has neither an image nor a build context: add 'image' or 'build' to it."
            ),
        )
        .with_target(name));
    }

    Ok(Service {
        name: name.to_owned(),
        image,
        build,
        profiles,
        active,
        image_empty_variables: image_variables,
        env_files,
        platform,
        extensions,
    })
}

/// True when a service runs with these profiles enabled: it has no profile,
/// or one of its profiles is enabled, or `*` enables them all.
pub(crate) fn is_active(profiles: &[String], enabled: &[String]) -> bool {
    profiles.is_empty()
        || enabled.iter().any(|profile| profile == "*")
        || profiles.iter().any(|profile| enabled.contains(profile))
}

fn build_spec(name: &str, value: &Value, project_directory: &Path) -> Result<BuildSpec> {
    let path = format!("services.{name}.build");
    let (context, mapping) = match value {
        Value::String(context) => (context.clone(), None),
        Value::Mapping(mapping) => {
            let context = match mapping.get("context") {
                None | Some(Value::Null) => ".".to_owned(),
                Some(Value::String(context)) => context.clone(),
                Some(_) => return Err(invalid(&format!("{path}.context"), "must be a string")),
            };
            (context, Some(mapping))
        }
        _ => return Err(invalid(&path, "must be a path or a mapping")),
    };
    let context = if is_remote_context(&context) {
        context
    } else {
        resolve_path(project_directory, Path::new(&context))
            .display()
            .to_string()
    };
    let text = |key: &str| {
        mapping
            .and_then(|m| m.get(key))
            .and_then(yaml::scalar_to_string)
    };
    let tags = string_list(mapping.and_then(|m| m.get("tags")))
        .ok_or_else(|| invalid(&format!("{path}.tags"), "must be a list of strings"))?;
    Ok(BuildSpec {
        context,
        dockerfile: text("dockerfile"),
        target: text("target"),
        tags,
    })
}

/// Reads a string or a list of strings; `None` when the value has another type.
fn string_list(value: Option<&Value>) -> Option<Vec<String>> {
    match value {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Sequence(items)) => items.iter().map(yaml::scalar_to_string).collect(),
        Some(other) => yaml::scalar_to_string(other).map(|item| vec![item]),
    }
}

/// Reads `env_file`: a path, or a list of paths and `{path, required}` entries.
fn env_file_list(value: Option<&Value>) -> Option<Vec<String>> {
    match value {
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| match item {
                Value::Mapping(entry) => entry.get("path").and_then(yaml::scalar_to_string),
                other => yaml::scalar_to_string(other),
            })
            .collect(),
        other => string_list(other),
    }
}

fn invalid(path: &str, reason: &str) -> Error {
    Error::invalid(
        "InvalidComposeFile",
        format!("The compose key '{path}' {reason}."),
    )
    .with_target(path)
}
