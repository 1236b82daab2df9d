//! Pushing through the Docker Engine API, with the registry credentials sent
//! in the request's `X-Registry-Auth` header, so nothing is written to disk.

use std::sync::LazyLock;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::PushImageOptionsBuilder;
use futures_util::StreamExt;
use regex::Regex;

use crate::error::{EcrStatus, Error, Result};
use crate::events::ProgressEvent;
use crate::login::RegistryAuthorization;
use crate::operation::OperationContext;
use crate::plan::PlanItem;

/// Seconds bollard waits for an engine response before giving up.
const ENGINE_TIMEOUT_SECONDS: u64 = 600;

/// The engine's last status line of a push: `<tag>: digest: sha256:… size: N`.
static DIGEST_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"digest: (sha256:[0-9a-f]{64})").expect("digest pattern is valid"));

/// Connects to the engine at `host` (`DOCKER_HOST` or the platform's default
/// socket otherwise) and agrees on an API version.
pub async fn connect(host: Option<&str>) -> Result<Docker> {
    let address = host
        .map(str::to_owned)
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|value| !value.is_empty()))
        .unwrap_or_else(|| default_host().to_owned());
    let unreachable = |detail: String| {
        Error::new(
            EcrStatus::Network,
            "DockerEngineUnreachable",
            format!("Could not reach the docker engine at {address}: {detail}. Start docker, or pass -DockerHost / set DOCKER_HOST."),
        )
        .with_target(address.clone())
    };
    let docker = Docker::connect_with_host(&address)
        .map_err(|error| unreachable(error.to_string()))?
        .with_timeout(std::time::Duration::from_secs(ENGINE_TIMEOUT_SECONDS));
    docker.negotiate_version().await.map_err(|error| unreachable(error.to_string()))
}

fn default_host() -> &'static str {
    if cfg!(windows) { "npipe:////./pipe/docker_engine" } else { "unix:///var/run/docker.sock" }
}

/// Pushes one image through the engine and returns the manifest digest.
pub async fn push_image(
    docker: &Docker,
    item: &PlanItem,
    authorization: &RegistryAuthorization,
    context: &OperationContext,
    parent_progress: u32,
) -> Result<String> {
    let reference = &item.reference;
    if let Err(error) = docker.inspect_image(reference).await {
        return Err(match error {
            bollard::errors::Error::DockerResponseServerError { status_code: 404, .. } => Error::not_found(
                "ImageNotFound",
                format!("The image {reference} is not in the docker engine: build or tag it first, for example with 'docker compose build'."),
            )
            .with_target(reference.clone()),
            other => Error::new(EcrStatus::Registry, "DockerEngineError", format!("The docker engine failed to inspect {reference}: {other}"))
                .with_target(reference.clone()),
        });
    }
    let (name, tag) = split_name_and_tag(item);
    let credentials = DockerCredentials {
        username: Some(authorization.username.clone()),
        password: Some(authorization.password.expose().to_owned()),
        serveraddress: Some(authorization.registry.host.clone()),
        ..DockerCredentials::default()
    };
    let options = PushImageOptionsBuilder::default().tag(&tag).build();
    let progress_id = context.events.next_progress_id();
    let activity = format!("Pushing {reference}");
    let mut stream = docker.push_image(&name, Some(options), Some(credentials));
    let mut digest = None;
    let mut layers_done = 0u32;
    while let Some(message) = stream.next().await {
        let info = message.map_err(|error| push_error(reference, &error))?;
        let Some(status) = info.status else { continue };
        if let Some(found) = DIGEST_LINE.captures(&status) {
            digest = Some(found[1].to_owned());
        }
        if status == "Pushed" || status == "Layer already exists" {
            layers_done += 1;
        }
        let detail = info.progress_detail.unwrap_or_default();
        let (current, total) = (detail.current.unwrap_or(0).max(0) as u64, detail.total.unwrap_or(0).max(0) as u64);
        context.events.progress(&ProgressEvent {
            id: progress_id,
            parent_id: parent_progress,
            activity: activity.clone(),
            status: format!("{status} ({layers_done} layers done)"),
            percent: (current * 100).checked_div(total).map_or(-1, |percent| percent.min(100) as i32),
            current_bytes: current,
            total_bytes: total,
            completed: false,
        });
    }
    context.events.progress(&ProgressEvent {
        id: progress_id,
        parent_id: parent_progress,
        activity,
        status: "Done".to_owned(),
        percent: 100,
        completed: true,
        ..ProgressEvent::default()
    });
    digest.ok_or_else(|| {
        Error::new(
            EcrStatus::Registry,
            "DigestMissing",
            format!("The docker engine finished pushing {reference} without reporting a digest."),
        )
        .with_target(reference.clone())
    })
}

/// Returns the name the engine pushes (`host/repository`) and the tag; the
/// caller has checked that the reference has a tag.
fn split_name_and_tag(item: &PlanItem) -> (String, String) {
    let host = item.registry.as_ref().map(|registry| registry.host.as_str()).unwrap_or_default();
    let name = format!("{host}/{}", item.repository);
    (name, item.tag.clone().unwrap_or_else(|| "latest".to_owned()))
}

fn push_error(reference: &str, error: &bollard::errors::Error) -> Error {
    let text = error.to_string();
    let lower = text.to_ascii_lowercase();
    let (status, id) = if lower.contains("unauthorized") || lower.contains("authentication required") || lower.contains("denied") {
        (EcrStatus::Authentication, "RegistryAuthenticationFailed")
    } else if lower.contains("connection refused") || lower.contains("no such host") || lower.contains("timeout") {
        (EcrStatus::Network, "RegistryUnreachable")
    } else {
        (EcrStatus::Registry, "RegistryPushFailed")
    };
    Error::new(status, id, format!("The docker engine failed to push {reference}: {text}")).with_target(reference.to_owned())
}
