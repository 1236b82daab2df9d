//! Runs the loader and the planner on every case under `tests/compose/`,
//! and compares the image references with Debian's `docker-compose` v1
//! (`docker-compose config`) where v1 reads the case.
//!
//! Each case is a directory with compose files, the `.env` files it needs,
//! and `expected.json`:
//!
//! ```json
//! {
//!   "description": "what the case shows",
//!   "options": { "files": [], "workingDir": "sub", "projectDirectory": null,
//!                "envFiles": [], "profiles": [], "environment": {} },
//!   "plan": { "services": [], "aliases": {}, "strict": false },
//!   "projectName": "shop",
//!   "items": [ { "reference": "…", "services": ["web"], "action": "Push",
//!                "registry": "…", "errorId": "…" } ],
//!   "error": "ErrorId",
//!   "buildContexts": { "web": "app" },
//!   "v1": "compare" | "error" | "skip: reason"
//! }
//! ```
//!
//! The environment of a case is exactly its `environment` map: the process
//! environment never leaks in. `docker-compose config` reads files only and
//! never contacts a docker daemon; `DOCKER_HOST` points at a socket path that
//! does not exist all the same.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use ecr_compose::compose::files::resolve_path;
use ecr_compose::compose::reference::Reference;
use ecr_compose::compose::{self, LoadOptions, Project};
use ecr_compose::plan::{self, Action, PlanOptions};
use serde::Deserialize;

const DOCKER_COMPOSE_V1: &str = "/usr/bin/docker-compose";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Case {
    description: String,
    options: CaseOptions,
    plan: PlanOptions,
    project_name: Option<String>,
    items: Option<Vec<ExpectedItem>>,
    error: Option<String>,
    v1: Option<String>,
    build_contexts: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct CaseOptions {
    files: Vec<PathBuf>,
    working_dir: Option<PathBuf>,
    project_directory: Option<PathBuf>,
    env_files: Vec<PathBuf>,
    profiles: Vec<String>,
    environment: HashMap<String, String>,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct ExpectedItem {
    reference: String,
    services: Vec<String>,
    action: String,
    #[serde(default)]
    registry: Option<String>,
    #[serde(default)]
    error_id: Option<String>,
}

fn corpus_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compose")
}

fn case_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(corpus_directory())
        .expect("tests/compose exists")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            entry
                .path()
                .join("expected.json")
                .is_file()
                .then(|| entry.file_name().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    names
}

/// Copies a case into a fresh temporary directory, so that the default file
/// lookup never climbs into this repository.
fn copy_case(name: &str) -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().expect("temporary directory");
    let target = root.path().join(name);
    copy_directory(&corpus_directory().join(name), &target);
    (root, target)
}

fn copy_directory(source: &Path, target: &Path) {
    std::fs::create_dir_all(target).unwrap();
    for entry in std::fs::read_dir(source).unwrap() {
        let entry = entry.unwrap();
        let destination = target.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_directory(&entry.path(), &destination);
        } else {
            std::fs::copy(entry.path(), destination).unwrap();
        }
    }
}

