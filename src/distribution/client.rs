//! HTTP client of one registry repository: TLS, authentication, retries.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderValue, LOCATION, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};
use rustls::crypto::CryptoProvider;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::auth::{Challenge, TokenResponse, basic_header, bearer_header, parse_challenge};
use super::errors::{RequestContext, TransportError};
use super::retry::{RetryPolicy, is_retryable_status};
use super::{CredentialRefresh, PushOptions, PushTarget};
use crate::error::{EcrStatus, Error, Result};
use crate::secret::Secret;

/// Time to open a TCP connection and finish the TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A bearer token younger than this is not fetched again after a 401:
/// the 401 then means the credentials, not the token's age, are at fault.
const TOKEN_MIN_AGE: Duration = Duration::from_secs(10);
/// Times one request may be repeated after new credentials or a new token.
const MAX_AUTH_RETRIES: u32 = 2;

pub use crate::http::is_loopback_host;

/// Behaviour of a request that is on the wire when the push is cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// Drop the request at once.
    Immediate,
    /// Let the request finish for this long, then drop it: used for the top
    /// manifest, which commits the push.
    Grace(Duration),
}

#[derive(Clone)]
enum Scheme {
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        token: Option<Secret>,
        fetched_at: Option<Instant>,
    },
}

struct AuthState {
    scheme: Scheme,
    password: Secret,
    /// Bumped whenever the credentials or the token change, so that
    /// concurrent requests that failed with the old ones just retry.
    generation: u64,
    reauth_used: bool,
}

/// Client for one repository of one registry.
pub struct RegistryClient {
    http: reqwest::Client,
    base: Url,
    context: RequestContext,
    username: String,
    state: Mutex<AuthState>,
    refresh_gate: tokio::sync::Mutex<()>,
    reauth: Option<Arc<dyn CredentialRefresh>>,
    retry: RetryPolicy,
    stall_timeout: Duration,
    cancel: CancellationToken,
}

impl RegistryClient {
    /// Builds the client and checks the registry with `GET /v2/`, which also
    /// finds out how it wants to be authenticated.
    pub async fn connect(
        target: &PushTarget,
        options: &PushOptions,
        cancel: &CancellationToken,
    ) -> Result<Self> {
        let endpoint = &target.endpoint;
        let context = RequestContext {
            host: endpoint.host.clone(),
            repository: target.repository.clone(),
        };
        let scheme = if endpoint.insecure { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{}/", endpoint.host)).map_err(|error| {
            Error::invalid(
                "InvalidRegistryHost",
                format!("The registry host '{}' is invalid: {error}.", endpoint.host),
            )
            .with_target(endpoint.host.clone())
        })?;
        validate_repository(&target.repository)?;

        let client = RegistryClient {
            http: build_http(
                endpoint.insecure,
                endpoint.ca_file.as_deref(),
                &endpoint.host,
            )?,
            base,
            context,
            username: endpoint.username.clone(),
            state: Mutex::new(AuthState {
                scheme: Scheme::Anonymous,
                password: endpoint.password.clone(),
                generation: 0,
                reauth_used: false,
            }),
            refresh_gate: tokio::sync::Mutex::new(()),
            reauth: options.reauth.clone(),
            retry: RetryPolicy {
                max_retries: options.max_retries,
                base_delay: options.retry_base_delay,
            },
            stall_timeout: options.stall_timeout.max(Duration::from_millis(100)),
            cancel: cancel.clone(),
        };

