//! Docker-archive source pushed to Debian's docker-registry: layers are
//! gzip-compressed on the way into a docker v2 schema 2 manifest, and the
//! digest cache lets a second push skip them without compressing again.

mod distribution_support;
mod support;

use std::path::{Path, PathBuf};

use distribution_support::images::{
    docker_archive, gunzip, layer_tar, random_bytes, sha256, text_bytes,
};
use distribution_support::proxy::Proxy;
use distribution_support::{Probe, fast_options, target};
use ecr_compose::EcrStatus;
use ecr_compose::distribution::{PushOutcome, PushTarget, push};
use ecr_compose::source::{
    self, DOCKER_LAYER_GZIP, DOCKER_MANIFEST_V2, DigestCache, SourceOptions, SourceSpec,
};
use serde_json::Value;
use support::StandIns;
use tokio_util::sync::CancellationToken;

fn spec(path: &Path, image: Option<&str>) -> SourceSpec {
    SourceSpec::DockerArchive {
        path: path.to_path_buf(),
        image: image.map(str::to_owned),
    }
}

/// Layers: compressible text, random bytes, and the text layer again.
fn layers() -> Vec<Vec<u8>> {
    let text = layer_tar(&[("srv/www/index.html", &text_bytes(3 * 1024 * 1024))]);
    let random = layer_tar(&[("srv/bin/server", &random_bytes(1024 * 1024))]);
    vec![text.clone(), random, text]
}

async fn push_archive(
    path: &Path,
    cache_dir: &Path,
    target: &PushTarget,
) -> Result<PushOutcome, ecr_compose::Error> {
    let options = SourceOptions {
        cache: DigestCache::in_dir(cache_dir),
        spool_dir: None,
        ..SourceOptions::default()
    };
    let cancel = CancellationToken::new();
    let source = source::open_with(&spec(path, Some("shop/web:2.1")), &options, &cancel).await?;
    push(source.as_ref(), target, &fast_options(), &|_| {}, &cancel).await
}

