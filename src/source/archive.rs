//! A docker-archive tar file, as `docker save` and the Engine API export write it.
//!
//! The archive has a `manifest.json` that lists, per image, its config file,
//! its tags and its layer files. Docker up to version 24 names them
//! `<hex>.json` and `<id>/layer.tar`; later versions also lay the archive out
//! as an OCI layout and name them `blobs/sha256/<hex>`. Layers are usually
//! uncompressed tars: they are gzip-compressed on the way to the registry
//! and listed in a docker v2 schema 2 manifest. A layer that is already
//! gzip-compressed is pushed as it is.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::cache::DigestCache;
use super::compress::{DEFAULT_GZIP_LEVEL, UncompressedLayer, gzip_layer};
use super::digest::{parse_digest, sha256_digest};
use super::{
    BlobReader, DOCKER_IMAGE_CONFIG, DOCKER_LAYER_GZIP, DigestOrigin, ImagePlan, ImageSource,
    ManifestBody, PlannedBlob, PlannedManifest, file_error, read_file_range,
};
use crate::error::{EcrStatus, Error, Result};

/// Largest image config read, in bytes; configs with a long history stay
/// far below this.
const MAX_CONFIG_SIZE: u64 = 32 * 1024 * 1024;
/// Largest `manifest.json` read, in bytes.
const MAX_ARCHIVE_MANIFEST_SIZE: u64 = 16 * 1024 * 1024;
/// Links followed in a row before the archive counts as broken.
const MAX_LINK_DEPTH: usize = 16;
/// Key prefix of layers in a plan.
const LAYER_KEY_PREFIX: &str = "layer:";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveImage {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
    #[serde(default)]
    layer_sources: Option<HashMap<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct ImageConfig {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// Byte range of a file inside the tar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    offset: u64,
    length: u64,
}

#[derive(Clone, Debug)]
enum TarItem {
    File(Span),
    /// A symbolic link, relative to the entry's folder.
    Symlink(String),
    /// A hard link, relative to the archive's root.
    HardLink(String),
}

/// Index of the files in a tar, for reading them by name later.
struct TarIndex {
    items: HashMap<String, TarItem>,
}

impl TarIndex {
    fn build(path: &Path) -> Result<TarIndex> {
        let file = File::open(path).map_err(|error| file_error(path, "open", &error))?;
        let mut archive = tar::Archive::new(BufReader::new(file));
        let entries = archive
            .entries_with_seek()
            .map_err(|error| archive_error(path, &format!("it is not a tar file ({error})")))?;
        let mut items = HashMap::new();
        for entry in entries {
            let entry = entry.map_err(|error| {
                archive_error(path, &format!("it is not a valid tar file ({error})"))
            })?;
            let name = entry.path().map_err(|error| {
                archive_error(path, &format!("an entry has an invalid name ({error})"))
            })?;
            let name = normalize(&name.to_string_lossy());
            let link = || {
                entry
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|target| target.to_string_lossy().into_owned())
            };
            let item = match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => TarItem::File(Span {
                    offset: entry.raw_file_position(),
                    length: entry.size(),
                }),
                tar::EntryType::Symlink => match link() {
                    Some(target) => TarItem::Symlink(target),
                    None => continue,
                },
                tar::EntryType::Link => match link() {
                    Some(target) => TarItem::HardLink(target),
                    None => continue,
                },
                _ => continue,
            };
            items.insert(name, item);
        }
        Ok(TarIndex { items })
    }

    /// Finds a file by name, following links.
    fn resolve(&self, name: &str) -> Option<Span> {
        let mut current = normalize(name);
        for _ in 0..MAX_LINK_DEPTH {
            match self.items.get(&current)? {
                TarItem::File(span) => return Some(*span),
                TarItem::HardLink(target) => current = normalize(target),
                TarItem::Symlink(target) => {
                    let folder = current.rsplit_once('/').map_or("", |(folder, _)| folder);
                    current = normalize(&format!("{folder}/{target}"));
                }
            }
        }
        None
    }
}

