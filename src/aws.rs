//! AWS SDK configuration shared by the operations, and the mapping of SDK
//! errors to [`Error`].

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::ecs::EcsCredentialsProvider;
use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::environment::region::EnvironmentVariableRegionProvider;
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_config::imds::region::ImdsRegionProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::{ProfileFileCredentialsProvider, ProfileFileRegionProvider};
use aws_config::provider_config::ProviderConfig;
use aws_config::web_identity_token::WebIdentityTokenCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_runtime::env_config::file::EnvConfigFiles;
use aws_types::SdkConfig;
use aws_types::os_shim_internal::{Env, Fs};
use aws_types::region::Region;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{EcrStatus, Error, Result};
use crate::secret::Secret;

/// Connect timeout for AWS endpoints: long enough for a slow VPN, short
/// enough that a wrong endpoint fails before the user gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Timeout of one HTTP attempt to an AWS endpoint.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Attempts per AWS call, the first included, with the SDK's standard backoff.
const MAX_ATTEMPTS: u32 = 3;

/// AWS settings of a request. Each field falls back to the environment and
/// the shared config files, as the AWS CLI does.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsOptions {
    /// Named profile of the shared config files (`AWS_PROFILE` otherwise).
    #[serde(default)]
    pub profile: Option<String>,
    /// Region (`AWS_REGION` or the profile's region otherwise).
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint that replaces every AWS service endpoint (`AWS_ENDPOINT_URL` otherwise).
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

/// Temporary or long-term AWS credentials handed in by the caller.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionCredentials {
    /// Access key id (`ASIA…` for a session); not a secret.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Session token of temporary credentials.
    #[serde(default)]
    pub session_token: Option<Secret>,
    /// Expiration time (RFC 3339) of temporary credentials.
    #[serde(default)]
    pub expiration: Option<String>,
}

impl SessionCredentials {
    /// Checks the credentials are complete and not expired.
    pub fn validate(&self) -> Result<()> {
        if self.access_key_id.trim().is_empty() || self.secret_access_key.is_empty() {
            return Err(Error::invalid(
                "InvalidSessionCredentials",
                "The session credentials are incomplete: the access key id or the secret access key is empty. Pass the object that Get-EcrMfaSession returns.",
            ));
        }
        if let Some(expiration) = &self.expiration {
            let expires_at = OffsetDateTime::parse(expiration, &Rfc3339).map_err(|_| {
                Error::invalid(
                    "InvalidSessionExpiration",
                    format!("The session expiration '{expiration}' is not an RFC 3339 time, for example 2030-01-31T18:00:00Z."),
                )
            })?;
            if expires_at <= OffsetDateTime::now_utc() {
                return Err(Error::new(
                    EcrStatus::Authentication,
                    "SessionExpired",
                    format!(
                        "The MFA session of access key {} expired at {expiration}. Run Get-EcrMfaSession for a new session.",
                        self.access_key_id
                    ),
                )
                .with_target(self.access_key_id.clone()));
            }
        }
        Ok(())
    }

    fn to_sdk(&self) -> Credentials {
        Credentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.expose().to_owned(),
            self.session_token.as_ref().map(|token| token.expose().to_owned()),
            None,
            "EcrComposeSession",
        )
    }
}

