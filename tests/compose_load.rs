//! Messages and shapes of the compose loader's public API.

use std::collections::HashMap;
use std::path::Path;

use ecr_compose::compose::{self, LoadOptions};

fn write(directory: &Path, name: &str, text: &str) {
    let path = directory.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn options(directory: &Path, environment: &[(&str, &str)]) -> LoadOptions {
    LoadOptions {
        working_dir: Some(directory.to_path_buf()),
        environment: Some(
            environment
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
        ),
        ..LoadOptions::default()
    }
}

#[test]
fn required_variable_error_names_file_key_variable() {
    let directory = tempfile::tempdir().unwrap();
    write(
        directory.path(),
        "compose.yaml",
        "services:\n  web:\n    image: app:${TAG:?pick a tag}\n",
    );
    let error = compose::load(&options(directory.path(), &[])).unwrap_err();
    assert_eq!(error.error_id, "MissingRequiredVariable");
    assert!(error.message.contains("compose.yaml"), "{}", error.message);
    assert!(
        error.message.contains("services.web.image"),
        "{}",
        error.message
    );
    assert!(error.message.contains("TAG"), "{}", error.message);
    assert!(error.message.contains("pick a tag"), "{}", error.message);
    assert_eq!(error.target.as_deref(), Some("TAG"));
}

#[test]
fn invalid_template_error_names_key() {
    let directory = tempfile::tempdir().unwrap();
    write(
        directory.path(),
        "compose.yaml",
        "services:\n  web:\n    image: nginx\n    command: echo $1\n",
    );
    let error = compose::load(&options(directory.path(), &[])).unwrap_err();
    assert_eq!(error.error_id, "InvalidInterpolation");
    assert!(
        error.message.contains("services.web.command"),
        "{}",
        error.message
    );
    assert!(error.message.contains("$$"), "{}", error.message);
}

#[test]
fn yaml_syntax_error_names_file() {
    let directory = tempfile::tempdir().unwrap();
    write(directory.path(), "compose.yaml", "services:\n  web: [\n");
    let error = compose::load(&options(directory.path(), &[])).unwrap_err();
    assert_eq!(error.error_id, "InvalidComposeFile");
    assert!(error.message.contains("compose.yaml"), "{}", error.message);
}

#[test]
fn duplicate_key_rejected() {
    let directory = tempfile::tempdir().unwrap();
    write(
        directory.path(),
        "compose.yaml",
        "services:\n  web:\n    image: a\n    image: b\n",
    );
    let error = compose::load(&options(directory.path(), &[])).unwrap_err();
    assert_eq!(error.error_id, "InvalidComposeFile");
}

#[test]
fn missing_file_not_found() {
    let directory = tempfile::tempdir().unwrap();
    let mut options = options(directory.path(), &[]);
    options.files = vec!["missing.yaml".into()];
    let error = compose::load(&options).unwrap_err();
    assert_eq!(error.error_id, "ComposeFileNotFound");
    assert!(error.message.contains("missing.yaml"), "{}", error.message);
}

#[test]
fn missing_env_file_not_found() {
    let directory = tempfile::tempdir().unwrap();
    write(
        directory.path(),
        "compose.yaml",
        "services:\n  web:\n    image: nginx\n",
    );
    let mut options = options(directory.path(), &[]);
    options.env_files = vec!["ci.env".into()];
    let error = compose::load(&options).unwrap_err();
    assert_eq!(error.error_id, "EnvFileNotFound");
}

#[test]
fn project_fields_resolved() {
    let directory = tempfile::tempdir().unwrap();
    write(
        directory.path(),
        "compose.yaml",
        "x-team: platform\nservices:\n  web:\n    build: ./web\n    env_file: [config/web.env]\n    platform: linux/arm64\n    x-owner: ${OWNER}\n",
    );
    let project = compose::load(&options(directory.path(), &[("OWNER", "shop")])).unwrap();
    let web = project.service("web").unwrap();
    let root = std::path::absolute(directory.path()).unwrap();
    assert_eq!(project.directory, root);
    assert_eq!(project.files, [root.join("compose.yaml")]);
    assert_eq!(
        web.build.as_ref().unwrap().context,
        root.join("web").display().to_string()
    );
    assert_eq!(web.env_files, [root.join("config/web.env")]);
    assert_eq!(web.platform.as_deref(), Some("linux/arm64"));
    assert_eq!(web.extensions["x-owner"], "shop");
    assert_eq!(project.extensions["x-team"], "platform");
}

#[test]
fn project_serializes_camel_case() {
    let directory = tempfile::tempdir().unwrap();
    write(
        directory.path(),
        "compose.yaml",
        "services:\n  web:\n    image: nginx\n",
    );
    let project = compose::load(&options(directory.path(), &[])).unwrap();
    let json = serde_json::to_value(&project).unwrap();
    assert!(json.get("registryAliases").is_some(), "{json}");
    assert_eq!(json["services"][0]["name"], "web");
    assert_eq!(json["services"][0]["active"], true);
}

#[test]
fn load_options_hide_environment() {
    let options = LoadOptions {
        environment: Some(HashMap::from([(
            "AWS_SECRET_ACCESS_KEY".to_owned(),
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_owned(),
        )])),
        ..LoadOptions::default()
    };
    let json = serde_json::to_string(&options).unwrap();
    let debug = format!("{options:?}");
    assert!(!json.contains("wJalr"), "{json}");
    assert!(!debug.contains("wJalr"), "{debug}");
}

#[test]
fn load_options_deserialize_camel_case() {
    let options: LoadOptions = serde_json::from_str(
        r#"{"files":["a.yaml"],"workingDir":"/w","envFiles":["x.env"],"profiles":["debug"]}"#,
    )
    .unwrap();
    assert_eq!(options.files, [Path::new("a.yaml")]);
    assert_eq!(options.working_dir.as_deref(), Some(Path::new("/w")));
    assert_eq!(options.env_files, [Path::new("x.env")]);
    assert_eq!(options.profiles, ["debug"]);
}
