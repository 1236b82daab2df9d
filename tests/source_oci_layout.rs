//! OCI image layout source pushed to Debian's docker-registry: images and
//! indexes arrive byte for byte, and a second push skips every blob.

mod distribution_support;
mod support;

use std::path::Path;

use distribution_support::images::{
    OCI_INDEX, OCI_MANIFEST, OciLayout, layer_tar, random_bytes, text_bytes,
};
use distribution_support::proxy::Proxy;
use distribution_support::{Probe, fast_options, target};
use ecr_compose::EcrStatus;
use ecr_compose::distribution::push;
use ecr_compose::source::{self, SourceSpec};
use serde_json::Value;
use support::StandIns;
use tokio_util::sync::CancellationToken;

fn spec(dir: &Path, reference: Option<&str>) -> SourceSpec {
    SourceSpec::OciLayout {
        path: dir.to_path_buf(),
        reference: reference.map(str::to_owned),
    }
}

/// Layers of a test image: one compressible, one not.
fn two_layers() -> Vec<Vec<u8>> {
    vec![
        layer_tar(&[("usr/share/doc/readme.txt", &text_bytes(2 * 1024 * 1024))]),
        layer_tar(&[("usr/bin/tool", &random_bytes(1024 * 1024))]),
    ]
}

fn blob_digests(manifest: &[u8]) -> Vec<String> {
    let manifest: Value = serde_json::from_slice(manifest).unwrap();
    let mut digests = vec![manifest["config"]["digest"].as_str().unwrap().to_owned()];
    for layer in manifest["layers"].as_array().unwrap() {
        digests.push(layer["digest"].as_str().unwrap().to_owned());
    }
    digests
}

