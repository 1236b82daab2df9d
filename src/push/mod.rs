//! The push operation: read the compose project, plan, authorize against
//! each ECR registry, push every image and report one result per image.

mod engine;
mod native;
mod repositories;
mod sources;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::aws::{self, AwsOptions, SessionCredentials};
use crate::compose::{self, LoadOptions};
use crate::distribution::PushOptions;
use crate::error::{EcrStatus, Error, Result};
use crate::events::ProgressEvent;
use crate::login::{self, DockerOptions, RegistryAuthorization};
use crate::operation::OperationContext;
use crate::plan::{self, Action, PlanItem, PlanOptions};
use crate::registry::RegistryAliases;
use crate::source::{DEFAULT_GZIP_LEVEL, ImageSource, MAX_GZIP_LEVEL, SourceOptions};

/// Blob uploads running at once across all images of a push, by default.
const DEFAULT_MAX_CONCURRENT_UPLOADS: usize = 6;

/// Images pushed at once by the native path; their uploads share the slots above.
const MAX_CONCURRENT_IMAGES: usize = 3;

/// Transport of images to the registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// The native path.
    #[default]
    Auto,
    /// Straight to the registry over the OCI distribution API; no docker login needed.
    Native,
    /// Through the docker engine's push, with the credentials sent per request.
    Docker,
}

/// Request of the push operation.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushRequest {
    /// Profile, region and endpoint.
    #[serde(default)]
    pub aws: AwsOptions,
    /// Session credentials; the profile's credential chain otherwise.
    #[serde(default)]
    pub credentials: Option<SessionCredentials>,
    /// Compose files; the default names in `workingDirectory` otherwise.
    #[serde(default)]
    pub compose_files: Vec<PathBuf>,
    /// Folder that relative paths of the project resolve against.
    #[serde(default)]
    pub project_directory: Option<PathBuf>,
    /// Folder searched for the default compose file names.
    #[serde(default)]
    pub working_directory: Option<PathBuf>,
    /// Extra env files, read after the project's `.env`.
    #[serde(default)]
    pub env_files: Vec<PathBuf>,
    /// Compose profiles to enable.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Services to push; every active service otherwise.
    #[serde(default)]
    pub services: Vec<String>,
    /// Alias host to ECR host; these win over the compose file's `x-ecr-compose` aliases.
    #[serde(default)]
    pub registry_aliases: BTreeMap<String, String>,
    /// Engine and client configuration.
    #[serde(default)]
    pub docker: DockerOptions,
    /// Fail images of registries other than ECR instead of skipping them.
    #[serde(default)]
    pub strict: bool,
    /// Plan only: report what would be pushed and change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Transport of images to the registry.
    #[serde(default)]
    pub via: Via,
    /// Image sources other than the engine, by service name or image
    /// reference: `oci-layout:PATH`, `oci-layout:PATH#REF`, `docker-archive:PATH`.
    #[serde(default)]
    pub sources: BTreeMap<String, String>,
    /// Blob uploads at once across all images (native path); 6 by default.
    #[serde(default)]
    pub max_concurrent_uploads: Option<usize>,
    /// Gzip level, 1 to 12, of layers that the native path compresses, 4 by
    /// default. Lower levels use less CPU and send more bytes.
    #[serde(default)]
    pub compression_level: Option<u8>,
    /// Create missing ECR repositories instead of failing their images.
    #[serde(default)]
    pub create_repository: bool,
    /// Tag mutability of created repositories: `MUTABLE` or `IMMUTABLE`.
    #[serde(default)]
    pub tag_mutability: Option<String>,
    /// Turn on scan on push for created repositories.
    #[serde(default)]
    pub scan_on_push: bool,
    /// PEM file of a CA that signs the registries' certificates, besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// Outcome of one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ImageStatus {
    /// The image is in the registry now.
    Pushed,
    /// The image was not pushed, on purpose (see `reason`).
    Skipped,
    /// Pushing the image failed (see `error`).
    Failed,
    /// A dry run would push the image.
    Planned,
}

