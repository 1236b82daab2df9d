//! The one error type of the core, and the status codes it maps to at the C ABI.

use std::fmt;

use serde::Serialize;

/// Result code of every `extern "C"` function.
///
/// Values are fixed and never reused: a new status gets the next free number.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum EcrStatus {
    /// The call succeeded.
    Ok = 0,
    /// A pointer argument was NULL or a string was not valid UTF-8.
    InvalidArgument = 1,
    /// The request JSON was malformed or one of its values is invalid.
    InvalidRequest = 2,
    /// AWS or the registry rejected the credentials or the MFA code.
    Authentication = 3,
    /// A file, profile, repository or image was not found.
    NotFound = 4,
    /// The credentials are valid but not allowed to do this.
    Denied = 5,
    /// AWS or the registry throttled the requests, and the retries ran out.
    Throttled = 6,
    /// A connection to AWS, the registry or the docker engine failed.
    Network = 7,
    /// The caller cancelled the operation.
    Cancelled = 8,
    /// An operation or a connection timed out.
    Timeout = 9,
    /// The registry or the docker engine returned an error.
    Registry = 10,
    /// The operation is still running: poll again.
    Pending = 11,
    /// The caller was built for another ABI version.
    AbiVersion = 12,
    /// A bug in the library: the message says where.
    Internal = 13,
    /// A panic was caught at the ABI boundary.
    Panic = 14,
}

impl EcrStatus {
    /// Returns the name used in JSON and in PowerShell error categories.
    pub fn name(self) -> &'static str {
        match self {
            EcrStatus::Ok => "Ok",
            EcrStatus::InvalidArgument => "InvalidArgument",
            EcrStatus::InvalidRequest => "InvalidRequest",
            EcrStatus::Authentication => "Authentication",
            EcrStatus::NotFound => "NotFound",
            EcrStatus::Denied => "Denied",
            EcrStatus::Throttled => "Throttled",
            EcrStatus::Network => "Network",
            EcrStatus::Cancelled => "Cancelled",
            EcrStatus::Timeout => "Timeout",
            EcrStatus::Registry => "Registry",
            EcrStatus::Pending => "Pending",
            EcrStatus::AbiVersion => "AbiVersion",
            EcrStatus::Internal => "Internal",
            EcrStatus::Panic => "Panic",
        }
    }
}

/// An error of the core: a status, a stable id, a message for people and the
/// AWS or registry error code when there is one.
///
/// The message names the value at fault and the fix. It never contains a
/// secret: callers build it from names and public values only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Error {
    /// Kind of failure; becomes the result code at the ABI.
    pub status: EcrStatus,
    /// Stable identifier such as `InvalidTokenCode`; becomes the PowerShell ErrorId.
    pub error_id: String,
    /// What failed, on which value, and what to do next.
    pub message: String,
    /// Error code returned by AWS or the registry, for example `AccessDenied`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_code: Option<String>,
    /// The value or the name that the error is about, for example a service name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl Error {
    /// Creates an error with a status, a stable id and a message.
    pub fn new(status: EcrStatus, error_id: &str, message: impl Into<String>) -> Self {
        Error {
            status,
            error_id: error_id.to_owned(),
            message: message.into(),
            service_code: None,
            target: None,
        }
    }

    /// Creates an [`EcrStatus::InvalidRequest`] error.
    pub fn invalid(error_id: &str, message: impl Into<String>) -> Self {
        Error::new(EcrStatus::InvalidRequest, error_id, message)
    }

    /// Creates an [`EcrStatus::NotFound`] error.
    pub fn not_found(error_id: &str, message: impl Into<String>) -> Self {
        Error::new(EcrStatus::NotFound, error_id, message)
    }

    /// Creates an [`EcrStatus::Internal`] error.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(EcrStatus::Internal, "InternalError", message)
    }

    /// Creates an [`EcrStatus::Cancelled`] error.
    pub fn cancelled() -> Self {
        Error::new(
            EcrStatus::Cancelled,
            "OperationCancelled",
            "The operation was cancelled.",
        )
    }

    /// Sets the AWS or registry error code.
    pub fn with_service_code(mut self, code: impl Into<String>) -> Self {
        self.service_code = Some(code.into());
        self
    }

    /// Sets the value or name that the error is about.
    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Result of a core operation.
pub type Result<T> = std::result::Result<T, Error>;