fn archive_in(dir: &Path) -> (PathBuf, Vec<Vec<u8>>, Vec<u8>) {
    let path = dir.join("image.tar");
    let layers = layers();
    let config = docker_archive(&path, "shop/web:2.1", &layers);
    (path, layers, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_pushed_as_docker_manifest() {
    let stand_ins = StandIns::start(&["registry"]);
    let registry = stand_ins.registry();
    let dir = tempfile::tempdir().unwrap();
    let (path, layers, config) = archive_in(dir.path());

    let outcome = push_archive(
        &path,
        &dir.path().join("cache"),
        &target(registry, &registry.host, "shop/web", Some("2.1")),
    )
    .await
    .unwrap();

    let probe = Probe::new(registry);
    let stored = probe.manifest("shop/web", "2.1").await.unwrap();
    let manifest: Value = serde_json::from_slice(&stored.bytes).unwrap();
    assert_eq!(stored.media_type, DOCKER_MANIFEST_V2);
    assert_eq!(stored.digest, outcome.digest);
    assert_eq!(outcome.media_type, DOCKER_MANIFEST_V2);
    assert_eq!(manifest["config"]["digest"], sha256(&config));
    assert_eq!(
        &probe.blob("shop/web", &sha256(&config)).await.unwrap()[..],
        &config[..]
    );
    let stored_layers = manifest["layers"].as_array().unwrap();
    assert_eq!(stored_layers.len(), 3);
    assert_eq!(
        stored_layers[0]["digest"], stored_layers[2]["digest"],
        "a repeated layer is one blob"
    );
    for (descriptor, layer) in stored_layers.iter().zip(&layers) {
        assert_eq!(descriptor["mediaType"], DOCKER_LAYER_GZIP);
        let blob = probe
            .blob("shop/web", descriptor["digest"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(descriptor["size"], blob.len() as u64);
        assert_eq!(
            gunzip(&blob),
            *layer,
            "layer decompresses to the archive's tar"
        );
    }
    let text_blob = stored_layers[0]["size"].as_u64().unwrap();
    assert!(
        text_blob < layers[0].len() as u64 / 4,
        "text layer compressed: {text_blob} bytes"
    );
    assert_eq!(outcome.blobs_uploaded, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_cache_skips_compression() {
    let stand_ins = StandIns::start(&["registry"]);
    let registry = stand_ins.registry();
    let proxy = Proxy::start(&registry.host).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, layers, _) = archive_in(dir.path());
    let cache_dir = dir.path().join("cache");
    let push_target = target(registry, &proxy.host, "shop/web", Some("2.1"));
    let first = push_archive(&path, &cache_dir, &push_target).await.unwrap();
    proxy.clear();

    let cache = DigestCache::in_dir(&cache_dir);
    let cached = cache.layer(&sha256(&layers[1])).unwrap();
    let second = push_archive(&path, &cache_dir, &push_target).await.unwrap();

    let uploads = proxy
        .requests()
        .iter()
        .filter(|request| request.path.contains("/blobs/uploads/"))
        .count();
    let heads = proxy
        .requests()
        .iter()
        .filter(|request| request.method == "HEAD" && request.path.contains("/blobs/"))
        .count();
    assert!(cache.file_path().unwrap().is_file());
    assert!(
        Probe::new(registry)
            .blob("shop/web", &cached.digest)
            .await
            .is_some()
    );
    assert_eq!(second.digest, first.digest);
    assert_eq!(second.blobs_skipped, 3);
    assert_eq!(second.blobs_uploaded, 0);
    assert_eq!(uploads, 0);
    assert_eq!(heads, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_digest_missing_recompresses() {
    let stand_ins = StandIns::start(&["registry"]);
    let registry = stand_ins.registry();
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = archive_in(dir.path());
    let cache_dir = dir.path().join("cache");
    let first = push_archive(
        &path,
        &cache_dir,
        &target(registry, &registry.host, "shop/web", Some("2.1")),
    )
    .await
    .unwrap();

    let other = push_archive(
        &path,
        &cache_dir,
        &target(registry, &registry.host, "shop/copy", Some("2.1")),
    )
    .await
    .unwrap();

    assert_eq!(other.blobs_uploaded, 3);
    assert_eq!(other.digest, first.digest, "compression is deterministic");
    assert!(
        Probe::new(registry)
            .manifest("shop/copy", "2.1")
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_layer_compressed_in_parts() {
    let stand_ins = StandIns::start(&["registry"]);
    let registry = stand_ins.registry();
    let proxy = Proxy::start(&registry.host).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.tar");
    let layer = layer_tar(&[("blob.bin", &random_bytes(13 * 1024 * 1024))]);
    docker_archive(&path, "shop/web:2.1", std::slice::from_ref(&layer));

    let outcome = push_archive(
        &path,
        &dir.path().join("cache"),
        &target(registry, &proxy.host, "shop/big", Some("2.1")),
    )
    .await
    .unwrap();

    let patches: Vec<usize> = proxy
        .requests()
        .iter()
        .filter(|request| request.method == "PATCH")
        .map(|request| request.body_length)
        .collect();
    let probe = Probe::new(registry);
    let stored = probe.manifest("shop/big", "2.1").await.unwrap();
    let manifest: Value = serde_json::from_slice(&stored.bytes).unwrap();
    let digest = manifest["layers"][0]["digest"].as_str().unwrap();
    let blob = probe.blob("shop/big", digest).await.unwrap();
    assert_eq!(
        patches.len(),
        2,
        "13 MiB of gzip output in 8 MiB parts: {patches:?}"
    );
    assert_eq!(patches[0], 8 * 1024 * 1024);
    assert_eq!(patches.iter().sum::<usize>(), blob.len());
    assert_eq!(gunzip(&blob), layer);
    assert_eq!(
        outcome.bytes_uploaded,
        blob.len() as u64 + manifest["config"]["size"].as_u64().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_layer_stops_push() {
    let stand_ins = StandIns::start(&["registry"]);
    let registry = stand_ins.registry();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.tar");
    let marker = b"MARKER-0123456789";
    let mut content = random_bytes(64 * 1024);
    content.extend_from_slice(marker);
    docker_archive(&path, "shop/web:2.1", &[layer_tar(&[("data", &content)])]);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes
        .windows(marker.len())
        .position(|window| window == marker)
        .unwrap();
    bytes[at] = b'X';
    std::fs::write(&path, bytes).unwrap();

    let error = push_archive(
        &path,
        &dir.path().join("cache"),
        &target(registry, &registry.host, "shop/bad", Some("2.1")),
    )
    .await
    .unwrap_err();

    assert_eq!(error.error_id, "LayerDigestMismatch");
    assert!(error.message.contains("image.tar"), "{}", error.message);
    assert!(
        Probe::new(registry)
            .manifest("shop/bad", "2.1")
            .await
            .is_none()
    );
}

#[tokio::test]
async fn unknown_tag_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = archive_in(dir.path());
    let error = source::open(
        &spec(&path, Some("shop/web:9.9")),
        &CancellationToken::new(),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(error.status, EcrStatus::NotFound);
    assert_eq!(error.error_id, "ArchiveImageNotFound");
    assert!(error.message.contains("shop/web:2.1"), "{}", error.message);
}

#[tokio::test]
async fn plain_tar_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.tar");
    std::fs::write(&path, layer_tar(&[("hello.txt", b"hi")])).unwrap();
    let error = source::open(&spec(&path, None), &CancellationToken::new())
        .await
        .err()
        .unwrap();
    assert_eq!(error.error_id, "InvalidDockerArchive");
    assert!(error.message.contains("manifest.json"), "{}", error.message);
}