/// Result of one image.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageResult {
    /// Services that name the image.
    pub services: Vec<String>,
    /// Normalized image reference.
    pub reference: String,
    /// Registry host as the reference names it.
    pub registry: Option<String>,
    /// Repository within the registry.
    pub repository: String,
    /// Tag, when the reference has one.
    pub tag: Option<String>,
    /// Digest of the pushed manifest.
    pub digest: Option<String>,
    /// What happened.
    pub status: ImageStatus,
    /// Reason the image was skipped.
    pub reason: Option<String>,
    /// Error that failed the image.
    pub error: Option<Error>,
    /// Path the image took: `native` or `docker`.
    pub via: Option<Via>,
    /// Bytes sent to the registry (native path).
    pub bytes_uploaded: u64,
    /// Blobs uploaded (native path).
    pub blobs_uploaded: u32,
    /// Blobs the registry already had (native path).
    pub blobs_skipped: u32,
}

/// Totals of a push.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushSummary {
    /// Images pushed.
    pub pushed: usize,
    /// Images skipped.
    pub skipped: usize,
    /// Images that failed.
    pub failed: usize,
    /// Images a dry run would push.
    pub planned: usize,
    /// Bytes sent to registries.
    pub bytes_uploaded: u64,
    /// Wall-clock time of the operation, in seconds.
    pub seconds: f64,
}

/// Result of the push operation.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushResult {
    /// One entry per unique image, in plan order.
    pub images: Vec<ImageResult>,
    /// Totals.
    pub summary: PushSummary,
}

