//! The order of a push: plan, blobs in parallel, then manifests.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::client::{Interrupt, RegistryClient};
use super::progress::ProgressTracker;
use super::upload::{BlobContext, StoredBlob, manifest_exists, push_blob, put_manifest};
use super::{MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, Progress, PushOptions, PushOutcome, PushTarget};
use crate::error::{Error, Result};
use crate::source::digest::sha256_digest;
use crate::source::manifest::{Descriptor, docker_manifest_bytes};
use crate::source::{ImagePlan, ImageSource, ManifestBody};

/// Time the top manifest's request gets to finish after a cancellation.
const COMMIT_GRACE: Duration = Duration::from_secs(1);
/// Interval of progress reports while blobs upload.
const PROGRESS_TICK: Duration = Duration::from_millis(100);

pub async fn push_image(
    source: &dyn ImageSource,
    target: &PushTarget,
    options: &PushOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<PushOutcome> {
    if let Some(tag) = &target.tag {
        validate_tag(tag)?;
    }
    let tracker = ProgressTracker::new(target_reference(target), progress);
    tracker.report("Preparing", true);

    let blobs_phase = async {
        let client = RegistryClient::connect(target, options, cancel).await?;
        let plan = source.plan(cancel).await?;
        if plan.manifests.is_empty() {
            return Err(Error::internal(format!(
                "The source {} planned no manifest.",
                source.name()
            )));
        }
        let estimated: u64 = plan.blobs.iter().map(|blob| blob.estimated_size).sum();
        tracker.set_totals(plan.blobs.len() as u32, estimated);
        tracker.report("Uploading", true);
        let stored = push_blobs(&client, source, &plan, options, &tracker, cancel).await?;
        Ok((client, plan, stored))
    };
    let (client, plan, stored) = tokio::select! {
        _ = cancel.cancelled() => return Err(Error::cancelled()),
        result = blobs_phase => result?,
    };

    tracker.report("Pushing manifests", true);
    let outcome = push_manifests(&client, target, &plan, &stored, &tracker, cancel).await?;
    tracker.report("Pushed", true);
    Ok(outcome)
}

/// Pushes every blob of the plan, `max_concurrent_uploads` at a time.
async fn push_blobs(
    client: &RegistryClient,
    source: &dyn ImageSource,
    plan: &ImagePlan,
    options: &PushOptions,
    tracker: &ProgressTracker<'_>,
    cancel: &CancellationToken,
) -> Result<Vec<StoredBlob>> {
    let concurrency = options.max_concurrent_uploads.max(1);
    let own_slots = Semaphore::new(concurrency);
    let context = BlobContext {
        client,
        source,
        tracker,
        upload_slots: options.upload_slots.as_deref().unwrap_or(&own_slots),
        chunk_size: options.chunk_size.clamp(MIN_CHUNK_SIZE, MAX_CHUNK_SIZE) as usize,
        cancel,
    };

    // The futures are collected before they become a stream. A `map`
    // closure inside the stream's type makes rustc fail to prove the push
    // future `Send` for every lifetime, which callers that box it need.
    let blobs: Vec<_> = plan
        .blobs
        .iter()
        .enumerate()
        .map(|(index, blob)| push_indexed_blob(&context, index, blob))
        .collect();
    let uploads = futures_util::stream::iter(blobs)
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>();
    let ticker = async {
        loop {
            tokio::time::sleep(PROGRESS_TICK).await;
            tracker.report("Uploading", false);
        }
    };
    let mut results = tokio::select! {
        results = uploads => results?,
        _ = ticker => unreachable!("the progress ticker never ends"),
    };
    results.sort_by_key(|(index, _)| *index);
    Ok(results.into_iter().map(|(_, stored)| stored).collect())
}

async fn push_indexed_blob(
    context: &BlobContext<'_>,
    index: usize,
    blob: &crate::source::PlannedBlob,
) -> Result<(usize, StoredBlob)> {
    push_blob(context, blob).await.map(|stored| (index, stored))
}

/// Puts the manifests in plan order; the last one gets the tag.
async fn push_manifests(
    client: &RegistryClient,
    target: &PushTarget,
    plan: &ImagePlan,
    stored: &[StoredBlob],
    tracker: &ProgressTracker<'_>,
    cancel: &CancellationToken,
) -> Result<PushOutcome> {
    let last = plan.manifests.len() - 1;
    for (position, manifest) in plan.manifests.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(Error::cancelled());
        }
        let bytes = manifest_bytes(plan, &manifest.body, stored);
        let digest = sha256_digest(&bytes);
        if position < last {
            if !manifest_exists(client, &digest, &manifest.media_type).await? {
                put_manifest(
                    client,
                    &digest,
                    &manifest.media_type,
                    bytes,
                    Interrupt::Immediate,
                )
                .await?;
            }
            continue;
        }

        let reference = target.tag.clone().unwrap_or_else(|| digest.clone());
        let size = bytes.len() as u64;
        let returned = put_manifest(
            client,
            &reference,
            &manifest.media_type,
            bytes,
            Interrupt::Grace(COMMIT_GRACE),
        )
        .await?;
        if let Some(returned) = returned.as_ref().filter(|returned| **returned != digest) {
            tracing::warn!(computed = %digest, returned = %returned, "registry reported another manifest digest");
        }
        let (blobs_uploaded, blobs_skipped, bytes_uploaded) = tracker.counts();
        return Ok(PushOutcome {
            digest: returned.unwrap_or(digest),
            media_type: manifest.media_type.clone(),
            size,
            blobs_uploaded,
            blobs_skipped,
            bytes_uploaded,
        });
    }
    unreachable!("a plan has at least one manifest")
}

