//! Uploader tests against Debian's docker-registry, through a recording
//! proxy that injects failures: retries, chunking, cancellation,
//! re-authentication, TLS, shared upload slots and progress.

mod distribution_support;
mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use distribution_support::images::{OciLayout, layer_tar, random_bytes, text_bytes};
use distribution_support::proxy::{Fault, FaultAction, Proxy};
use distribution_support::{Probe, ProgressLog, fast_options, target};
use ecr_compose::distribution::{CredentialRefresh, PushOptions, PushOutcome, PushTarget, push};
use ecr_compose::secret::Secret;
use ecr_compose::source::{self, ImageSource, SourceSpec};
use ecr_compose::{EcrStatus, Error};
use futures_util::future::BoxFuture;
use serde_json::Value;
use support::StandIns;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

const MIB: usize = 1024 * 1024;

/// Writes a layout with one image of two gzip layers and returns the manifest descriptor.
fn small_layout(dir: &Path) -> Value {
    let layout = OciLayout::create(dir);
    let layers = vec![
        layer_tar(&[("etc/text", &text_bytes(600 * 1024))]),
        layer_tar(&[("bin/data", &random_bytes(300 * 1024))]),
    ];
    let image = layout.image(&layers, "amd64");
    layout.finish(&[("latest", image.clone())]);
    image
}

/// Writes a layout with one image whose layers are stored uncompressed, so
/// their sizes at the registry are known exactly.
fn raw_layout(dir: &Path, layers: Vec<Vec<u8>>) -> Value {
    let layout = OciLayout::create(dir);
    let image = layout.raw_image(&layers);
    layout.finish(&[("latest", image.clone())]);
    image
}

async fn open_layout(dir: &Path) -> Box<dyn ImageSource> {
    let spec = SourceSpec::OciLayout {
        path: dir.to_path_buf(),
        reference: None,
    };
    source::open(&spec, &CancellationToken::new())
        .await
        .unwrap()
}

async fn push_quietly(
    source: &dyn ImageSource,
    target: &PushTarget,
    options: &PushOptions,
) -> Result<PushOutcome, Error> {
    push(source, target, options, &|_| {}, &CancellationToken::new()).await
}

struct CountingRefresh {
    calls: AtomicU32,
    password: String,
}

