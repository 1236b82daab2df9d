//! An OCI image layout folder: `oci-layout`, `index.json` and `blobs/<alg>/<hex>`.
//!
//! Blobs and manifests are pushed byte for byte, so every digest stays the
//! same at the registry. An index is pushed with all of its children,
//! whatever their platform, attestation manifests included.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::digest::{StreamDigest, parse_digest, short_digest};
use super::manifest::{
    Descriptor, MAX_MANIFEST_SIZE, ManifestDocument, is_index_media_type, manifest_media_type,
};
use super::{
    BlobReader, DigestOrigin, ImagePlan, ImageSource, ManifestBody, PlannedBlob, PlannedManifest,
    file_error, read_file_range,
};
use crate::error::{Error, Result};

/// Annotation that names a manifest in `index.json` (OCI image spec).
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation that containerd and `docker save` write with the full image name.
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// Deepest nesting of indexes that is followed, as a guard against cycles.
const MAX_INDEX_DEPTH: usize = 8;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutMarker {
    image_layout_version: String,
}

#[derive(Deserialize)]
struct LayoutIndex {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// An image in an OCI image layout folder.
pub struct OciLayoutSource {
    root: PathBuf,
    name: String,
    top: Descriptor,
}

impl OciLayoutSource {
    /// Reads `oci-layout` and `index.json` and picks the manifest to push.
    pub async fn open(root: &Path, reference: Option<&str>) -> Result<Self> {
        let marker_path = root.join("oci-layout");
        let marker = tokio::fs::read(&marker_path).await.map_err(|error| {
            layout_error(
                root,
                &format!("its oci-layout file could not be read ({error})"),
            )
        })?;
        let marker: LayoutMarker = serde_json::from_slice(&marker).map_err(|error| {
            layout_error(root, &format!("its oci-layout file is invalid ({error})"))
        })?;
        if !marker.image_layout_version.starts_with("1.") {
            return Err(layout_error(
                root,
                &format!(
                    "its layout version {} is not supported (expected 1.x)",
                    marker.image_layout_version
                ),
            ));
        }

        let index_path = root.join("index.json");
        let index = tokio::fs::read(&index_path)
            .await
            .map_err(|error| file_error(&index_path, "read", &error))?;
        let index: LayoutIndex = serde_json::from_slice(&index)
            .map_err(|error| layout_error(root, &format!("its index.json is invalid ({error})")))?;
        let top = select_manifest(root, &index.manifests, reference)?;

        let name = match reference {
            Some(reference) => format!("{}:{reference}", root.display()),
            None => root.display().to_string(),
        };
        Ok(OciLayoutSource {
            root: root.to_path_buf(),
            name,
            top,
        })
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let parsed = parse_digest(digest)?;
        Ok(self
            .root
            .join("blobs")
            .join(parsed.algorithm)
            .join(parsed.hex))
    }

    /// Reads a manifest blob, checking its size and digest.
    async fn read_manifest(&self, descriptor: &Descriptor) -> Result<Bytes> {
        if descriptor.size > MAX_MANIFEST_SIZE {
            return Err(layout_error(
                &self.root,
                &format!(
                    "the manifest {} is {} bytes, more than the {MAX_MANIFEST_SIZE} bytes registries accept",
                    descriptor.digest, descriptor.size
                ),
            ));
        }
        let path = self.blob_path(&descriptor.digest)?;
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|error| file_error(&path, "read", &error))?;
        let mut digest = StreamDigest::like(&descriptor.digest)?;
        digest.update(&bytes);
        if digest.finish() != descriptor.digest || bytes.len() as u64 != descriptor.size {
            return Err(layout_error(
                &self.root,
                &format!(
                    "the blob {} does not match its digest or size",
                    path.display()
                ),
            ));
        }
        Ok(Bytes::from(bytes))
    }
}

/// Builds a plan by walking manifests depth first, children before parents.
struct Planner<'a> {
    source: &'a OciLayoutSource,
    plan: ImagePlan,
    blob_index: HashMap<String, usize>,
    planned_manifests: HashSet<String>,
}

