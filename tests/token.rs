//! The token operation against the STS stand-in: sessions, the cache and
//! the errors a developer meets every day.
//!
//! One test function, because the operation reads process-wide environment
//! variables (AWS_CONFIG_FILE, credentials) that parallel tests would race on.

mod support;

use std::path::Path;

use ecr_compose::events::LogLevel;
use ecr_compose::operation::{OperationContext, runtime};
use ecr_compose::secret::Secret;
use ecr_compose::session::{CacheMode, CacheOptions, TokenRequest, get_session_token};
use ecr_compose::{EcrStatus, aws::AwsOptions};
use support::StandIns;

fn request(stand_ins: &StandIns, code: &str, cache_dir: &Path, mode: CacheMode) -> TokenRequest {
    TokenRequest {
        aws: AwsOptions {
            endpoint_url: Some(stand_ins.sts_endpoint().to_owned()),
            region: Some(stand_ins.region.clone()),
            profile: None,
        },
        serial_number: Some(stand_ins.serial_number.clone()),
        token_code: Some(Secret::new(code)),
        duration_seconds: Some(3600),
        cache: CacheOptions { mode, min_remaining_seconds: None, dir: Some(cache_dir.to_path_buf()) },
    }
}

#[test]
fn token_operation_against_stand_in() {
    let stand_ins = StandIns::start(&["sts"]);
    for (name, value) in stand_ins.base_env() {
        // SAFETY: this binary has one test, so no other thread reads the environment now.
        unsafe { std::env::set_var(name, value) };
    }
    let cache_dir = tempfile::tempdir().unwrap();
    let runtime = runtime().unwrap();
    let context = OperationContext::new(LogLevel::Debug);

    // A good code gives a session and stores it.
    let first = runtime
        .block_on(get_session_token(&request(&stand_ins, "123456", cache_dir.path(), CacheMode::Use), &context))
        .expect("good code gives a session");
    assert!(!first.access_key_id.is_empty());
    assert!(!first.from_cache);
    assert_eq!(first.account_id.as_deref(), Some(stand_ins.account_id.as_str()));
    assert_eq!(stand_ins.stats().get("GetSessionToken").copied(), Some(1));

    // A second call reuses the cached session without calling STS, even with a wrong code.
    let second = runtime
        .block_on(get_session_token(&request(&stand_ins, &stand_ins.wrong_token_code, cache_dir.path(), CacheMode::Use), &context))
        .expect("cached session is reused");
    assert!(second.from_cache);
    assert_eq!(second.access_key_id, first.access_key_id);
    assert_eq!(stand_ins.stats().get("GetSessionToken").copied(), Some(1));

    // Refresh requests a new session from STS.
    let refreshed = runtime
        .block_on(get_session_token(&request(&stand_ins, "654321", cache_dir.path(), CacheMode::Refresh), &context))
        .expect("refresh gives a new session");
    assert!(!refreshed.from_cache);
    assert_eq!(stand_ins.stats().get("GetSessionToken").copied(), Some(2));

    // A wrong code is rejected with a clear error and no secret.
    let other_cache = tempfile::tempdir().unwrap();
    let error = runtime
        .block_on(get_session_token(&request(&stand_ins, &stand_ins.wrong_token_code, other_cache.path(), CacheMode::Use), &context))
        .unwrap_err();
    assert_eq!(error.status, EcrStatus::Authentication);
    assert_eq!(error.error_id, "MfaCodeRejected");
    assert_eq!(error.service_code.as_deref(), Some("AccessDenied"));
    assert!(error.message.contains(&stand_ins.serial_number));

    // Only mode fails when nothing is cached.
    let error = runtime
        .block_on(get_session_token(&request(&stand_ins, "123456", other_cache.path(), CacheMode::Only), &context))
        .unwrap_err();
    assert_eq!(error.error_id, "NoCachedSession");

    // Validation happens before any call: the gate counts no new request.
    stand_ins.reset_stats();
    let error = runtime
        .block_on(get_session_token(&request(&stand_ins, "12345", other_cache.path(), CacheMode::Off), &context))
        .unwrap_err();
    assert_eq!(error.error_id, "InvalidTokenCode");
    let mut long = request(&stand_ins, "123456", other_cache.path(), CacheMode::Off);
    long.duration_seconds = Some(200_000);
    assert_eq!(runtime.block_on(get_session_token(&long, &context)).unwrap_err().error_id, "InvalidDuration");
    assert_eq!(stand_ins.stats().get("GetSessionToken").copied().unwrap_or(0), 0);

    // Throttling comes back as Throttled after the SDK's bounded retries.
    stand_ins.set_fault("GetSessionToken", 400, "Throttling", 10);
    let error = runtime
        .block_on(get_session_token(&request(&stand_ins, "123456", other_cache.path(), CacheMode::Off), &context))
        .unwrap_err();
    stand_ins.clear_faults();
    assert_eq!(error.status, EcrStatus::Throttled);
    assert_eq!(stand_ins.stats().get("GetSessionToken").copied().unwrap_or(0), 3, "three attempts, then the error");

    // A stopped endpoint gives a network error naming it.
    let mut unreachable = request(&stand_ins, "123456", other_cache.path(), CacheMode::Off);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    unreachable.aws.endpoint_url = Some(closed_url.clone());
    let error = runtime.block_on(get_session_token(&unreachable, &context)).unwrap_err();
    assert_eq!(error.status, EcrStatus::Network, "{error:?}");
    assert!(error.message.contains(&closed_url), "{}", error.message);

    // An unknown profile is named.
    let mut profile = request(&stand_ins, "123456", other_cache.path(), CacheMode::Off);
    profile.aws.profile = Some("no-such-profile".to_owned());
    let error = runtime.block_on(get_session_token(&profile, &context)).unwrap_err();
    assert_eq!(error.error_id, "ProfileNotFound");

    // The profile supplies the device, the duration and the region; the credentials file the base keys.
    let files = tempfile::tempdir().unwrap();
    let config_file = files.path().join("config");
    let credentials_file = files.path().join("credentials");
    std::fs::write(
        &config_file,
        format!(
            "[profile dev]\nregion = {}\nmfa_serial = {}\nduration_seconds = 900\n",
            stand_ins.region, stand_ins.serial_number
        ),
    )
    .unwrap();
    std::fs::write(
        &credentials_file,
        format!("[dev]\naws_access_key_id = {}\naws_secret_access_key = {}\n", stand_ins.access_key_id, stand_ins.secret_access_key),
    )
    .unwrap();
    // SAFETY: as above, no other thread reads the environment.
    unsafe {
        std::env::set_var("AWS_CONFIG_FILE", &config_file);
        std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &credentials_file);
        std::env::remove_var("AWS_ACCESS_KEY_ID");
        std::env::remove_var("AWS_SECRET_ACCESS_KEY");
        std::env::remove_var("AWS_REGION");
    }
    let from_profile = TokenRequest {
        aws: AwsOptions {
            profile: Some("dev".to_owned()),
            endpoint_url: Some(stand_ins.sts_endpoint().to_owned()),
            region: None,
        },
        token_code: Some(Secret::new("123456")),
        cache: CacheOptions { mode: CacheMode::Off, ..CacheOptions::default() },
        ..TokenRequest::default()
    };
    let session = runtime.block_on(get_session_token(&from_profile, &context)).expect("profile defaults give a session");
    assert_eq!(session.serial_number, stand_ins.serial_number);
    assert_eq!(session.profile, "dev");
    assert_eq!(session.region, stand_ins.region);
    let expires_at = time::OffsetDateTime::parse(&session.expiration, &time::format_description::well_known::Rfc3339).unwrap();
    let left = (expires_at - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!((800..=900).contains(&left), "session lasts the profile's 900 s, has {left} s left");

    // Without credentials anywhere, the error names where to put them.
    let mut no_keys = from_profile.clone();
    no_keys.aws.profile = None;
    no_keys.serial_number = Some(stand_ins.serial_number.clone());
    no_keys.aws.region = Some(stand_ins.region.clone());
    let error = runtime.block_on(get_session_token(&no_keys, &context)).unwrap_err();
    assert_eq!(error.error_id, "MissingCredentials", "{error:?}");

    // No event of the whole run carries a secret.
    let events = serde_json::to_string(&context.events.drain()).unwrap();
    for secret in [
        stand_ins.secret_access_key.as_str(),
        first.secret_access_key.expose(),
        first.session_token.expose(),
        refreshed.session_token.expose(),
    ] {
        assert!(!events.contains(secret), "a secret leaked into the events");
    }
}
