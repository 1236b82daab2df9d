//! Docker Engine API source: an image built by a private dockerd is pushed
//! to Debian's docker-registry, then pushed again from the digest cache
//! without exporting it, and last pulled back by the engine, which
//! decompresses every layer and checks it against the image's diff ids.

mod distribution_support;
mod support;

use std::path::Path;

use base64::Engine;
use std::process::Command;

use distribution_support::images::{gunzip, random_bytes, text_bytes};
use distribution_support::{Probe, fast_options, target};
use ecr_compose::EcrStatus;
use ecr_compose::distribution::push;
use ecr_compose::source::{self, DOCKER_MANIFEST_V2, DigestCache, SourceOptions, SourceSpec};
use serde_json::Value;
use support::StandIns;
use tokio_util::sync::CancellationToken;

/// Builds `FROM scratch` with a compressible and a random file, with the
/// classic builder, and returns the image id.
fn build_image(stand_ins: &StandIns, context: &Path, tag: &str) -> String {
    std::fs::write(context.join("notes.txt"), text_bytes(2 * 1024 * 1024)).unwrap();
    std::fs::write(context.join("tool.bin"), random_bytes(512 * 1024)).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY notes.txt /usr/share/notes.txt\nCOPY tool.bin /usr/bin/tool\n",
    )
    .unwrap();
    let mut build = Command::new("docker");
    stand_ins.apply_env(&mut build);
    let output = build
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "--quiet", "--tag", tag])
        .arg(context)
        .output()
        .expect("run docker build");
    assert!(
        output.status.success(),
        "docker build failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Runs the docker CLI against the stand-in engine and returns its stdout.
fn docker(stand_ins: &StandIns, arguments: &[&str]) -> String {
    let mut command = Command::new("docker");
    stand_ins.apply_env(&mut command);
    let output = command.args(arguments).output().expect("run docker");
    assert!(
        output.status.success(),
        "docker {} failed: {}",
        arguments.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn layer_files(tar_bytes: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(tar_bytes);
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            entry
                .unwrap()
                .path()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_image_pushed_then_from_cache() {
    let stand_ins = StandIns::start(&["registry", "engine"]);
    let registry = stand_ins.registry();
    let engine_host = stand_ins.engine().host.clone();
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("context");
    std::fs::create_dir(&context).unwrap();
    let image_id = build_image(&stand_ins, &context, "shop/api:3");
    let spec = SourceSpec::Engine {
        docker_host: Some(engine_host),
        image: "shop/api:3".to_owned(),
    };
    let cancel = CancellationToken::new();
    let cache_dir = dir.path().join("cache");
    let options = SourceOptions {
        cache: DigestCache::in_dir(&cache_dir),
        spool_dir: Some(dir.path().to_path_buf()),
        ..SourceOptions::default()
    };

    let source = source::open_with(&spec, &options, &cancel).await.unwrap();
    let first = push(
        source.as_ref(),
        &target(registry, &registry.host, "shop/api", Some("3")),
        &fast_options(),
        &|_| {},
        &cancel,
    )
    .await
    .unwrap();
    drop(source);

    let probe = Probe::new(registry);
    let stored = probe.manifest("shop/api", "3").await.unwrap();
    let manifest: Value = serde_json::from_slice(&stored.bytes).unwrap();
    assert_eq!(stored.media_type, DOCKER_MANIFEST_V2);
    assert_eq!(stored.digest, first.digest);
    assert_eq!(
        manifest["config"]["digest"],
        image_id.as_str(),
        "config digest is the image id"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    let first_layer = probe
        .blob("shop/api", layers[0]["digest"].as_str().unwrap())
        .await
        .unwrap();
    let second_layer = probe
        .blob("shop/api", layers[1]["digest"].as_str().unwrap())
        .await
        .unwrap();
    assert!(
        layer_files(&gunzip(&first_layer))
            .iter()
            .any(|name| name.ends_with("notes.txt"))
    );
    assert!(
        layer_files(&gunzip(&second_layer))
            .iter()
            .any(|name| name.ends_with("tool"))
    );
    assert_eq!(first.blobs_uploaded, 3);
    let spooled: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("ecr-compose-export-")
        })
        .collect();
    assert!(
        spooled.is_empty(),
        "the export copy is deleted with the source"
    );

    // A folder that does not exist makes any export fail, so this push
    // proves that the cache alone planned it.
    let no_export = SourceOptions {
        cache: DigestCache::in_dir(&cache_dir),
        spool_dir: Some(dir.path().join("missing")),
        ..SourceOptions::default()
    };
    let source = source::open_with(&spec, &no_export, &cancel).await.unwrap();
    let again = push(
        source.as_ref(),
        &target(registry, &registry.host, "shop/api", Some("3")),
        &fast_options(),
        &|_| {},
        &cancel,
    )
    .await
    .unwrap();
    assert_eq!(again.digest, first.digest);
    assert_eq!(again.blobs_skipped, 3);
    assert_eq!(again.blobs_uploaded, 0);

    let elsewhere = push(
        source.as_ref(),
        &target(registry, &registry.host, "shop/other", Some("3")),
        &fast_options(),
        &|_| {},
        &cancel,
    )
    .await
    .unwrap_err();
    assert_eq!(
        elsewhere.error_id, "EngineExportSpoolFailed",
        "{}",
        elsewhere.message
    );

    let missing = SourceSpec::Engine {
        docker_host: Some(stand_ins.engine().host.clone()),
        image: "shop/absent:1".to_owned(),
    };
    let error = source::open_with(&missing, &options, &cancel)
        .await
        .err()
        .unwrap();
    assert_eq!(error.status, EcrStatus::NotFound);
    assert_eq!(error.error_id, "ImageNotFound");

    // The engine pulls the pushed image back: with the local copy removed,
    // it downloads, decompresses and checks every layer against the config.
    docker(&stand_ins, &["rmi", "shop/api:3"]);
    // The credentials go into the config file directly: `docker login`
    // could hand them to a credential store of the machine.
    let docker_config = stand_ins
        .base_env()
        .into_iter()
        .find(|(name, _)| name == "DOCKER_CONFIG")
        .map(|(_, value)| value)
        .unwrap();
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", registry.username, registry.password));
    std::fs::write(
        Path::new(&docker_config).join("config.json"),
        serde_json::json!({ "auths": { registry.host.clone(): { "auth": auth } } }).to_string(),
    )
    .unwrap();
    let pulled = format!("{}/shop/api:3", registry.host);
    docker(&stand_ins, &["pull", "--quiet", &pulled]);
    let pulled_id = docker(
        &stand_ins,
        &["image", "inspect", "--format", "{{.Id}}", &pulled],
    );
    assert_eq!(pulled_id, image_id, "the pulled image is the pushed one");
}
