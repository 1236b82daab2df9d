//! `extends` (a service built on another service, in the same file or
//! another one) and `include` (services imported from another compose
//! project).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::env;
use super::files::resolve_path;
use super::merge::{merge, strip_tags};
use super::yaml::{self, ImageVariables};
use crate::error::{Error, Result};

/// A compose file read, interpolated, and with its `extends` resolved.
pub(crate) struct Document {
    pub path: PathBuf,
    pub value: Value,
    pub image_variables: ImageVariables,
}

/// Reads and interpolates a compose file.
pub(crate) fn read_document(
    path: &Path,
    environment: &HashMap<String, String>,
) -> Result<Document> {
    let text = read_compose_file(path)?;
    let mut value = yaml::parse_document(&text, path)?;
    let image_variables = yaml::interpolate_document(&mut value, environment, path)?;
    Ok(Document {
        path: path.to_path_buf(),
        value,
        image_variables,
    })
}

/// Reads a compose file, with a `ComposeFileNotFound` error naming it when it is missing.
pub(crate) fn read_compose_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            Error::not_found(
                "ComposeFileNotFound",
                format!(
                    "Compose file '{}' was not found: check the path.",
                    path.display()
                ),
            )
        } else {
            Error::invalid(
                "InvalidComposeFile",
                format!(
                    "Compose file '{}' could not be read: {error}.",
                    path.display()
                ),
            )
        }
        .with_target(path.display().to_string())
    })
}

/// Replaces each service that `extends` another by the merge of the two.
pub(crate) fn resolve_extends(
    document: &mut Document,
    environment: &HashMap<String, String>,
) -> Result<()> {
    let Some(Value::Mapping(services)) = document.value.get("services").cloned() else {
        return Ok(());
    };
    let mut resolved = Mapping::new();
    for name in services.keys() {
        let name = yaml::key_to_string(name).unwrap_or_default();
        let mut stack = Vec::new();
        let (service, variables) = extended_service(
            &document.path,
            &services,
            &document.image_variables,
            &name,
            environment,
            &mut stack,
        )?;
        if let Some(variables) = variables {
            document.image_variables.insert(name.clone(), variables);
        }
        resolved.insert(Value::from(name), service);
    }
    document.value["services"] = Value::Mapping(resolved);
    Ok(())
}

type Resolved = (Value, Option<Vec<String>>);

/// Returns a service with its `extends` chain merged in, and the empty
/// variables of the image it ends up with.
fn extended_service(
    file: &Path,
    services: &Mapping,
    image_variables: &ImageVariables,
    name: &str,
    environment: &HashMap<String, String>,
    stack: &mut Vec<(PathBuf, String)>,
) -> Result<Resolved> {
    let key = (file.to_path_buf(), name.to_owned());
    if stack.contains(&key) {
        let chain: Vec<String> = stack.iter().map(|(_, service)| service.clone()).collect();
        return Err(Error::invalid(
            "InvalidExtends",
            format!(
                "Service '{name}' in '{}' extends itself through {}: remove the cycle.",
                file.display(),
                chain.join(" -> ")
            ),
        )
        .with_target(name));
    }
    let Some(service) = services.get(name) else {
        return Err(Error::not_found(
            "ServiceNotFound",
            format!(
                "Service '{name}' named by 'extends' is not defined in '{}'.",
                file.display()
            ),
        )
        .with_target(name));
    };
    let mut service = match service {
        Value::Null => Value::Mapping(Mapping::new()),
        other => other.clone(),
    };
    let own_variables = image_variables.get(name).cloned();
    let Some(mapping) = service.as_mapping_mut() else {
        return Ok((service, own_variables));
    };
    let Some(extends) = mapping.remove("extends") else {
        return Ok((service, own_variables));
    };

    let (base_name, base_file) = parse_extends(&extends, file, name)?;
    stack.push(key);
    let (mut base, base_variables) = match &base_file {
        Some(other) => {
            let other_document = read_document(other, environment)?;
            let other_services = match other_document.value.get("services") {
                Some(Value::Mapping(services)) => services.clone(),
                _ => Mapping::new(),
            };
            let (mut base, variables) = extended_service(
                other,
                &other_services,
                &other_document.image_variables,
                &base_name,
                environment,
                stack,
            )?;
            let directory = other.parent().unwrap_or(Path::new("/"));
            rebase_service_paths(&mut base, directory);
            (base, variables)
        }
        None => extended_service(
            file,
            services,
            image_variables,
            &base_name,
            environment,
            stack,
        )?,
    };
    stack.pop();

    let has_image = service.get("image").is_some();
    let mut path = vec!["services".to_owned(), name.to_owned()];
    base = merge(base, service, &mut path);
    let variables = if has_image {
        own_variables
    } else {
        base_variables
    };
    Ok((base, variables))
}

