//! Image sources: where the manifests and blobs of an image come from.
//!
//! Three kinds sit behind one trait, [`ImageSource`]:
//!
//! - the Docker Engine API image export (`GET /images/{name}/get`),
//! - an OCI image layout folder (`oci-layout`, `index.json`, `blobs/`),
//! - a docker-archive tar file, as `docker save` writes it.
//!
//! A source describes what to push as an [`ImagePlan`]. OCI layouts know every
//! digest in advance. Docker archives hold uncompressed layers, which are
//! compressed with gzip while they stream to the registry, so their digests
//! are known only once a layer has been uploaded; the manifest that lists
//! them is built afterwards ([`ManifestBody::DockerV2`]). A [`DigestCache`]
//! remembers the compressed digest of each uncompressed layer, so that a
//! later push can ask the registry for the blob before compressing again.

mod archive;
mod cache;
mod compress;
pub mod digest;
mod engine;
pub mod manifest;
mod oci_layout;

use std::path::PathBuf;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use tokio_util::sync::CancellationToken;

use crate::error::Result;

pub use cache::DigestCache;
pub use compress::{DEFAULT_GZIP_LEVEL, MAX_GZIP_LEVEL};

/// Media type of a docker v2 schema 2 image manifest.
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Media type of a docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Media type of a docker image configuration.
pub const DOCKER_IMAGE_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Media type of a gzip-compressed docker layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Media type of an OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Where the image to push comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// An image in a Docker engine, exported through the Engine API.
    Engine {
        /// Engine address such as `unix:///var/run/docker.sock`; `None` reads
        /// `DOCKER_HOST`, then uses the platform's default socket.
        docker_host: Option<String>,
        /// Image name, tag or id as the engine knows it, for example `app:1.0`.
        image: String,
    },
    /// An OCI image layout folder.
    OciLayout {
        /// Folder that contains `oci-layout` and `index.json`.
        path: PathBuf,
        /// Which manifest of `index.json` to push: its
        /// `org.opencontainers.image.ref.name` annotation, its
        /// `io.containerd.image.name` annotation or its digest. `None` takes
        /// the only manifest there is.
        reference: Option<String>,
    },
    /// A docker-archive tar file, as `docker save` writes it.
    DockerArchive {
        /// The tar file.
        path: PathBuf,
        /// Which image of the archive to push, by one of its `RepoTags`.
        /// `None` takes the only image there is.
        image: Option<String>,
    },
}

/// Settings shared by all sources.
#[derive(Clone, Debug)]
pub struct SourceOptions {
    /// Digest cache for compressed layers.
    pub cache: DigestCache,
    /// Folder for the temporary copy of an engine export; `None` uses the
    /// system's temporary folder.
    pub spool_dir: Option<PathBuf>,
    /// Gzip level of layers that are compressed on the way, from 1 to
    /// [`MAX_GZIP_LEVEL`].
    pub gzip_level: u8,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            cache: DigestCache::user_default(),
            spool_dir: None,
            gzip_level: DEFAULT_GZIP_LEVEL,
        }
    }
}

/// How the digest of a planned blob was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestOrigin {
    /// The digest names the exact bytes that [`ImageSource::open_blob`] returns.
    Exact,
    /// The digest comes from the [`DigestCache`]: it is a valid compressed
    /// form of the layer, but compressing again may give other bytes.
    Cached,
}

/// A blob that the image needs at the registry: a config or a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedBlob {
    /// Key that [`ImageSource::open_blob`] understands: a digest, or
    /// `layer:<diff id>` for a layer that is compressed on the way.
    pub key: String,
    /// Media type for the manifest's descriptor.
    pub media_type: String,
    /// Digest of the blob and where it came from; `None` until the blob has
    /// been compressed.
    pub digest: Option<(String, DigestOrigin)>,
    /// Size in bytes, when known in advance.
    pub size: Option<u64>,
    /// Size in bytes to show in progress while the real size is unknown
    /// (the uncompressed size of a layer).
    pub estimated_size: u64,
    /// True for a foreign layer (a descriptor with `urls`) that the source
    /// does not contain: the registry is not asked to store it.
    pub foreign: bool,
}

impl PlannedBlob {
    /// Returns the digest when it names the exact bytes of the blob.
    pub fn exact_digest(&self) -> Option<&str> {
        match &self.digest {
            Some((digest, DigestOrigin::Exact)) => Some(digest),
            _ => None,
        }
    }
}

/// The content of a manifest to push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestBody {
    /// Bytes pushed as they are, so the digest stays the same.
    Raw(Bytes),
    /// A docker v2 schema 2 manifest, built once its blobs are stored.
    /// The numbers index [`ImagePlan::blobs`].
    DockerV2 {
        /// The image configuration.
        config: usize,
        /// The layers, bottom first; a layer may appear twice.
        layers: Vec<usize>,
    },
}

