//! Images made by the tests: layer tars, OCI image layouts and docker archives.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

/// Returns `len` random bytes, which gzip cannot shrink.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand::fill(&mut bytes[..]);
    bytes
}

/// Returns `len` bytes of numbered text lines, which gzip shrinks well.
pub fn text_bytes(len: usize) -> Vec<u8> {
    let mut text = Vec::with_capacity(len + 64);
    let mut line = 0u64;
    while text.len() < len {
        writeln!(
            text,
            "line {line}: the quick brown fox jumps over the lazy dog"
        )
        .unwrap();
        line += 1;
    }
    text.truncate(len);
    text
}

/// Returns the `sha256:` digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Builds an uncompressed layer tar with the given files.
pub fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, name, *content).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Compresses bytes with gzip.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Decompresses gzip bytes.
pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(bytes), &mut decoded)
        .unwrap();
    decoded
}

/// Returns an image config for the given uncompressed layers.
pub fn image_config(layers: &[Vec<u8>], architecture: &str) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|layer| sha256(layer)).collect();
    let config = json!({
        "architecture": architecture,
        "os": "linux",
        "config": { "Env": ["PATH=/bin"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": layers.iter().map(|_| json!({"created_by": "test"})).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&config).unwrap()
}

/// An OCI image layout folder being written.
pub struct OciLayout {
    pub dir: PathBuf,
}

impl OciLayout {
    /// Creates the folder with its `oci-layout` file.
    pub fn create(dir: &Path) -> OciLayout {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        OciLayout {
            dir: dir.to_path_buf(),
        }
    }

    /// Writes a blob and returns its descriptor.
    pub fn blob(&self, media_type: &str, bytes: &[u8]) -> Value {
        let digest = sha256(bytes);
        let hex = digest.strip_prefix("sha256:").unwrap();
        fs::write(self.dir.join("blobs/sha256").join(hex), bytes).unwrap();
        json!({ "mediaType": media_type, "digest": digest, "size": bytes.len() })
    }

    /// Writes an image (config, gzip layers, manifest) and returns the
    /// manifest's descriptor with its platform.
    pub fn image(&self, layers: &[Vec<u8>], architecture: &str) -> Value {
        let config = self.blob(OCI_CONFIG, &image_config(layers, architecture));
        let layer_descriptors: Vec<Value> = layers
            .iter()
            .map(|layer| self.blob(OCI_LAYER_GZIP, &gzip(layer)))
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": layer_descriptors,
        });
        let mut descriptor =
            self.blob(OCI_MANIFEST, &serde_json::to_vec_pretty(&manifest).unwrap());
        descriptor["platform"] = json!({ "architecture": architecture, "os": "linux" });
        descriptor
    }

    /// Writes an image whose layers are stored as they are, uncompressed.
    pub fn raw_image(&self, layers: &[Vec<u8>]) -> Value {
        let config = self.blob(OCI_CONFIG, &image_config(layers, "amd64"));
        let layer_descriptors: Vec<Value> = layers
            .iter()
            .map(|layer| self.blob(OCI_LAYER, layer))
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": layer_descriptors,
        });
        self.blob(OCI_MANIFEST, &serde_json::to_vec(&manifest).unwrap())
    }

    /// Writes an attestation manifest (as BuildKit makes them) for `subject`.
    pub fn attestation(&self, subject: &Value) -> Value {
        let config = self.blob(OCI_CONFIG, br#"{"architecture":"unknown","os":"unknown","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#);
        let statement = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v0.1","subject":"{}"}}"#,
            subject["digest"].as_str().unwrap()
        );
        let mut layer = self.blob(IN_TOTO, statement.as_bytes());
        layer["annotations"] = json!({ "in-toto.io/predicate-type": "https://spdx.dev/Document" });
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": [layer],
        });
        let mut descriptor = self.blob(OCI_MANIFEST, &serde_json::to_vec(&manifest).unwrap());
        descriptor["platform"] = json!({ "architecture": "unknown", "os": "unknown" });
        descriptor["annotations"] = json!({
            "vnd.docker.reference.digest": subject["digest"],
            "vnd.docker.reference.type": "attestation-manifest",
        });
        descriptor
    }

    /// Writes an index of `manifests` and returns its descriptor.
    pub fn index(&self, manifests: &[Value]) -> Value {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        });
        self.blob(OCI_INDEX, &serde_json::to_vec_pretty(&index).unwrap())
    }

    /// Writes `index.json`, naming each entry with its reference.
    pub fn finish(&self, entries: &[(&str, Value)]) {
        let manifests: Vec<Value> = entries
            .iter()
            .map(|(name, descriptor)| {
                let mut descriptor = descriptor.clone();
                descriptor["annotations"] = json!({ "org.opencontainers.image.ref.name": name });
                descriptor
            })
            .collect();
        let index = json!({ "schemaVersion": 2, "manifests": manifests });
        fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }
}

/// Writes a docker-archive tar in the classic `docker save` format: one
/// folder per layer with `layer.tar`, the config as `<hex>.json` and
/// `manifest.json`. A layer equal to an earlier one becomes a symbolic link
/// to it, as docker writes them. Returns the config bytes.
pub fn docker_archive(path: &Path, tag: &str, layers: &[Vec<u8>]) -> Vec<u8> {
    let config = image_config(layers, "amd64");
    let config_hex = sha256(&config).strip_prefix("sha256:").unwrap().to_owned();
    let mut builder = tar::Builder::new(fs::File::create(path).unwrap());

    let mut layer_paths: Vec<String> = Vec::new();
    let mut first_path_of: Vec<(String, String)> = Vec::new();
    for (position, layer) in layers.iter().enumerate() {
        let diff_id = sha256(layer);
        let id = sha256(format!("{position}{diff_id}").as_bytes());
        let folder = id.strip_prefix("sha256:").unwrap().to_owned();
        let layer_path = format!("{folder}/layer.tar");
        append_file(&mut builder, &format!("{folder}/VERSION"), b"1.0");
        append_file(&mut builder, &format!("{folder}/json"), b"{}");
        match first_path_of.iter().find(|(seen, _)| *seen == diff_id) {
            Some((_, target)) => {
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                header.set_mode(0o777);
                builder
                    .append_link(&mut header, &layer_path, format!("../{target}"))
                    .unwrap();
            }
            None => {
                append_file(&mut builder, &layer_path, layer);
                first_path_of.push((diff_id, layer_path.clone()));
            }
        }
        layer_paths.push(layer_path);
    }
    append_file(&mut builder, &format!("{config_hex}.json"), &config);
    let manifest = json!([{ "Config": format!("{config_hex}.json"), "RepoTags": [tag], "Layers": layer_paths }]);
    append_file(
        &mut builder,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    builder.into_inner().unwrap().flush().unwrap();
    config
}

fn append_file(builder: &mut tar::Builder<fs::File>, name: &str, content: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, name, content).unwrap();
}
