//! Lookup of the compose files of a project, and the project name.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Compose file names looked up when none is given, in order of preference.
pub const DEFAULT_FILE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// Override file names read after the default file, in order of preference.
pub const DEFAULT_OVERRIDE_FILE_NAMES: [&str; 4] = [
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// Separator of `COMPOSE_FILE` when `COMPOSE_PATH_SEPARATOR` is not set.
#[cfg(windows)]
pub const DEFAULT_PATH_SEPARATOR: &str = ";";
/// Separator of `COMPOSE_FILE` when `COMPOSE_PATH_SEPARATOR` is not set.
#[cfg(not(windows))]
pub const DEFAULT_PATH_SEPARATOR: &str = ":";

/// Finds the default compose file in `directory` or the nearest parent that
/// has one, followed by the override file of that directory when present.
pub(crate) fn find_default_files(directory: &Path) -> Result<Vec<PathBuf>> {
    let mut current = Some(directory);
    while let Some(candidate_directory) = current {
        let found = existing_files(candidate_directory, &DEFAULT_FILE_NAMES);
        if let Some(first) = found.first() {
            if found.len() > 1 {
                tracing::warn!(
                    files = ?found,
                    chosen = %first.display(),
                    "several compose files have a default name, using the first"
                );
            }
            let mut files = vec![first.clone()];
            if let Some(override_file) =
                existing_files(candidate_directory, &DEFAULT_OVERRIDE_FILE_NAMES).first()
            {
                files.push(override_file.clone());
            }
            return Ok(files);
        }
        current = candidate_directory.parent();
    }
    Err(Error::not_found(
        "ComposeFileNotFound",
        format!(
            "No compose file was found in '{}' or its parent directories: create compose.yaml there, or name the compose files explicitly.",
            directory.display()
        ),
    )
    .with_target(directory.display().to_string()))
}

fn existing_files(directory: &Path, names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|name| directory.join(name))
        .filter(|path| path.is_file())
        .collect()
}

/// Splits `COMPOSE_FILE` by `COMPOSE_PATH_SEPARATOR` and resolves each path
/// against `working_dir`; returns `None` when the variable is unset or empty.
pub(crate) fn files_from_environment(
    environment: &HashMap<String, String>,
    working_dir: &Path,
) -> Option<Vec<PathBuf>> {
    let value = environment
        .get("COMPOSE_FILE")
        .filter(|value| !value.is_empty())?;
    let separator = environment
        .get("COMPOSE_PATH_SEPARATOR")
        .filter(|separator| !separator.is_empty())
        .map_or(DEFAULT_PATH_SEPARATOR, String::as_str);
    let files: Vec<PathBuf> = value
        .split(separator)
        .filter(|part| !part.is_empty())
        .map(|part| resolve_path(working_dir, Path::new(part)))
        .collect();
    (!files.is_empty()).then_some(files)
}

/// Joins a relative path to `base` and removes `.` and `..` components
/// lexically, as Go's `filepath.Join` does; an absolute path is only cleaned.
pub fn resolve_path(base: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    let mut cleaned = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !cleaned.pop() {
                    cleaned.push(component);
                }
            }
            other => cleaned.push(other),
        }
    }
    cleaned
}

/// Normalizes a directory name into a project name as compose does: lower
/// case, only `[a-z0-9_-]` kept, leading `_` and `-` removed.
pub fn normalize_project_name(name: &str) -> String {
    let kept: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    kept.trim_start_matches(['_', '-']).to_owned()
}

/// Checks a project name set explicitly (`name:` or `COMPOSE_PROJECT_NAME`).
pub(crate) fn validate_project_name(name: &str, source: &str) -> Result<()> {
    if !name.is_empty() && normalize_project_name(name) == name {
        return Ok(());
    }
    Err(Error::invalid(
        "InvalidProjectName",
        format!(
            "Project name '{name}' from {source} is invalid: use only lowercase letters, digits, dashes and underscores, starting with a letter or digit."
        ),
    )
    .with_target(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_name_normalized() {
        assert_eq!(normalize_project_name("My App.v2"), "myappv2");
        assert_eq!(normalize_project_name("__-x_y"), "x_y");
        assert_eq!(normalize_project_name("Ünïcode"), "ncode");
    }

    #[test]
    fn project_name_explicit_validated() {
        assert!(validate_project_name("shop-1", "name").is_ok());
        assert!(validate_project_name("Shop", "name").is_err());
        assert!(validate_project_name("-shop", "name").is_err());
        assert!(validate_project_name("", "name").is_err());
    }

    #[test]
    fn resolve_path_cleans() {
        assert_eq!(
            resolve_path(Path::new("/a/b"), Path::new("../c/./d")),
            PathBuf::from("/a/c/d")
        );
        assert_eq!(
            resolve_path(Path::new("/a"), Path::new("/x/y")),
            PathBuf::from("/x/y")
        );
    }

    #[test]
    fn compose_file_split() {
        let environment = HashMap::from([
            ("COMPOSE_FILE".to_owned(), "a.yaml,b.yaml".to_owned()),
            ("COMPOSE_PATH_SEPARATOR".to_owned(), ",".to_owned()),
        ]);
        let files = files_from_environment(&environment, Path::new("/w")).unwrap();
        assert_eq!(
            files,
            [PathBuf::from("/w/a.yaml"), PathBuf::from("/w/b.yaml")]
        );
    }
}