impl Planner<'_> {
    async fn add_manifest(
        &mut self,
        descriptor: &Descriptor,
        depth: usize,
        cancel: &CancellationToken,
    ) -> Result<()> {
        if cancel.is_cancelled() {
            return Err(Error::cancelled());
        }
        if self.planned_manifests.contains(&descriptor.digest) {
            return Ok(());
        }
        if depth > MAX_INDEX_DEPTH {
            return Err(layout_error(
                &self.source.root,
                &format!("its indexes are nested more than {MAX_INDEX_DEPTH} levels deep"),
            ));
        }

        let bytes = self.source.read_manifest(descriptor).await?;
        let document: ManifestDocument = serde_json::from_slice(&bytes).map_err(|error| {
            layout_error(
                &self.source.root,
                &format!(
                    "the manifest {} is not valid JSON ({error})",
                    short_digest(&descriptor.digest)
                ),
            )
        })?;
        let media_type = manifest_media_type(descriptor.media_type.as_deref(), &document);

        let mut blobs = Vec::new();
        if document.is_index(&media_type) || is_index_media_type(&media_type) {
            for child in document.manifests.as_deref().unwrap_or_default() {
                Box::pin(self.add_manifest(child, depth + 1, cancel)).await?;
            }
        } else {
            let referenced = document.config.iter().chain(document.layers.iter());
            for blob in referenced {
                if let Some(index) = self.add_blob(blob)? {
                    blobs.push(index);
                }
            }
        }

        self.planned_manifests.insert(descriptor.digest.clone());
        self.plan.manifests.push(PlannedManifest {
            media_type,
            body: ManifestBody::Raw(bytes),
            blobs,
        });
        Ok(())
    }

    fn add_blob(&mut self, descriptor: &Descriptor) -> Result<Option<usize>> {
        if let Some(&index) = self.blob_index.get(&descriptor.digest) {
            return Ok(Some(index));
        }
        let path = self.source.blob_path(&descriptor.digest)?;
        let present = path.is_file();
        let foreign = !present && !descriptor.urls.is_empty();
        if !present && !foreign {
            return Err(Error::not_found(
                "OciBlobMissing",
                format!(
                    "The OCI layout {} lists the blob {} but has no file {}. Copy the image again with all its blobs.",
                    self.source.root.display(),
                    descriptor.digest,
                    path.display()
                ),
            )
            .with_target(descriptor.digest.clone()));
        }
        let index = self.plan.blobs.len();
        self.plan.blobs.push(PlannedBlob {
            key: descriptor.digest.clone(),
            media_type: descriptor.media_type.clone().unwrap_or_default(),
            digest: Some((descriptor.digest.clone(), DigestOrigin::Exact)),
            size: Some(descriptor.size),
            estimated_size: descriptor.size,
            foreign,
        });
        self.blob_index.insert(descriptor.digest.clone(), index);
        Ok(Some(index))
    }
}

#[async_trait]
impl ImageSource for OciLayoutSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn plan(&self, cancel: &CancellationToken) -> Result<ImagePlan> {
        let mut planner = Planner {
            source: self,
            plan: ImagePlan {
                blobs: Vec::new(),
                manifests: Vec::new(),
            },
            blob_index: HashMap::new(),
            planned_manifests: HashSet::new(),
        };
        planner.add_manifest(&self.top, 0, cancel).await?;
        Ok(planner.plan)
    }

    async fn open_blob(
        &self,
        blob: &PlannedBlob,
        _cancel: &CancellationToken,
    ) -> Result<BlobReader> {
        let path = self.blob_path(&blob.key)?;
        let metadata = tokio::fs::metadata(&path)
            .await
            .map_err(|error| file_error(&path, "open", &error))?;
        if let Some(expected) = blob.size.filter(|expected| *expected != metadata.len()) {
            return Err(layout_error(
                &self.root,
                &format!(
                    "the blob {} is {} bytes but its descriptor says {expected}",
                    path.display(),
                    metadata.len()
                ),
            ));
        }
        read_file_range(&path, 0, metadata.len()).await
    }
}

