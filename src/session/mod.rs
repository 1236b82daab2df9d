//! The token operation: an MFA session from STS GetSessionToken, reused from
//! the per-user cache while it is still good.

mod cache;
mod protect;

pub use cache::{CACHE_DIR_VARIABLE, SessionCache};

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;
use std::sync::LazyLock;

use aws_config::profile::ProfileSet;
use aws_runtime::env_config::file::EnvConfigFiles;
use aws_sdk_sts::operation::get_session_token::GetSessionTokenError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::os_shim_internal::{Env, Fs};
use regex::Regex;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::aws::{self, AwsOptions};
use crate::error::{EcrStatus, Error, Result};
use crate::operation::OperationContext;
use crate::secret::Secret;

/// Shortest session STS grants, in seconds.
pub(crate) const MIN_DURATION_SECONDS: u32 = 900;

/// Maximum session STS grants to an IAM user, in seconds (36 hours).
pub(crate) const MAX_DURATION_SECONDS: u32 = 129_600;

/// Session length when neither the request nor the profile sets one; STS's own default (12 hours).
pub(crate) const DEFAULT_DURATION_SECONDS: u32 = 43_200;

/// Maximum length of a serial number in STS (its SerialNumber limit).
const MAX_SERIAL_LENGTH: usize = 256;

/// Virtual MFA device ARN in the partitions where GetSessionToken takes one.
static VIRTUAL_DEVICE_ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:(aws|aws-cn|aws-us-gov):iam::([0-9]{12}):mfa/[A-Za-z0-9_+=,.@/-]+$").expect("ARN pattern is valid")
});

/// Serial number of a hardware TOTP device, for example `GAHT12345678`.
static HARDWARE_SERIAL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9]{9,}$").expect("serial pattern is valid"));

/// Request of the token operation.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    /// Profile, region and endpoint.
    #[serde(default)]
    pub aws: AwsOptions,
    /// MFA device: virtual device ARN or hardware serial; the profile's `mfa_serial` otherwise.
    #[serde(default)]
    pub serial_number: Option<String>,
    /// The six-digit code the device shows now.
    #[serde(default)]
    pub token_code: Option<Secret>,
    /// Session length in seconds; the profile's `duration_seconds` or 12 hours otherwise.
    #[serde(default)]
    pub duration_seconds: Option<u32>,
    /// Use of the session cache.
    #[serde(default)]
    pub cache: CacheOptions,
}

/// Use of the session cache by the token operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// Reuse a cached session that is still good, else get a new one and cache it.
    #[default]
    Use,
    /// Get a new session and cache it.
    Refresh,
    /// Neither read nor write the cache.
    Off,
    /// Return a cached session that is still good, or fail with `NoCachedSession`.
    Only,
}

/// Session cache settings of a token request.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheOptions {
    /// Cache mode.
    #[serde(default)]
    pub mode: CacheMode,
    /// A cached session with less time left than this is not reused; 300 s by default.
    #[serde(default)]
    pub min_remaining_seconds: Option<u64>,
    /// Cache folder; `ECR_COMPOSE_CACHE_DIR` or the user's cache folder otherwise.
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

/// Time a cached session must have left to be reused, unless the request sets another.
const DEFAULT_MIN_REMAINING: Duration = Duration::from_secs(300);

/// Request of the cache-clear operation.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClearRequest {
    /// Profile whose sessions are removed; every profile's when absent.
    #[serde(default)]
    pub profile: Option<String>,
    /// Cache folder, as in [`CacheOptions::dir`].
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

/// Result of the cache-clear operation.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClearResult {
    /// Sessions removed.
    pub removed: usize,
    /// The cache file.
    pub path: String,
}

/// Removes cached sessions.
pub async fn clear_cache(request: &ClearRequest) -> Result<ClearResult> {
    let cache = SessionCache::open(request.dir.as_deref())?;
    let profile = request.profile.as_deref().map(str::trim).filter(|name| !name.is_empty());
    let removed = cache.clear(profile)?;
    tracing::info!(removed, path = %cache.path().display(), "cleared cached MFA sessions");
    Ok(ClearResult { removed, path: cache.path().display().to_string() })
}

/// An MFA session: temporary credentials and where they came from.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MfaSession {
    /// Temporary access key id (`ASIA…`).
    pub access_key_id: String,
    /// Temporary secret access key.
    pub secret_access_key: Secret,
    /// Session token.
    pub session_token: Secret,
    /// When the credentials expire (RFC 3339, UTC).
    pub expiration: String,
    /// MFA device the session was made with.
    pub serial_number: String,
    /// Account of the MFA device, when its ARN names one.
    pub account_id: Option<String>,
    /// Profile whose credentials signed the request.
    pub profile: String,
    /// Region of the STS endpoint, and the default region of later calls.
    pub region: String,
    /// True when the session came from the cache, without a call to STS.
    #[serde(default)]
    pub from_cache: bool,
}

