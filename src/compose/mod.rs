//! Docker compose projects read as `docker compose` reads them: file lookup,
//! `.env` files, interpolation, merging of several files, `extends`,
//! `include`, profiles and the project name.
//!
//! Only what a push needs is kept for each service (image, build, profiles,
//! env files, platform, extension fields).

mod env;
mod extends;
pub mod files;
pub mod interpolation;
mod merge;
pub mod reference;
mod service;
mod yaml;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};

use self::extends::Document;
use self::files::{normalize_project_name, resolve_path, validate_project_name};
use self::yaml::ImageVariables;
use crate::error::{Error, Result};
use crate::registry::RegistryAliases;

/// Top-level extension field of EcrCompose in a compose file.
pub const EXTENSION_KEY: &str = "x-ecr-compose";

/// Options of [`load`]: files, directories, env files, profiles and variables.
/// Every field is optional.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LoadOptions {
    /// Compose files in merge order; empty means `COMPOSE_FILE`, else the
    /// default names in the working directory or its nearest parent.
    /// Relative paths are relative to the working directory.
    pub files: Vec<PathBuf>,
    /// Directory that relative paths of the options start from; the process
    /// current directory when `None`.
    pub working_dir: Option<PathBuf>,
    /// Project directory; the directory of the first compose file when `None`.
    pub project_directory: Option<PathBuf>,
    /// Env files used for interpolation in place of the project's `.env`,
    /// later files overriding earlier ones, as `--env-file` does.
    pub env_files: Vec<PathBuf>,
    /// Enabled profiles; `COMPOSE_PROFILES` (comma-separated) when empty.
    pub profiles: Vec<String>,
    /// Variables for interpolation; the process environment when `None`.
    /// They win over the values of env files. Never serialized, because the
    /// process environment may hold credentials.
    #[serde(skip_serializing)]
    pub environment: Option<HashMap<String, String>>,
}

impl fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadOptions")
            .field("files", &self.files)
            .field("working_dir", &self.working_dir)
            .field("project_directory", &self.project_directory)
            .field("env_files", &self.env_files)
            .field("profiles", &self.profiles)
            .field(
                "environment",
                &self
                    .environment
                    .as_ref()
                    .map(|values| format!("{} variables", values.len())),
            )
            .finish()
    }
}

/// A compose project after loading.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    /// Project name, normalized as compose does.
    pub name: String,
    /// Absolute paths of the compose files, in merge order.
    pub files: Vec<PathBuf>,
    /// Absolute project directory; relative paths in the files start there.
    pub directory: PathBuf,
    /// Services in the order the files define them, inactive ones included.
    pub services: Vec<Service>,
    /// Top-level `x-` extension fields, after interpolation and merging.
    pub extensions: serde_json::Map<String, serde_json::Value>,
    /// Registry aliases from `x-ecr-compose.registry-aliases`.
    pub registry_aliases: RegistryAliases,
    /// Enabled profiles.
    pub profiles: Vec<String>,
}

impl Project {
    /// Returns the service with this name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|service| service.name == name)
    }

    /// Returns the services that the enabled profiles activate.
    pub fn active_services(&self) -> impl Iterator<Item = &Service> {
        self.services.iter().filter(|service| service.active)
    }
}

/// One service of a compose project.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// Service name.
    pub name: String,
    /// Image reference as written after interpolation, not yet validated.
    pub image: Option<String>,
    /// Build section, when the image is built by compose.
    pub build: Option<BuildSpec>,
    /// Profiles of the service; empty means always active.
    pub profiles: Vec<String>,
    /// True when the service has no profile or one of its profiles is enabled.
    pub active: bool,
    /// Variables in `image` that were unset or empty, so that an invalid
    /// image can name them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_empty_variables: Vec<String>,
    /// Absolute paths of the service's `env_file` entries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_files: Vec<PathBuf>,
    /// Target platform such as `linux/arm64`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The service's `x-` extension fields.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

