//! The push operation: read the compose project, plan, authorize against
//! each ECR registry, push every image and report one result per image.

mod engine;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::aws::{self, AwsOptions, SessionCredentials};
use crate::compose::{self, LoadOptions};
use crate::error::{Error, Result};
use crate::events::ProgressEvent;
use crate::login::{self, DockerOptions, RegistryAuthorization};
use crate::operation::OperationContext;
use crate::plan::{self, Action, PlanItem, PlanOptions};
use crate::registry::RegistryAliases;

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
    /// Why the image was skipped.
    pub reason: Option<String>,
    /// Why the image failed.
    pub error: Option<Error>,
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
    let project = compose::load(&LoadOptions {
        files: request.compose_files.clone(),
        working_dir: request.working_directory.clone(),
        project_directory: request.project_directory.clone(),
        env_files: request.env_files.clone(),
        profiles: request.profiles.clone(),
        environment: None,
    })?;
    let mut aliases = RegistryAliases::new(request.registry_aliases.clone())?;
    aliases.merge_missing(&project.registry_aliases);
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

    let config = aws::load_config(&request.aws, request.credentials.as_ref()).await?;
    let authorizations = login::authorize(&config, &plan.registries, context).await?;
    let docker = engine::connect(request.docker.host.as_deref()).await?;
    let overall = context.events.next_progress_id();
    for (index, item) in to_push.iter().enumerate() {
        context.events.progress(&ProgressEvent {
            id: overall,
            activity: "Pushing compose images".to_owned(),
            status: format!("Image {} of {}: {}", index + 1, to_push.len(), item.reference),
            percent: (index * 100 / to_push.len()) as i32,
            ..ProgressEvent::default()
        });
        let authorization = find_authorization(&authorizations, item)?;
        let outcome = context
            .run_cancellable(engine::push_image(&docker, item, authorization, context, overall))
            .await;
        let result = match outcome {
            Ok(digest) => {
                tracing::info!(reference = %item.reference, digest = %digest, "pushed");
                ImageResult { digest: Some(digest), ..item_result(item, ImageStatus::Pushed) }
            }
            Err(error) if error.status == crate::error::EcrStatus::Cancelled => return Err(error),
            Err(error) => {
                tracing::error!(reference = %item.reference, error = %error.message, "push failed");
                ImageResult { error: Some(error), ..item_result(item, ImageStatus::Failed) }
            }
        };
        context.events.item(serde_json::to_value(&result).unwrap_or_default());
        images.push(result);
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
        Action::Fail { error } => ImageResult { error: Some(error.clone()), ..item_result(item, ImageStatus::Failed) },
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
        seconds: started.elapsed().as_secs_f64(),
    };
    PushResult { images, summary }
}
