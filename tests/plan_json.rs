//! Shape of the plan as it crosses the ABI in JSON, and the messages of its errors.

use ecr_compose::compose::{self, LoadOptions, Project};
use ecr_compose::plan::{self, Action, PlanOptions};

const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

fn project(text: &str, environment: &[(&str, &str)]) -> (tempfile::TempDir, Project) {
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(directory.path().join("compose.yaml"), text).unwrap();
    let options = LoadOptions {
        working_dir: Some(directory.path().to_path_buf()),
        environment: Some(
            environment
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
        ),
        ..LoadOptions::default()
    };
    let project = compose::load(&options).unwrap();
    (directory, project)
}

#[test]
fn plan_json_shape() {
    let (_directory, project) =
        project(&format!("services:\n  web:\n    image: {ECR}/web:1\n"), &[]);
    let plan = plan::build(&project, &PlanOptions::default()).unwrap();
    let json = serde_json::to_value(&plan).unwrap();
    let item = &json["items"][0];
    assert_eq!(item["reference"], format!("{ECR}/web:1"));
    assert_eq!(item["services"], serde_json::json!(["web"]));
    assert_eq!(item["repository"], "web");
    assert_eq!(item["tag"], "1");
    assert_eq!(item["digest"], serde_json::Value::Null);
    assert_eq!(item["action"]["kind"], "Push");
    assert_eq!(item["registry"]["ecrHost"], ECR);
    assert_eq!(item["registry"]["accountId"], "123456789012");
    assert_eq!(json["registries"][0]["region"], "us-east-1");
}

#[test]
fn plan_fail_json_carries_error() {
    let (_directory, project) = project("services:\n  web:\n    image: nginx\n", &[]);
    let options = PlanOptions {
        strict: true,
        ..PlanOptions::default()
    };
    let plan = plan::build(&project, &options).unwrap();
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["items"][0]["action"]["kind"], "Fail");
    assert_eq!(
        json["items"][0]["action"]["error"]["errorId"],
        "ImageNotInEcr"
    );
    assert_eq!(json["registries"], serde_json::json!([]));
}

#[test]
fn plan_strict_message_names_image_and_switch() {
    let (_directory, project) = project("services:\n  web:\n    image: nginx\n", &[]);
    let options = PlanOptions {
        strict: true,
        ..PlanOptions::default()
    };
    let plan = plan::build(&project, &options).unwrap();
    let Action::Fail { error } = &plan.items[0].action else {
        panic!("expected a failure")
    };
    assert!(
        error.message.contains("docker.io/library/nginx:latest"),
        "{}",
        error.message
    );
    assert!(error.message.contains("-Strict"), "{}", error.message);
}

#[test]
fn plan_uppercase_message_names_service_and_reference() {
    let (_directory, project) =
        project(&format!("services:\n  web:\n    image: {ECR}/Web:1\n"), &[]);
    let plan = plan::build(&project, &PlanOptions::default()).unwrap();
    let Action::Fail { error } = &plan.items[0].action else {
        panic!("expected a failure")
    };
    assert!(error.message.contains("'web'"), "{}", error.message);
    assert!(
        error.message.contains(&format!("{ECR}/Web:1")),
        "{}",
        error.message
    );
    assert!(error.message.contains("lowercase"), "{}", error.message);
}

#[test]
fn plan_empty_variable_message_names_service_and_variable() {
    let (_directory, project) = project(
        &format!("services:\n  web:\n    image: {ECR}/web:${{TAG}}\n"),
        &[],
    );
    let plan = plan::build(&project, &PlanOptions::default()).unwrap();
    let Action::Fail { error } = &plan.items[0].action else {
        panic!("expected a failure")
    };
    assert_eq!(error.error_id, "EmptyImageVariable");
    assert!(error.message.contains("'web'"), "{}", error.message);
    assert!(error.message.contains("TAG"), "{}", error.message);
}

#[test]
fn plan_unknown_service_lists_known() {
    let (_directory, project) = project(
        "services:\n  web:\n    image: nginx\n  db:\n    image: postgres\n",
        &[],
    );
    let options = PlanOptions {
        services: vec!["wbe".to_owned()],
        ..PlanOptions::default()
    };
    let error = plan::build(&project, &options).unwrap_err();
    assert_eq!(error.error_id, "ServiceNotFound");
    assert!(error.message.contains("'wbe'"), "{}", error.message);
    assert!(error.message.contains("db, web"), "{}", error.message);
}

#[test]
fn plan_options_deserialize_camel_case() {
    let options: PlanOptions = serde_json::from_str(&format!(
        r#"{{"services":["web"],"aliases":{{"localhost:5000":"{ECR}"}},"strict":true}}"#
    ))
    .unwrap();
    assert_eq!(options.services, ["web"]);
    assert!(options.strict);
    assert_eq!(
        options.aliases.resolve("localhost:5000").unwrap().ecr_host,
        ECR
    );
}
