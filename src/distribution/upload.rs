//! Blob uploads and manifest puts of the OCI distribution API.
//!
//! A blob is streamed from its source in parts of `chunk_size` bytes. At
//! most two parts of one blob are in memory at a time: the one being sent
//! and the next one being read. A blob that fits in one part is sent in a
//! single `PUT`. A larger one is sent with one `PATCH` per part, each with
//! its `Content-Range`, then an empty `PUT ?digest=`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::client::{Interrupt, RegistryClient};
use super::progress::ProgressTracker;
use crate::error::{EcrStatus, Error, Result};
use crate::source::digest::{StreamDigest, short_digest};
use crate::source::{DigestOrigin, ImageSource, PlannedBlob};

/// Bytes handed to the HTTP stack at a time, which is how finely progress moves.
const BODY_PIECE_SIZE: usize = 64 * 1024;
/// Times a blob upload starts over after the registry dropped its upload session.
const MAX_UPLOAD_RESTARTS: u32 = 2;
/// Registry error codes after which a blob upload has to start over.
const RESTART_CODES: [&str; 2] = ["BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID"];

/// Digest and size of a blob at the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBlob {
    /// Digest at the registry.
    pub digest: String,
    /// Size at the registry in bytes.
    pub size: u64,
}

/// Everything a blob upload needs besides the blob.
pub struct BlobContext<'a> {
    pub client: &'a RegistryClient,
    pub source: &'a dyn ImageSource,
    pub tracker: &'a ProgressTracker<'a>,
    pub upload_slots: &'a Semaphore,
    pub chunk_size: usize,
    pub cancel: &'a CancellationToken,
}

/// Failure of one upload attempt.
enum AttemptError {
    /// The registry lost or rejected the upload session: start over.
    Restart(Error),
    /// Anything else.
    Fatal(Error),
}

impl From<Error> for AttemptError {
    fn from(error: Error) -> Self {
        AttemptError::Fatal(error)
    }
}

/// Bytes counted as sent, per blob and per part, so that a failed attempt
/// can take its bytes back from the progress.
struct SentCounters {
    completed: Arc<AtomicU64>,
    blob: Arc<AtomicU64>,
    part: Arc<AtomicU64>,
}

impl SentCounters {
    /// Returns a request body that counts its bytes as the HTTP stack takes them.
    fn body(&self, bytes: Bytes) -> reqwest::Body {
        let counters = [self.completed.clone(), self.blob.clone(), self.part.clone()];
        let length = bytes.len();
        let pieces = (0..length)
            .step_by(BODY_PIECE_SIZE)
            .map(move |start| bytes.slice(start..(start + BODY_PIECE_SIZE).min(length)));
        let stream = futures_util::stream::iter(pieces).map(move |piece| {
            for counter in &counters {
                counter.fetch_add(piece.len() as u64, Ordering::Relaxed);
            }
            Ok::<_, std::io::Error>(piece)
        });
        reqwest::Body::wrap_stream(stream)
    }

    /// Takes back the bytes of the current part's previous attempt.
    fn restart_part(&self) {
        let stale = self.part.swap(0, Ordering::Relaxed);
        self.blob.fetch_sub(stale, Ordering::Relaxed);
        subtract(&self.completed, stale);
    }

    /// Takes back every byte counted for this blob.
    fn restart_blob(&self) {
        self.part.store(0, Ordering::Relaxed);
        let stale = self.blob.swap(0, Ordering::Relaxed);
        subtract(&self.completed, stale);
    }
}

fn subtract(counter: &AtomicU64, amount: u64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |value| {
        Some(value.saturating_sub(amount))
    });
}

/// Reads a blob stream in parts of a fixed size, computing its digest.
struct PartReader {
    stream: BoxStream<'static, Result<Bytes>>,
    leftover: Option<Bytes>,
    part_size: usize,
    digest: StreamDigest,
    /// True once the stream has ended; streams may panic if polled again.
    ended: bool,
}