/// Picks the manifest of `index.json` that `reference` names.
fn select_manifest(
    root: &Path,
    manifests: &[Descriptor],
    reference: Option<&str>,
) -> Result<Descriptor> {
    let names = || {
        let names: Vec<&str> = manifests
            .iter()
            .map(|descriptor| {
                descriptor
                    .annotations
                    .get(REF_NAME)
                    .or_else(|| descriptor.annotations.get(CONTAINERD_NAME))
                    .map_or(descriptor.digest.as_str(), String::as_str)
            })
            .collect();
        names.join(", ")
    };

    let Some(reference) = reference else {
        return match manifests {
            [only] => Ok(only.clone()),
            [] => Err(layout_error(root, "its index.json lists no image")),
            _ => Err(Error::invalid(
                "OciReferenceRequired",
                format!(
                    "The OCI layout {} contains {} images ({}). Name the one to push.",
                    root.display(),
                    manifests.len(),
                    names()
                ),
            )),
        };
    };

    let found = manifests.iter().find(|descriptor| {
        descriptor.digest == reference
            || descriptor
                .annotations
                .get(REF_NAME)
                .is_some_and(|name| name == reference)
            || descriptor
                .annotations
                .get(CONTAINERD_NAME)
                .is_some_and(|name| name == reference)
    });
    found.cloned().ok_or_else(|| {
        Error::not_found(
            "OciReferenceNotFound",
            format!(
                "The OCI layout {} has no image named '{reference}'. It contains: {}.",
                root.display(),
                names()
            ),
        )
        .with_target(reference.to_owned())
    })
}

fn layout_error(root: &Path, problem: &str) -> Error {
    Error::invalid(
        "InvalidOciLayout",
        format!(
            "The folder {} is not a valid OCI image layout: {problem}.",
            root.display()
        ),
    )
    .with_target(root.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::super::digest::sha256_digest;
    use super::*;

    fn descriptor(digest_of: &[u8], name: Option<&str>) -> Descriptor {
        let mut descriptor = Descriptor {
            digest: sha256_digest(digest_of),
            size: digest_of.len() as u64,
            ..Descriptor::default()
        };
        if let Some(name) = name {
            descriptor
                .annotations
                .insert(REF_NAME.to_owned(), name.to_owned());
        }
        descriptor
    }

    #[test]
    fn select_only_manifest() {
        let only = descriptor(b"a", None);
        let selected = select_manifest(Path::new("x"), std::slice::from_ref(&only), None).unwrap();
        assert_eq!(selected, only);
    }

    #[test]
    fn select_requires_reference_when_several() {
        let list = [descriptor(b"a", Some("v1")), descriptor(b"b", Some("v2"))];
        let error = select_manifest(Path::new("x"), &list, None).unwrap_err();
        assert_eq!(error.error_id, "OciReferenceRequired");
    }

    #[test]
    fn select_by_ref_name() {
        let list = [descriptor(b"a", Some("v1")), descriptor(b"b", Some("v2"))];
        let selected = select_manifest(Path::new("x"), &list, Some("v2")).unwrap();
        assert_eq!(selected.digest, sha256_digest(b"b"));
    }

    #[test]
    fn select_by_digest() {
        let list = [descriptor(b"a", Some("v1")), descriptor(b"b", Some("v2"))];
        let selected = select_manifest(Path::new("x"), &list, Some(&sha256_digest(b"a"))).unwrap();
        assert_eq!(selected.annotations[REF_NAME], "v1");
    }

    #[test]
    fn select_unknown_reference_fails() {
        let list = [descriptor(b"a", Some("v1"))];
        let error = select_manifest(Path::new("x"), &list, Some("v9")).unwrap_err();
        assert_eq!(error.error_id, "OciReferenceNotFound");
    }
}