/// Returns the bytes of a manifest, building a docker manifest from the
/// stored blobs.
fn manifest_bytes(plan: &ImagePlan, body: &ManifestBody, stored: &[StoredBlob]) -> Bytes {
    match body {
        ManifestBody::Raw(bytes) => bytes.clone(),
        ManifestBody::DockerV2 { config, layers } => {
            let descriptor = |index: usize| Descriptor {
                media_type: Some(plan.blobs[index].media_type.clone()),
                digest: stored[index].digest.clone(),
                size: stored[index].size,
                ..Descriptor::default()
            };
            let layers: Vec<Descriptor> = layers.iter().map(|&index| descriptor(index)).collect();
            Bytes::from(docker_manifest_bytes(&descriptor(*config), &layers))
        }
    }
}

/// Returns `host/repository:tag` (or without the tag).
fn target_reference(target: &PushTarget) -> String {
    match &target.tag {
        Some(tag) => format!("{}/{}:{tag}", target.endpoint.host, target.repository),
        None => format!("{}/{}", target.endpoint.host, target.repository),
    }
}

/// Checks a tag against the distribution grammar `[\w][\w.-]{0,127}`.
fn validate_tag(tag: &str) -> Result<()> {
    let first_ok = tag
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    let rest_ok = tag
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if first_ok && rest_ok && tag.len() <= 128 {
        return Ok(());
    }
    Err(Error::invalid(
        "InvalidTag",
        format!("The tag '{tag}' is invalid: use up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'."),
    )
    .with_target(tag.to_owned()))
}

#[cfg(test)]
mod tests {
    use futures_util::future::BoxFuture;

    use super::*;

    /// Compiles only while the push future is `Send` for any lifetime, as
    /// callers that box it in a closure need.
    #[allow(dead_code)]
    fn push_future_is_send<'a>(
        source: &'a dyn ImageSource,
        targets: &'a [PushTarget],
        options: &'a PushOptions,
        cancel: &'a CancellationToken,
    ) -> Vec<BoxFuture<'a, Result<PushOutcome>>> {
        targets
            .iter()
            .map(|target| {
                Box::pin(push_image(source, target, options, &|_| {}, cancel)) as BoxFuture<'_, _>
            })
            .collect()
    }

    #[test]
    fn tags() {
        assert!(validate_tag("1.0").is_ok());
        assert!(validate_tag("latest").is_ok());
        assert!(validate_tag("-x").is_err());
        assert!(validate_tag("a:b").is_err());
        assert!(validate_tag(&"a".repeat(129)).is_err());
    }
}
