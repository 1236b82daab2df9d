//! An image in a Docker engine, read through the Engine API.
//!
//! The image is inspected first (`GET /images/{name}/json`). Its export
//! (`GET /images/{name}/get`, a docker-archive tar stream) is copied to a
//! temporary file only when a blob has to be read: when the digest cache
//! knows the config and every layer of the image, and the registry has them
//! all, the push needs no export at all.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::archive::{ArchiveSource, docker_image_plan, planned_uncompressed_layer};
use super::digest::parse_digest;
use super::{
    BlobReader, DOCKER_IMAGE_CONFIG, DigestOrigin, ImagePlan, ImageSource, PlannedBlob,
    SourceOptions,
};
use crate::error::{EcrStatus, Error, Result};

/// Name prefix of the temporary copies of engine exports.
const EXPORT_PREFIX: &str = "ecr-compose-export-";
/// Age from which an export copy counts as left behind by a killed process.
/// A push that still reads its copy writes it less than this long ago.
const STALE_EXPORT_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Seconds bollard waits for the engine's response headers.
const ENGINE_TIMEOUT_SECONDS: u64 = 120;

// NOTE: docker CLI contexts (`docker context use`) are not read; an engine
// behind a context needs DOCKER_HOST or an explicit host.
#[cfg(windows)]
const DEFAULT_DOCKER_HOST: &str = "npipe:////./pipe/docker_engine";
#[cfg(not(windows))]
const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// An image in a Docker engine.
pub struct EngineSource {
    docker: Docker,
    host: String,
    image: String,
    name: String,
    image_id: String,
    diff_ids: Vec<String>,
    options: SourceOptions,
    export: OnceCell<Arc<ArchiveSource>>,
}

impl EngineSource {
    /// Connects to the engine, negotiates the API version and inspects the image.
    pub async fn open(
        docker_host: Option<&str>,
        image: &str,
        options: &SourceOptions,
        cancel: &CancellationToken,
    ) -> Result<Self> {
        let host = match docker_host {
            Some(host) => host.to_owned(),
            None => std::env::var("DOCKER_HOST")
                .ok()
                .filter(|host| !host.is_empty())
                .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_owned()),
        };
        let docker = connect(&host)?;
        let docker = cancellable(cancel, docker.negotiate_version())
            .await?
            .map_err(|error| engine_error(&host, "could not be reached", &error))?;

        let inspect = cancellable(cancel, docker.inspect_image(image)).await?.map_err(|error| {
            if is_not_found(&error) {
                Error::not_found(
                    "ImageNotFound",
                    format!("The image {image} was not found in the docker engine at {host}: build or pull it first, for example with 'docker compose build'."),
                )
                .with_target(image.to_owned())
            } else {
                engine_error(&host, &format!("could not inspect the image {image}"), &error)
            }
        })?;
        let image_id = inspect.id.unwrap_or_default();
        let diff_ids = inspect
            .root_fs
            .and_then(|root_fs| root_fs.layers)
            .unwrap_or_default();