fn parse_extends(extends: &Value, file: &Path, name: &str) -> Result<(String, Option<PathBuf>)> {
    let invalid = || {
        Error::invalid(
            "InvalidExtends",
            format!(
                "'extends' of service '{name}' in '{}' must be a service name or a mapping with 'service' and an optional 'file'.",
                file.display()
            ),
        )
        .with_target(name)
    };
    match extends {
        Value::String(base) => Ok((base.clone(), None)),
        Value::Mapping(mapping) => {
            let base = mapping
                .get("service")
                .and_then(Value::as_str)
                .ok_or_else(invalid)?;
            let other = match mapping.get("file") {
                None | Some(Value::Null) => None,
                Some(Value::String(other)) => {
                    let directory = file.parent().unwrap_or(Path::new("/"));
                    Some(resolve_path(directory, Path::new(other)))
                }
                Some(_) => return Err(invalid()),
            };
            Ok((base.to_owned(), other))
        }
        _ => Err(invalid()),
    }
}

/// Makes the relative paths of a service (build context, env files)
/// absolute against `directory`.
pub(crate) fn rebase_service_paths(service: &mut Value, directory: &Path) {
    let Some(mapping) = service.as_mapping_mut() else {
        return;
    };
    match mapping.get_mut("build") {
        Some(Value::String(context)) => rebase_path(context, directory),
        Some(Value::Mapping(build)) => match build.get_mut("context") {
            Some(Value::String(context)) => rebase_path(context, directory),
            _ => {
                build.insert(
                    Value::from("context"),
                    Value::from(directory.display().to_string()),
                );
            }
        },
        _ => {}
    }
    match mapping.get_mut("env_file") {
        Some(Value::String(file)) => rebase_path(file, directory),
        Some(Value::Sequence(files)) => {
            for file in files {
                match file {
                    Value::String(path) => rebase_path(path, directory),
                    Value::Mapping(entry) => {
                        if let Some(Value::String(path)) = entry.get_mut("path") {
                            rebase_path(path, directory);
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

fn rebase_path(path: &mut String, directory: &Path) {
    if is_remote_context(path) {
        return;
    }
    *path = resolve_path(directory, Path::new(path.as_str()))
        .display()
        .to_string();
}

/// True for a build context that is a URL or a git repository, not a directory.
pub(crate) fn is_remote_context(context: &str) -> bool {
    [
        "http://",
        "https://",
        "git://",
        "ssh://",
        "github.com/",
        "git@",
    ]
    .iter()
    .any(|prefix| context.starts_with(prefix))
}

/// Adds the services of the projects named by `include` to the document.
///
/// Each included project is read on its own, and its paths are relative to
/// its own directory. Its `.env` (or the `env_file` of the entry) adds the
/// variables that the including project does not set. A service it defines
/// must not exist in the including document.
pub(crate) fn apply_include(
    document: &mut Document,
    environment: &HashMap<String, String>,
    include_stack: &mut Vec<PathBuf>,
) -> Result<()> {
    let Some(include) = document
        .value
        .as_mapping_mut()
        .and_then(|m| m.remove("include"))
    else {
        return Ok(());
    };
    let Value::Sequence(entries) = include else {
        return Err(invalid_include(&document.path, "'include' must be a list"));
    };
    let directory = document
        .path
        .parent()
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    for entry in entries {
        let (paths, project_directory, env_files) = parse_include_entry(&entry, &directory)
            .ok_or_else(|| {
                invalid_include(
                    &document.path,
                    "each 'include' entry must be a path or a mapping with 'path' and optional 'project_directory' and 'env_file'",
                )
            })?;
        if let Some(cycle) = paths.iter().find(|path| include_stack.contains(path)) {
            return Err(invalid_include(
                &document.path,
                &format!("'{}' includes itself", cycle.display()),
            ));
        }
        let project_directory = project_directory
            .unwrap_or_else(|| paths[0].parent().unwrap_or(Path::new("/")).to_path_buf());
        let env_files = if env_files.is_empty() {
            let default = project_directory.join(".env");
            if default.is_file() {
                vec![default]
            } else {
                Vec::new()
            }
        } else {
            env_files
        };
        let mut included_environment = env::read_env_files(&env_files, environment)?;
        included_environment.extend(environment.iter().map(|(k, v)| (k.clone(), v.clone())));

        include_stack.extend(paths.iter().cloned());
        let mut merged = Value::Mapping(Mapping::new());
        let mut image_variables = ImageVariables::new();
        for path in &paths {
            let mut included = read_document(path, &included_environment)?;
            resolve_extends(&mut included, &included_environment)?;
            apply_include(&mut included, &included_environment, include_stack)?;
            merged = merge(merged, included.value, &mut Vec::new());
            image_variables.extend(included.image_variables);
        }
        include_stack.truncate(include_stack.len() - paths.len());

        let merged = strip_tags(merged);
        let Some(Value::Mapping(services)) = merged.get("services").cloned() else {
            continue;
        };
        let root = document
            .value
            .as_mapping_mut()
            .expect("a parsed document is a mapping");
        let target = root
            .entry(Value::from("services"))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if target.is_null() {
            *target = Value::Mapping(Mapping::new());
        }
        let Some(target) = target.as_mapping_mut() else {
            return Err(invalid_include(
                &document.path,
                "'services' must be a mapping",
            ));
        };
        for (name, mut service) in services {
            let name_text = yaml::key_to_string(&name).unwrap_or_default();
            if target.contains_key(&name) {
                return Err(Error::invalid(
                    "IncludeConflict",
                    format!(
                        "Service '{name_text}' of included file '{}' is also defined in '{}': rename one of them, or change the included service through an override file in the 'include' entry.",
                        paths[0].display(),
                        document.path.display()
                    ),
                )
                .with_target(name_text));
            }
            rebase_service_paths(&mut service, &project_directory);
            if let Some(variables) = image_variables.remove(&name_text) {
                document.image_variables.insert(name_text, variables);
            }
            target.insert(name, service);
        }
    }
    Ok(())
}

fn parse_include_entry(
    entry: &Value,
    directory: &Path,
) -> Option<(Vec<PathBuf>, Option<PathBuf>, Vec<PathBuf>)> {
    let resolve = |value: &Value| -> Option<Vec<PathBuf>> {
        match value {
            Value::String(path) => Some(vec![resolve_path(directory, Path::new(path))]),
            Value::Sequence(items) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(|path| resolve_path(directory, Path::new(path)))
                })
                .collect(),
            _ => None,
        }
    };
    match entry {
        Value::String(_) => Some((resolve(entry)?, None, Vec::new())),
        Value::Mapping(mapping) => {
            let paths = resolve(mapping.get("path")?)?;
            if paths.is_empty() {
                return None;
            }
            let project_directory = match mapping.get("project_directory") {
                Some(Value::String(path)) => Some(resolve_path(directory, Path::new(path))),
                None | Some(Value::Null) => None,
                Some(_) => return None,
            };
            let env_files = match mapping.get("env_file") {
                Some(value) => resolve(value)?,
                None => Vec::new(),
            };
            Some((paths, project_directory, env_files))
        }
        _ => None,
    }
}

fn invalid_include(file: &Path, reason: &str) -> Error {
    Error::invalid(
        "InvalidInclude",
        format!("'include' in '{}' is invalid: {reason}.", file.display()),
    )
    .with_target(file.display().to_string())
}