impl PartReader {
    /// Returns the next part: `part_size` bytes, fewer for the last part,
    /// and an empty part at the end.
    async fn next_part(&mut self) -> Result<Bytes> {
        let mut part = BytesMut::new();
        while part.len() < self.part_size {
            let piece = match self.leftover.take() {
                Some(piece) => piece,
                None if self.ended => break,
                None => match self.stream.next().await {
                    Some(piece) => piece?,
                    None => {
                        self.ended = true;
                        break;
                    }
                },
            };
            if part.is_empty() && piece.len() >= self.part_size {
                // Whole parts straight from the source need no copy.
                let rest = piece.slice(self.part_size..);
                let whole = piece.slice(..self.part_size);
                self.leftover = Some(rest).filter(|rest| !rest.is_empty());
                self.digest.update(&whole);
                return Ok(whole);
            }
            if part.capacity() == 0 {
                part.reserve(self.part_size);
            }
            let room = self.part_size - part.len();
            let taken = piece.len().min(room);
            part.extend_from_slice(&piece[..taken]);
            self.digest.update(&piece[..taken]);
            if taken < piece.len() {
                self.leftover = Some(piece.slice(taken..));
            }
        }
        Ok(part.freeze())
    }
}

/// Describes a blob for messages: its digest when known, else its key.
pub fn blob_label(blob: &PlannedBlob) -> String {
    match &blob.digest {
        Some((digest, DigestOrigin::Exact)) => format!("blob {}", short_digest(digest)),
        _ => match blob.key.strip_prefix("layer:") {
            Some(diff_id) => format!("layer {}", short_digest(diff_id)),
            None => format!("blob {}", short_digest(&blob.key)),
        },
    }
}

/// Ensures that the registry has a blob: checks for it by digest when the
/// digest is known, and uploads it otherwise.
pub async fn push_blob(context: &BlobContext<'_>, blob: &PlannedBlob) -> Result<StoredBlob> {
    let tracker = context.tracker;
    if let Some((digest, _)) = &blob.digest {
        if blob.foreign {
            let size = blob.size.unwrap_or_default();
            tracker.blob_skipped(blob.estimated_size, size);
            return Ok(StoredBlob {
                digest: digest.clone(),
                size,
            });
        }
        if let Some(size) = blob_size(context.client, digest).await? {
            tracker.blob_skipped(blob.estimated_size, size);
            return Ok(StoredBlob {
                digest: digest.clone(),
                size,
            });
        }
    }

    let _slot = tokio::select! {
        _ = context.cancel.cancelled() => return Err(Error::cancelled()),
        slot = context.upload_slots.acquire() => slot.map_err(|_| Error::cancelled())?,
    };
    let started = std::time::Instant::now();
    let counters = SentCounters {
        completed: tracker.sent_counter(),
        blob: Arc::new(AtomicU64::new(0)),
        part: Arc::new(AtomicU64::new(0)),
    };
    let mut restarts = 0;
    let (stored, uploaded) = loop {
        match upload_attempt(context, blob, &counters).await {
            Ok(result) => break result,
            Err(AttemptError::Restart(error)) if restarts < MAX_UPLOAD_RESTARTS => {
                tracing::warn!(
                    host = %context.client.context().host,
                    blob = %blob_label(blob),
                    error = %error,
                    "registry dropped the upload; starting it over"
                );
                counters.restart_blob();
                restarts += 1;
            }
            Err(AttemptError::Restart(error) | AttemptError::Fatal(error)) => {
                counters.restart_blob();
                return Err(error);
            }
        }
    };

    context
        .source
        .blob_stored(blob, &stored.digest, stored.size)
        .await?;
    tracing::debug!(
        blob = %blob_label(blob),
        digest = %stored.digest,
        bytes = stored.size,
        uploaded,
        seconds = started.elapsed().as_secs_f64(),
        "stored the blob"
    );
    // The bytes counted while sending are replaced by the blob's size.
    counters.restart_blob();
    if uploaded {
        tracker.blob_uploaded(blob.estimated_size, stored.size);
    } else {
        tracker.blob_skipped(blob.estimated_size, stored.size);
    }
    Ok(stored)
}