        Ok(EngineSource {
            docker,
            name: image.to_owned(),
            host,
            image: image.to_owned(),
            image_id,
            diff_ids,
            options: options.clone(),
            export: OnceCell::new(),
        })
    }

    /// Returns the export, copying it from the engine on the first call.
    async fn exported(&self, cancel: &CancellationToken) -> Result<Arc<ArchiveSource>> {
        let archive = self
            .export
            .get_or_try_init(|| async {
                let spool = self.spool_export(cancel).await?;
                let name = self.name.clone();
                let archive = ArchiveSource::open_spooled(spool, self.options.cache.clone(), name)
                    .await?
                    .with_gzip_level(self.options.gzip_level);
                if archive.config_digest() == self.image_id {
                    self.options
                        .cache
                        .record_image_config(&self.image_id, archive.config_size())
                        .await;
                }
                Ok::<_, Error>(Arc::new(archive))
            })
            .await?;
        Ok(archive.clone())
    }

    /// Copies the image export into a temporary file.
    async fn spool_export(&self, cancel: &CancellationToken) -> Result<tempfile::TempPath> {
        let folder: PathBuf = self
            .options
            .spool_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        let spool_error = |error: std::io::Error| {
            Error::new(
                EcrStatus::InvalidRequest,
                "EngineExportSpoolFailed",
                format!(
                    "Could not write the export of {} to a temporary file in {}: {error}. Free some disk space.",
                    self.image,
                    folder.display()
                ),
            )
        };
        sweep_stale_exports(&folder);
        let temporary = tempfile::Builder::new()
            .prefix(EXPORT_PREFIX)
            .suffix(".tar")
            .tempfile_in(&folder)
            .map_err(spool_error)?;
        let (file, path) = temporary.into_parts();
        let mut file =
            tokio::io::BufWriter::with_capacity(1024 * 1024, tokio::fs::File::from_std(file));

        let started = std::time::Instant::now();
        tracing::debug!(image = %self.image, "exporting the image from the engine");
        let mut export = Box::pin(self.docker.export_image(&self.image));
        let mut length: u64 = 0;
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => return Err(Error::cancelled()),
                next = export.next() => next,
            };
            match next {
                Some(Ok(bytes)) => {
                    if length == 0 {
                        tracing::debug!(image = %self.image, seconds = started.elapsed().as_secs_f64(), "the export started");
                    }
                    length += bytes.len() as u64;
                    file.write_all(&bytes).await.map_err(spool_error)?;
                }
                Some(Err(error)) => {
                    return Err(engine_error(
                        &self.host,
                        &format!("could not export the image {}", self.image),
                        &error,
                    ));
                }
                None => break,
            }
        }
        file.flush().await.map_err(spool_error)?;
        tracing::debug!(image = %self.image, bytes = length, seconds = started.elapsed().as_secs_f64(), "exported the image");
        Ok(path)
    }

    /// Plans from the cache alone, when it knows the config and every layer.
    fn plan_from_cache(&self) -> Option<ImagePlan> {
        parse_digest(&self.image_id).ok()?;
        let config_size = self.options.cache.image_config_size(&self.image_id)?;
        let mut layers = Vec::with_capacity(self.diff_ids.len());
        for diff_id in &self.diff_ids {
            let layer = planned_uncompressed_layer(&self.options.cache, diff_id, 0);
            layer.digest.as_ref()?;
            layers.push(layer);
        }
        let config = PlannedBlob {
            key: self.image_id.clone(),
            media_type: DOCKER_IMAGE_CONFIG.to_owned(),
            digest: Some((self.image_id.clone(), DigestOrigin::Exact)),
            size: Some(config_size),
            estimated_size: config_size,
            foreign: false,
        };
        Some(docker_image_plan(config, layers))
    }
}

#[async_trait]
impl ImageSource for EngineSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn plan(&self, cancel: &CancellationToken) -> Result<ImagePlan> {
        if let Some(plan) = self.plan_from_cache() {
            return Ok(plan);
        }
        self.exported(cancel).await?.plan(cancel).await
    }

    async fn open_blob(
        &self,
        blob: &PlannedBlob,
        cancel: &CancellationToken,
    ) -> Result<BlobReader> {
        self.exported(cancel).await?.open_blob(blob, cancel).await
    }

    async fn blob_stored(&self, blob: &PlannedBlob, digest: &str, size: u64) -> Result<()> {
        // A blob that was uploaded was read from the export, so it exists.
        match self.export.get() {
            Some(archive) => archive.blob_stored(blob, digest, size).await,
            None => Ok(()),
        }
    }
}

