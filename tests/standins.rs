//! Integration tests of the stand-ins: start and stop, the control API, and
//! the STS gate's checks on requests signed by aws-sdk-sts.

mod support;

use aws_credential_types::Credentials;
use aws_sdk_sts::config::{BehaviorVersion, Region};
use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_types::retry::RetryConfig;
use support::StandIns;

/// Builds an STS client for the gate, signing with `secret`, with retries off
/// so that each call reaches the gate once.
fn sts_client(stand_ins: &StandIns, secret: &str) -> aws_sdk_sts::Client {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let credentials = Credentials::new(&stand_ins.access_key_id, secret, None, None, "stand-ins");
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(stand_ins.region.clone()))
        .endpoint_url(stand_ins.sts_endpoint())
        .credentials_provider(credentials)
        .http_client(http_client)
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_sts::Client::from_conf(config)
}

async fn get_session_token(
    stand_ins: &StandIns,
    secret: &str,
    code: &str,
    duration: i32,
) -> Result<aws_sdk_sts::types::Credentials, (Option<u16>, String, String)> {
    let result = sts_client(stand_ins, secret)
        .get_session_token()
        .serial_number(&stand_ins.serial_number)
        .token_code(code)
        .duration_seconds(duration)
        .send()
        .await;
    match result {
        Ok(output) => Ok(output.credentials.expect("credentials in the result")),
        Err(error) => {
            let status = error
                .raw_response()
                .map(|response| response.status().as_u16());
            let code = error.code().unwrap_or("(no code)").to_string();
            let message = error.message().unwrap_or("").to_string();
            Err((status, code, message))
        }
    }
}

fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

#[test]
fn stand_ins_start_and_stop() {
    let stand_ins = StandIns::start(&["sts"]);
    let pid = stand_ins.pids["sts"];
    assert!(is_running(pid), "sts pid {pid} not running after start");
    assert!(stand_ins.sts_endpoint().starts_with("http://127.0.0.1:"));
    assert!(stand_ins.registry.is_none());
    assert!(stand_ins.engine.is_none());

    drop(stand_ins);
    assert!(!is_running(pid), "sts pid {pid} still running after drop");
}

#[test]
fn stats_start_empty() {
    let stand_ins = StandIns::start(&["sts"]);
    assert!(stand_ins.stats().is_empty());
}

#[test]
fn base_env_points_at_stand_ins() {
    let stand_ins = StandIns::start(&["sts"]);
    let env: std::collections::HashMap<_, _> = stand_ins.base_env().into_iter().collect();
    assert_eq!(env["AWS_ENDPOINT_URL"], stand_ins.sts_endpoint());
    assert_eq!(env["AWS_EC2_METADATA_DISABLED"], "true");
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert!(!env.contains_key("DOCKER_HOST"), "no engine was started");
    assert!(std::path::Path::new(&env["AWS_CONFIG_FILE"]).is_file());
    assert!(std::path::Path::new(&env["DOCKER_CONFIG"]).is_dir());
    assert!(std::path::Path::new(&env["XDG_CACHE_HOME"]).starts_with(&stand_ins.state_dir));
}

#[test]
fn debug_redacts_secret() {
    let stand_ins = StandIns::start(&["sts"]);
    let text = format!("{stand_ins:?}");
    assert!(!text.contains(&stand_ins.secret_access_key));
    assert!(text.contains("<redacted>"));
}

#[tokio::test]
async fn gate_accepts_rust_sdk_call() {
    let stand_ins = StandIns::start(&["sts"]);
    let secret = stand_ins.secret_access_key.clone();

    let credentials = get_session_token(&stand_ins, &secret, "123456", 3600).await;

    let credentials = credentials.expect("GetSessionToken with a good code");
    assert!(!credentials.session_token().is_empty());
    assert_eq!(stand_ins.stats().get("GetSessionToken"), Some(&1));
}

#[tokio::test]
async fn gate_rejects_five_digit_code() {
    let stand_ins = StandIns::start(&["sts"]);
    let secret = stand_ins.secret_access_key.clone();

    let error = get_session_token(&stand_ins, &secret, "12345", 3600).await;

    let (status, code, message) = error.expect_err("a 5-digit code is invalid");
    assert_eq!(status, Some(400));
    assert_eq!(code, "ValidationError");
    assert!(message.contains("'tokenCode'"), "message: {message}");
}

#[tokio::test]
async fn gate_rejects_duration_899() {
    let stand_ins = StandIns::start(&["sts"]);
    let secret = stand_ins.secret_access_key.clone();

    let error = get_session_token(&stand_ins, &secret, "123456", 899).await;

    let (_, code, message) = error.expect_err("899 seconds is below the minimum");
    assert_eq!(code, "ValidationError");
    assert!(
        message.contains("greater than or equal to 900"),
        "message: {message}"
    );
}

#[tokio::test]
async fn gate_denies_wrong_code() {
    let stand_ins = StandIns::start(&["sts"]);
    let secret = stand_ins.secret_access_key.clone();
    let wrong = stand_ins.wrong_token_code.clone();

    let error = get_session_token(&stand_ins, &secret, &wrong, 3600).await;

    let (status, code, _) = error.expect_err("the wrong code is denied");
    assert_eq!(status, Some(403));
    assert_eq!(code, "AccessDenied");
}

#[tokio::test]
async fn gate_rejects_wrong_secret() {
    let stand_ins = StandIns::start(&["sts"]);
    let wrong_secret = "x".repeat(40);

    let error = get_session_token(&stand_ins, &wrong_secret, "123456", 3600).await;

    let (status, code, _) = error.expect_err("a signature with the wrong secret");
    assert_eq!(status, Some(403));
    assert_eq!(code, "SignatureDoesNotMatch");
}

#[tokio::test]
async fn fault_throttles_next_call() {
    let stand_ins = StandIns::start(&["sts"]);
    let secret = stand_ins.secret_access_key.clone();
    stand_ins.set_fault("GetSessionToken", 400, "Throttling", 1);

    let first = get_session_token(&stand_ins, &secret, "123456", 3600).await;
    let second = get_session_token(&stand_ins, &secret, "123456", 3600).await;

    let (_, code, _) = first.expect_err("the injected fault");
    assert_eq!(code, "Throttling");
    assert!(second.is_ok(), "the fault applies once: {second:?}");
    assert_eq!(stand_ins.stats().get("GetSessionToken"), Some(&2));

    stand_ins.reset_stats();
    stand_ins.clear_faults();
    assert!(stand_ins.stats().is_empty());
}