/// Normalizes a path inside the archive: no leading `./` or `/`, no `.` and
/// resolved `..` parts.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    parts.join("/")
}

/// A layer file of the archive.
#[derive(Clone, Debug)]
struct ArchiveLayer {
    diff_id: String,
    span: Span,
    /// Some when the file is already gzip-compressed. It then contains the
    /// file's digest if the file name gives it (`blobs/sha256/<hex>`).
    gzip_digest: Option<Option<String>>,
}

/// An image in a docker-archive tar file.
pub struct ArchiveSource {
    path: PathBuf,
    name: String,
    cache: DigestCache,
    config_digest: String,
    config_span: Span,
    layers: Vec<ArchiveLayer>,
    gzip_level: u8,
    /// Keeps a temporary file, such as an engine export, alive as long as the source.
    _spool: Option<Arc<tempfile::TempPath>>,
}

impl ArchiveSource {
    /// Indexes a docker-archive tar file and picks the image named `image`.
    pub async fn open(path: &Path, image: Option<&str>, cache: DigestCache) -> Result<Self> {
        let path = path.to_path_buf();
        let image = image.map(str::to_owned);
        let name = match &image {
            Some(image) => format!("{image} in {}", path.display()),
            None => path.display().to_string(),
        };
        tokio::task::spawn_blocking(move || {
            Self::open_blocking(path, image.as_deref(), cache, name, None)
        })
        .await
        .map_err(|error| Error::internal(format!("Reading the archive stopped: {error}.")))?
    }

    /// Sets the gzip level of the layers that are compressed on the way.
    pub(crate) fn with_gzip_level(mut self, level: u8) -> Self {
        self.gzip_level = level;
        self
    }

    /// Opens a spooled engine export of one image; the file is deleted with
    /// the source.
    pub(crate) async fn open_spooled(
        spool: tempfile::TempPath,
        cache: DigestCache,
        name: String,
    ) -> Result<Self> {
        let path = spool.to_path_buf();
        let spool = Arc::new(spool);
        tokio::task::spawn_blocking(move || {
            Self::open_blocking(path, None, cache, name, Some(spool))
        })
        .await
        .map_err(|error| Error::internal(format!("Reading the engine export stopped: {error}.")))?
    }

    fn open_blocking(
        path: PathBuf,
        image: Option<&str>,
        cache: DigestCache,
        name: String,
        spool: Option<Arc<tempfile::TempPath>>,
    ) -> Result<Self> {
        let index = TarIndex::build(&path)?;
        let manifest_span = index
            .resolve("manifest.json")
            .ok_or_else(|| archive_error(&path, "it has no manifest.json"))?;
        if manifest_span.length > MAX_ARCHIVE_MANIFEST_SIZE {
            return Err(archive_error(&path, "its manifest.json is too large"));
        }
        let manifest = read_span(&path, manifest_span)?;
        let images: Vec<ArchiveImage> = serde_json::from_slice(&manifest).map_err(|error| {
            archive_error(&path, &format!("its manifest.json is invalid ({error})"))
        })?;
        let selected = select_image(&path, &images, image)?;
        if selected
            .layer_sources
            .as_ref()
            .is_some_and(|sources| !sources.is_empty())
        {
            return Err(Error::invalid(
                "ForeignLayersUnsupported",
                format!(
                    "The image in {} has foreign layers, which cannot be pushed from an archive. Push it with docker instead.",
                    path.display()
                ),
            ));
        }

        let config_span = index.resolve(&selected.config).ok_or_else(|| {
            archive_error(
                &path,
                &format!("it lacks the config file {}", selected.config),
            )
        })?;
        if config_span.length > MAX_CONFIG_SIZE {
            return Err(archive_error(
                &path,
                &format!("the config file {} is too large", selected.config),
            ));
        }
        let config_bytes = read_span(&path, config_span)?;
        let config_digest = sha256_digest(&config_bytes);
        let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|error| {
            archive_error(
                &path,
                &format!("the config file {} is invalid ({error})", selected.config),
            )
        })?;
        if config.rootfs.diff_ids.len() != selected.layers.len() {
            return Err(archive_error(
                &path,
                &format!(
                    "its config lists {} layers but manifest.json lists {}",
                    config.rootfs.diff_ids.len(),
                    selected.layers.len()
                ),
            ));
        }