/// Pushes the images of a compose project.
///
/// A problem with the project, the credentials or a registry's authorization
/// fails the whole operation; a problem with one image fails that image only,
/// and the others are still pushed.
pub async fn push(request: &PushRequest, context: &OperationContext) -> Result<PushResult> {
    let started = Instant::now();
    validate(request)?;
    let project = compose::load(&LoadOptions {
        files: request.compose_files.clone(),
        working_dir: request.working_directory.clone(),
        project_directory: request.project_directory.clone(),
        env_files: request.env_files.clone(),
        profiles: request.profiles.clone(),
        environment: None,
    })?;
    // plan::build adds the compose file's aliases where the request has none.
    let aliases = RegistryAliases::new(request.registry_aliases.clone())?;
    let plan = plan::build(&project, &PlanOptions { services: request.services.clone(), aliases, strict: request.strict })?;
    tracing::info!(
        project = %project.name,
        images = plan.items.len(),
        registries = plan.registries.len(),
        "planned the push"
    );

    let mut images: Vec<ImageResult> = Vec::new();
    let to_push: Vec<&PlanItem> = plan.items.iter().filter(|item| matches!(item.action, Action::Push)).collect();
    for item in plan.items.iter().filter(|item| !matches!(item.action, Action::Push)) {
        let result = settled_result(item);
        context.events.item(serde_json::to_value(&result).unwrap_or_default());
        images.push(result);
    }
    if request.dry_run {
        for item in &to_push {
            let result = item_result(item, ImageStatus::Planned);
            context.events.item(serde_json::to_value(&result).unwrap_or_default());
            images.push(result);
        }
        return Ok(finish(images, started));
    }
    if to_push.is_empty() {
        tracing::warn!("no image of the project points at an ECR registry, so nothing was pushed");
        return Ok(finish(images, started));
    }

    let sources = sources::SourceMap::new(&request.sources, &project.directory, &project.services)?;
    let via = match request.via {
        Via::Docker => Via::Docker,
        Via::Auto | Via::Native => Via::Native,
    };
    match (via, request.compression_level) {
        (Via::Docker, Some(level)) => {
            tracing::warn!(level, "the docker engine compresses the layers itself, so the compression level is not used");
        }
        (Via::Docker, None) => {}
        (_, level) => {
            tracing::info!(gzip_level = level.unwrap_or(DEFAULT_GZIP_LEVEL), "layers missing from the digest cache are compressed");
        }
    }
    // The first images' sources open (and engine exports start) while the
    // ECR calls below run.
    let prefetch_cancel = context.cancel.child_token();
    let _stop_prefetch = prefetch_cancel.clone().drop_guard();
    let prefetched = match via {
        Via::Docker => HashMap::new(),
        _ => prefetch_sources(&to_push, &sources, request, &prefetch_cancel)?,
    };
    let aws_calls = async {
        let config = aws::load_config(&request.aws, request.credentials.as_ref()).await?;
        let authorizations = login::authorize(&config, &plan.registries, context).await?;
        let repository_errors = repositories::check(&config, &plan, request, context).await?;
        Ok::<_, Error>((config, authorizations, repository_errors))
    };
    let (config, authorizations, repository_errors) = match aws_calls.await {
        Ok(outcome) => outcome,
        Err(error) => {
            // Waits for the prefetches to stop, so that no export file
            // outlives the call.
            prefetch_cancel.cancel();
            futures_util::future::join_all(prefetched.into_values().map(Prefetch::stop)).await;
            return Err(error);
        }
    };
    let docker = match via {
        Via::Docker => Some(engine::connect(request.docker.host.as_deref()).await?),
        _ => None,
    };
    let slots = Arc::new(Semaphore::new(request.max_concurrent_uploads.unwrap_or(DEFAULT_MAX_CONCURRENT_UPLOADS).max(1)));
    let overall = context.events.next_progress_id();
    let total = to_push.len();
    let image_concurrency = if via == Via::Docker { 1 } else { MAX_CONCURRENT_IMAGES };
    context.events.progress(&ProgressEvent {
        id: overall,
        activity: "Pushing compose images".to_owned(),
        status: format!("0 of {total} images"),
        percent: 0,
        ..ProgressEvent::default()
    });
    let shared = Arc::new(SharedJob {
        request: request.clone(),
        context: context.clone(),
        config,
        authorizations,
        repository_errors,
        sources,
        prefetched: std::sync::Mutex::new(prefetched),
        docker,
        via,
        slots,
        overall,
        finished: AtomicUsize::new(0),
        total,
    });
    let jobs: Vec<_> =
        to_push.iter().enumerate().map(|(index, item)| run_image(index, (*item).clone(), Arc::clone(&shared))).collect();
    let results: Vec<Result<ImageResult>> = futures_util::stream::iter(jobs).buffered(image_concurrency).collect().await;
    for result in results {
        images.push(result?);
    }
    context.events.progress(&ProgressEvent {
        id: overall,
        activity: "Pushing compose images".to_owned(),
        status: "Done".to_owned(),
        percent: 100,
        completed: true,
        ..ProgressEvent::default()
    });
    Ok(finish(images, started))
}

/// State shared by every image job of a push.
///
/// Owned, so each job's future is `'static`: borrowed fields made rustc
/// unable to prove the futures `Send` for every lifetime.
struct SharedJob {
    request: PushRequest,
    context: OperationContext,
    config: aws_types::SdkConfig,
    authorizations: Vec<RegistryAuthorization>,
    repository_errors: HashMap<(String, String), Error>,
    sources: sources::SourceMap,
    /// Sources opened ahead, by the image's index in the push.
    prefetched: std::sync::Mutex<HashMap<usize, Prefetch>>,
    docker: Option<bollard::Docker>,
    via: Via,
    slots: Arc<Semaphore>,
    overall: u32,
    finished: AtomicUsize,
    total: usize,
}

/// Pushes one image and turns its outcome into a result; only a
/// cancellation fails the whole push.
fn run_image(index: usize, item: PlanItem, shared: Arc<SharedJob>) -> BoxFuture<'static, Result<ImageResult>> {
    // Boxed here, where every lifetime is concrete: rustc 1.95 fails to prove
    // the unboxed future Send inside the stream combinator.
    Box::pin(async move { run_image_inner(index, &item, &shared).await })
}