/// Loads the SDK configuration: profile, region, endpoint and credentials.
///
/// `credentials` replaces the profile's credential chain when given. The
/// region is required, because ECR registries and STS endpoints are regional.
pub async fn load_config(options: &AwsOptions, credentials: Option<&SessionCredentials>) -> Result<SdkConfig> {
    reject_empty_endpoint_variables()?;
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let profile = match options.profile.as_deref() {
        Some(name) if name.trim().is_empty() => {
            return Err(Error::invalid(
                "InvalidProfileName",
                "The profile name is blank: pass the name of a profile of the AWS config files, or leave -ProfileName out.",
            ));
        }
        Some(name) => {
            let name = name.trim();
            ensure_profile_exists(name).await?;
            Some(name)
        }
        None => None,
    };
    let region = match non_empty(&options.region) {
        Some(region) => {
            validate_region(region)?;
            Some(Region::new(region.to_owned()))
        }
        None => region_chain(profile).region().await,
    };
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client.clone())
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        );
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &region {
        loader = loader.region(region.clone());
    }
    if let Some(endpoint) = non_empty(&options.endpoint_url) {
        validate_endpoint(endpoint)?;
        loader = loader.endpoint_url(endpoint);
    }
    match credentials {
        Some(credentials) => {
            credentials.validate()?;
            loader = loader.credentials_provider(credentials.to_sdk());
        }
        None => {
            let provider_config = ProviderConfig::default().with_http_client(http_client).with_region(region);
            loader = loader.credentials_provider(credential_chain(profile, &provider_config));
        }
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(Error::invalid(
            "MissingRegion",
            "No AWS region is set: pass -Region, set AWS_REGION, or add a region to the profile in the AWS config file.",
        ));
    }
    Ok(config)
}

/// True when the user opted in to EC2 instance metadata by setting
/// `AWS_EC2_METADATA_DISABLED=false`.
///
/// The SDK's default chains query the metadata address whenever no other
/// provider returns credentials. An MFA session needs an IAM user's own keys, which instance
/// metadata never holds, and a laptop would wait for a timeout, so the chains
/// here leave it out unless asked.
fn instance_metadata_allowed() -> bool {
    std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|value| value.trim().eq_ignore_ascii_case("false"))
}

/// Fails with `ProfileNotFound` when a profile named explicitly is in
/// neither AWS file; `default` may be absent.
pub async fn ensure_profile_exists(name: &str) -> Result<()> {
    let profiles = aws_config::profile::load(
        &Fs::real(),
        &Env::real(),
        &EnvConfigFiles::default(),
        Some(std::borrow::Cow::Owned(name.to_owned())),
    )
    .await
    .ok();
    let found = profiles.as_ref().is_some_and(|set| set.get_profile(name).is_some());
    if found || name == "default" {
        return Ok(());
    }
    Err(profile_not_found(name))
}

/// Returns the error for a named profile that the AWS files do not define.
pub fn profile_not_found(name: &str) -> Error {
    Error::not_found(
        "ProfileNotFound",
        format!(
            "The AWS profile '{name}' is not defined in the AWS config or credentials file. Check -ProfileName or AWS_PROFILE, or create it with 'aws configure --profile {name}'."
        ),
    )
    .with_target(name)
}

/// Builds the SDK's default credential chain without instance metadata (see
/// [`instance_metadata_allowed`]): environment, profile (with its SSO,
/// process and assume-role sources), web identity, ECS container.
///
/// A profile named in the request is the only source, as with the AWS CLI's
/// `--profile`: keys in the environment must not win over it.
fn credential_chain(profile: Option<&str>, provider_config: &ProviderConfig) -> CredentialsProviderChain {
    let mut profile_provider = ProfileFileCredentialsProvider::builder().configure(provider_config);
    if let Some(profile) = profile {
        profile_provider = profile_provider.profile_name(profile);
        return CredentialsProviderChain::first_try("Profile", profile_provider.build());
    }
    let chain = CredentialsProviderChain::first_try("Environment", EnvironmentVariableCredentialsProvider::new())
        .or_else("Profile", profile_provider.build())
        .or_else("WebIdentityToken", WebIdentityTokenCredentialsProvider::builder().configure(provider_config).build())
        .or_else("EcsContainer", EcsCredentialsProvider::builder().configure(provider_config).build());
    if instance_metadata_allowed() {
        chain.or_else("Ec2InstanceMetadata", ImdsCredentialsProvider::builder().configure(provider_config).build())
    } else {
        chain
    }
}

/// Builds the SDK's default region chain without instance metadata: environment,
/// then the profile.
fn region_chain(profile: Option<&str>) -> RegionProviderChain {
    let mut profile_provider = ProfileFileRegionProvider::builder();
    if let Some(profile) = profile {
        profile_provider = profile_provider.profile_name(profile);
    }
    let chain = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new()).or_else(profile_provider.build());
    if instance_metadata_allowed() {
        chain.or_else(ImdsRegionProvider::builder().build())
    } else {
        chain
    }
}