impl MfaSession {
    /// Returns the session's credentials in the form that login and push requests take.
    pub fn credentials(&self) -> crate::aws::SessionCredentials {
        crate::aws::SessionCredentials {
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            session_token: Some(self.session_token.clone()),
            expiration: Some(self.expiration.clone()),
        }
    }
}

/// Values that the profile contributes to a token request.
#[derive(Debug, Default, PartialEq, Eq)]
struct ProfileDefaults {
    name: String,
    mfa_serial: Option<String>,
    duration_seconds: Option<String>,
}

/// Gets an MFA session from STS GetSessionToken.
///
/// Validates every value before any network call, so a typo never costs an
/// MFA code. Logs no secret; the token code is sent to STS only.
pub async fn get_session_token(request: &TokenRequest, context: &OperationContext) -> Result<MfaSession> {
    let defaults = profile_defaults(request.aws.profile.as_deref()).await?;
    let serial_number = request
        .serial_number
        .clone()
        .filter(|serial| !serial.trim().is_empty())
        .or(defaults.mfa_serial.clone())
        .ok_or_else(|| {
            Error::invalid(
                "MissingSerialNumber",
                format!(
                    "No MFA device is given: pass -SerialNumber (for example arn:aws:iam::123456789012:mfa/name), or set mfa_serial in profile '{}'.",
                    defaults.name
                ),
            )
        })?;
    let serial_number = validate_serial_number(&serial_number)?;
    let cache = match request.cache.mode {
        CacheMode::Off => None,
        _ => Some(SessionCache::open(request.cache.dir.as_deref())?),
    };
    if matches!(request.cache.mode, CacheMode::Use | CacheMode::Only) {
        let min_remaining = request.cache.min_remaining_seconds.map_or(DEFAULT_MIN_REMAINING, Duration::from_secs);
        let cached = cache.as_ref().and_then(|cache| cache.load(&defaults.name, &serial_number, min_remaining));
        if let Some(mut session) = cached {
            // A region given now wins over the one the session was made in.
            if let Some(region) = request.aws.region.as_deref().map(str::trim).filter(|region| !region.is_empty()) {
                session.region = region.to_owned();
            }
            context.events.redact(session.secret_access_key.expose());
            context.events.redact(session.session_token.expose());
            tracing::info!(serial_number = %serial_number, expiration = %session.expiration, "reusing the cached MFA session");
            return Ok(session);
        }
        if request.cache.mode == CacheMode::Only {
            return Err(Error::not_found(
                "NoCachedSession",
                format!(
                    "No cached MFA session of profile '{}' for {serial_number} is still valid: pass -TokenCode with the code your MFA device shows now.",
                    defaults.name
                ),
            )
            .with_target(serial_number));
        }
    }
    let token_code = request.token_code.as_ref().ok_or_else(|| {
        Error::invalid(
            "MissingTokenCode",
            "No MFA code is given: pass -TokenCode with the six digits your MFA device shows now.",
        )
    })?;
    let token_code = validate_token_code(token_code)?;
    let duration = match (request.duration_seconds, &defaults.duration_seconds) {
        (Some(seconds), _) => seconds,
        (None, Some(text)) => text.trim().parse::<u32>().map_err(|_| {
            Error::invalid(
                "InvalidProfileDuration",
                format!(
                    "duration_seconds '{text}' in profile '{}' is not a whole number of seconds: set it to a value from {MIN_DURATION_SECONDS} to {MAX_DURATION_SECONDS}.",
                    defaults.name
                ),
            )
        })?,
        (None, None) => DEFAULT_DURATION_SECONDS,
    };
    validate_duration(duration)?;

    let config = aws::load_config(&request.aws, None).await?;
    let region = config.region().map(|region| region.as_ref().to_owned()).unwrap_or_default();
    let endpoint = aws::endpoint_description(&config, "sts");
    tracing::info!(
        serial_number = %serial_number,
        duration_seconds = duration,
        endpoint = %endpoint,
        "requesting an MFA session from STS"
    );
    let client = aws_sdk_sts::Client::new(&config);
    let call = client
        .get_session_token()
        .serial_number(&serial_number)
        .token_code(token_code.expose())
        .duration_seconds(duration as i32)
        .send();
    let output = context
        .run_cancellable(async { call.await.map_err(|error| map_token_error(error, &serial_number, &endpoint)) })
        .await?;
    let credentials = output.credentials.ok_or_else(|| {
        Error::new(
            EcrStatus::Registry,
            "InvalidServiceResponse",
            format!("STS at {endpoint} returned no credentials for {serial_number}."),
        )
    })?;
    context.events.redact(&credentials.secret_access_key);
    context.events.redact(&credentials.session_token);
    let expiration = OffsetDateTime::from_unix_timestamp(credentials.expiration.secs())
        .ok()
        .and_then(|time| time.format(&Rfc3339).ok())
        .unwrap_or_default();
    tracing::info!(access_key_id = %credentials.access_key_id, expiration = %expiration, "MFA session created");
    let session = MfaSession {
        access_key_id: credentials.access_key_id,
        secret_access_key: Secret::new(credentials.secret_access_key),
        session_token: Secret::new(credentials.session_token),
        expiration,
        account_id: account_of(&serial_number),
        serial_number,
        profile: defaults.name,
        region,
        from_cache: false,
    };
    if let Some(cache) = &cache {
        // A session that cannot be cached is still good to use.
        if let Err(error) = cache.store(&session) {
            tracing::warn!("{}", error.message);
        }
    }
    Ok(session)
}