fn read_case(name: &str) -> Case {
    let text =
        std::fs::read_to_string(corpus_directory().join(name).join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{name}/expected.json: {error}"))
}

fn load_options(case: &Case, directory: &Path) -> LoadOptions {
    LoadOptions {
        files: case.options.files.clone(),
        working_dir: Some(match &case.options.working_dir {
            Some(sub) => directory.join(sub),
            None => directory.to_path_buf(),
        }),
        project_directory: case.options.project_directory.clone(),
        env_files: case.options.env_files.clone(),
        profiles: case.options.profiles.clone(),
        environment: Some(case.options.environment.clone()),
    }
}

fn action_name(action: &Action) -> (&'static str, Option<String>) {
    match action {
        Action::Push => ("Push", None),
        Action::SkipNotEcr => ("SkipNotEcr", None),
        Action::SkipBuildOnly => ("SkipBuildOnly", None),
        Action::Fail { error } => ("Fail", Some(error.error_id.clone())),
    }
}

/// Runs one case; returns the loaded project when loading succeeded.
fn check_case(name: &str, case: &Case, directory: &Path) -> Result<Option<Project>, String> {
    let options = load_options(case, directory);
    let project = match compose::load(&options) {
        Ok(project) => project,
        Err(error) => {
            return match &case.error {
                Some(expected) if *expected == error.error_id => Ok(None),
                _ => Err(format!(
                    "{name}: load failed with {}: {}",
                    error.error_id, error.message
                )),
            };
        }
    };
    if let Some(expected) = &case.project_name {
        if *expected != project.name {
            return Err(format!(
                "{name}: project name {} instead of {expected}",
                project.name
            ));
        }
    }
    for (service, expected) in &case.build_contexts {
        let context = project
            .service(service)
            .and_then(|service| service.build.as_ref())
            .map(|build| build.context.clone());
        let expected = resolve_path(directory, Path::new(expected))
            .display()
            .to_string();
        if context.as_deref() != Some(expected.as_str()) {
            return Err(format!(
                "{name}: build context of {service} is {context:?}, expected {expected}"
            ));
        }
    }
    let plan = match plan::build(&project, &case.plan) {
        Ok(plan) => plan,
        Err(error) => {
            return match &case.error {
                Some(expected) if *expected == error.error_id => Ok(Some(project)),
                _ => Err(format!(
                    "{name}: plan failed with {}: {}",
                    error.error_id, error.message
                )),
            };
        }
    };
    if let Some(expected) = &case.error {
        return Err(format!(
            "{name}: expected error {expected}, got a plan: {plan:?}"
        ));
    }
    let actual: Vec<ExpectedItem> = plan
        .items
        .iter()
        .map(|item| {
            let (action, error_id) = action_name(&item.action);
            ExpectedItem {
                reference: item.reference.clone(),
                services: item.services.clone(),
                action: action.to_owned(),
                registry: item.registry.as_ref().map(|registry| {
                    if registry.is_alias() {
                        format!("{} -> {}", registry.host, registry.ecr_host)
                    } else {
                        registry.host.clone()
                    }
                }),
                error_id,
            }
        })
        .collect();
    let expected = case
        .items
        .as_ref()
        .ok_or_else(|| format!("{name}: expected.json has neither items nor error"))?;
    if actual != *expected {
        return Err(format!(
            "{name}: plan items differ\n  expected: {expected:?}\n  actual:   {actual:?}"
        ));
    }
    for registry in &plan.registries {
        let pushed = plan
            .pushes()
            .any(|item| item.registry.as_ref() == Some(registry));
        if !pushed {
            return Err(format!("{name}: registry {} has no push", registry.host));
        }
    }
    Ok(Some(project))
}

#[test]
fn corpus_has_enough_cases() {
    assert!(
        case_names().len() >= 30,
        "only {} cases",
        case_names().len()
    );
}

#[test]
fn corpus_cases_match_expected() {
    let mut failures = Vec::new();
    for name in case_names() {
        let case = read_case(&name);
        assert!(!case.description.is_empty(), "{name} has no description");
        let (_root, directory) = copy_case(&name);
        if let Err(failure) = check_case(&name, &case, &directory) {
            failures.push(failure);
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Image of each service as `docker-compose config` prints it.
fn v1_images(
    case: &Case,
    project: Option<&Project>,
    directory: &Path,
) -> Result<BTreeMap<String, Option<String>>, String> {
    let home = tempfile::tempdir().unwrap();
    let working_dir = match &case.options.working_dir {
        Some(sub) => directory.join(sub),
        None => directory.to_path_buf(),
    };
    let mut command = Command::new(DOCKER_COMPOSE_V1);
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home.path())
        .env(
            "DOCKER_HOST",
            format!("unix://{}/no-daemon.sock", home.path().display()),
        )
        .envs(&case.options.environment)
        .current_dir(&working_dir);
    if let Some(project) = project {
        for file in &project.files {
            command.arg("-f").arg(file);
        }
        command.arg("--project-directory").arg(&project.directory);
    } else {
        for file in &case.options.files {
            command.arg("-f").arg(file);
        }
    }
    for env_file in &case.options.env_files {
        command.arg("--env-file").arg(env_file);
    }
    for profile in &case.options.profiles {
        command.arg("--profile").arg(profile);
    }
    command.arg("config");
    let output = command
        .output()
        .map_err(|error| format!("docker-compose did not run: {error}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let config: serde_yaml::Value =
        serde_yaml::from_slice(&output.stdout).map_err(|error| error.to_string())?;
    let mut images = BTreeMap::new();
    if let Some(services) = config
        .get("services")
        .and_then(|services| services.as_mapping())
    {
        for (name, service) in services {
            let image = service
                .get("image")
                .and_then(|image| image.as_str())
                .map(normalize);
            images.insert(name.as_str().unwrap_or_default().to_owned(), image);
        }
    }
    Ok(images)
}

fn normalize(image: &str) -> String {
    match Reference::parse(image) {
        Ok(reference) => reference.normalized().with_default_tag().to_string(),
        Err(_) => image.to_owned(),
    }
}

#[test]
fn corpus_matches_docker_compose_v1() {
    if !Path::new(DOCKER_COMPOSE_V1).exists() {
        println!("skipped: {DOCKER_COMPOSE_V1} is not installed (Debian package docker-compose)");
        return;
    }
    let mut failures = Vec::new();
    let mut compared = 0;
    for name in case_names() {
        let case = read_case(&name);
        let mode = case.v1.clone().unwrap_or_else(|| "compare".to_owned());
        if let Some(reason) = mode.strip_prefix("skip:") {
            println!("{name}: not compared with docker-compose v1:{reason}");
            continue;
        }
        let (_root, directory) = copy_case(&name);
        let project = check_case(&name, &case, &directory).ok().flatten();
        let v1 = v1_images(&case, project.as_ref(), &directory);
        match (mode.as_str(), v1, project) {
            ("error", Err(_), _) => compared += 1,
            ("error", Ok(images), _) => failures.push(format!(
                "{name}: docker-compose v1 accepted the case: {images:?}"
            )),
            (_, Err(stderr), _) => {
                failures.push(format!("{name}: docker-compose v1 failed: {stderr}"))
            }
            (_, Ok(_), None) => failures.push(format!(
                "{name}: our loader failed where docker-compose v1 succeeded"
            )),
            (_, Ok(images), Some(project)) => {
                compared += 1;
                let ours: BTreeMap<String, Option<String>> = project
                    .services
                    .iter()
                    .map(|service| {
                        (
                            service.name.clone(),
                            service.image.as_deref().map(normalize),
                        )
                    })
                    .collect();
                if ours != images {
                    failures.push(format!(
                        "{name}: images differ\n  ours: {ours:?}\n  v1:   {images:?}"
                    ));
                }
            }
        }
    }
    println!("compared {compared} case(s) with docker-compose v1");
    assert!(
        failures.is_empty(),
        "{} case(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