/// A manifest to push: an image manifest or an index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedManifest {
    /// Media type sent as `Content-Type`.
    pub media_type: String,
    /// The content.
    pub body: ManifestBody,
    /// Blobs that must be at the registry first, as indexes into
    /// [`ImagePlan::blobs`].
    pub blobs: Vec<usize>,
}

/// Everything to push for one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImagePlan {
    /// Blobs, each listed once.
    pub blobs: Vec<PlannedBlob>,
    /// Manifests in push order: each comes after the manifests it refers
    /// to, and the last one is the image itself (the one that gets the tag).
    pub manifests: Vec<PlannedManifest>,
}

/// The bytes of a blob as a stream.
pub struct BlobReader {
    /// Exact size in bytes, when known before reading.
    pub size: Option<u64>,
    /// The bytes, in order; an error ends the stream.
    pub stream: BoxStream<'static, Result<Bytes>>,
}

/// A place to read an image from.
#[async_trait]
pub trait ImageSource: Send + Sync {
    /// Returns a short name for progress and errors: the image name, the
    /// file or the folder.
    fn name(&self) -> &str;

    /// Lists the blobs and manifests to push.
    async fn plan(&self, cancel: &CancellationToken) -> Result<ImagePlan>;

    /// Opens the bytes of a planned blob, compressed when the layer is
    /// stored uncompressed. The stream ends with an error when the content
    /// does not match the digest that the source expects.
    async fn open_blob(&self, blob: &PlannedBlob, cancel: &CancellationToken)
    -> Result<BlobReader>;

    /// Records the digest and size that a blob has at the registry. Sources
    /// that compress layers store them in their [`DigestCache`].
    async fn blob_stored(&self, _blob: &PlannedBlob, _digest: &str, _size: u64) -> Result<()> {
        Ok(())
    }
}

/// Opens an image source with the user's digest cache.
pub async fn open(spec: &SourceSpec, cancel: &CancellationToken) -> Result<Box<dyn ImageSource>> {
    open_with(spec, &SourceOptions::default(), cancel).await
}

/// Opens an image source with explicit options.
pub async fn open_with(
    spec: &SourceSpec,
    options: &SourceOptions,
    cancel: &CancellationToken,
) -> Result<Box<dyn ImageSource>> {
    match spec {
        SourceSpec::Engine { docker_host, image } => {
            let source =
                engine::EngineSource::open(docker_host.as_deref(), image, options, cancel).await?;
            Ok(Box::new(source))
        }
        SourceSpec::OciLayout { path, reference } => {
            let source = oci_layout::OciLayoutSource::open(path, reference.as_deref()).await?;
            Ok(Box::new(source))
        }
        SourceSpec::DockerArchive { path, image } => {
            let source =
                archive::ArchiveSource::open(path, image.as_deref(), options.cache.clone())
                    .await?
                    .with_gzip_level(options.gzip_level);
            Ok(Box::new(source))
        }
    }
}

/// Bytes read from a file per stream item.
const READ_BUFFER_SIZE: usize = 256 * 1024;

/// Opens `length` bytes of a file, from `offset`, as a blob stream.
pub(crate) async fn read_file_range(
    path: &std::path::Path,
    offset: u64,
    length: u64,
) -> Result<BlobReader> {
    use futures_util::TryStreamExt;
    use tokio::io::{AsyncReadExt, AsyncSeekExt};

    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|error| file_error(path, "open", &error))?;
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(|error| file_error(path, "read", &error))?;
    let shown = path.to_path_buf();
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(length), READ_BUFFER_SIZE)
        .map_err(move |error| file_error(&shown, "read", &error));
    Ok(BlobReader {
        size: Some(length),
        stream: Box::pin(stream),
    })
}

/// Maps an I/O error on a source file to an error that names the file.
pub(crate) fn file_error(
    path: &std::path::Path,
    action: &str,
    error: &std::io::Error,
) -> crate::Error {
    use crate::error::{EcrStatus, Error};

    let shown = path.display();
    match error.kind() {
        std::io::ErrorKind::NotFound => Error::not_found(
            "SourceFileNotFound",
            format!("Could not {action} {shown}: the file was not found. Check the path."),
        ),
        std::io::ErrorKind::PermissionDenied => Error::new(
            EcrStatus::Denied,
            "SourceFileDenied",
            format!("Could not {action} {shown}: permission denied. Check the file's permissions."),
        ),
        _ => Error::new(
            EcrStatus::InvalidRequest,
            "SourceFileUnreadable",
            format!("Could not {action} {shown}: {error}."),
        ),
    }
    .with_target(shown.to_string())
}
