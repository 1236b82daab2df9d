//! Login and push against the stand-ins: moto for STS and ECR, Debian's
//! docker-registry as the ECR registry behind an alias, and a private dockerd.
//!
//! One test function, because the operations read process-wide environment
//! variables that parallel tests would race on.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use ecr_compose::EcrStatus;
use ecr_compose::aws::{AwsOptions, SessionCredentials};
use ecr_compose::events::LogLevel;
use ecr_compose::login::{DockerOptions, LoginRequest, login};
use ecr_compose::operation::{OperationContext, runtime};
use ecr_compose::push::{ImageStatus, PushRequest, push};
use ecr_compose::secret::Secret;
use ecr_compose::session::{CacheMode, CacheOptions, TokenRequest, get_session_token};
use support::StandIns;

const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

fn build_image(stand_ins: &StandIns, dir: &Path, tag: &str, content: &str) {
    let context = dir.join(tag.replace(['/', ':', '.'], "_"));
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("message.txt"), content).unwrap();
    std::fs::write(context.join("Dockerfile"), "FROM scratch\nCOPY message.txt /message.txt\n").unwrap();
    let mut command = Command::new("docker");
    stand_ins.apply_env(&mut command);
    let output = command.env("DOCKER_BUILDKIT", "0").args(["build", "-q", "-t", tag]).arg(&context).output().unwrap();
    assert!(output.status.success(), "docker build {tag} failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// Returns the digest the registry serves for a tag, read from its own API.
fn registry_digest(stand_ins: &StandIns, repository: &str, tag: &str) -> Option<String> {
    let registry = stand_ins.registry();
    let output = Command::new("curl")
        .args(["-s", "-I", "-u"])
        .arg(format!("{}:{}", registry.username, registry.password))
        .args(["-H", "Accept: application/vnd.docker.distribution.manifest.v2+json"])
        .args(["-H", "Accept: application/vnd.oci.image.manifest.v1+json"])
        .arg(format!("{}/v2/{repository}/manifests/{tag}", registry.url))
        .output()
        .ok()?;
    let headers = String::from_utf8_lossy(&output.stdout).to_string();
    headers
        .lines()
        .find(|line| line.to_ascii_lowercase().starts_with("docker-content-digest:"))
        .map(|line| line.split_once(':').unwrap().1.trim().to_owned())
}

#[test]
fn login_and_push_through_alias() {
    let stand_ins = StandIns::start(&["sts", "registry", "engine"]);
    for (name, value) in stand_ins.base_env() {
        // SAFETY: this binary has one test, so no other thread reads the environment now.
        unsafe { std::env::set_var(name, value) };
    }
    let runtime = runtime().unwrap();
    let context = OperationContext::new(LogLevel::Debug);
    let registry_host = stand_ins.registry().host.clone();
    let aliases = BTreeMap::from([(registry_host.clone(), ECR_HOST.to_owned())]);
    let cache = tempfile::tempdir().unwrap();
    let session = runtime
        .block_on(get_session_token(
            &TokenRequest {
                serial_number: Some(stand_ins.serial_number.clone()),
                token_code: Some(Secret::new("123456")),
                cache: CacheOptions { mode: CacheMode::Off, dir: Some(cache.path().to_path_buf()), ..CacheOptions::default() },
                ..TokenRequest::default()
            },
            &context,
        ))
        .unwrap();
    let credentials = session.credentials();

    // Login writes the bare host key to a fresh docker config and removes a stale https:// key.
    let docker_config = tempfile::tempdir().unwrap();
    std::fs::write(
        docker_config.path().join("config.json"),
        format!(r#"{{"auths":{{"https://{registry_host}":{{"auth":"c3RhbGU6c3RhbGU="}}}}}}"#),
    )
    .unwrap();
    let result = runtime
        .block_on(login(
            &LoginRequest {
                aws: AwsOptions::default(),
                credentials: Some(credentials.clone()),
                registries: vec![registry_host.clone()],
                registry_aliases: aliases.clone(),
                docker: DockerOptions { host: None, config_dir: Some(docker_config.path().to_path_buf()) },
                ca_file: None,
            },
            &context,
        ))
        .expect("login through the alias succeeds");
    assert_eq!(result.registries.len(), 1);
    assert_eq!(result.registries[0].ecr_host, ECR_HOST);
    let config_text = std::fs::read_to_string(docker_config.path().join("config.json")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&config_text).unwrap();
    assert!(config["auths"][&registry_host]["auth"].is_string());
    assert!(config["auths"].get(format!("https://{registry_host}")).is_none());

    // A host that is neither ECR nor an alias is rejected before any call.
    let error = runtime
        .block_on(login(
            &LoginRequest { registries: vec!["docker.io".to_owned()], ..LoginRequest::default() },
            &context,
        ))
        .unwrap_err();
    assert_eq!(error.error_id, "NotAnEcrRegistry");

    // Push a compose project: two ECR images, one Docker Hub image, one build-only service.
    let project = tempfile::tempdir().unwrap();
    build_image(&stand_ins, project.path(), &format!("{registry_host}/hello/web:1.0"), "web");
    build_image(&stand_ins, project.path(), &format!("{registry_host}/hello/worker:1.0"), "worker");
    std::fs::write(
        project.path().join("compose.yaml"),
        "services:\n  web:\n    image: ${REGISTRY}/hello/web:1.0\n  worker:\n    image: ${REGISTRY}/hello/worker:1.0\n  cache:\n    image: redis:7\n  tool:\n    build: ./tool\n",
    )
    .unwrap();
    std::fs::write(project.path().join(".env"), format!("REGISTRY={registry_host}\n")).unwrap();
    let without_create = PushRequest {
        credentials: Some(credentials.clone()),
        working_directory: Some(project.path().to_path_buf()),
        registry_aliases: aliases.clone(),
        ..PushRequest::default()
    };

    // Without the repositories in ECR, each image fails and names the switch.
    // The exports that started beside the ECR calls leave no file behind.
    let temporary = tempfile::tempdir().unwrap();
    // SAFETY: this binary has one test, so no other thread reads the environment now.
    unsafe { std::env::set_var("TMPDIR", temporary.path()) };
    let missing = runtime.block_on(push(&without_create, &context)).expect("push runs");
    assert_eq!(missing.summary.failed, 2, "{:?}", missing.images);
    let error = missing.images.iter().find_map(|image| image.error.clone()).unwrap();
    assert_eq!(error.error_id, "RepositoryNotFound");
    assert!(error.message.contains("-CreateRepository"), "{}", error.message);
    assert_eq!(registry_digest(&stand_ins, "hello/web", "1.0"), None);
    let left: Vec<_> = std::fs::read_dir(temporary.path()).unwrap().collect();
    assert!(left.is_empty(), "export files left: {left:?}");

    // With creation allowed, the native path pushes both images.
    let request = PushRequest { create_repository: true, ..without_create.clone() };
    let pushed = runtime.block_on(push(&request, &context)).expect("push succeeds");
    assert_eq!(pushed.summary.pushed, 2, "{:?}", pushed.images);
    assert_eq!(pushed.summary.skipped, 2, "{:?}", pushed.images);
    for image in pushed.images.iter().filter(|image| image.status == ImageStatus::Pushed) {
        let digest = image.digest.clone().expect("pushed image has a digest");
        let served = registry_digest(&stand_ins, &image.repository, image.tag.as_deref().unwrap());
        assert_eq!(served.as_deref(), Some(digest.as_str()), "registry digest of {}", image.reference);
    }

    // A second push uploads no blob again.
    let again = runtime.block_on(push(&request, &context)).unwrap();
    for image in again.images.iter().filter(|image| image.status == ImageStatus::Pushed) {
        assert_eq!(image.blobs_uploaded, 0, "{} uploaded blobs again", image.reference);
        assert!(image.blobs_skipped > 0);
    }

    // The engine path pushes the same images with the same digests.
    let through_engine = runtime
        .block_on(push(&PushRequest { via: ecr_compose::push::Via::Docker, ..request.clone() }, &context))
        .unwrap();
    assert_eq!(through_engine.summary.pushed, 2, "{:?}", through_engine.images);
    for (native, engine) in pushed.images.iter().zip(&through_engine.images) {
        assert_eq!(native.reference, engine.reference);
    }
    for image in through_engine.images.iter().filter(|image| image.status == ImageStatus::Pushed) {
        let served = registry_digest(&stand_ins, &image.repository, image.tag.as_deref().unwrap());
        assert_eq!(served, image.digest, "registry digest of {} after the engine push", image.reference);
    }

    // A dry run plans and pushes nothing.
    let dry = runtime.block_on(push(&PushRequest { dry_run: true, ..request.clone() }, &context)).unwrap();
    assert_eq!(dry.summary.planned, 2);
    assert_eq!(dry.summary.pushed, 0);

    // An image missing from the engine fails alone, naming the fix.
    std::fs::write(
        project.path().join("compose.yaml"),
        "services:\n  web:\n    image: ${REGISTRY}/hello/web:1.0\n  ghost:\n    image: ${REGISTRY}/hello/ghost:2.0\n",
    )
    .unwrap();
    let partial = runtime.block_on(push(&request, &context)).unwrap();
    assert_eq!(partial.summary.pushed, 1);
    assert_eq!(partial.summary.failed, 1);
    let ghost = partial.images.iter().find(|image| image.reference.contains("ghost")).unwrap();
    assert_eq!(ghost.error.as_ref().unwrap().error_id, "ImageNotFound");

    let ghost_result = partial.images.iter().find(|image| image.reference.contains("ghost")).unwrap();
    assert!(ghost_result.reason.as_deref().unwrap_or_default().contains("docker compose build"));
    assert_eq!(ghost_result.digest, None);

    // A digest the push cannot reproduce is a failure, not a silent other digest:
    // the engine pushed hello/web before, so it knows the digest its own gzip made.
    let engine_digest = through_engine
        .images
        .iter()
        .find(|image| image.repository == "hello/web")
        .and_then(|image| image.digest.clone())
        .unwrap();
    std::fs::write(
        project.path().join("compose.yaml"),
        format!("services:\n  web:\n    image: ${{REGISTRY}}/hello/web@{engine_digest}\n"),
    )
    .unwrap();
    let pinned_result = runtime.block_on(push(&request, &context)).unwrap();
    let pinned_error = pinned_result.images[0].error.clone().expect("the pinned push fails");
    assert_eq!(pinned_error.error_id, "DigestMismatch", "{}", pinned_error.message);
    let pinned_engine = runtime
        .block_on(push(&PushRequest { via: ecr_compose::push::Via::Docker, ..request.clone() }, &context))
        .unwrap();
    assert_eq!(pinned_engine.images[0].error.as_ref().unwrap().error_id, "TagRequired");

    // Options that cannot work together fail before any call.
    let error = runtime
        .block_on(push(
            &PushRequest {
                via: ecr_compose::push::Via::Docker,
                sources: BTreeMap::from([("web".to_owned(), "oci-layout:/tmp/none".to_owned())]),
                ..request.clone()
            },
            &context,
        ))
        .unwrap_err();
    assert_eq!(error.error_id, "SourceNeedsNativePush");
    let error = runtime
        .block_on(push(&PushRequest { compression_level: Some(13), ..request.clone() }, &context))
        .unwrap_err();
    assert_eq!(error.error_id, "InvalidCompressionLevel");
    assert!(error.message.contains("level 13"), "{}", error.message);

    // A profile named explicitly must exist, even with keys in the environment.
    let error = runtime
        .block_on(push(
            &PushRequest {
                credentials: None,
                aws: AwsOptions { profile: Some("ghost".to_owned()), ..AwsOptions::default() },
                ..request.clone()
            },
            &context,
        ))
        .unwrap_err();
    assert_eq!(error.error_id, "ProfileNotFound");

    // An expired session fails before any call, with the way out.
    let expired = SessionCredentials { expiration: Some("2015-01-01T00:00:00Z".to_owned()), ..credentials };
    let error = runtime
        .block_on(push(&PushRequest { credentials: Some(expired), ..request.clone() }, &context))
        .unwrap_err();
    assert_eq!(error.status, EcrStatus::Authentication);
    assert!(error.message.contains("Get-EcrMfaSession"));

    let events = serde_json::to_string(&context.events.drain()).unwrap();
    for secret in [stand_ins.registry().password.as_str(), session.secret_access_key.expose(), session.session_token.expose()] {
        assert!(!events.contains(secret), "a secret leaked into the events");
    }
}
