//! Push of one image to a registry through the OCI distribution API.
//!
//! [`push`] reads an [`ImageSource`]'s plan and checks which blobs the
//! registry already has (`HEAD /v2/<name>/blobs/<digest>`). It uploads the
//! others in parallel (`POST` an upload, `PATCH` chunks with `Content-Range`,
//! `PUT ?digest=`), then puts the manifests, children before indexes. The top
//! manifest is the commit point: a push that fails or is cancelled before it
//! leaves at most some blobs and untagged child manifests behind.
//!
//! Requests are retried with exponential backoff and jitter on 429, 5xx and
//! connection failures. A 401 or 403 in the middle of a push fetches a new
//! bearer token, or asks the [`CredentialRefresh`] hook for a new password
//! once, then retries.

mod auth;
mod client;
mod errors;
mod progress;
mod pusher;
mod retry;
mod upload;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::secret::Secret;
use crate::source::ImageSource;

/// Smallest part of a chunked upload, except the last: ECR rejects smaller
/// parts (5 MiB, the S3 multipart minimum).
pub const MIN_CHUNK_SIZE: u64 = 5 * 1024 * 1024;
/// Default part size of a chunked upload.
pub const DEFAULT_CHUNK_SIZE: u64 = 8 * 1024 * 1024;
/// Largest part size accepted, so a part fits in memory comfortably.
pub const MAX_CHUNK_SIZE: u64 = 256 * 1024 * 1024;

/// A registry and the credentials to push to it.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryEndpoint {
    /// Host and optional port, for example `127.0.0.1:5000` or
    /// `123456789012.dkr.ecr.eu-west-1.amazonaws.com`.
    pub host: String,
    /// True to use plain HTTP instead of HTTPS.
    pub insecure: bool,
    /// PEM file with extra CA certificates to trust, beside the system's.
    pub ca_file: Option<PathBuf>,
    /// User name; empty for anonymous access.
    pub username: String,
    /// Password or ECR authorization token.
    pub password: Secret,
}

impl RegistryEndpoint {
    /// Creates an endpoint that uses plain HTTP for loopback hosts
    /// (`localhost`, `127.0.0.0/8`, `::1`), as docker does, and HTTPS otherwise.
    pub fn new(host: impl Into<String>, username: impl Into<String>, password: Secret) -> Self {
        let host = host.into();
        RegistryEndpoint {
            insecure: client::is_loopback_host(&host),
            host,
            ca_file: None,
            username: username.into(),
            password,
        }
    }
}

impl fmt::Debug for RegistryEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryEndpoint")
            .field("host", &self.host)
            .field("insecure", &self.insecure)
            .field("ca_file", &self.ca_file)
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

/// Destination of a push: registry, repository and tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushTarget {
    /// The registry.
    pub endpoint: RegistryEndpoint,
    /// Repository name inside the registry, for example `team/app`.
    pub repository: String,
    /// Tag for the top manifest; `None` pushes it by digest only.
    pub tag: Option<String>,
}

/// Source of a new password when the registry rejects the current one in
/// the middle of a push (an ECR authorization token expires after 12 hours).
pub trait CredentialRefresh: Send + Sync {
    /// Returns a new password for the same user name.
    fn refresh(&self) -> BoxFuture<'_, Result<Secret>>;
}

/// Tuning of a push.
#[derive(Clone)]
pub struct PushOptions {
    /// Blobs of this image checked or uploaded at the same time.
    pub max_concurrent_uploads: usize,
    /// Part size of chunked uploads in bytes; raised to [`MIN_CHUNK_SIZE`]
    /// and capped at [`MAX_CHUNK_SIZE`]. Blobs smaller than one part are
    /// uploaded in a single `PUT`.
    pub chunk_size: u64,
    /// Retries of one request after a 429, a 5xx or a connection failure.
    pub max_retries: u32,
    /// First backoff delay; each retry doubles it, up to 30 seconds, with
    /// jitter. A `Retry-After` header takes precedence, up to the same cap.
    pub retry_base_delay: Duration,
    /// Time without progress after which a request fails and is retried:
    /// no response and, for uploads, no body byte sent.
    pub stall_timeout: Duration,
    /// Upload slots shared with other pushes running at the same time, one
    /// slot per running upload. `None` limits this push alone.
    pub upload_slots: Option<Arc<Semaphore>>,
    /// Called once when the registry rejects the credentials mid-push.
    pub reauth: Option<Arc<dyn CredentialRefresh>>,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            max_concurrent_uploads: 4,
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_retries: 4,
            retry_base_delay: Duration::from_millis(500),
            stall_timeout: Duration::from_secs(30),
            upload_slots: None,
            reauth: None,
        }
    }
}

impl fmt::Debug for PushOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushOptions")
            .field("max_concurrent_uploads", &self.max_concurrent_uploads)
            .field("chunk_size", &self.chunk_size)
            .field("max_retries", &self.max_retries)
            .field("retry_base_delay", &self.retry_base_delay)
            .field("stall_timeout", &self.stall_timeout)
            .field(
                "upload_slots",
                &self
                    .upload_slots
                    .as_ref()
                    .map(|slots| slots.available_permits()),
            )
            .field("reauth", &self.reauth.is_some())
            .finish()
    }
}

/// Result of a push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushOutcome {
    /// Digest of the top manifest, as the registry returned it in
    /// `Docker-Content-Digest`, or computed when it returned none.
    pub digest: String,
    /// Media type of the top manifest.
    pub media_type: String,
    /// Size of the top manifest in bytes.
    pub size: u64,
    /// Blobs uploaded.
    pub blobs_uploaded: u32,
    /// Blobs the registry already had.
    pub blobs_skipped: u32,
    /// Bytes of blobs uploaded, retries not counted twice.
    pub bytes_uploaded: u64,
}

/// Progress of one push, sent at most about ten times a second.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The target reference, `host/repository:tag`.
    pub image: String,
    /// Bytes uploaded or found at the registry so far.
    pub completed_bytes: u64,
    /// Bytes to push; an estimate while layers are still being compressed.
    pub total_bytes: u64,
    /// Blobs uploaded or skipped so far.
    pub blobs_done: u32,
    /// Blobs of the image.
    pub blobs_total: u32,
    /// `Preparing`, `Uploading`, `Pushing manifests` or `Pushed`.
    pub status: String,
}

/// Pushes one image from `source` to `target`.
///
/// Cancelling `cancel` stops the push within about a second. The top
/// manifest is not put once `cancel` has fired; a manifest request already
/// on the wire gets one second to finish.
pub async fn push(
    source: &dyn ImageSource,
    target: &PushTarget,
    options: &PushOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<PushOutcome> {
    pusher::push_image(source, target, options, progress, cancel).await
}
