//! Docker's client configuration file (`config.json`): where it is and how a
//! registry login is stored in it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::error::{EcrStatus, Error, Result};
use crate::registry::normalize_host;
use crate::secret::Secret;

/// Returns docker's configuration folder: the given one, `DOCKER_CONFIG`, or `~/.docker`.
pub fn config_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|value| !value.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    dirs::home_dir().map(|home| home.join(".docker")).ok_or_else(|| {
        Error::not_found(
            "DockerConfigNotFound",
            "The home folder is unknown, so docker's config folder is too: set DOCKER_CONFIG or pass -DockerConfigPath.",
        )
    })
}

/// Side effects of storing a login, besides the entry itself.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StoreOutcome {
    /// Path of the config file written.
    pub path: PathBuf,
    /// Keys of stale entries removed for the same host (`https://host`, `host/`).
    pub removed_keys: Vec<String>,
    /// A credential helper configured for this host, which docker uses instead of the file.
    pub helper_in_use: Option<String>,
}

/// Stores `username` and `password` for `host` in `config.json`, as
/// `docker login` does without a credential store.
///
/// The key is the bare host name (and port). Entries of the same host under a
/// scheme or with a trailing slash are removed, because docker may pick them
/// first. When a global `credsStore` is configured, the host is pointed at the
/// file store with an empty `credHelpers` entry: docker treats an empty helper
/// as "no helper" (docker/cli `getConfiguredCredentialStore`), and some stores
/// reject long secrets (Windows Credential Manager takes 2,560 bytes, an ECR
/// password can be longer). Every other key of the file is kept.
///
/// The file is written to a temporary file in the same folder and renamed, and
/// is readable by its owner only on Unix.
pub fn store_login(dir: &Path, host: &str, username: &str, password: &Secret) -> Result<StoreOutcome> {
    let host = normalize_host(host);
    let path = dir.join("config.json");
    let mut root = read_config(&path)?;
    let mut outcome = StoreOutcome { path: path.clone(), ..StoreOutcome::default() };

    let auths = object_entry(&mut root, "auths");
    let stale: Vec<String> = auths
        .keys()
        .filter(|key| *key != &host && normalize_host(key) == host)
        .cloned()
        .collect();
    for key in &stale {
        auths.remove(key);
    }
    outcome.removed_keys = stale;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{}", password.expose()));
    auths.insert(host.clone(), json!({"auth": encoded}));

    let helper = root
        .get("credHelpers")
        .and_then(|helpers| helpers.get(&host))
        .and_then(Value::as_str)
        .map(str::to_owned);
    match helper {
        Some(helper) if !helper.is_empty() => outcome.helper_in_use = Some(helper),
        Some(_) => {}
        None => {
            let store = root.get("credsStore").and_then(Value::as_str).unwrap_or_default().to_owned();
            if !store.is_empty() {
                object_entry(&mut root, "credHelpers").insert(host.clone(), Value::from(""));
            }
        }
    }

    write_atomically(dir, &path, &Value::Object(root))?;
    Ok(outcome)
}

fn read_config(path: &Path) -> Result<Map<String, Value>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(error) => {
            return Err(Error::new(
                EcrStatus::InvalidRequest,
                "DockerConfigUnreadable",
                format!("Could not read docker's config file {}: {error}. Check its permissions.", path.display()),
            ));
        }
    };
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Error::invalid(
            "DockerConfigInvalid",
            format!("Docker's config file {} is not a JSON object: fix or remove it, then log in again.", path.display()),
        )
        .with_target(path.display().to_string())),
    }
}

fn object_entry<'a>(root: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let entry = root.entry(key.to_owned()).or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut().expect("entry was just made an object")
}

fn write_atomically(dir: &Path, path: &Path, value: &Value) -> Result<()> {
    let io_error = |error: std::io::Error| {
        Error::new(
            EcrStatus::InvalidRequest,
            "DockerConfigWriteFailed",
            format!("Could not write docker's config file {}: {error}. Check that the folder is writable.", path.display()),
        )
    };
    fs::create_dir_all(dir).map_err(io_error)?;
    let mut file = tempfile::Builder::new().prefix(".config.json.").tempfile_in(dir).map_err(io_error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file().set_permissions(fs::Permissions::from_mode(0o600)).map_err(io_error)?;
    }
    let text = serde_json::to_string_pretty(value).map_err(|error| Error::internal(error.to_string()))?;
    file.write_all(text.as_bytes()).map_err(io_error)?;
    file.as_file().sync_all().map_err(io_error)?;
    file.persist(path).map_err(|error| io_error(error.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &Path) -> Value {
        serde_json::from_str(&fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
    }

    #[test]
    fn store_uses_bare_host_key() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("config.json"),
            r#"{"auths":{"https://127.0.0.1:5000":{"auth":"old"},"other.io":{"auth":"x"}},"psFormat":"table"}"#,
        )
        .unwrap();
        let outcome = store_login(dir.path(), "127.0.0.1:5000", "AWS", &Secret::new("pw")).unwrap();
        let config = read(dir.path());
        assert!(config["auths"]["127.0.0.1:5000"]["auth"].is_string());
        assert!(config["auths"].get("https://127.0.0.1:5000").is_none());
        assert_eq!(config["auths"]["other.io"]["auth"], "x");
        assert_eq!(config["psFormat"], "table");
        assert_eq!(outcome.removed_keys, vec!["https://127.0.0.1:5000".to_owned()]);
    }

    #[test]
    fn store_bypasses_global_store() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("config.json"), r#"{"credsStore":"wincred"}"#).unwrap();
        let long_password = Secret::new("p".repeat(3000));
        store_login(dir.path(), "host.example:443", "AWS", &long_password).unwrap();
        let config = read(dir.path());
        assert_eq!(config["credHelpers"]["host.example:443"], "");
        assert_eq!(config["credsStore"], "wincred");
    }

    #[test]
    fn store_reports_host_helper() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("config.json"), r#"{"credHelpers":{"a.example":"ecr-login"}}"#).unwrap();
        let outcome = store_login(dir.path(), "a.example", "AWS", &Secret::new("pw")).unwrap();
        assert_eq!(outcome.helper_in_use.as_deref(), Some("ecr-login"));
    }

    #[cfg(unix)]
    #[test]
    fn store_sets_owner_only_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        store_login(dir.path(), "a.example", "AWS", &Secret::new("pw")).unwrap();
        let mode = fs::metadata(dir.path().join("config.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn invalid_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("config.json"), "[1,2]").unwrap();
        let error = store_login(dir.path(), "a.example", "AWS", &Secret::new("pw")).unwrap_err();
        assert_eq!(error.error_id, "DockerConfigInvalid");
    }
}