        let url = client.url("v2/")?;
        let response = client
            .send(
                "Checking the registry",
                Interrupt::Immediate,
                None,
                &|http| http.get(url.clone()),
            )
            .await?;
        if response.status().is_success() {
            return Ok(client);
        }
        if response.status() == StatusCode::NOT_FOUND {
            return Err(Error::new(
                EcrStatus::Registry,
                "NotARegistry",
                format!(
                    "The host {} does not serve the registry API (GET /v2/ returned HTTP 404). Check the registry address.",
                    client.context.host
                ),
            )
            .with_target(client.context.host.clone()));
        }
        Err(client.status_error("Checking the registry", response).await)
    }

    /// Returns the registry host and the repository, for messages.
    pub fn context(&self) -> &RequestContext {
        &self.context
    }

    /// Returns a URL on the registry.
    pub fn url(&self, path: &str) -> Result<Url> {
        self.base.join(path).map_err(|error| {
            Error::internal(format!(
                "Could not build the registry URL for {path}: {error}."
            ))
        })
    }

    /// Returns `/v2/<repository>/<suffix>` on the registry.
    pub fn repository_url(&self, suffix: &str) -> Result<Url> {
        self.url(&format!("v2/{}/{suffix}", self.context.repository))
    }

    /// Returns the `Location` header of a response, resolved against the registry.
    pub fn location(&self, operation: &str, response: &Response) -> Result<Url> {
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| self.protocol_error(operation, "the response has no Location header"))?;
        self.base
            .join(location)
            .map_err(|_| self.protocol_error(operation, "the Location header is not a valid URL"))
    }

    /// Builds the error for an unexpected response.
    pub async fn status_error(&self, operation: &str, response: Response) -> Error {
        self.context.status_error(operation, response).await
    }

    /// Builds the error for a response that breaks the distribution protocol.
    pub fn protocol_error(&self, operation: &str, problem: &str) -> Error {
        Error::new(
            EcrStatus::Registry,
            "RegistryProtocolError",
            format!(
                "{operation} failed at registry {} for repository {}: {problem}.",
                self.context.host, self.context.repository
            ),
        )
        .with_target(format!("{}/{}", self.context.host, self.context.repository))
    }

    /// Sends a request built by `build`, with credentials, retrying on 429,
    /// 5xx and connection failures, and once more with new credentials
    /// after a 401 or 403. Returns the last response whatever its status.
    ///
    /// An attempt fails as stalled when neither its response nor `activity`
    /// (the count of body bytes sent) moves for the stall timeout.
    pub async fn send(
        &self,
        operation: &str,
        interrupt: Interrupt,
        activity: Option<&AtomicU64>,
        build: &(dyn Fn(&reqwest::Client) -> RequestBuilder + Send + Sync),
    ) -> Result<Response> {
        let mut retry = 0;
        let mut auth_retries = 0;
        loop {
            if self.cancel.is_cancelled() {
                return Err(Error::cancelled());
            }
            let (header, generation) = self.authorization();
            let mut request = build(&self.http);
            if let Some(header) = header {
                let mut value = HeaderValue::from_str(header.expose())
                    .map_err(|_| Error::invalid("InvalidRegistryPassword", "The registry password contains characters that cannot be sent in a header."))?;
                value.set_sensitive(true);
                request = request.header(AUTHORIZATION, value);
            }

            let result = self.send_once(request, interrupt, activity).await?;
            let response = match result {
                Ok(response) => response,
                Err(error) => {
                    if retry >= self.retry.max_retries {
                        return Err(self.context.transport_error(operation, &error));
                    }
                    let delay = self.retry.delay(retry);
                    tracing::warn!(
                        host = %self.context.host,
                        repository = %self.context.repository,
                        operation,
                        error = %error,
                        retry = retry + 1,
                        delay_ms = delay.as_millis() as u64,
                        "registry request failed; retrying"
                    );
                    self.sleep(delay).await?;
                    retry += 1;
                    continue;
                }
            };

            let status = response.status();
            if (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN)
                && auth_retries < MAX_AUTH_RETRIES
                && self.refresh_auth(generation, &response).await?
            {
                auth_retries += 1;
                continue;
            }
            if is_retryable_status(status) && retry < self.retry.max_retries {
                let delay = self.retry.delay_after(retry, response.headers());
                tracing::warn!(
                    host = %self.context.host,
                    repository = %self.context.repository,
                    operation,
                    status = status.as_u16(),
                    retry = retry + 1,
                    delay_ms = delay.as_millis() as u64,
                    "registry returned a retryable status; retrying"
                );
                drop(response);
                self.sleep(delay).await?;
                retry += 1;
                continue;
            }
            return Ok(response);
        }
    }

    /// Sends one request. The outer error is a cancellation, the inner one
    /// a transport failure or a stall.
    async fn send_once(
        &self,
        request: RequestBuilder,
        interrupt: Interrupt,
        activity: Option<&AtomicU64>,
    ) -> Result<std::result::Result<Response, TransportError>> {
        let sent = request.send();
        tokio::pin!(sent);
        let deadline = async {
            self.cancel.cancelled().await;
            if let Interrupt::Grace(grace) = interrupt {
                tokio::time::sleep(grace).await;
            }
        };
        let watchdog = async {
            let mut seen = activity.map(|counter| counter.load(Ordering::Relaxed));
            loop {
                tokio::time::sleep(self.stall_timeout).await;
                let now = activity.map(|counter| counter.load(Ordering::Relaxed));
                if now == seen {
                    return;
                }
                seen = now;
            }
        };
        tokio::select! {
            result = &mut sent => Ok(result.map_err(TransportError::Http)),
            _ = deadline => Err(Error::cancelled()),
            _ = watchdog => Ok(Err(TransportError::Stalled(self.stall_timeout))),
        }
    }

    async fn sleep(&self, delay: Duration) -> Result<()> {
        tokio::select! {
            _ = self.cancel.cancelled() => Err(Error::cancelled()),
            _ = tokio::time::sleep(delay) => Ok(()),
        }
    }

    /// Returns the `Authorization` value to send and the credentials' generation.
    fn authorization(&self) -> (Option<Secret>, u64) {
        let state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let header = match &state.scheme {
            Scheme::Anonymous => None,
            Scheme::Basic => Some(basic_header(&self.username, &state.password)),
            Scheme::Bearer { token, .. } => token.as_ref().map(bearer_header),
        };
        (header, state.generation)
    }

    /// Reacts to a 401 or 403 received with credentials of `generation`:
    /// switches to the scheme of the registry's challenge, fetches a new
    /// bearer token, or requests a new password from the refresh hook (once
    /// per push). Returns true when the request should be sent again.
    async fn refresh_auth(&self, generation: u64, response: &Response) -> Result<bool> {
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_challenge);
        let _gate = self.refresh_gate.lock().await;

        let (scheme, password, current, reauth_used) = {
            let state = self
                .state
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            (
                state.scheme.clone(),
                state.password.clone(),
                state.generation,
                state.reauth_used,
            )
        };
        if current != generation {
            return Ok(true);
        }

        let switch = match (&challenge, &scheme) {
            (Some(Challenge::Basic), Scheme::Basic)
            | (Some(Challenge::Bearer { .. }), Scheme::Bearer { .. }) => None,
            (Some(challenge), _) => Some(challenge.clone()),
            (None, _) => None,
        };
        if let Some(challenge) = switch {
            let new_scheme = match challenge {
                Challenge::Basic if self.username.is_empty() && password.is_empty() => {
                    return Ok(false);
                }
                Challenge::Basic => Scheme::Basic,
                Challenge::Bearer { realm, service } => {
                    let token = self
                        .fetch_token(&realm, service.as_deref(), &password)
                        .await?;
                    Scheme::Bearer {
                        realm,
                        service,
                        token: Some(token),
                        fetched_at: Some(Instant::now()),
                    }
                }
            };
            self.update_state(|state| state.scheme = new_scheme);
            return Ok(true);
        }

        let token_expired = match &scheme {
            Scheme::Bearer { fetched_at, .. } => {
                fetched_at.is_none_or(|at| at.elapsed() >= TOKEN_MIN_AGE)
            }
            _ => false,
        };
        if let (true, Scheme::Bearer { realm, service, .. }) = (token_expired, &scheme) {
            let token = self
                .fetch_token(realm, service.as_deref(), &password)
                .await?;
            let (realm, service) = (realm.clone(), service.clone());
            self.update_state(|state| {
                state.scheme = Scheme::Bearer {
                    realm,
                    service,
                    token: Some(token),
                    fetched_at: Some(Instant::now()),
                }
            });
            return Ok(true);
        }

        let Some(hook) = self.reauth.as_ref().filter(|_| !reauth_used) else {
            return Ok(false);
        };
        self.update_state(|state| state.reauth_used = true);
        tracing::info!(host = %self.context.host, "registry rejected the credentials; asking for new ones");
        let password = hook.refresh().await?;
        let scheme = match scheme {
            Scheme::Bearer { realm, service, .. } => {
                let token = self
                    .fetch_token(&realm, service.as_deref(), &password)
                    .await?;
                Scheme::Bearer {
                    realm,
                    service,
                    token: Some(token),
                    fetched_at: Some(Instant::now()),
                }
            }
            other => other,
        };
        self.update_state(|state| {
            state.password = password;
            state.scheme = scheme;
        });
        Ok(true)
    }

    /// Applies a change to the authentication state and bumps its generation.
    fn update_state(&self, change: impl FnOnce(&mut AuthState)) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut state);
        state.generation += 1;
    }

    /// Gets a bearer token for pull and push on the repository.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        password: &Secret,
    ) -> Result<Secret> {
        let operation = "Getting a registry token";
        let mut url = Url::parse(realm).map_err(|_| {
            self.protocol_error(
                operation,
                &format!("the token realm '{realm}' is not a valid URL"),
            )
        })?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair(
                "scope",
                &format!("repository:{}:pull,push", self.context.repository),
            );
        }
        let credentials =
            (!self.username.is_empty()).then(|| basic_header(&self.username, password));

        let mut retry = 0;
        let response = loop {
            let mut request = self.http.get(url.clone());
            if let Some(credentials) = &credentials {
                let mut value = HeaderValue::from_str(credentials.expose())
                    .map_err(|_| Error::invalid("InvalidRegistryPassword", "The registry password contains characters that cannot be sent in a header."))?;
                value.set_sensitive(true);
                request = request.header(AUTHORIZATION, value);
            }
            match self.send_once(request, Interrupt::Immediate, None).await? {
                Ok(response)
                    if is_retryable_status(response.status()) && retry < self.retry.max_retries =>
                {
                    self.sleep(self.retry.delay_after(retry, response.headers()))
                        .await?;
                }
                Ok(response) => break response,
                Err(error) if retry < self.retry.max_retries => {
                    tracing::warn!(error = %error, "token request failed; retrying");
                    self.sleep(self.retry.delay(retry)).await?;
                }
                Err(error) => return Err(self.context.transport_error(operation, &error)),
            }
            retry += 1;
        };
        if !response.status().is_success() {
            return Err(self.status_error(operation, response).await);
        }
        let body: TokenResponse = response
            .json()
            .await
            .map_err(|_| self.protocol_error(operation, "the token server returned no JSON"))?;
        body.into_token()
            .ok_or_else(|| self.protocol_error(operation, "the token server returned no token"))
    }
}