/// Reads the selected profile of the shared config files.
///
/// A profile that was asked for by name but exists in neither file is an
/// error; the implicit `default` profile may be absent.
async fn profile_defaults(requested: Option<&str>) -> Result<ProfileDefaults> {
    let requested = requested.map(str::trim).filter(|name| !name.is_empty());
    let profiles: Option<ProfileSet> = aws_config::profile::load(
        &Fs::real(),
        &Env::real(),
        &EnvConfigFiles::default(),
        requested.map(|name| Cow::Owned(name.to_owned())),
    )
    .await
    .ok();
    let name = match (&profiles, requested) {
        (Some(set), _) => set.selected_profile().to_owned(),
        (None, Some(name)) => name.to_owned(),
        (None, None) => std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_owned()),
    };
    let profile = profiles.as_ref().and_then(|set| set.get_profile(&name));
    let explicitly_named = requested.is_some() || std::env::var("AWS_PROFILE").is_ok_and(|value| !value.is_empty());
    if profile.is_none() && explicitly_named && name != "default" {
        return Err(crate::aws::profile_not_found(&name));
    }
    Ok(ProfileDefaults {
        mfa_serial: profile.and_then(|profile| profile.get("mfa_serial")).map(str::to_owned),
        duration_seconds: profile.and_then(|profile| profile.get("duration_seconds")).map(str::to_owned),
        name,
    })
}

/// Checks an MFA device identifier and returns it trimmed.
pub fn validate_serial_number(serial: &str) -> Result<String> {
    let serial = serial.trim();
    let fits = serial.len() <= MAX_SERIAL_LENGTH;
    if fits && (VIRTUAL_DEVICE_ARN.is_match(serial) || HARDWARE_SERIAL.is_match(serial)) {
        return Ok(serial.to_owned());
    }
    let hint = if !fits {
        "it is longer than the 256 characters STS accepts"
    } else if serial.contains(":user/") {
        "it is an IAM user ARN, not an MFA device ARN: use the device ARN shown under Security credentials, for example arn:aws:iam::123456789012:mfa/name"
    } else if serial.contains(":u2f/") || serial.to_ascii_lowercase().contains("fido") {
        "it is a FIDO/U2F security key, which STS GetSessionToken does not accept: use a virtual MFA device (ARN arn:aws:iam::<account>:mfa/<name>) or a hardware TOTP token (serial such as GAHT12345678)"
    } else {
        "STS accepts a virtual MFA device ARN (arn:aws:iam::<12-digit account>:mfa/<name>, also in the aws-cn and aws-us-gov partitions) or a hardware TOTP token serial (9 or more letters and digits, such as GAHT12345678)"
    };
    Err(Error::invalid("InvalidSerialNumber", format!("The MFA serial number '{serial}' is invalid: {hint}."))
        .with_target(serial))
}

/// Checks the MFA code: exactly six digits once spaces around it are trimmed.
pub fn validate_token_code(code: &Secret) -> Result<Secret> {
    let trimmed = code.expose().trim();
    if trimmed.len() == 6 && trimmed.bytes().all(|byte| byte.is_ascii_digit()) {
        return Ok(Secret::new(trimmed));
    }
    // The code is short-lived, but still not echoed: only its shape is described.
    Err(Error::invalid(
        "InvalidTokenCode",
        format!(
            "The MFA code is invalid: it has {} characters, and STS needs exactly 6 digits. Pass the code your MFA device shows now to -TokenCode.",
            trimmed.chars().count()
        ),
    ))
}

/// Checks a session length against STS's limits for IAM users.
pub fn validate_duration(seconds: u32) -> Result<()> {
    if (MIN_DURATION_SECONDS..=MAX_DURATION_SECONDS).contains(&seconds) {
        return Ok(());
    }
    Err(Error::invalid(
        "InvalidDuration",
        format!(
            "The session duration {seconds} s is out of range: STS accepts {MIN_DURATION_SECONDS} to {MAX_DURATION_SECONDS} seconds (15 minutes to 36 hours; 3600 for root credentials)."
        ),
    )
    .with_target(seconds.to_string()))
}