        let mut layers = Vec::with_capacity(selected.layers.len());
        for (layer_path, diff_id) in selected.layers.iter().zip(&config.rootfs.diff_ids) {
            parse_digest(diff_id)?;
            let span = index.resolve(layer_path).ok_or_else(|| {
                archive_error(&path, &format!("it lacks the layer file {layer_path}"))
            })?;
            let gzip_digest = match detect_compression(&path, span)? {
                LayerCompression::None => None,
                LayerCompression::Gzip => Some(digest_from_blob_path(layer_path)),
                LayerCompression::Zstd => {
                    return Err(Error::invalid(
                        "ZstdLayerUnsupported",
                        format!(
                            "The layer {layer_path} in {} is zstd-compressed, which a docker v2 manifest cannot list. Save the image with gzip or uncompressed layers.",
                            path.display()
                        ),
                    ));
                }
            };
            layers.push(ArchiveLayer {
                diff_id: diff_id.clone(),
                span,
                gzip_digest,
            });
        }

        Ok(ArchiveSource {
            path,
            name,
            cache,
            config_digest,
            config_span,
            layers,
            gzip_level: DEFAULT_GZIP_LEVEL,
            _spool: spool,
        })
    }

    /// Digest of the image config (the image id of the classic docker store).
    pub(crate) fn config_digest(&self) -> &str {
        &self.config_digest
    }

    /// Size of the image config in bytes.
    pub(crate) fn config_size(&self) -> u64 {
        self.config_span.length
    }

    fn layer(&self, key: &str) -> Option<&ArchiveLayer> {
        let diff_id = key.strip_prefix(LAYER_KEY_PREFIX)?;
        self.layers.iter().find(|layer| layer.diff_id == diff_id)
    }
}

/// Returns the plan key of the layer with this diff id.
pub(crate) fn layer_key(diff_id: &str) -> String {
    format!("{LAYER_KEY_PREFIX}{diff_id}")
}

/// Builds the plan of a docker image: its config, then its layers, in one
/// docker v2 schema 2 manifest.
pub(crate) fn docker_image_plan(config: PlannedBlob, layers: Vec<PlannedBlob>) -> ImagePlan {
    let mut blobs = vec![config];
    let mut order = Vec::with_capacity(layers.len());
    for layer in layers {
        let index = match blobs.iter().position(|blob| blob.key == layer.key) {
            Some(index) => index,
            None => {
                blobs.push(layer);
                blobs.len() - 1
            }
        };
        order.push(index);
    }
    let all = (0..blobs.len()).collect();
    ImagePlan {
        blobs,
        manifests: vec![PlannedManifest {
            media_type: super::DOCKER_MANIFEST_V2.to_owned(),
            body: ManifestBody::DockerV2 {
                config: 0,
                layers: order,
            },
            blobs: all,
        }],
    }
}

/// Plans an uncompressed layer: its digest comes from the cache, if there.
pub(crate) fn planned_uncompressed_layer(
    cache: &DigestCache,
    diff_id: &str,
    length: u64,
) -> PlannedBlob {
    let cached = cache.layer(diff_id);
    PlannedBlob {
        key: layer_key(diff_id),
        media_type: DOCKER_LAYER_GZIP.to_owned(),
        digest: cached
            .as_ref()
            .map(|entry| (entry.digest.clone(), DigestOrigin::Cached)),
        size: cached.as_ref().map(|entry| entry.size),
        estimated_size: cached.map_or(length, |entry| entry.size),
        foreign: false,
    }
}

