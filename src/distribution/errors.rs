//! Errors of registry requests: the registry's error code is kept, and the
//! message names the registry host, the repository and the HTTP status.

use futures_util::StreamExt;
use reqwest::{Response, StatusCode};
use serde::Deserialize;

use crate::error::{EcrStatus, Error};

/// Bytes of an error body read at most.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Characters of a registry message kept in our message.
const MAX_REGISTRY_MESSAGE: usize = 300;

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The registry and repository a request was about, for messages.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// Registry host, for example `127.0.0.1:5000`.
    pub host: String,
    /// Repository name.
    pub repository: String,
}

impl RequestContext {
    /// Builds the error for an unexpected response, reading the registry's
    /// error code and message from its body.
    pub async fn status_error(&self, operation: &str, response: Response) -> Error {
        let status = response.status();
        let body = read_limited(response).await;
        let (code, registry_message) = parse_error_body(&body);
        self.error_for_status(operation, status, code, registry_message)
    }

    /// Builds the error for a status, with the registry's code and message
    /// when there are any.
    pub fn error_for_status(
        &self,
        operation: &str,
        status: StatusCode,
        code: Option<String>,
        registry_message: Option<String>,
    ) -> Error {
        let (ecr_status, error_id, advice) = classify(status, code.as_deref());
        let mut message = format!(
            "{operation} failed at registry {} for repository {}: HTTP {}",
            self.host,
            self.repository,
            status.as_u16()
        );
        if let Some(code) = &code {
            message.push_str(&format!(" {code}"));
        }
        if let Some(text) = registry_message.filter(|text| !text.is_empty()) {
            message.push_str(&format!(" ({text})"));
        }
        message.push_str(". ");
        message.push_str(advice);
        let error = Error::new(ecr_status, error_id, message)
            .with_target(format!("{}/{}", self.host, self.repository));
        match code {
            Some(code) => error.with_service_code(code),
            None => error,
        }
    }

    /// Builds the error for a request that got no response.
    pub fn transport_error(&self, operation: &str, error: &TransportError) -> Error {
        let (status, error_id, problem, cause) = match error {
            TransportError::Http(error) if error.is_timeout() => (
                EcrStatus::Timeout,
                "RegistryTimeout",
                "timed out",
                describe_transport(error),
            ),
            TransportError::Http(error) => (
                EcrStatus::Network,
                "RegistryUnreachable",
                "could not reach the registry",
                describe_transport(error),
            ),
            TransportError::Stalled(stall) => (
                EcrStatus::Timeout,
                "RegistryTimeout",
                "timed out",
                format!("no progress for {} s", stall.as_secs_f64()),
            ),
        };
        Error::new(
            status,
            error_id,
            format!(
                "{operation} {problem} at {} for repository {}: {cause}. Check the registry address and the network.",
                self.host, self.repository
            ),
        )
        .with_target(format!("{}/{}", self.host, self.repository))
    }
}

/// Failure of a request that got no response.
#[derive(Debug)]
pub enum TransportError {
    /// The connection failed or broke.
    Http(reqwest::Error),
    /// Neither a response nor a byte of the request body moved for this long.
    Stalled(std::time::Duration),
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Http(error) => f.write_str(&describe_transport(error)),
            TransportError::Stalled(stall) => {
                write!(f, "no progress for {} s", stall.as_secs_f64())
            }
        }
    }
}

/// Describes a transport error with its causes, without the URL: upload
/// URLs carry state tokens that do not belong in messages.
fn describe_transport(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text
            .replace(&format!(" for url ({url})"), "")
            .replace(url.as_str(), "<url>");
    }
    let mut parts = vec![text];
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&cause_text)) {
            parts.push(cause_text);
        }
        source = cause.source();
    }
    parts.join(": ").trim_end_matches('.').to_owned()
}

/// Maps a status and code to our status, a stable error id and advice.
fn classify(status: StatusCode, code: Option<&str>) -> (EcrStatus, &'static str, &'static str) {
    match status {
        StatusCode::UNAUTHORIZED => (
            EcrStatus::Authentication,
            "RegistryUnauthorized",
            "Log in again: the credentials are missing, invalid or expired.",
        ),
        StatusCode::FORBIDDEN => (
            EcrStatus::Denied,
            "RegistryDenied",
            "Check that the credentials may push to this repository, or log in again if they expired.",
        ),
        StatusCode::NOT_FOUND if code == Some("NAME_UNKNOWN") => (
            EcrStatus::NotFound,
            "RepositoryNotFound",
            "Create the repository first.",
        ),
        StatusCode::NOT_FOUND => (
            EcrStatus::NotFound,
            "RegistryNotFound",
            "Check the registry address and the repository name.",
        ),
        StatusCode::TOO_MANY_REQUESTS => (
            EcrStatus::Throttled,
            "RegistryThrottled",
            "Retry later or lower the number of concurrent uploads.",
        ),
        _ if status.is_server_error() => (
            EcrStatus::Registry,
            "RegistryServerError",
            "The registry failed; retry later.",
        ),
        _ => (
            EcrStatus::Registry,
            "RegistryError",
            "The registry rejected the request.",
        ),
    }
}

/// Reads at most [`MAX_ERROR_BODY`] bytes of a response body.
async fn read_limited(response: Response) -> Vec<u8> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = MAX_ERROR_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    body
}

/// Returns the first error code and message of a distribution error body.
pub fn parse_error_body(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) else {
        return (None, None);
    };
    let Some(first) = parsed.errors.into_iter().next() else {
        return (None, None);
    };
    let code = Some(first.code).filter(|code| !code.is_empty());
    let mut message: String = first.message.chars().take(MAX_REGISTRY_MESSAGE).collect();
    if message.len() < first.message.len() {
        message.push('…');
    }
    (code, Some(message).filter(|message| !message.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> RequestContext {
        RequestContext {
            host: "127.0.0.1:5000".to_owned(),
            repository: "team/app".to_owned(),
        }
    }

    #[test]
    fn parse_body_reads_first_code() {
        let body =
            br#"{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"blob upload invalid"}]}"#;
        let (code, message) = parse_error_body(body);
        assert_eq!(code.as_deref(), Some("BLOB_UPLOAD_INVALID"));
        assert_eq!(message.as_deref(), Some("blob upload invalid"));
    }

    #[test]
    fn parse_body_tolerates_html() {
        assert_eq!(parse_error_body(b"<html>"), (None, None));
    }

    #[test]
    fn error_names_host_repository_status_code() {
        let error = context().error_for_status(
            "Uploading blob sha256:abc",
            StatusCode::BAD_REQUEST,
            Some("BLOB_UPLOAD_INVALID".to_owned()),
            None,
        );
        assert!(error.message.contains("127.0.0.1:5000"));
        assert!(error.message.contains("team/app"));
        assert!(error.message.contains("HTTP 400"));
        assert!(error.message.contains("BLOB_UPLOAD_INVALID"));
        assert_eq!(error.service_code.as_deref(), Some("BLOB_UPLOAD_INVALID"));
    }

    #[test]
    fn forbidden_maps_to_denied() {
        let error = context().error_for_status(
            "Pushing",
            StatusCode::FORBIDDEN,
            Some("DENIED".to_owned()),
            None,
        );
        assert_eq!(error.status, EcrStatus::Denied);
    }

    #[test]
    fn name_unknown_maps_to_repository_not_found() {
        let error = context().error_for_status(
            "Pushing",
            StatusCode::NOT_FOUND,
            Some("NAME_UNKNOWN".to_owned()),
            None,
        );
        assert_eq!(error.error_id, "RepositoryNotFound");
    }
}
