//! The login operation: ECR authorization for each registry, checked against
//! the registry and stored in docker's config file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use aws_config::Region;
use aws_types::SdkConfig;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::aws::{self, AwsOptions, SessionCredentials};
use crate::docker_config;
use crate::error::{EcrStatus, Error, Result};
use crate::http;
use crate::operation::OperationContext;
use crate::registry::{EcrRegistry, RegistryAliases};
use crate::secret::Secret;

/// Locations of the docker engine and of docker's client configuration.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DockerOptions {
    /// Engine address such as `unix:///var/run/docker.sock` (`DOCKER_HOST` otherwise).
    #[serde(default)]
    pub host: Option<String>,
    /// Docker's config folder (`DOCKER_CONFIG` or `~/.docker` otherwise).
    #[serde(default)]
    pub config_dir: Option<PathBuf>,
}

/// Request of the login operation.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    /// Profile, region and endpoint.
    #[serde(default)]
    pub aws: AwsOptions,
    /// Session credentials; the profile's credential chain otherwise.
    #[serde(default)]
    pub credentials: Option<SessionCredentials>,
    /// ECR hosts or aliases to log in to.
    pub registries: Vec<String>,
    /// Alias host to ECR host.
    #[serde(default)]
    pub registry_aliases: BTreeMap<String, String>,
    /// Engine and client configuration.
    #[serde(default)]
    pub docker: DockerOptions,
    /// PEM file of a CA that signs the registries' certificates, besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// Result of the login operation.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginResult {
    /// One entry per registry, in request order.
    pub registries: Vec<RegistryLogin>,
}

/// A registry that docker is now logged in to.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryLogin {
    /// Host as given (ECR host or alias).
    pub registry: String,
    /// The ECR registry it stands for.
    pub ecr_host: String,
    /// Account that owns the registry.
    pub account_id: String,
    /// Region of the registry.
    pub region: String,
    /// When the authorization expires (RFC 3339).
    pub expires_at: String,
    /// Docker config file that contains the login.
    pub docker_config: String,
}

/// ECR authorization for one registry: the user name and password that the
/// registry accepts until `expires_at`.
#[derive(Clone, Debug)]
pub struct RegistryAuthorization {
    /// The registry, with the host the images use.
    pub registry: EcrRegistry,
    /// User name, `AWS` for ECR.
    pub username: String,
    /// Registry password.
    pub password: Secret,
    /// Expiry time (RFC 3339).
    pub expires_at: String,
}

/// Logs docker in to every registry of the request.
pub async fn login(request: &LoginRequest, context: &OperationContext) -> Result<LoginResult> {
    if request.registries.is_empty() {
        return Err(Error::invalid(
            "MissingRegistry",
            "No registry is given: pass -Registry with ECR hosts such as 123456789012.dkr.ecr.eu-west-1.amazonaws.com.",
        ));
    }
    let aliases = RegistryAliases::new(request.registry_aliases.clone())?;
    let mut registries = Vec::new();
    for host in &request.registries {
        let registry = aliases.resolve(host).ok_or_else(|| {
            Error::invalid(
                "NotAnEcrRegistry",
                format!(
                    "'{host}' is not an ECR registry host: use the form <account>.dkr.ecr.<region>.amazonaws.com, or map it with -RegistryAlias @{{ '{host}' = '<account>.dkr.ecr.<region>.amazonaws.com' }}."
                ),
            )
            .with_target(host.clone())
        })?;
        registries.push(registry);
    }
    let config = aws::load_config(&request.aws, request.credentials.as_ref()).await?;
    let authorizations = authorize(&config, &registries, context).await?;
    let config_dir = docker_config::config_dir(request.docker.config_dir.as_deref())?;
    let client = http::registry_client(request.ca_file.as_deref())?;
    let mut logins = Vec::new();
    for authorization in &authorizations {
        let host = &authorization.registry.host;
        context.run_cancellable(verify(&client, authorization)).await?;
        let outcome = docker_config::store_login(&config_dir, host, &authorization.username, &authorization.password)?;
        for key in &outcome.removed_keys {
            tracing::info!(registry = %host, key = %key, "removed a stale docker login entry for the same host");
        }
        if let Some(helper) = &outcome.helper_in_use {
            tracing::warn!(
                "docker uses the credential helper '{helper}' for {host}, not the login stored in {}; remove the credHelpers entry to use it",
                outcome.path.display()
            );
        }
        tracing::info!(registry = %host, config = %outcome.path.display(), "logged in");
        logins.push(RegistryLogin {
            registry: host.clone(),
            ecr_host: authorization.registry.ecr_host.clone(),
            account_id: authorization.registry.account_id.clone(),
            region: authorization.registry.region.clone(),
            expires_at: authorization.expires_at.clone(),
            docker_config: outcome.path.display().to_string(),
        });
    }
    Ok(LoginResult { registries: logins })
}

