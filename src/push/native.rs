//! Pushing straight to the registry over the OCI distribution API, with the
//! image read from the engine's export, an OCI layout or a docker archive.

use std::sync::Arc;

use aws_types::SdkConfig;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::distribution::{self, CredentialRefresh, Progress, PushOptions, PushTarget, RegistryEndpoint};
use crate::error::{Error, Result};
use crate::events::ProgressEvent;
use crate::http;
use crate::login::{self, RegistryAuthorization};
use crate::operation::OperationContext;
use crate::plan::PlanItem;
use crate::secret::Secret;
use crate::source::ImageSource;

/// Outcome of a native push.
pub struct NativeOutcome {
    /// Digest of the pushed top manifest.
    pub digest: String,
    /// Bytes sent to the registry.
    pub bytes_uploaded: u64,
    /// Blobs uploaded.
    pub blobs_uploaded: u32,
    /// Blobs the registry had already.
    pub blobs_skipped: u32,
}

/// Settings of a native push that come from the request.
pub struct NativeSettings<'a> {
    /// Source of the image, opened.
    pub source: Box<dyn ImageSource>,
    /// CA file for the registry's certificate, besides the system's roots.
    pub ca_file: Option<&'a std::path::Path>,
    /// Upload tuning, with the upload slots shared by every image of the push.
    pub options: PushOptions,
    /// SDK configuration, to ask ECR for a fresh token when the registry rejects the current one.
    pub config: &'a SdkConfig,
}

/// Pushes one image through the OCI distribution API.
pub async fn push_image(
    item: &PlanItem,
    authorization: &RegistryAuthorization,
    settings: NativeSettings<'_>,
    context: &OperationContext,
    parent_progress: u32,
) -> Result<NativeOutcome> {
    let registry = item
        .registry
        .as_ref()
        .ok_or_else(|| Error::internal(format!("{} has no registry in the plan.", item.reference)))?;
    let source = settings.source;
    let target = PushTarget {
        endpoint: RegistryEndpoint {
            host: registry.host.clone(),
            insecure: http::is_loopback_host(&registry.host),
            ca_file: settings.ca_file.map(std::path::Path::to_path_buf),
            username: authorization.username.clone(),
            password: authorization.password.clone(),
        },
        repository: item.repository.clone(),
        tag: item.tag.clone(),
    };
    let mut options = settings.options;
    options.reauth = Some(Arc::new(EcrReauth {
        config: settings.config.clone(),
        authorization: authorization.clone(),
        context: context.clone(),
    }));
    let progress_id = context.events.next_progress_id();
    let activity = format!("Pushing {}", item.reference);
    let report = |progress: Progress| {
        let percent = progress
            .completed_bytes
            .saturating_mul(100)
            .checked_div(progress.total_bytes)
            .map_or(-1, |percent| percent.min(100) as i32);
        context.events.progress(&ProgressEvent {
            id: progress_id,
            parent_id: parent_progress,
            activity: activity.clone(),
            // Before the plan is made, the number of blobs is not known yet.
            status: match progress.blobs_total {
                0 => progress.status.clone(),
                total => format!("{} ({} of {total} blobs)", progress.status, progress.blobs_done),
            },
            percent,
            current_bytes: progress.completed_bytes,
            total_bytes: progress.total_bytes,
            completed: false,
        });
    };
    let outcome = distribution::push(source.as_ref(), &target, &options, &report, &context.cancel).await;
    context.events.progress(&ProgressEvent {
        id: progress_id,
        parent_id: parent_progress,
        activity: activity.clone(),
        status: "Done".to_owned(),
        percent: 100,
        completed: true,
        ..ProgressEvent::default()
    });
    let outcome = outcome?;
    tracing::debug!(
        reference = %item.reference,
        uploaded = outcome.blobs_uploaded,
        skipped = outcome.blobs_skipped,
        bytes = outcome.bytes_uploaded,
        "blobs pushed"
    );
    Ok(NativeOutcome {
        digest: outcome.digest,
        bytes_uploaded: outcome.bytes_uploaded,
        blobs_uploaded: outcome.blobs_uploaded,
        blobs_skipped: outcome.blobs_skipped,
    })
}

/// Asks ECR for a fresh authorization token of the same registry.
struct EcrReauth {
    config: SdkConfig,
    authorization: RegistryAuthorization,
    context: OperationContext,
}

impl CredentialRefresh for EcrReauth {
    fn refresh(&self) -> BoxFuture<'_, Result<Secret>> {
        async move {
            tracing::info!(registry = %self.authorization.registry.host, "the registry rejected the token; asking ECR for a fresh one");
            let fresh = login::authorize(&self.config, std::slice::from_ref(&self.authorization.registry), &self.context).await?;
            fresh
                .into_iter()
                .next()
                .map(|authorization| authorization.password)
                .ok_or_else(|| Error::internal("ECR returned no authorization on refresh."))
        }
        .boxed()
    }
}