/// Checks a repository name against the distribution grammar: lowercase
/// path components separated by `/`.
fn validate_repository(repository: &str) -> Result<()> {
    let component_ok = |component: &str| {
        !component.is_empty()
            && component.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && component.as_bytes()[0].is_ascii_alphanumeric()
            && component.as_bytes()[component.len() - 1].is_ascii_alphanumeric()
    };
    if repository.len() <= 255 && repository.split('/').all(component_ok) {
        return Ok(());
    }
    Err(Error::invalid(
        "InvalidRepositoryName",
        format!(
            "The repository name '{repository}' is invalid: use lowercase letters, digits, '.', '_' or '-' in components separated by '/'."
        ),
    )
    .with_target(repository.to_owned()))
}

/// Builds the HTTP client: ring for TLS, the system's roots plus `ca_file`,
/// HTTP/1.1 so that parallel uploads use separate connections.
fn build_http(insecure: bool, ca_file: Option<&Path>, host: &str) -> Result<reqwest::Client> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = if insecure && ca_file.is_none() {
        plain_tls_config(provider)?
    } else {
        verified_tls_config(provider, ca_file)?
    };
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("ecr-compose/", env!("CARGO_PKG_VERSION")));
    if is_loopback_host(host) {
        builder = builder.no_proxy();
    }
    builder
        .build()
        .map_err(|error| Error::internal(format!("Could not build the HTTP client: {error}.")))
}