#[async_trait]
impl ImageSource for ArchiveSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn plan(&self, _cancel: &CancellationToken) -> Result<ImagePlan> {
        let config = PlannedBlob {
            key: self.config_digest.clone(),
            media_type: DOCKER_IMAGE_CONFIG.to_owned(),
            digest: Some((self.config_digest.clone(), DigestOrigin::Exact)),
            size: Some(self.config_span.length),
            estimated_size: self.config_span.length,
            foreign: false,
        };
        let layers = self
            .layers
            .iter()
            .map(|layer| match &layer.gzip_digest {
                None => planned_uncompressed_layer(&self.cache, &layer.diff_id, layer.span.length),
                Some(digest) => PlannedBlob {
                    key: layer_key(&layer.diff_id),
                    media_type: DOCKER_LAYER_GZIP.to_owned(),
                    digest: digest.clone().map(|digest| (digest, DigestOrigin::Exact)),
                    size: Some(layer.span.length),
                    estimated_size: layer.span.length,
                    foreign: false,
                },
            })
            .collect();
        Ok(docker_image_plan(config, layers))
    }

    async fn open_blob(
        &self,
        blob: &PlannedBlob,
        cancel: &CancellationToken,
    ) -> Result<BlobReader> {
        if blob.key == self.config_digest {
            return read_file_range(&self.path, self.config_span.offset, self.config_span.length)
                .await;
        }
        let layer = self.layer(&blob.key).ok_or_else(|| {
            Error::internal(format!(
                "The archive {} has no blob {}.",
                self.path.display(),
                blob.key
            ))
        })?;
        match layer.gzip_digest {
            Some(_) => read_file_range(&self.path, layer.span.offset, layer.span.length).await,
            None => Ok(gzip_layer(
                UncompressedLayer {
                    path: self.path.clone(),
                    offset: layer.span.offset,
                    length: layer.span.length,
                    diff_id: layer.diff_id.clone(),
                },
                self.gzip_level,
                cancel.clone(),
            )),
        }
    }

    async fn blob_stored(&self, blob: &PlannedBlob, digest: &str, size: u64) -> Result<()> {
        let compressed_here = self
            .layer(&blob.key)
            .filter(|layer| layer.gzip_digest.is_none());
        if let Some(layer) = compressed_here {
            self.cache.record_layer(&layer.diff_id, digest, size).await;
        }
        Ok(())
    }
}

fn select_image<'a>(
    path: &Path,
    images: &'a [ArchiveImage],
    requested: Option<&str>,
) -> Result<&'a ArchiveImage> {
    let tags = || {
        let tags: Vec<&str> = images
            .iter()
            .flat_map(|image| image.repo_tags.iter().flatten().map(String::as_str))
            .collect();
        if tags.is_empty() {
            "no tags".to_owned()
        } else {
            tags.join(", ")
        }
    };
    if let [only] = images {
        let matches = requested.is_none_or(|requested| {
            let tags = only.repo_tags.as_deref().unwrap_or_default();
            tags.is_empty() || tags.iter().any(|tag| same_tag(tag, requested))
        });
        if matches {
            return Ok(only);
        }
    }
    let Some(requested) = requested else {
        return Err(if images.is_empty() {
            archive_error(path, "its manifest.json lists no image")
        } else {
            Error::invalid(
                "ArchiveImageRequired",
                format!(
                    "The archive {} contains {} images ({}). Name the one to push.",
                    path.display(),
                    images.len(),
                    tags()
                ),
            )
        });
    };
    images
        .iter()
        .find(|image| {
            image
                .repo_tags
                .iter()
                .flatten()
                .any(|tag| same_tag(tag, requested))
        })
        .ok_or_else(|| {
            Error::not_found(
                "ArchiveImageNotFound",
                format!(
                    "The archive {} has no image tagged '{requested}'. It contains: {}.",
                    path.display(),
                    tags()
                ),
            )
            .with_target(requested.to_owned())
        })
}