async fn run_image_inner(index: usize, item: &PlanItem, shared: &SharedJob) -> Result<ImageResult> {
    let context = &shared.context;
    let repository_error = item
        .registry
        .as_ref()
        .and_then(|registry| shared.repository_errors.get(&(registry.host.clone(), item.repository.clone())))
        .cloned();
    // Taken out at once, so that an image that fails before its push stops
    // its prefetch now and not when the whole push ends.
    let prefetched = shared.prefetched.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&index);
    let outcome = match repository_error {
        Some(error) => {
            if let Some(prefetch) = prefetched {
                prefetch.stop().await;
            }
            Err(error)
        }
        None => push_with_source(item, prefetched, shared).await,
    };
    let done = shared.finished.fetch_add(1, Ordering::Relaxed) + 1;
    context.events.progress(&ProgressEvent {
        id: shared.overall,
        activity: "Pushing compose images".to_owned(),
        status: format!("{done} of {} images", shared.total),
        percent: (done * 100 / shared.total) as i32,
        ..ProgressEvent::default()
    });
    let result = match outcome {
        Ok(result) => {
            tracing::info!(reference = %item.reference, digest = result.digest.as_deref().unwrap_or_default(), "pushed");
            result
        }
        Err(error) if error.status == EcrStatus::Cancelled => return Err(error),
        Err(error) => {
            // The caller reports the item's error itself; the log line only helps debugging.
            tracing::debug!(reference = %item.reference, error_id = %error.error_id, "push failed: {}", error.message);
            ImageResult {
                digest: None,
                reason: Some(error.message.clone()),
                error: Some(error),
                via: Some(shared.via),
                ..item_result(item, ImageStatus::Failed)
            }
        }
    };
    context.events.item(serde_json::to_value(&result).unwrap_or_default());
    Ok(result)
}

async fn push_with_source(item: &PlanItem, prefetched: Option<Prefetch>, shared: &SharedJob) -> Result<ImageResult> {
    let authorization = match find_authorization(&shared.authorizations, item) {
        Ok(authorization) => authorization,
        Err(error) => {
            if let Some(prefetch) = prefetched {
                prefetch.stop().await;
            }
            return Err(error);
        }
    };
    let source = match prefetched {
        Some(prefetch) => Some(prefetch.source().await?),
        None if shared.via == Via::Docker => None,
        None => {
            let spec = shared.sources.get(item, shared.request.docker.host.as_deref())?;
            let options = source_options(&shared.request);
            Some(shared.context.run_cancellable(crate::source::open_with(&spec, &options, &shared.context.cancel)).await?)
        }
    };
    push_one(
        item,
        authorization,
        shared.via,
        shared.docker.as_ref(),
        source,
        &shared.request,
        &shared.config,
        Arc::clone(&shared.slots),
        &shared.context,
        shared.overall,
    )
    .await
}

/// A source opened in a task of its own, its plan made (which exports an
/// engine image). The task stops when this is dropped unused.
struct Prefetch(tokio::task::JoinHandle<Result<Box<dyn ImageSource>>>);

impl Prefetch {
    async fn source(mut self) -> Result<Box<dyn ImageSource>> {
        (&mut self.0).await.unwrap_or_else(|error| Err(Error::internal(format!("Opening an image source failed: {error}."))))
    }