/// Uploads a blob once. Returns where it is and whether it was uploaded
/// (false when, once its digest was computed, the registry had it).
async fn upload_attempt(
    context: &BlobContext<'_>,
    blob: &PlannedBlob,
    counters: &SentCounters,
) -> std::result::Result<(StoredBlob, bool), AttemptError> {
    let client = context.client;
    let label = blob_label(blob);
    let reader = context.source.open_blob(blob, context.cancel).await?;
    let digest = match blob.exact_digest() {
        Some(expected) => StreamDigest::like(expected)?,
        None => StreamDigest::sha256(),
    };
    let mut parts = PartReader {
        stream: reader.stream,
        leftover: None,
        part_size: context.chunk_size,
        digest,
        ended: false,
    };

    let first = parts.next_part().await?;
    if first.len() < context.chunk_size {
        let stored = check_content(
            context.source.name(),
            blob,
            reader.size,
            &parts.digest,
            &label,
        )?;
        let already_checked = blob
            .digest
            .as_ref()
            .is_some_and(|(digest, _)| *digest == stored.digest);
        if !already_checked {
            if let Some(size) = blob_size(client, &stored.digest).await? {
                return Ok((StoredBlob { size, ..stored }, false));
            }
        }
        let location = start_upload(client, &label).await?;
        finish_upload(client, &location, &stored.digest, first, counters, &label).await?;
        return Ok((stored, true));
    }

    let mut location = start_upload(client, &label).await?;
    let mut offset = 0u64;
    let mut part = first;
    loop {
        let (patched, next) = tokio::join!(
            upload_part(client, &location, offset, part.clone(), counters, &label),
            parts.next_part()
        );
        location = patched?;
        offset += part.len() as u64;
        let next = next?;
        if next.is_empty() {
            break;
        }
        part = next;
    }
    let stored = check_content(
        context.source.name(),
        blob,
        reader.size,
        &parts.digest,
        &label,
    )?;
    finish_upload(
        client,
        &location,
        &stored.digest,
        Bytes::new(),
        counters,
        &label,
    )
    .await?;
    Ok((stored, true))
}

/// Compares what was read with what the source promised.
fn check_content(
    source_name: &str,
    blob: &PlannedBlob,
    reader_size: Option<u64>,
    digest: &StreamDigest,
    label: &str,
) -> Result<StoredBlob> {
    let actual = digest.finish();
    let size = digest.length();
    let expected_size = reader_size.or(blob.size.filter(|_| blob.exact_digest().is_some()));
    let digest_differs = blob
        .exact_digest()
        .is_some_and(|expected| expected != actual);
    if digest_differs || expected_size.is_some_and(|expected| expected != size) {
        return Err(Error::new(
            EcrStatus::InvalidRequest,
            "BlobContentMismatch",
            format!(
                "The {label} read from {source_name} does not match its digest or size (read {size} bytes with digest {}). The source is corrupt: export or copy the image again.",
                short_digest(&actual)
            ),
        )
        .with_target(blob.key.clone()));
    }
    Ok(StoredBlob {
        digest: actual,
        size,
    })
}

/// Asks the registry for a blob; returns its size when it has it.
pub async fn blob_size(client: &RegistryClient, digest: &str) -> Result<Option<u64>> {
    let operation = format!("Checking blob {}", short_digest(digest));
    let url = client.repository_url(&format!("blobs/{digest}"))?;
    let response = client
        .send(&operation, Interrupt::Immediate, None, &|http| {
            http.head(url.clone())
        })
        .await?;
    match response.status() {
        // `Response::content_length` is the body's length, which is 0 for a
        // HEAD response; the blob's size is in the header.
        StatusCode::OK => {
            let size = header_u64(&response, CONTENT_LENGTH);
            match size {
                Some(size) => Ok(Some(size)),
                None => {
                    Err(client
                        .protocol_error(&operation, "the response has no valid Content-Length"))
                }
            }
        }
        StatusCode::NOT_FOUND => Ok(None),
        _ => Err(client.status_error(&operation, response).await),
    }
}