fn account_of(serial: &str) -> Option<String> {
    VIRTUAL_DEVICE_ARN.captures(serial).map(|captures| captures[2].to_owned())
}

fn map_token_error(error: SdkError<GetSessionTokenError, HttpResponse>, serial: &str, endpoint: &str) -> Error {
    if let SdkError::ServiceError(service) = &error {
        let code = service.err().code().unwrap_or_default();
        let message = service.err().message().unwrap_or_default();
        if code == "AccessDenied" && message.to_ascii_lowercase().contains("multifactorauthentication") {
            return Error::new(
                EcrStatus::Authentication,
                "MfaCodeRejected",
                format!(
                    "STS rejected the MFA code for {serial}: the code is wrong, expired or already used, or the device is not assigned to this user. Wait for the next code and run the command again."
                ),
            )
            .with_service_code(code)
            .with_target(serial);
        }
    }
    aws::map_sdk_error(error, "STS GetSessionToken", endpoint).with_target(serial)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_accepts_virtual_arns() {
        for serial in [
            "arn:aws:iam::123456789012:mfa/rob",
            "arn:aws-cn:iam::123456789012:mfa/team/rob",
            "arn:aws-us-gov:iam::123456789012:mfa/rob.smith@example.com",
        ] {
            assert_eq!(validate_serial_number(serial).unwrap(), serial);
        }
    }

    #[test]
    fn serial_accepts_hardware_token() {
        assert_eq!(validate_serial_number(" GAHT12345678 ").unwrap(), "GAHT12345678");
    }

    #[test]
    fn serial_rejects_user_arn() {
        let error = validate_serial_number("arn:aws:iam::123456789012:user/rob").unwrap_err();
        assert_eq!(error.error_id, "InvalidSerialNumber");
        assert!(error.message.contains("IAM user ARN"));
    }

    #[test]
    fn serial_rejects_u2f_device() {
        let error = validate_serial_number("arn:aws:iam::123456789012:u2f/user/rob/key-ABCD").unwrap_err();
        assert!(error.message.contains("FIDO/U2F"));
    }

    #[test]
    fn serial_rejects_short_account() {
        assert!(validate_serial_number("arn:aws:iam::1234:mfa/rob").is_err());
    }

    #[test]
    fn token_code_trims_spaces() {
        assert_eq!(validate_token_code(&Secret::new(" 123456 ")).unwrap().expose(), "123456");
    }

    #[test]
    fn token_code_rejects_wrong_shapes() {
        for code in ["12345", "1234567", "12a456", "", "123 456"] {
            let error = validate_token_code(&Secret::new(code)).unwrap_err();
            assert_eq!(error.error_id, "InvalidTokenCode", "code {code:?}");
        }
    }

    #[test]
    fn token_code_error_hides_code() {
        let error = validate_token_code(&Secret::new("98765")).unwrap_err();
        assert!(!error.message.contains("98765"));
    }

    #[test]
    fn duration_limits() {
        assert!(validate_duration(900).is_ok());
        assert!(validate_duration(129_600).is_ok());
        assert_eq!(validate_duration(899).unwrap_err().error_id, "InvalidDuration");
        assert_eq!(validate_duration(129_601).unwrap_err().error_id, "InvalidDuration");
    }

    #[test]
    fn sts_call_goes_to_region_endpoint() {
        if std::env::var_os("AWS_ENDPOINT_URL").is_some() {
            eprintln!("AWS_ENDPOINT_URL is set, so every call goes there; skipped");
            return;
        }
        let (http_client, captured) = aws_smithy_http_client::test_util::capture_request(None);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let options = AwsOptions { region: Some("eu-west-1".to_owned()), ..AwsOptions::default() };
        let credentials = crate::aws::SessionCredentials {
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: Secret::new("secret"),
            session_token: None,
            expiration: None,
        };
        runtime.block_on(async {
            let config = aws::load_config(&options, Some(&credentials)).await.unwrap();
            let sts_config = aws_sdk_sts::config::Builder::from(&config).http_client(http_client).build();
            let _ = aws_sdk_sts::Client::from_conf(sts_config).get_session_token().send().await;
        });
        let request = captured.expect_request();
        assert_eq!(request.uri(), "https://sts.eu-west-1.amazonaws.com/");
    }

    #[test]
    fn account_from_arn() {
        assert_eq!(account_of("arn:aws:iam::123456789012:mfa/rob").as_deref(), Some("123456789012"));
        assert_eq!(account_of("GAHT12345678"), None);
    }
}
