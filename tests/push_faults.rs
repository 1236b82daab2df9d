//! The registry is killed in the middle of a push and started again: the
//! push fails cleanly or completes after its retries, and the next run
//! completes and then uploads nothing twice.
//!
//! One test function, because the push reads process-wide environment
//! variables that parallel tests would race on.

mod distribution_support;
mod support;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use distribution_support::images::{OciLayout, random_bytes};
use ecr_compose::events::LogLevel;
use ecr_compose::operation::{OperationContext, runtime};
use ecr_compose::push::{ImageStatus, PushRequest, push};
use ecr_compose::secret::Secret;
use ecr_compose::session::{CacheMode, CacheOptions, TokenRequest, get_session_token};
use support::StandIns;

const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

/// Layer size: large enough that the push is still uploading when the kill comes.
const LAYER_BYTES: usize = 96 * 1024 * 1024;

/// A registry process started by this test, killed when dropped.
struct Restarted(Child);

impl Drop for Restarted {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(host: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(host).is_err() {
        assert!(Instant::now() < deadline, "the restarted registry did not listen on {host}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn registry_killed_mid_push() {
    let stand_ins = StandIns::start(&["sts", "registry"]);
    for (name, value) in stand_ins.base_env() {
        // SAFETY: this binary has one test, so no other thread reads the environment now.
        unsafe { std::env::set_var(name, value) };
    }
    let runtime = runtime().unwrap();
    let host = stand_ins.registry().host.clone();

    let project = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(&project.path().join("layout"));
    let manifest = layout.raw_image(&[random_bytes(LAYER_BYTES), random_bytes(LAYER_BYTES / 4)]);
    layout.finish(&[("big", manifest)]);
    std::fs::write(project.path().join("compose.yaml"), format!("services:\n  big:\n    image: {host}/faults/big:1\n")).unwrap();

    let token_context = OperationContext::new(LogLevel::Info);
    let session = runtime
        .block_on(get_session_token(
            &TokenRequest {
                serial_number: Some(stand_ins.serial_number.clone()),
                token_code: Some(Secret::new("123456")),
                cache: CacheOptions { mode: CacheMode::Off, ..CacheOptions::default() },
                ..TokenRequest::default()
            },
            &token_context,
        ))
        .unwrap();
    let request = PushRequest {
        credentials: Some(session.credentials()),
        working_directory: Some(project.path().to_path_buf()),
        registry_aliases: BTreeMap::from([(host.clone(), ECR_HOST.to_owned())]),
        sources: BTreeMap::from([("big".to_owned(), "oci-layout:layout#big".to_owned())]),
        create_repository: true,
        ..PushRequest::default()
    };

    // Kill the registry once the first bytes are on their way, then start it again on the same port.
    let context = OperationContext::new(LogLevel::Info);
    let watcher_context = context.clone();
    let registry_pid = stand_ins.pids["registry"];
    let config = stand_ins.state_dir.join("registry/config.yml");
    let watcher_host = host.clone();
    let watcher = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let uploading = watcher_context
                .events
                .drain()
                .iter()
                .any(|event| event["type"] == "progress" && event["currentBytes"].as_u64().unwrap_or(0) > 0);
            if uploading || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let killed = Command::new("kill").args(["-KILL", &registry_pid.to_string()]).status().unwrap();
        assert!(killed.success(), "kill of the registry failed");
        std::thread::sleep(Duration::from_millis(300));
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .current_dir(config.parent().unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(&watcher_host);
        Restarted(child)
    });
    let first = runtime.block_on(push(&request, &context)).expect("the push reports per image");
    let _restarted = watcher.join().unwrap();
    let image = &first.images[0];
    eprintln!("first push after the kill: {:?} {:?}", image.status, image.error.as_ref().map(|error| &error.message));
    match image.status {
        ImageStatus::Pushed => assert!(image.digest.is_some()),
        ImageStatus::Failed => {
            let error = image.error.as_ref().unwrap();
            assert!(error.message.contains(&host), "the error names the registry: {}", error.message);
        }
        other => panic!("unexpected status {other:?}"),
    }

    // The next run completes; the one after it uploads no blob again.
    let second = runtime.block_on(push(&request, &OperationContext::new(LogLevel::Info))).unwrap();
    assert_eq!(second.images[0].status, ImageStatus::Pushed, "{:?}", second.images[0].error);
    let third = runtime.block_on(push(&request, &OperationContext::new(LogLevel::Info))).unwrap();
    assert_eq!(third.images[0].status, ImageStatus::Pushed);
    assert_eq!(third.images[0].blobs_uploaded, 0);
    assert_eq!(third.images[0].digest, second.images[0].digest);
}