/// Compares tags, taking a name without a tag as `:latest`.
fn same_tag(tag: &str, requested: &str) -> bool {
    let with_latest = |name: &str| {
        let last = name.rsplit('/').next().unwrap_or(name);
        if last.contains(':') || name.contains('@') {
            name.to_owned()
        } else {
            format!("{name}:latest")
        }
    };
    tag == requested || with_latest(tag) == with_latest(requested)
}

enum LayerCompression {
    None,
    Gzip,
    Zstd,
}

fn detect_compression(path: &Path, span: Span) -> Result<LayerCompression> {
    let mut magic = [0u8; 4];
    let prefix_length = span.length.min(4) as usize;
    let mut file = File::open(path).map_err(|error| file_error(path, "open", &error))?;
    file.seek(SeekFrom::Start(span.offset))
        .and_then(|_| file.read_exact(&mut magic[..prefix_length]))
        .map_err(|error| file_error(path, "read", &error))?;
    Ok(match &magic[..prefix_length] {
        [0x1f, 0x8b, ..] => LayerCompression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => LayerCompression::Zstd,
        _ => LayerCompression::None,
    })
}

/// Returns `sha256:<hex>` for a file named `blobs/sha256/<hex>`.
fn digest_from_blob_path(layer_path: &str) -> Option<String> {
    let normalized = normalize(layer_path);
    let rest = normalized.strip_prefix("blobs/")?;
    let (algorithm, hex) = rest.split_once('/')?;
    let digest = format!("{algorithm}:{hex}");
    parse_digest(&digest).ok()?;
    Some(digest)
}

fn read_span(path: &Path, span: Span) -> Result<Vec<u8>> {
    let mut file = File::open(path).map_err(|error| file_error(path, "open", &error))?;
    let mut bytes = vec![0u8; span.length as usize];
    file.seek(SeekFrom::Start(span.offset))
        .and_then(|_| file.read_exact(&mut bytes))
        .map_err(|error| file_error(path, "read", &error))?;
    Ok(bytes)
}

fn archive_error(path: &Path, problem: &str) -> Error {
    Error::new(
        EcrStatus::InvalidRequest,
        "InvalidDockerArchive",
        format!(
            "The file {} is not a valid docker archive: {problem}.",
            path.display()
        ),
    )
    .with_target(path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_resolves_parent() {
        assert_eq!(normalize("./abc/../def/layer.tar"), "def/layer.tar");
    }

    #[test]
    fn same_tag_adds_latest() {
        assert!(same_tag("app:latest", "app"));
    }

    #[test]
    fn same_tag_keeps_registry_port() {
        assert!(!same_tag("localhost:5000/app:1", "localhost:5000/app"));
    }

    #[test]
    fn digest_from_blob_path_reads_oci_name() {
        let hex = "a".repeat(64);
        assert_eq!(
            digest_from_blob_path(&format!("blobs/sha256/{hex}")),
            Some(format!("sha256:{hex}"))
        );
    }

    #[test]
    fn digest_from_blob_path_ignores_legacy_name() {
        assert_eq!(digest_from_blob_path("abc/layer.tar"), None);
    }

    #[test]
    fn image_plan_deduplicates_layers() {
        let cache = DigestCache::in_memory();
        let config = PlannedBlob {
            key: "sha256:c".to_owned(),
            media_type: DOCKER_IMAGE_CONFIG.to_owned(),
            digest: None,
            size: Some(1),
            estimated_size: 1,
            foreign: false,
        };
        let layer = planned_uncompressed_layer(&cache, "sha256:d", 10);
        let plan = docker_image_plan(config, vec![layer.clone(), layer]);
        assert_eq!(plan.blobs.len(), 2);
        assert_eq!(
            plan.manifests[0].body,
            ManifestBody::DockerV2 {
                config: 0,
                layers: vec![1, 1]
            }
        );
    }
}
