//! Helpers of the source and distribution tests: images made on the fly, a
//! recording proxy with fault injection, and a client that reads back what
//! the registry stored.
//!
//! Use with `mod support; mod distribution_support;` in a test file.

#![allow(dead_code)]

pub mod images;
pub mod proxy;

use std::sync::Mutex;

use bytes::Bytes;
use ecr_compose::distribution::{Progress, PushOptions, PushTarget, RegistryEndpoint};
use ecr_compose::secret::Secret;

use crate::support::Registry;

/// Returns an HTTP client for plain-HTTP test services. It brings its own
/// ring TLS settings, so no process-wide crypto provider is installed that
/// could hide a missing one in the library.
pub fn plain_http_client() -> reqwest::Client {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("build the test HTTP client")
}

/// Every manifest media type, for `Accept`.
pub const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Returns a push target for the stand-in registry, reached at `host`
/// (the registry itself or a proxy in front of it).
pub fn target(registry: &Registry, host: &str, repository: &str, tag: Option<&str>) -> PushTarget {
    PushTarget {
        endpoint: RegistryEndpoint::new(
            host,
            registry.username.clone(),
            Secret::new(registry.password.clone()),
        ),
        repository: repository.to_owned(),
        tag: tag.map(str::to_owned),
    }
}

/// Options with short retry delays, so retry tests run fast.
pub fn fast_options() -> PushOptions {
    PushOptions {
        retry_base_delay: std::time::Duration::from_millis(20),
        ..PushOptions::default()
    }
}

/// Collects progress reports.
#[derive(Default)]
pub struct ProgressLog {
    pub reports: Mutex<Vec<(std::time::Instant, Progress)>>,
}

impl ProgressLog {
    pub fn record(&self, progress: Progress) {
        self.reports
            .lock()
            .unwrap()
            .push((std::time::Instant::now(), progress));
    }

    pub fn statuses(&self) -> Vec<String> {
        self.reports
            .lock()
            .unwrap()
            .iter()
            .map(|(_, report)| report.status.clone())
            .collect()
    }

    pub fn last(&self) -> Option<Progress> {
        self.reports
            .lock()
            .unwrap()
            .last()
            .map(|(_, report)| report.clone())
    }
}

/// A manifest as the registry returns it.
#[derive(Debug)]
pub struct StoredManifest {
    pub media_type: String,
    pub bytes: Bytes,
    pub digest: String,
}

/// Reads what the registry stored, with the stand-in's credentials.
pub struct Probe {
    client: reqwest::Client,
    url: String,
    username: String,
    password: String,
}

impl Probe {
    pub fn new(registry: &Registry) -> Probe {
        Probe {
            client: plain_http_client(),
            url: registry.url.clone(),
            username: registry.username.clone(),
            password: registry.password.clone(),
        }
    }

    /// Gets a manifest by tag or digest; `None` when the registry has none.
    pub async fn manifest(&self, repository: &str, reference: &str) -> Option<StoredManifest> {
        let response = self
            .client
            .get(format!(
                "{}/v2/{repository}/manifests/{reference}",
                self.url
            ))
            .basic_auth(&self.username, Some(&self.password))
            .header("Accept", MANIFEST_TYPES)
            .send()
            .await
            .unwrap();
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        assert_eq!(
            response.status(),
            reqwest::StatusCode::OK,
            "GET manifest {repository}:{reference}"
        );
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let media_type = header("content-type");
        let digest = header("docker-content-digest");
        let bytes = response.bytes().await.unwrap();
        Some(StoredManifest {
            media_type,
            bytes,
            digest,
        })
    }

    /// Gets a blob; `None` when the registry has none.
    pub async fn blob(&self, repository: &str, digest: &str) -> Option<Bytes> {
        let response = self
            .client
            .get(format!("{}/v2/{repository}/blobs/{digest}", self.url))
            .basic_auth(&self.username, Some(&self.password))
            .send()
            .await
            .unwrap();
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        assert_eq!(
            response.status(),
            reqwest::StatusCode::OK,
            "GET blob {repository}@{digest}"
        );
        Some(response.bytes().await.unwrap())
    }
}