/// Gets ECR authorization tokens: one GetAuthorizationToken call per region
/// (and FIPS setting), whose token serves every registry the caller may use
/// there.
pub async fn authorize(
    config: &SdkConfig,
    registries: &[EcrRegistry],
    context: &OperationContext,
) -> Result<Vec<RegistryAuthorization>> {
    let groups: BTreeSet<(String, bool)> = registries.iter().map(|registry| (registry.region.clone(), registry.fips)).collect();
    let mut tokens = BTreeMap::new();
    for (region, fips) in groups {
        let accounts: Vec<String> = registries
            .iter()
            .filter(|registry| registry.region == region && registry.fips == fips)
            .map(|registry| registry.account_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let ecr_config = aws_sdk_ecr::config::Builder::from(config)
            .region(Region::new(region.clone()))
            .use_fips(fips)
            .build();
        let endpoint = config
            .endpoint_url()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("https://api.ecr{}.{region}.amazonaws.com", if fips { "-fips" } else { "" }));
        tracing::info!(region = %region, endpoint = %endpoint, "requesting ECR authorization");
        let client = aws_sdk_ecr::Client::from_conf(ecr_config);
        let call = client.get_authorization_token().send();
        let output = context
            .run_cancellable(async {
                call.await
                    .map_err(|error| aws::map_sdk_error(error, "ECR GetAuthorizationToken", &endpoint).with_target(region.clone()))
            })
            .await?;
        let data = output.authorization_data.unwrap_or_default();
        let first = data.into_iter().next().ok_or_else(|| {
            Error::new(
                EcrStatus::Registry,
                "InvalidServiceResponse",
                format!("ECR at {endpoint} returned no authorization data for region {region}."),
            )
        })?;
        let (username, password) = decode_token(first.authorization_token.as_deref().unwrap_or_default(), &endpoint)?;
        context.events.redact(password.expose());
        if let Some(token) = &first.authorization_token {
            context.events.redact(token);
        }
        let expires_at = first
            .expires_at
            .and_then(|time| OffsetDateTime::from_unix_timestamp(time.secs()).ok())
            .and_then(|time| time.format(&Rfc3339).ok())
            .unwrap_or_default();
        tracing::debug!(region = %region, accounts = %accounts.join(","), expires_at = %expires_at, "ECR authorization received");
        tokens.insert((region, fips), (username, password, expires_at));
    }
    Ok(registries
        .iter()
        .map(|registry| {
            let (username, password, expires_at) = &tokens[&(registry.region.clone(), registry.fips)];
            RegistryAuthorization {
                registry: registry.clone(),
                username: username.clone(),
                password: password.clone(),
                expires_at: expires_at.clone(),
            }
        })
        .collect())
}

/// Splits an ECR authorization token (base64 of `user:password`).
fn decode_token(token: &str, endpoint: &str) -> Result<(String, Secret)> {
    let invalid = || {
        Error::new(
            EcrStatus::Registry,
            "InvalidAuthorizationToken",
            format!("ECR at {endpoint} returned an authorization token that is not base64 of user:password."),
        )
    };
    let decoded = base64::engine::general_purpose::STANDARD.decode(token.trim()).map_err(|_| invalid())?;
    let text = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (username, password) = text.split_once(':').ok_or_else(invalid)?;
    if username.is_empty() || password.is_empty() {
        return Err(invalid());
    }
    Ok((username.to_owned(), Secret::new(password)))
}

/// Checks the authorization against the registry's `/v2/` endpoint, as
/// `docker login` does, so a wrong alias fails here and not in the middle of
/// a push.
async fn verify(client: &reqwest::Client, authorization: &RegistryAuthorization) -> Result<()> {
    let host = &authorization.registry.host;
    let url = format!("{}/v2/", http::registry_base_url(host));
    let response = client
        .get(&url)
        .basic_auth(&authorization.username, Some(authorization.password.expose()))
        .send()
        .await
        .map_err(|error| {
            Error::new(
                EcrStatus::Network,
                "RegistryUnreachable",
                format!("Could not reach the registry {host} at {url}: {}. Check the host name and the network.", error_chain(&error)),
            )
            .with_target(host.clone())
        })?;
    match response.status().as_u16() {
        200..=299 => Ok(()),
        401 | 403 => Err(Error::new(
            EcrStatus::Authentication,
            "RegistryLoginRejected",
            format!(
                "The registry {host} rejected the ECR authorization of {} (HTTP {}). Check that the alias points at the right account and region, and that the credentials may use it.",
                authorization.registry.ecr_host,
                response.status().as_u16()
            ),
        )
        .with_target(host.clone())
        .with_service_code(response.status().as_u16().to_string())),
        status => Err(Error::new(
            EcrStatus::Registry,
            "RegistryError",
            format!("The registry {host} answered HTTP {status} at {url}."),
        )
        .with_target(host.clone())
        .with_service_code(status.to_string())),
    }
}

/// Joins an error and its sources, which hold the useful detail of reqwest errors.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_splits_user_and_password() {
        let token = base64::engine::general_purpose::STANDARD.encode("AWS:123456789012-auth-token");
        let (user, password) = decode_token(&token, "x").unwrap();
        assert_eq!(user, "AWS");
        assert_eq!(password.expose(), "123456789012-auth-token");
    }

    #[test]
    fn decode_rejects_garbage() {
        assert_eq!(decode_token("not base64!", "x").unwrap_err().error_id, "InvalidAuthorizationToken");
        let no_colon = base64::engine::general_purpose::STANDARD.encode("AWS");
        assert!(decode_token(&no_colon, "x").is_err());
    }
}