impl CredentialRefresh for CountingRefresh {
    fn refresh(&self) -> BoxFuture<'_, ecr_compose::Result<Secret>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let password = self.password.clone();
        Box::pin(async move { Ok(Secret::new(password)) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_retries_server_errors() {
    let stand_ins = StandIns::start(&["registry"]);
    let registry = stand_ins.registry();
    let proxy = Proxy::start(&registry.host).await;
    let dir = tempfile::tempdir().unwrap();
    let image = small_layout(dir.path());
    proxy.add_fault(Fault {
        method: "HEAD",
        path_contains: "/blobs/",
        action: FaultAction::Status(429),
        count: 1,
    });
    proxy.add_fault(Fault {
        method: "PUT",
        path_contains: "/blobs/uploads/",
        action: FaultAction::Status(500),
        count: 2,
    });
    proxy.add_fault(Fault {
        method: "PUT",
        path_contains: "/manifests/",
        action: FaultAction::Status(503),
        count: 1,
    });

    let source = open_layout(dir.path()).await;
    let outcome = push_quietly(
        source.as_ref(),
        &target(registry, &proxy.host, "retry/app", Some("v1")),
        &fast_options(),
    )
    .await
    .unwrap();

    assert_eq!(outcome.digest, image["digest"].as_str().unwrap());
    let statuses: Vec<u16> = proxy
        .requests()
        .iter()
        .map(|request| request.status)
        .collect();
    assert_eq!(statuses.iter().filter(|status| **status == 429).count(), 1);
    assert_eq!(statuses.iter().filter(|status| **status == 500).count(), 2);
    assert_eq!(statuses.iter().filter(|status| **status == 503).count(), 1);
    let stored = Probe::new(registry).manifest("retry/app", "v1").await;
    assert!(stored.is_some(), "manifest stored after retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_retries_dropped_connections() {
    let stand_ins = StandIns::start(&["registry"]);
    let registry = stand_ins.registry();
    let proxy = Proxy::start(&registry.host).await;
    let dir = tempfile::tempdir().unwrap();
    let image = raw_layout(dir.path(), vec![random_bytes(6 * MIB)]);
    proxy.add_fault(Fault {
        method: "POST",
        path_contains: "/blobs/uploads/",
        action: FaultAction::Drop,
        count: 1,
    });
    proxy.add_fault(Fault {
        method: "PATCH",
        path_contains: "/blobs/uploads/",
        action: FaultAction::Drop,
        count: 2,
    });

    let source = open_layout(dir.path()).await;
    let options = PushOptions {
        chunk_size: 5 * MIB as u64,
        ..fast_options()
    };
    let outcome = push_quietly(
        source.as_ref(),
        &target(registry, &proxy.host, "drop/app", Some("v1")),
        &options,
    )
    .await
    .unwrap();

    assert_eq!(outcome.digest, image["digest"].as_str().unwrap());
    let dropped = proxy
        .requests()
        .iter()
        .filter(|request| request.status == 0)
        .count();
    assert_eq!(dropped, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_request_is_retried() {
    let stand_ins = StandIns::start(&["registry"]);
    let registry = stand_ins.registry();
    let proxy = Proxy::start(&registry.host).await;
    let dir = tempfile::tempdir().unwrap();
    let image = small_layout(dir.path());
    proxy.add_fault(Fault {
        method: "HEAD",
        path_contains: "/blobs/",
        action: FaultAction::Delay(Duration::from_secs(30)),
        count: 1,
    });
    proxy.add_fault(Fault {
        method: "PUT",
        path_contains: "/blobs/uploads/",
        action: FaultAction::Delay(Duration::from_secs(30)),
        count: 1,
    });

    let source = open_layout(dir.path()).await;
    let options = PushOptions {
        stall_timeout: Duration::from_millis(500),
        ..fast_options()
    };
    let started = Instant::now();
    let outcome = push_quietly(
        source.as_ref(),
        &target(registry, &proxy.host, "stall/app", Some("v1")),
        &options,
    )
    .await
    .unwrap();

    assert_eq!(outcome.digest, image["digest"].as_str().unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_name_registry_and_code() {
    let stand_ins = StandIns::start(&["registry"]);
    let registry = stand_ins.registry();
    let proxy = Proxy::start(&registry.host).await;
    let dir = tempfile::tempdir().unwrap();
    small_layout(dir.path());
    proxy.add_fault(Fault {
        method: "PUT",
        path_contains: "/blobs/uploads/",
        action: FaultAction::Status(500),
        count: 100,
    });

    let source = open_layout(dir.path()).await;
    let options = PushOptions {
        max_retries: 2,
        ..fast_options()
    };
    let error = push_quietly(
        source.as_ref(),
        &target(registry, &proxy.host, "fail/app", Some("v1")),
        &options,
    )
    .await
    .unwrap_err();

    assert_eq!(error.status, EcrStatus::Registry);
    assert_eq!(error.service_code.as_deref(), Some("INJECTED"));
    assert!(error.message.contains(&proxy.host), "{}", error.message);
    assert!(error.message.contains("fail/app"), "{}", error.message);
    assert!(error.message.contains("HTTP 500"), "{}", error.message);
    assert!(
        !error.message.contains(&registry.password),
        "message leaks the password"
    );
    let blob_puts = proxy
        .requests()
        .iter()
        .filter(|request| request.is_blob_upload())
        .count();
    assert!(
        blob_puts >= 3,
        "each blob tried 1 + 2 times, saw {blob_puts}"
    );
    assert!(
        Probe::new(registry)
            .manifest("fail/app", "v1")
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_blob_uploads_in_parts() {
    let stand_ins = StandIns::start(&["registry"]);
    let registry = stand_ins.registry();
    let proxy = Proxy::start(&registry.host).await;
    let dir = tempfile::tempdir().unwrap();
    let blob = random_bytes(12 * MIB);
    raw_layout(dir.path(), vec![blob.clone()]);
    let source = open_layout(dir.path()).await;

    for (repository, chunk_size, expected) in [
        ("chunks/default", 8 * MIB as u64, vec![8 * MIB, 4 * MIB]),
        ("chunks/small", MIB as u64, vec![5 * MIB, 5 * MIB, 2 * MIB]),
    ] {
        proxy.clear();
        let options = PushOptions {
            chunk_size,
            ..fast_options()
        };
        push_quietly(
            source.as_ref(),
            &target(registry, &proxy.host, repository, Some("v1")),
            &options,
        )
        .await
        .unwrap();

        let patches: Vec<_> = proxy
            .requests()
            .into_iter()
            .filter(|request| request.method == "PATCH")
            .collect();
        let sizes: Vec<usize> = patches.iter().map(|request| request.body_length).collect();
        assert_eq!(sizes, expected, "{repository}: part sizes");
        let mut offset = 0;
        for patch in &patches {
            let range = format!("{offset}-{}", offset + patch.body_length - 1);
            assert_eq!(
                patch.content_range.as_deref(),
                Some(range.as_str()),
                "{repository}: Content-Range"
            );
            offset += patch.body_length;
        }
        for patch in &patches[..patches.len() - 1] {
            assert!(
                patch.body_length >= 5 * MIB,
                "{repository}: part below 5 MiB"
            );
        }
        let stored = Probe::new(registry)
            .blob(repository, &distribution_support::images::sha256(&blob))
            .await
            .unwrap();
        assert_eq!(stored.len(), blob.len(), "{repository}: stored size");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_push_leaves_no_manifest() {
    let stand_ins = StandIns::start(&["registry"]);
    let registry = stand_ins.registry();
    let proxy = Proxy::start(&registry.host).await;
    let dir = tempfile::tempdir().unwrap();
    raw_layout(
        dir.path(),
        vec![random_bytes(2 * MIB), random_bytes(3 * MIB)],
    );
    proxy.add_fault(Fault {
        method: "PUT",
        path_contains: "/blobs/uploads/",
        action: FaultAction::Delay(Duration::from_secs(5)),
        count: 1,
    });
    let source = open_layout(dir.path()).await;
    let push_target = target(registry, &proxy.host, "cancel/app", Some("v1"));

    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    let timer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        canceller.cancel();
        Instant::now()
    });
    let error = push(
        source.as_ref(),
        &push_target,
        &fast_options(),
        &|_| {},
        &cancel,
    )
    .await
    .unwrap_err();
    let stopped = Instant::now();
    let cancelled_at = timer.await.unwrap();

    assert_eq!(error.status, EcrStatus::Cancelled);
    assert!(
        stopped.duration_since(cancelled_at) < Duration::from_secs(1),
        "push stopped within a second"
    );
    assert!(
        Probe::new(registry)
            .manifest("cancel/app", "v1")
            .await
            .is_none(),
        "no manifest after cancel"
    );

    let outcome = push_quietly(source.as_ref(), &push_target, &fast_options())
        .await
        .unwrap();
    let stored = Probe::new(registry)
        .manifest("cancel/app", "v1")
        .await
        .unwrap();
    assert_eq!(stored.digest, outcome.digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_mid_push_refreshes_once() {
    let stand_ins = StandIns::start(&["registry"]);
    let registry = stand_ins.registry();
    let proxy = Proxy::start(&registry.host).await;
    let dir = tempfile::tempdir().unwrap();
    small_layout(dir.path());
    proxy.add_fault(Fault {
        method: "POST",
        path_contains: "/blobs/uploads/",
        action: FaultAction::Status(401),
        count: 1,
    });
    let refresh = Arc::new(CountingRefresh {
        calls: AtomicU32::new(0),
        password: registry.password.clone(),
    });

    let source = open_layout(dir.path()).await;
    let options = PushOptions {
        reauth: Some(refresh.clone()),
        ..fast_options()
    };
    push_quietly(
        source.as_ref(),
        &target(registry, &proxy.host, "reauth/app", Some("v1")),
        &options,
    )
    .await
    .unwrap();

    assert_eq!(refresh.calls.load(Ordering::SeqCst), 1);
    assert!(
        Probe::new(registry)
            .manifest("reauth/app", "v1")
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_denial_fails_after_one_refresh() {
    let stand_ins = StandIns::start(&["registry"]);
    let registry = stand_ins.registry();
    let proxy = Proxy::start(&registry.host).await;
    let dir = tempfile::tempdir().unwrap();
    small_layout(dir.path());
    proxy.add_fault(Fault {
        method: "PUT",
        path_contains: "/manifests/",
        action: FaultAction::Status(403),
        count: 10,
    });
    let refresh = Arc::new(CountingRefresh {
        calls: AtomicU32::new(0),
        password: registry.password.clone(),
    });

    let source = open_layout(dir.path()).await;
    let options = PushOptions {
        reauth: Some(refresh.clone()),
        ..fast_options()
    };
    let error = push_quietly(
        source.as_ref(),
        &target(registry, &proxy.host, "denied/app", Some("v1")),
        &options,
    )
    .await
    .unwrap_err();

    assert_eq!(refresh.calls.load(Ordering::SeqCst), 1);
    assert_eq!(error.status, EcrStatus::Denied);
    assert!(error.message.contains("HTTP 403"), "{}", error.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_rejected_without_leak() {
    let stand_ins = StandIns::start(&["registry"]);
    let registry = stand_ins.registry();
    let dir = tempfile::tempdir().unwrap();
    small_layout(dir.path());
    let mut push_target = target(registry, &registry.host, "auth/app", Some("v1"));
    push_target.endpoint.password = Secret::new("wrong-password-7f3a9");

    let source = open_layout(dir.path()).await;
    let error = push_quietly(source.as_ref(), &push_target, &fast_options())
        .await
        .unwrap_err();

    assert_eq!(error.status, EcrStatus::Authentication);
    assert_eq!(error.service_code.as_deref(), Some("UNAUTHORIZED"));
    assert!(error.message.contains(&registry.host), "{}", error.message);
    assert!(
        !error.message.contains("wrong-password-7f3a9"),
        "message leaks the password"
    );
    assert!(
        !format!("{push_target:?}").contains("wrong-password-7f3a9"),
        "Debug leaks the password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_registry_trusts_ca_file() {
    let stand_ins = StandIns::start_with(&["registry"], &["--registry-tls"]);
    let registry = stand_ins.registry();
    let dir = tempfile::tempdir().unwrap();
    let image = small_layout(dir.path());
    let source = open_layout(dir.path()).await;
    let mut push_target = target(registry, &registry.host, "tls/app", Some("v1"));
    push_target.endpoint.insecure = false;

    let untrusted = push_quietly(source.as_ref(), &push_target, &fast_options())
        .await
        .unwrap_err();
    push_target.endpoint.ca_file = registry.ca_file.clone();
    let outcome = push_quietly(source.as_ref(), &push_target, &fast_options())
        .await
        .unwrap();

    assert_eq!(
        untrusted.status,
        EcrStatus::Network,
        "{}",
        untrusted.message
    );
    assert_eq!(outcome.digest, image["digest"].as_str().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_slots_limit_uploads() {
    let stand_ins = StandIns::start(&["registry"]);
    let registry = stand_ins.registry();
    let proxy = Proxy::start(&registry.host).await;
    let dir = tempfile::tempdir().unwrap();
    let layers = (0..4).map(|_| random_bytes(64 * 1024)).collect();
    raw_layout(dir.path(), layers);
    proxy.add_fault(Fault {
        method: "PUT",
        path_contains: "/blobs/uploads/",
        action: FaultAction::Delay(Duration::from_millis(200)),
        count: 100,
    });
    let source = open_layout(dir.path()).await;

    let slots = Arc::new(Semaphore::new(1));
    let options = PushOptions {
        upload_slots: Some(slots),
        ..fast_options()
    };
    push_quietly(
        source.as_ref(),
        &target(registry, &proxy.host, "slots/one", Some("v1")),
        &options,
    )
    .await
    .unwrap();
    let limited = proxy.max_concurrent_uploads();

    let fresh = Proxy::start(&registry.host).await;
    fresh.add_fault(Fault {
        method: "PUT",
        path_contains: "/blobs/uploads/",
        action: FaultAction::Delay(Duration::from_millis(200)),
        count: 100,
    });
    push_quietly(
        source.as_ref(),
        &target(registry, &fresh.host, "slots/four", Some("v1")),
        &fast_options(),
    )
    .await
    .unwrap();

    assert_eq!(limited, 1, "one shared slot, one upload at a time");
    assert!(
        fresh.max_concurrent_uploads() > 1,
        "own slots allow parallel uploads"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_throttled_and_complete() {
    let stand_ins = StandIns::start(&["registry"]);
    let registry = stand_ins.registry();
    let proxy = Proxy::start(&registry.host).await;
    let dir = tempfile::tempdir().unwrap();
    raw_layout(dir.path(), vec![random_bytes(11 * MIB), random_bytes(MIB)]);
    proxy.add_fault(Fault {
        method: "PATCH",
        path_contains: "/blobs/uploads/",
        action: FaultAction::Delay(Duration::from_millis(400)),
        count: 100,
    });
    let source = open_layout(dir.path()).await;
    let log = ProgressLog::default();
    let started = Instant::now();

    let options = PushOptions {
        chunk_size: 5 * MIB as u64,
        ..fast_options()
    };
    let outcome = push(
        source.as_ref(),
        &target(registry, &proxy.host, "progress/app", Some("v1")),
        &options,
        &|report| log.record(report),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let elapsed = started.elapsed().as_secs_f64();

    let statuses = log.statuses();
    let last = log.last().unwrap();
    assert_eq!(statuses.first().map(String::as_str), Some("Preparing"));
    assert_eq!(last.status, "Pushed");
    assert_eq!(last.completed_bytes, last.total_bytes);
    assert_eq!(last.blobs_done, 3);
    assert_eq!(last.blobs_total, 3);
    assert_eq!(last.image, format!("{}/progress/app:v1", proxy.host));
    assert_eq!(outcome.bytes_uploaded, last.total_bytes);
    let allowed = (elapsed * 10.0).ceil() as usize + 4;
    assert!(
        statuses.len() <= allowed,
        "{} reports in {elapsed:.1} s",
        statuses.len()
    );
    let uploading = statuses
        .iter()
        .filter(|status| *status == "Uploading")
        .count();
    assert!(uploading >= 3, "reports while uploading: {uploading}");
}