/// TLS settings for a plain-HTTP registry: no roots, since no TLS is used.
fn plain_tls_config(provider: Arc<CryptoProvider>) -> Result<rustls::ClientConfig> {
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    Ok(config)
}

fn verified_tls_config(
    provider: Arc<CryptoProvider>,
    ca_file: Option<&Path>,
) -> Result<rustls::ClientConfig> {
    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = match ca_file {
        Some(path) => {
            let roots = read_ca_file(path)?;
            Arc::new(
                rustls_platform_verifier::Verifier::new_with_extra_roots(roots, provider.clone())
                    .map_err(tls_error)?,
            )
        }
        None => system_verifier(provider.clone())?,
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Returns the verifier with the system's roots, loaded once per process.
fn system_verifier(
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::client::danger::ServerCertVerifier>> {
    static VERIFIER: OnceLock<Arc<rustls_platform_verifier::Verifier>> = OnceLock::new();
    if let Some(verifier) = VERIFIER.get() {
        return Ok(verifier.clone());
    }
    let verifier = Arc::new(rustls_platform_verifier::Verifier::new(provider).map_err(tls_error)?);
    Ok(VERIFIER.get_or_init(|| verifier).clone())
}

fn read_ca_file(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;

    let certificates: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|error| {
            Error::not_found(
                "CaFileNotFound",
                format!(
                    "Could not read the CA file {}: {error}. Pass a PEM file that exists.",
                    path.display()
                ),
            )
        })?
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| {
            Error::invalid(
                "InvalidCaFile",
                format!(
                    "The CA file {} is not a valid PEM certificate file.",
                    path.display()
                ),
            )
        })?;
    if certificates.is_empty() {
        return Err(Error::invalid(
            "InvalidCaFile",
            format!("The CA file {} contains no certificate.", path.display()),
        ));
    }
    Ok(certificates)
}

fn tls_error(error: rustls::Error) -> Error {
    Error::new(
        EcrStatus::Network,
        "TlsSetupFailed",
        format!(
            "Could not set up TLS: {error}. Check the system's CA certificates or pass a CA file."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        assert!(validate_repository("team/app-1").is_ok());
        assert!(validate_repository("Team/app").is_err());
        assert!(validate_repository("team//app").is_err());
        assert!(validate_repository("../app").is_err());
    }
}