    /// Stops the task and waits until it has dropped the source and its
    /// export file.
    async fn stop(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Opens the sources of the images that are pushed first and makes their
/// plans in the background.
fn prefetch_sources(
    to_push: &[&PlanItem],
    sources: &sources::SourceMap,
    request: &PushRequest,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<HashMap<usize, Prefetch>> {
    let mut prefetched = HashMap::new();
    for (index, item) in to_push.iter().enumerate().take(MAX_CONCURRENT_IMAGES) {
        let spec = sources.get(item, request.docker.host.as_deref())?;
        let options = source_options(request);
        let cancel = cancel.clone();
        let task = async move {
            let source = crate::source::open_with(&spec, &options, &cancel).await?;
            tokio::select! {
                _ = cancel.cancelled() => return Err(Error::cancelled()),
                plan = source.plan(&cancel) => plan?,
            };
            Ok(source)
        };
        let handle = tokio::spawn(tracing::Instrument::instrument(task, tracing::Span::current()));
        prefetched.insert(index, Prefetch(handle));
    }
    Ok(prefetched)
}

/// Returns the source settings of a request.
fn source_options(request: &PushRequest) -> SourceOptions {
    SourceOptions { gzip_level: request.compression_level.unwrap_or(DEFAULT_GZIP_LEVEL), ..SourceOptions::default() }
}

/// Rejects option combinations and files that would fail every image later.
fn validate(request: &PushRequest) -> Result<()> {
    if let Some(level) = request.compression_level.filter(|level| !(1..=MAX_GZIP_LEVEL).contains(level)) {
        return Err(Error::invalid(
            "InvalidCompressionLevel",
            format!(
                "The compression level {level} is out of range: use 1 (fastest) to {MAX_GZIP_LEVEL} (smallest); the default is {DEFAULT_GZIP_LEVEL}."
            ),
        )
        .with_target(level.to_string()));
    }
    if request.via == Via::Docker && !request.sources.is_empty() {
        return Err(Error::invalid(
            "SourceNeedsNativePush",
            "Image sources (-Source) are read by the native push only, and the docker engine pushes its own images: drop -Via Docker, or drop -Source.",
        ));
    }
    if let Some(ca_file) = &request.ca_file {
        if !ca_file.is_file() {
            return Err(Error::not_found(
                "CaFileNotFound",
                format!("The CA file {} does not exist: pass the path of a PEM certificate file to -CaFile.", ca_file.display()),
            )
            .with_target(ca_file.display().to_string()));
        }
    }
    Ok(())
}

/// Checks that the registry stored the manifest an image reference pins.
///
/// A pinned digest names exact manifest bytes. The engine's export holds
/// layers uncompressed, so compressing them again gives other bytes, and
/// the registry then holds another digest than the one the compose file pins.
fn check_pinned_digest(item: &PlanItem, pushed: &str) -> Result<()> {
    match &item.digest {
        Some(pinned) if pinned != pushed => Err(Error::new(
            EcrStatus::Registry,
            "DigestMismatch",
            format!(
                "{} pins {pinned}, but the push produced {pushed}, because the layers were compressed again. Push a tagged reference instead, or give the OCI layout that holds the original blobs with -Source.",
                item.reference
            ),
        )
        .with_target(item.reference.clone())),
        _ => Ok(()),
    }
}

/// Pushes one image by the chosen path.
#[allow(clippy::too_many_arguments)]
async fn push_one(
    item: &PlanItem,
    authorization: &RegistryAuthorization,
    via: Via,
    docker: Option<&bollard::Docker>,
    source: Option<Box<dyn ImageSource>>,
    request: &PushRequest,
    config: &aws_types::SdkConfig,
    slots: Arc<Semaphore>,
    context: &OperationContext,
    overall: u32,
) -> Result<ImageResult> {
    if let Some(docker) = docker {
        if item.tag.is_none() {
            return Err(Error::invalid(
                "TagRequired",
                format!("{} has a digest but no tag, and the docker engine pushes tags only: add a tag, or drop -Via Docker.", item.reference),
            )
            .with_target(item.reference.clone()));
        }
        let digest = context.run_cancellable(engine::push_image(docker, item, authorization, context, overall)).await?;
        check_pinned_digest(item, &digest)?;
        return Ok(ImageResult { digest: Some(digest), via: Some(via), ..item_result(item, ImageStatus::Pushed) });
    }
    let source = source.ok_or_else(|| Error::internal(format!("No image source was opened for {}.", item.reference)))?;
    let settings = native::NativeSettings {
        source,
        ca_file: request.ca_file.as_deref(),
        options: PushOptions { upload_slots: Some(slots), ..PushOptions::default() },
        config,
    };
    let outcome = context.run_cancellable(native::push_image(item, authorization, settings, context, overall)).await?;
    check_pinned_digest(item, &outcome.digest)?;
    Ok(ImageResult {
        digest: Some(outcome.digest),
        via: Some(via),
        bytes_uploaded: outcome.bytes_uploaded,
        blobs_uploaded: outcome.blobs_uploaded,
        blobs_skipped: outcome.blobs_skipped,
        ..item_result(item, ImageStatus::Pushed)
    })
}

fn find_authorization<'a>(authorizations: &'a [RegistryAuthorization], item: &PlanItem) -> Result<&'a RegistryAuthorization> {
    let host = item.registry.as_ref().map(|registry| registry.host.as_str()).unwrap_or_default();
    authorizations
        .iter()
        .find(|authorization| authorization.registry.host == host)
        .ok_or_else(|| Error::internal(format!("No authorization was requested for the registry '{host}'.")))
}

fn item_result(item: &PlanItem, status: ImageStatus) -> ImageResult {
    ImageResult {
        services: item.services.clone(),
        reference: item.reference.clone(),
        registry: item.registry.as_ref().map(|registry| registry.host.clone()),
        repository: item.repository.clone(),
        tag: item.tag.clone(),
        digest: item.digest.clone(),
        status,
        reason: None,
        error: None,
        via: None,
        bytes_uploaded: 0,
        blobs_uploaded: 0,
        blobs_skipped: 0,
    }
}

fn settled_result(item: &PlanItem) -> ImageResult {
    match &item.action {
        Action::SkipNotEcr => ImageResult {
            reason: Some(format!("{} is not an ECR registry image; map its host with -RegistryAlias to push it.", item.reference)),
            ..item_result(item, ImageStatus::Skipped)
        },
        Action::SkipBuildOnly => ImageResult {
            reason: Some("The service has a build section but no image name, so it has no registry to go to.".to_owned()),
            ..item_result(item, ImageStatus::Skipped)
        },
        Action::Fail { error } => ImageResult {
            digest: None,
            reason: Some(error.message.clone()),
            error: Some(error.clone()),
            ..item_result(item, ImageStatus::Failed)
        },
        Action::Push => item_result(item, ImageStatus::Planned),
    }
}

fn finish(images: Vec<ImageResult>, started: Instant) -> PushResult {
    let count = |status: ImageStatus| images.iter().filter(|image| image.status == status).count();
    let summary = PushSummary {
        pushed: count(ImageStatus::Pushed),
        skipped: count(ImageStatus::Skipped),
        failed: count(ImageStatus::Failed),
        planned: count(ImageStatus::Planned),
        bytes_uploaded: images.iter().map(|image| image.bytes_uploaded).sum(),
        seconds: started.elapsed().as_secs_f64(),
    };
    PushResult { images, summary }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_level_out_of_range_is_rejected() {
        for level in [0, MAX_GZIP_LEVEL + 1] {
            let request = PushRequest { compression_level: Some(level), ..PushRequest::default() };
            let error = validate(&request).unwrap_err();
            assert_eq!(error.error_id, "InvalidCompressionLevel");
            assert!(error.message.contains(&format!("level {level} ")), "{}", error.message);
        }
        for level in [1, DEFAULT_GZIP_LEVEL, MAX_GZIP_LEVEL] {
            let request = PushRequest { compression_level: Some(level), ..PushRequest::default() };
            assert!(validate(&request).is_ok());
            assert_eq!(source_options(&request).gzip_level, level);
        }
    }
}