/// The `build` section of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildSpec {
    /// Absolute context directory, or the URL of a remote context.
    pub context: String,
    /// Dockerfile, relative to the context.
    pub dockerfile: Option<String>,
    /// Build stage.
    pub target: Option<String>,
    /// Extra tags of the built image.
    pub tags: Vec<String>,
}

/// Loads a compose project.
///
/// Variables come from `options.environment` (the process environment by
/// default), then from the env files: `options.env_files`, or else the
/// `.env` of the project directory.
pub fn load(options: &LoadOptions) -> Result<Project> {
    let working_dir = match &options.working_dir {
        Some(directory) => resolve_path(&current_dir()?, directory),
        None => current_dir()?,
    };
    let mut environment = options
        .environment
        .clone()
        .unwrap_or_else(|| std::env::vars().collect());
    let explicit_files: Vec<PathBuf> = options
        .files
        .iter()
        .map(|file| resolve_path(&working_dir, file))
        .collect();
    let project_directory_option = options
        .project_directory
        .as_ref()
        .map(|directory| resolve_path(&working_dir, directory));

    // compose reads .env before the file list is settled, so that .env can
    // set COMPOSE_FILE. It reads it from the project directory option, the
    // directory of the first -f file or the working directory.
    let env_directory = project_directory_option
        .clone()
        .or_else(|| {
            explicit_files
                .first()
                .and_then(|file| file.parent())
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| working_dir.clone());
    let env_files: Vec<PathBuf> = options
        .env_files
        .iter()
        .map(|file| resolve_path(&working_dir, file))
        .collect();
    add_env_files(&mut environment, &env_files, &env_directory)?;

    let files = if !explicit_files.is_empty() {
        explicit_files
    } else if let Some(files) = files::files_from_environment(&environment, &working_dir) {
        files
    } else {
        let lookup_directory = project_directory_option.as_deref().unwrap_or(&working_dir);
        files::find_default_files(lookup_directory)?
    };
    let directory = project_directory_option
        .unwrap_or_else(|| files[0].parent().unwrap_or(Path::new("/")).to_path_buf());
    if directory != env_directory && env_files.is_empty() {
        // Then the .env of the project directory, without overriding.
        add_env_files(&mut environment, &env_files, &directory)?;
    }

    let profiles = enabled_profiles(&options.profiles, &environment);
    let name = project_name(&files, &directory, &environment)?;
    environment
        .entry("COMPOSE_PROJECT_NAME".to_owned())
        .or_insert_with(|| name.clone());

    let (document, image_variables) = load_documents(&files, &environment)?;
    let services = service::build_services(&document, &directory, &profiles, &image_variables)?;
    let extensions: serde_json::Map<String, serde_json::Value> = document
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| {
            let key = yaml::key_to_string(key)?;
            key.starts_with("x-").then(|| (key, yaml::to_json(value)))
        })
        .collect();
    let registry_aliases = registry_aliases(&extensions)?;

    Ok(Project {
        name,
        files,
        directory,
        services,
        extensions,
        registry_aliases,
        profiles,
    })
}

fn current_dir() -> Result<PathBuf> {
    std::env::current_dir().map_err(|error| {
        Error::internal(format!("The current directory could not be read: {error}."))
    })
}

/// Adds the env files (or the `.env` of `directory` when none is given) to
/// the environment, without overriding variables it already has.
fn add_env_files(
    environment: &mut HashMap<String, String>,
    env_files: &[PathBuf],
    directory: &Path,
) -> Result<()> {
    let files = if env_files.is_empty() {
        let default = directory.join(".env");
        if !default.is_file() {
            return Ok(());
        }
        vec![default]
    } else {
        env_files.to_vec()
    };
    for (key, value) in env::read_env_files(&files, environment)? {
        environment.entry(key).or_insert(value);
    }
    Ok(())
}