/// Removes export copies older than [`STALE_EXPORT_AGE`] from `folder`, once
/// per folder and process. A process killed during a push (SIGTERM on a
/// cancelled CI job, SIGKILL) cannot delete its own copies.
fn sweep_stale_exports(folder: &Path) {
    static SWEPT: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    let first = SWEPT
        .get_or_init(|| Mutex::new(HashSet::new()))
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(folder.to_path_buf());
    if !first {
        return;
    }
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_export = name
            .to_str()
            .is_some_and(|name| name.starts_with(EXPORT_PREFIX) && name.ends_with(".tar"));
        let age = entry
            .metadata()
            .and_then(|metadata| metadata.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok());
        if is_export && age.is_some_and(|age| age > STALE_EXPORT_AGE) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(path = %entry.path().display(), "removed an export copy left by an earlier push")
                }
                Err(error) => {
                    tracing::debug!(path = %entry.path().display(), %error, "could not remove an old export copy")
                }
            }
        }
    }
}

fn connect(host: &str) -> Result<Docker> {
    let version = bollard::API_DEFAULT_VERSION;
    let connected = if host.starts_with("unix://") {
        #[cfg(unix)]
        {
            Docker::connect_with_unix(host, ENGINE_TIMEOUT_SECONDS, version)
        }
        #[cfg(not(unix))]
        {
            return Err(unsupported_host(host));
        }
    } else if host.starts_with("npipe://") {
        #[cfg(windows)]
        {
            Docker::connect_with_named_pipe(host, ENGINE_TIMEOUT_SECONDS, version)
        }
        #[cfg(not(windows))]
        {
            return Err(unsupported_host(host));
        }
    } else if host.starts_with("tcp://") || host.starts_with("http://") {
        Docker::connect_with_http(host, ENGINE_TIMEOUT_SECONDS, version)
    } else {
        return Err(unsupported_host(host));
    };
    connected.map_err(|error| engine_error(host, "could not be reached", &error))
}

fn unsupported_host(host: &str) -> Error {
    Error::invalid(
        "InvalidDockerHost",
        format!(
            "The docker host '{host}' is not supported: use unix://, npipe:// or tcp:// (TLS and ssh engines are not supported)."
        ),
    )
    .with_target(host.to_owned())
}

fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn engine_error(host: &str, problem: &str, error: &bollard::errors::Error) -> Error {
    let status = match error {
        bollard::errors::Error::RequestTimeoutError => EcrStatus::Timeout,
        bollard::errors::Error::DockerResponseServerError { .. } => EcrStatus::Registry,
        _ => EcrStatus::Network,
    };
    let error_id = if status == EcrStatus::Network {
        "DockerEngineUnreachable"
    } else {
        "DockerEngineError"
    };
    Error::new(
        status,
        error_id,
        format!("The docker engine at {host} {problem}: {error}. Check that the engine runs and DOCKER_HOST points at it."),
    )
    .with_target(host.to_owned())
}

async fn cancellable<T>(
    cancel: &CancellationToken,
    future: impl std::future::Future<Output = T>,
) -> Result<T> {
    tokio::select! {
        _ = cancel.cancelled() => Err(Error::cancelled()),
        value = future => Ok(value),
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn file_aged(folder: &Path, name: &str, age: Duration) -> PathBuf {
        let path = folder.join(name);
        let file = std::fs::File::create(&path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
        path
    }

    #[test]
    fn sweep_removes_only_old_exports() {
        let folder = tempfile::tempdir().unwrap();
        let day = Duration::from_secs(24 * 60 * 60);
        let old = file_aged(folder.path(), "ecr-compose-export-old.tar", day + day);
        let fresh = file_aged(folder.path(), "ecr-compose-export-new.tar", Duration::ZERO);
        let other = file_aged(folder.path(), "other-export-old.tar", day + day);
        sweep_stale_exports(folder.path());
        assert!(!old.exists(), "an export copy older than a day is removed");
        assert!(fresh.exists(), "a recent export copy stays");
        assert!(other.exists(), "a file of another program stays");
    }
}