fn header_u64(response: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<u64> {
    response.headers().get(name)?.to_str().ok()?.parse().ok()
}

async fn start_upload(client: &RegistryClient, label: &str) -> Result<Url> {
    let operation = format!("Starting the upload of {label}");
    let url = client.repository_url("blobs/uploads/")?;
    let response = client
        .send(&operation, Interrupt::Immediate, None, &|http| {
            http.post(url.clone()).header(CONTENT_LENGTH, 0)
        })
        .await?;
    if response.status() != StatusCode::ACCEPTED {
        return Err(client.status_error(&operation, response).await);
    }
    client.location(&operation, &response)
}

async fn upload_part(
    client: &RegistryClient,
    location: &Url,
    offset: u64,
    part: Bytes,
    counters: &SentCounters,
    label: &str,
) -> std::result::Result<Url, AttemptError> {
    let length = part.len() as u64;
    let end = offset + length - 1;
    let operation = format!("Uploading bytes {offset}-{end} of {label}");
    counters.part.store(0, Ordering::Relaxed);
    let response = client
        .send(
            &operation,
            Interrupt::Immediate,
            Some(&counters.part),
            &|http| {
                counters.restart_part();
                http.patch(location.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_RANGE, format!("{offset}-{end}"))
                    .header(CONTENT_LENGTH, length)
                    .body(counters.body(part.clone()))
            },
        )
        .await?;
    let status = response.status();
    if status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT {
        return Ok(client.location(&operation, &response)?);
    }
    let error = client.status_error(&operation, response).await;
    Err(classify_upload_error(status, error))
}

async fn finish_upload(
    client: &RegistryClient,
    location: &Url,
    digest: &str,
    body: Bytes,
    counters: &SentCounters,
    label: &str,
) -> std::result::Result<(), AttemptError> {
    let operation = format!("Completing the upload of {label}");
    let mut url = location.clone();
    url.query_pairs_mut().append_pair("digest", digest);
    let length = body.len() as u64;
    counters.part.store(0, Ordering::Relaxed);
    let response = client
        .send(
            &operation,
            Interrupt::Immediate,
            Some(&counters.part),
            &|http| {
                counters.restart_part();
                http.put(url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, length)
                    .body(counters.body(body.clone()))
            },
        )
        .await?;
    let status = response.status();
    if status == StatusCode::CREATED
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::ACCEPTED
    {
        return Ok(());
    }
    let error = client.status_error(&operation, response).await;
    // A retried PUT whose first attempt landed finds the session gone; the
    // blob is then at the registry.
    if status == StatusCode::NOT_FOUND && blob_size(client, digest).await?.is_some() {
        return Ok(());
    }
    Err(classify_upload_error(status, error))
}

fn classify_upload_error(status: StatusCode, error: Error) -> AttemptError {
    let lost_session = status == StatusCode::RANGE_NOT_SATISFIABLE
        || status == StatusCode::NOT_FOUND
        || error
            .service_code
            .as_deref()
            .is_some_and(|code| RESTART_CODES.contains(&code));
    if lost_session {
        AttemptError::Restart(error)
    } else {
        AttemptError::Fatal(error)
    }
}

/// True when the registry has a manifest with this digest.
pub async fn manifest_exists(
    client: &RegistryClient,
    digest: &str,
    media_type: &str,
) -> Result<bool> {
    let operation = format!("Checking manifest {}", short_digest(digest));
    let url = client.repository_url(&format!("manifests/{digest}"))?;
    let response = client
        .send(&operation, Interrupt::Immediate, None, &|http| {
            http.head(url.clone())
                .header(reqwest::header::ACCEPT, media_type)
        })
        .await?;
    match response.status() {
        StatusCode::OK => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        _ => Err(client.status_error(&operation, response).await),
    }
}

/// Puts a manifest under a tag or a digest; returns the digest that the
/// registry reports in `Docker-Content-Digest`, if any.
pub async fn put_manifest(
    client: &RegistryClient,
    reference: &str,
    media_type: &str,
    bytes: Bytes,
    interrupt: Interrupt,
) -> Result<Option<String>> {
    let operation = format!("Putting manifest {}", short_digest(reference));
    let url = client.repository_url(&format!("manifests/{reference}"))?;
    let response = client
        .send(&operation, interrupt, None, &|http| {
            http.put(url.clone())
                .header(CONTENT_TYPE, media_type)
                .body(bytes.clone())
        })
        .await?;
    if response.status() != StatusCode::CREATED && response.status() != StatusCode::OK {
        return Err(client.status_error(&operation, response).await);
    }
    Ok(response
        .headers()
        .get("Docker-Content-Digest")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use futures_util::stream;

    use super::*;

    fn reader(pieces: Vec<&'static [u8]>, part_size: usize) -> PartReader {
        let items: Vec<Result<Bytes>> = pieces
            .into_iter()
            .map(|piece| Ok(Bytes::from_static(piece)))
            .collect();
        PartReader {
            stream: Box::pin(stream::iter(items)),
            leftover: None,
            part_size,
            digest: StreamDigest::sha256(),
            ended: false,
        }
    }

    #[tokio::test]
    async fn parts_have_fixed_size() {
        let mut parts = reader(vec![b"abc", b"defgh", b"ij"], 4);
        assert_eq!(&parts.next_part().await.unwrap()[..], b"abcd");
        assert_eq!(&parts.next_part().await.unwrap()[..], b"efgh");
        assert_eq!(&parts.next_part().await.unwrap()[..], b"ij");
        assert!(parts.next_part().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn ended_stream_not_polled_again() {
        // `unfold` panics when polled after its end, like the gzip stream.
        let items = stream::unfold(0, |count| async move {
            (count < 2).then(|| (Ok(Bytes::from_static(b"abc")), count + 1))
        });
        let mut parts = PartReader {
            stream: Box::pin(items),
            leftover: None,
            part_size: 4,
            digest: StreamDigest::sha256(),
            ended: false,
        };
        assert_eq!(&parts.next_part().await.unwrap()[..], b"abca");
        assert_eq!(&parts.next_part().await.unwrap()[..], b"bc");
        assert!(parts.next_part().await.unwrap().is_empty());
        assert!(parts.next_part().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn large_piece_is_split_without_copy() {
        let mut parts = reader(vec![b"abcdefghij"], 4);
        assert_eq!(&parts.next_part().await.unwrap()[..], b"abcd");
        assert_eq!(&parts.next_part().await.unwrap()[..], b"efgh");
        assert_eq!(&parts.next_part().await.unwrap()[..], b"ij");
    }

    #[tokio::test]
    async fn digest_covers_all_parts() {
        let mut parts = reader(vec![b"abc", b"defgh", b"ij"], 4);
        while !parts.next_part().await.unwrap().is_empty() {}
        assert_eq!(
            parts.digest.finish(),
            crate::source::digest::sha256_digest(b"abcdefghij")
        );
    }

    #[test]
    fn range_error_restarts_upload() {
        let error = Error::internal("x");
        assert!(matches!(
            classify_upload_error(StatusCode::RANGE_NOT_SATISFIABLE, error),
            AttemptError::Restart(_)
        ));
    }

    #[test]
    fn denied_is_fatal() {
        let error = Error::internal("x").with_service_code("DENIED");
        assert!(matches!(
            classify_upload_error(StatusCode::FORBIDDEN, error),
            AttemptError::Fatal(_)
        ));
    }
}