/// Rejects endpoint variables that are set but empty, which make the SDK panic.
fn reject_empty_endpoint_variables() -> Result<()> {
    for (name, value) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("AWS_ENDPOINT_URL") && value.to_string_lossy().trim().is_empty() {
            return Err(Error::invalid(
                "EmptyEndpointVariable",
                format!("The environment variable {name} is set but empty: remove it, or set it to an http or https URL."),
            )
            .with_target(name.into_owned()));
        }
    }
    Ok(())
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|value| !value.is_empty())
}

fn validate_region(region: &str) -> Result<()> {
    let valid = region.len() <= 64
        && region.split('-').count() >= 3
        && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            "InvalidRegion",
            format!("The region '{region}' is invalid: use an AWS region code such as 'us-east-1' or 'eu-west-1'."),
        )
        .with_target(region))
    }
}

fn validate_endpoint(endpoint: &str) -> Result<()> {
    match url::Url::parse(endpoint) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        _ => Err(Error::invalid(
            "InvalidEndpointUrl",
            format!("The endpoint URL '{endpoint}' is invalid: give an absolute http or https URL such as 'https://sts.eu-west-1.amazonaws.com'."),
        )
        .with_target(endpoint)),
    }
}

/// Describes where a call of `service` goes, for error messages.
pub fn endpoint_description(config: &SdkConfig, service: &str) -> String {
    if let Some(endpoint) = config.endpoint_url() {
        return endpoint.to_owned();
    }
    let region = config.region().map(Region::as_ref).unwrap_or("us-east-1");
    let suffix = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    format!("https://{service}.{region}.{suffix}")
}

/// Maps an SDK error to an [`Error`], keeping the AWS error code.
///
/// `action` names the call (`STS GetSessionToken`) and `endpoint` where it went.
pub fn map_sdk_error<E>(error: SdkError<E, HttpResponse>, action: &str, endpoint: &str) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("Unknown").to_owned();
            let message = service.err().message().unwrap_or("no message").to_owned();
            map_service_code(&code, &message, action, endpoint).with_service_code(code)
        }
        SdkError::TimeoutError(_) => Error::new(
            EcrStatus::Timeout,
            "EndpointTimeout",
            format!("{action} timed out at {endpoint}. Check the network and the endpoint, then try again."),
        )
        .with_target(endpoint),
        SdkError::DispatchFailure(failure) => {
            let detail = DisplayErrorContext(&error).to_string();
            if failure.is_timeout() {
                Error::new(
                    EcrStatus::Timeout,
                    "EndpointTimeout",
                    format!("{action} timed out connecting to {endpoint}. Check the network and the endpoint, then try again."),
                )
                .with_target(endpoint)
            } else if is_credentials_failure(&detail) {
                missing_credentials(action, &root_cause(&error))
            } else {
                Error::new(
                    EcrStatus::Network,
                    "EndpointUnreachable",
                    format!("{action} could not reach {endpoint}: {}. Check the network, the region and AWS_ENDPOINT_URL.", root_cause(&error)),
                )
                .with_target(endpoint)
            }
        }
        _ => {
            let detail = DisplayErrorContext(&error).to_string();
            if is_credentials_failure(&detail) {
                missing_credentials(action, &root_cause(&error))
            } else {
                Error::new(
                    EcrStatus::Network,
                    "InvalidServiceResponse",
                    format!("{action} failed at {endpoint}: {}.", root_cause(&error)),
                )
                .with_target(endpoint)
            }
        }
    }
}