fn read_blob(dir: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(
        dir.join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_image_pushed_byte_for_byte() {
    let stand_ins = StandIns::start(&["registry"]);
    let registry = stand_ins.registry();
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(dir.path());
    let image = layout.image(&two_layers(), "amd64");
    layout.finish(&[("1.0", image.clone())]);
    let image_digest = image["digest"].as_str().unwrap();

    let cancel = CancellationToken::new();
    let source = source::open(&spec(dir.path(), None), &cancel)
        .await
        .unwrap();
    let outcome = push(
        source.as_ref(),
        &target(registry, &registry.host, "oci/app", Some("1.0")),
        &fast_options(),
        &|_| {},
        &cancel,
    )
    .await
    .unwrap();

    assert_eq!(outcome.digest, image_digest);
    assert_eq!(outcome.media_type, OCI_MANIFEST);
    assert_eq!(outcome.blobs_uploaded, 3);
    assert_eq!(outcome.blobs_skipped, 0);
    let probe = Probe::new(registry);
    let stored = probe.manifest("oci/app", "1.0").await.unwrap();
    assert_eq!(stored.digest, image_digest);
    assert_eq!(stored.media_type, OCI_MANIFEST);
    assert_eq!(&stored.bytes[..], &read_blob(dir.path(), image_digest)[..]);
    for digest in blob_digests(&stored.bytes) {
        let blob = probe.blob("oci/app", &digest).await.unwrap();
        assert_eq!(
            &blob[..],
            &read_blob(dir.path(), &digest)[..],
            "blob {digest}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_index_pushed_with_children() {
    let stand_ins = StandIns::start(&["registry"]);
    let registry = stand_ins.registry();
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(dir.path());
    let shared = layer_tar(&[("etc/os-release", b"ID=test\n")]);
    let amd64 = layout.image(
        &[
            shared.clone(),
            layer_tar(&[("bin/app", &random_bytes(200_000))]),
        ],
        "amd64",
    );
    let arm64 = layout.image(
        &[shared, layer_tar(&[("bin/app", &random_bytes(200_000))])],
        "arm64",
    );
    let attestation = layout.attestation(&amd64);
    let index = layout.index(&[amd64.clone(), arm64.clone(), attestation.clone()]);
    layout.finish(&[("multi", index.clone())]);

    let cancel = CancellationToken::new();
    let source = source::open(&spec(dir.path(), Some("multi")), &cancel)
        .await
        .unwrap();
    let outcome = push(
        source.as_ref(),
        &target(registry, &registry.host, "oci/multi", Some("multi")),
        &fast_options(),
        &|_| {},
        &cancel,
    )
    .await
    .unwrap();

    assert_eq!(outcome.digest, index["digest"].as_str().unwrap());
    assert_eq!(outcome.media_type, OCI_INDEX);
    let probe = Probe::new(registry);
    let stored_index = probe.manifest("oci/multi", "multi").await.unwrap();
    assert_eq!(stored_index.digest, index["digest"].as_str().unwrap());
    assert_eq!(stored_index.media_type, OCI_INDEX);
    for child in [&amd64, &arm64, &attestation] {
        let digest = child["digest"].as_str().unwrap();
        let stored = probe.manifest("oci/multi", digest).await;
        let stored = stored.unwrap_or_else(|| panic!("child {digest} missing"));
        assert_eq!(
            &stored.bytes[..],
            &read_blob(dir.path(), digest)[..],
            "child {digest}"
        );
        for blob in blob_digests(&stored.bytes) {
            assert!(
                probe.blob("oci/multi", &blob).await.is_some(),
                "blob {blob} of {digest}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_push_skips_every_blob() {
    let stand_ins = StandIns::start(&["registry"]);
    let registry = stand_ins.registry();
    let proxy = Proxy::start(&registry.host).await;
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(dir.path());
    let image = layout.image(&two_layers(), "amd64");
    layout.finish(&[("1.0", image)]);
    let cancel = CancellationToken::new();
    let source = source::open(&spec(dir.path(), None), &cancel)
        .await
        .unwrap();
    let push_target = target(registry, &proxy.host, "oci/again", Some("1.0"));
    push(
        source.as_ref(),
        &push_target,
        &fast_options(),
        &|_| {},
        &cancel,
    )
    .await
    .unwrap();
    proxy.clear();

    let outcome = push(
        source.as_ref(),
        &push_target,
        &fast_options(),
        &|_| {},
        &cancel,
    )
    .await
    .unwrap();

    let requests = proxy.requests();
    let heads = requests
        .iter()
        .filter(|request| request.method == "HEAD" && request.path.contains("/blobs/"))
        .count();
    let uploads = requests
        .iter()
        .filter(|request| request.path.contains("/blobs/uploads/"))
        .count();
    assert_eq!(outcome.blobs_skipped, 3);
    assert_eq!(outcome.blobs_uploaded, 0);
    assert_eq!(outcome.bytes_uploaded, 0);
    assert_eq!(heads, 3);
    assert_eq!(uploads, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_blob_fails_before_upload() {
    let stand_ins = StandIns::start(&["registry"]);
    let registry = stand_ins.registry();
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(dir.path());
    let image = layout.image(&two_layers(), "amd64");
    layout.finish(&[("1.0", image.clone())]);
    let manifest = read_blob(dir.path(), image["digest"].as_str().unwrap());
    let layer = blob_digests(&manifest).pop().unwrap();
    std::fs::remove_file(
        dir.path()
            .join("blobs/sha256")
            .join(layer.strip_prefix("sha256:").unwrap()),
    )
    .unwrap();

    let cancel = CancellationToken::new();
    let source = source::open(&spec(dir.path(), None), &cancel)
        .await
        .unwrap();
    let error = push(
        source.as_ref(),
        &target(registry, &registry.host, "oci/broken", Some("1.0")),
        &fast_options(),
        &|_| {},
        &cancel,
    )
    .await
    .unwrap_err();

    assert_eq!(error.status, EcrStatus::NotFound);
    assert_eq!(error.error_id, "OciBlobMissing");
    assert!(error.message.contains(&layer), "{}", error.message);
    assert!(
        Probe::new(registry)
            .manifest("oci/broken", "1.0")
            .await
            .is_none()
    );
}

#[tokio::test]
async fn reference_picks_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(dir.path());
    let first = layout.image(&[layer_tar(&[("a", b"1")])], "amd64");
    let second = layout.image(&[layer_tar(&[("b", b"2")])], "amd64");
    layout.finish(&[("v1", first), ("v2", second.clone())]);
    let cancel = CancellationToken::new();

    let unnamed = source::open(&spec(dir.path(), None), &cancel)
        .await
        .err()
        .unwrap();
    let unknown = source::open(&spec(dir.path(), Some("v3")), &cancel)
        .await
        .err()
        .unwrap();
    let named = source::open(&spec(dir.path(), Some("v2")), &cancel)
        .await
        .unwrap();
    let plan = named.plan(&cancel).await.unwrap();

    assert_eq!(unnamed.error_id, "OciReferenceRequired");
    assert!(unnamed.message.contains("v1, v2"), "{}", unnamed.message);
    assert_eq!(unknown.error_id, "OciReferenceNotFound");
    let top = plan.manifests.last().unwrap();
    let ecr_compose::source::ManifestBody::Raw(bytes) = &top.body else {
        panic!("an OCI manifest is pushed as it is");
    };
    assert_eq!(
        distribution_support::images::sha256(bytes),
        second["digest"].as_str().unwrap()
    );
}

#[tokio::test]
async fn folder_without_layout_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let error = source::open(&spec(dir.path(), None), &CancellationToken::new())
        .await
        .err()
        .unwrap();
    assert_eq!(error.error_id, "InvalidOciLayout");
    assert!(
        error.message.contains(&dir.path().display().to_string()),
        "{}",
        error.message
    );
}
