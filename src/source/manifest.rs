//! The parts of image manifests, indexes and descriptors that a push reads,
//! and the docker v2 schema 2 manifest that it writes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    DOCKER_IMAGE_CONFIG, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2, OCI_INDEX, OCI_MANIFEST,
};

/// Largest manifest read from a source, in bytes. Registries reject larger
/// ones (distribution and ECR both stop at 4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;

/// An OCI content descriptor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Digest of the content.
    pub digest: String,
    /// Size of the content in bytes.
    pub size: u64,
    /// Where a foreign layer can be downloaded from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Annotations such as `org.opencontainers.image.ref.name`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image manifest or an index, read loosely: unknown fields are ignored.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestDocument {
    /// The `mediaType` field, optional in OCI manifests.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The configuration of an image manifest.
    #[serde(default)]
    pub config: Option<Descriptor>,
    /// The layers of an image manifest.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The children of an index.
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
}

impl ManifestDocument {
    /// True for an OCI index or a docker manifest list.
    pub fn is_index(&self, media_type: &str) -> bool {
        is_index_media_type(media_type) || self.manifests.is_some()
    }
}

/// True for an OCI index or a docker manifest list.
pub fn is_index_media_type(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Picks the media type of a manifest: the one its descriptor gives, then its
/// own `mediaType` field, then OCI index or OCI manifest by its shape.
pub fn manifest_media_type(descriptor: Option<&str>, document: &ManifestDocument) -> String {
    if let Some(media_type) = descriptor.filter(|value| !value.is_empty()) {
        return media_type.to_owned();
    }
    if let Some(media_type) = document
        .media_type
        .as_deref()
        .filter(|value| !value.is_empty())
    {
        return media_type.to_owned();
    }
    if document.manifests.is_some() {
        OCI_INDEX.to_owned()
    } else {
        OCI_MANIFEST.to_owned()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DockerManifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: &'a Descriptor,
    layers: &'a [Descriptor],
}

/// Serializes a docker v2 schema 2 manifest with 3-space indentation, as
/// the docker engine writes them.
pub fn docker_manifest_bytes(config: &Descriptor, layers: &[Descriptor]) -> Vec<u8> {
    let manifest = DockerManifest {
        schema_version: 2,
        media_type: DOCKER_MANIFEST_V2,
        config,
        layers,
    };
    let mut bytes = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
    manifest
        .serialize(&mut serializer)
        .expect("a manifest of strings and numbers serializes");
    bytes
}

/// Returns a config descriptor with the docker media type.
pub fn docker_config_descriptor(digest: &str, size: u64) -> Descriptor {
    Descriptor {
        media_type: Some(DOCKER_IMAGE_CONFIG.to_owned()),
        digest: digest.to_owned(),
        size,
        ..Descriptor::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_manifest_field_order() {
        let config = docker_config_descriptor("sha256:aa", 2);
        let text = String::from_utf8(docker_manifest_bytes(&config, &[])).unwrap();
        let schema = text.find("schemaVersion").unwrap();
        let media = text.find("mediaType").unwrap();
        assert!(schema < media);
    }

    #[test]
    fn docker_manifest_skips_empty_urls() {
        let config = docker_config_descriptor("sha256:aa", 2);
        let text = String::from_utf8(docker_manifest_bytes(&config, &[])).unwrap();
        assert!(!text.contains("urls"));
    }

    #[test]
    fn media_type_from_shape() {
        let index: ManifestDocument = serde_json::from_str(r#"{"manifests":[]}"#).unwrap();
        assert_eq!(manifest_media_type(None, &index), OCI_INDEX);
    }

    #[test]
    fn media_type_prefers_descriptor() {
        let manifest: ManifestDocument = serde_json::from_str(r#"{"mediaType":"x"}"#).unwrap();
        assert_eq!(
            manifest_media_type(Some(DOCKER_MANIFEST_V2), &manifest),
            DOCKER_MANIFEST_V2
        );
    }
}
