//! Two processes that update the session cache at once both succeed and
//! leave a file that parses and contains every session they stored.

use std::process::{Command, Stdio};
use std::time::Duration;

use ecr_compose::secret::Secret;
use ecr_compose::session::{MfaSession, SessionCache};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Sessions each writer stores, each under its own profile.
const WRITES_PER_PROCESS: usize = 40;

fn session(profile: &str) -> MfaSession {
    MfaSession {
        access_key_id: "ASIAEXAMPLE".to_owned(),
        secret_access_key: Secret::new("secret-access-key"),
        session_token: Secret::new("session-token-value"),
        expiration: (OffsetDateTime::now_utc() + time::Duration::hours(1)).format(&Rfc3339).unwrap(),
        serial_number: "arn:aws:iam::123456789012:mfa/dev".to_owned(),
        account_id: None,
        profile: profile.to_owned(),
        region: "us-east-1".to_owned(),
        from_cache: false,
    }
}

/// Child half: run by `cache_survives_two_writers` in its own process.
#[test]
#[ignore = "run as a child process by cache_survives_two_writers"]
fn cache_writer_child() {
    let Ok(dir) = std::env::var("ECR_TEST_CACHE_DIR") else { return };
    let name = std::env::var("ECR_TEST_WRITER").unwrap();
    let cache = SessionCache::open(Some(dir.as_ref())).unwrap();
    for index in 0..WRITES_PER_PROCESS {
        cache.store(&session(&format!("{name}-{index}"))).unwrap();
    }
}

#[test]
fn cache_survives_two_writers() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            Command::new(&exe)
                .args(["--ignored", "--exact", "cache_writer_child", "--nocapture"])
                .env("ECR_TEST_CACHE_DIR", dir.path())
                .env("ECR_TEST_WRITER", name)
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a cache writer failed");
    }
    let cache = SessionCache::open(Some(dir.path())).unwrap();
    for name in ["a", "b"] {
        for index in 0..WRITES_PER_PROCESS {
            let profile = format!("{name}-{index}");
            let found = cache.load(&profile, "arn:aws:iam::123456789012:mfa/dev", Duration::ZERO);
            assert!(found.is_some(), "session of profile {profile} is missing");
        }
    }
}