fn enabled_profiles(option: &[String], environment: &HashMap<String, String>) -> Vec<String> {
    let source: Vec<String> = if option.is_empty() {
        environment
            .get("COMPOSE_PROFILES")
            .map(|value| value.split(',').map(str::to_owned).collect())
            .unwrap_or_default()
    } else {
        option.to_vec()
    };
    let mut profiles: Vec<String> = Vec::new();
    for profile in source {
        let profile = profile.trim().to_owned();
        if !profile.is_empty() && !profiles.contains(&profile) {
            profiles.push(profile);
        }
    }
    profiles
}

/// Chooses the project name in compose's order: `COMPOSE_PROJECT_NAME`, the
/// `name` key of the last file that has one, the project directory's name.
fn project_name(
    files: &[PathBuf],
    directory: &Path,
    environment: &HashMap<String, String>,
) -> Result<String> {
    if let Some(name) = environment
        .get("COMPOSE_PROJECT_NAME")
        .filter(|name| !name.is_empty())
    {
        validate_project_name(name, "COMPOSE_PROJECT_NAME")?;
        return Ok(name.clone());
    }
    let mut from_files = None;
    for file in files {
        let text = extends::read_compose_file(file)?;
        let document = yaml::parse_document(&text, file)?;
        if let Some(name) = document.get("name").and_then(yaml::scalar_to_string) {
            let mut value = Value::Mapping(Mapping::from_iter([(
                Value::from("name"),
                Value::from(name),
            )]));
            yaml::interpolate_document(&mut value, environment, file)?;
            from_files = value["name"].as_str().map(str::to_owned);
        }
    }
    if let Some(name) = from_files.filter(|name| !name.is_empty()) {
        validate_project_name(&name, "the 'name' key of the compose file")?;
        return Ok(name);
    }
    let base = directory
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = normalize_project_name(&base);
    if name.is_empty() {
        return Err(Error::invalid(
            "InvalidProjectName",
            format!(
                "The project directory '{}' gives no valid project name: set 'name' in the compose file or COMPOSE_PROJECT_NAME.",
                directory.display()
            ),
        )
        .with_target(base));
    }
    Ok(name)
}

/// Reads, interpolates and merges the files, resolving `extends` and `include`.
fn load_documents(
    files: &[PathBuf],
    environment: &HashMap<String, String>,
) -> Result<(Value, ImageVariables)> {
    let mut merged = Value::Mapping(Mapping::new());
    let mut image_variables = ImageVariables::new();
    let mut include_stack = files.to_vec();
    for file in files {
        let mut document: Document = extends::read_document(file, environment)?;
        extends::resolve_extends(&mut document, environment)?;
        extends::apply_include(&mut document, environment, &mut include_stack)?;
        merged = merge::merge(merged, document.value, &mut Vec::new());
        image_variables.extend(document.image_variables);
    }
    Ok((merge::strip_tags(merged), image_variables))
}

/// Reads `x-ecr-compose.registry-aliases`.
fn registry_aliases(
    extensions: &serde_json::Map<String, serde_json::Value>,
) -> Result<RegistryAliases> {
    let Some(settings) = extensions.get(EXTENSION_KEY) else {
        return Ok(RegistryAliases::default());
    };
    let invalid = |reason: &str| {
        Error::invalid(
            "InvalidComposeFile",
            format!("The compose key '{EXTENSION_KEY}' {reason}."),
        )
        .with_target(EXTENSION_KEY)
    };
    let Some(settings) = settings.as_object() else {
        return Err(invalid("must be a mapping"));
    };
    let Some(aliases) = settings.get("registry-aliases") else {
        return Ok(RegistryAliases::default());
    };
    let Some(aliases) = aliases.as_object() else {
        return Err(invalid(
            "has a 'registry-aliases' entry that is not a mapping of host names to ECR hosts",
        ));
    };
    let mut map = BTreeMap::new();
    for (alias, target) in aliases {
        let Some(target) = target.as_str() else {
            return Err(invalid(&format!(
                "maps registry alias '{alias}' to a value that is not a host name"
            )));
        };
        map.insert(alias.clone(), target.to_owned());
    }
    RegistryAliases::new(map)
}