fn map_service_code(code: &str, message: &str, action: &str, endpoint: &str) -> Error {
    match code {
        "Throttling" | "ThrottlingException" | "TooManyRequestsException" | "RequestLimitExceeded" => Error::new(
            EcrStatus::Throttled,
            "Throttled",
            format!("{action} was throttled by {endpoint} and the retries ran out ({code}). Wait a minute and try again."),
        ),
        "ExpiredToken" | "ExpiredTokenException" => Error::new(
            EcrStatus::Authentication,
            "CredentialsExpired",
            format!("{action} failed because the credentials expired ({code}: {message}). Run Get-EcrMfaSession for a new session, or refresh the profile's credentials."),
        ),
        "InvalidClientTokenId" | "UnrecognizedClientException" | "SignatureDoesNotMatch" | "IncompleteSignature"
        | "MissingAuthenticationToken" | "InvalidSignatureException" => Error::new(
            EcrStatus::Authentication,
            "InvalidCredentials",
            format!("{action} rejected the credentials ({code}: {message}). Check the access key id and secret access key of the profile or the environment, or run Get-EcrMfaSession for a new session."),
        ),
        "AccessDenied" | "AccessDeniedException" => Error::new(
            EcrStatus::Denied,
            "AccessDenied",
            format!("{action} was denied ({code}: {message}). Ask for the IAM permission, or use a profile that has it."),
        ),
        "RepositoryNotFoundException" => Error::new(
            EcrStatus::NotFound,
            "RepositoryNotFound",
            format!("{action} failed: {message}"),
        ),
        "ValidationError" | "ValidationException" | "InvalidParameterException" | "InvalidParameterValue" => {
            Error::invalid("InvalidParameter", format!("{action} rejected a parameter ({code}: {message})."))
        }
        _ => Error::new(
            EcrStatus::Registry,
            "AwsServiceError",
            format!("{action} failed at {endpoint} ({code}: {message}). Try again in a minute; if it keeps failing, check the endpoint and the AWS service status."),
        ),
    }
}

fn is_credentials_failure(detail: &str) -> bool {
    let lower = detail.to_ascii_lowercase();
    lower.contains("failed to resolve identity")
        || lower.contains("no credentials")
        || lower.contains("credentials provider")
        || lower.contains("could not load credentials")
}

fn missing_credentials(action: &str, detail: &str) -> Error {
    let first_line = detail.lines().next().unwrap_or_default().trim_end_matches(['.', ':', ' ']);
    let detail = first_line.strip_suffix(". Attempted").unwrap_or(first_line);
    Error::new(
        EcrStatus::Authentication,
        "MissingCredentials",
        format!(
            "{action} found no usable AWS credentials ({detail}). Configure the profile's aws_access_key_id and aws_secret_access_key, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
        ),
    )
}

/// Returns the innermost readable cause of an error chain, such as
/// "Connection refused (os error 111)". Causes whose text is a Debug dump of
/// SDK internals are passed over.
pub fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut messages = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        messages.push(cause.to_string());
        source = cause.source();
    }
    messages
        .into_iter()
        .rev()
        .find(|message| !message.is_empty() && !message.contains('{'))
        .unwrap_or_else(|| "no cause was given".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_rejects_garbage() {
        assert!(validate_region("us-east-1").is_ok());
        let error = validate_region("US East").unwrap_err();
        assert_eq!(error.error_id, "InvalidRegion");
    }

    #[test]
    fn endpoint_needs_scheme() {
        assert!(validate_endpoint("http://127.0.0.1:5000").is_ok());
        assert_eq!(validate_endpoint("127.0.0.1:5000").unwrap_err().error_id, "InvalidEndpointUrl");
    }

    #[test]
    fn expired_session_names_fix() {
        let credentials = SessionCredentials {
            access_key_id: "ASIAEXAMPLE".to_owned(),
            secret_access_key: Secret::new("secret"),
            session_token: Some(Secret::new("token")),
            expiration: Some("2015-01-01T00:00:00Z".to_owned()),
        };
        let error = credentials.validate().unwrap_err();
        assert_eq!(error.error_id, "SessionExpired");
        assert!(error.message.contains("Get-EcrMfaSession"));
    }

    #[test]
    fn throttling_maps_to_throttled() {
        let error = map_service_code("Throttling", "Rate exceeded", "STS GetSessionToken", "http://x");
        assert_eq!(error.status, EcrStatus::Throttled);
    }
}
