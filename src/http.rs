//! HTTP clients for registries: TLS setup and the plain-HTTP rule for loopback hosts.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

/// Connect timeout for registries.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Installs ring as the process's rustls crypto provider, once.
///
/// Another library in the process may have installed one already; that one
/// is kept, because rustls allows one default per process.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// True for hosts that docker reaches over plain HTTP by default: loopback
/// addresses and `localhost`, with or without a port.
pub fn is_loopback_host(host: &str) -> bool {
    let without_port = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) && !name.ends_with(':') => name,
        _ => host,
    };
    let name = without_port.trim_start_matches('[').trim_end_matches(']');
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<IpAddr>().is_ok_and(|address| address.is_loopback())
}

/// Returns the base URL of a registry's API: plain HTTP for loopback hosts,
/// HTTPS otherwise.
pub fn registry_base_url(host: &str) -> String {
    let scheme = if is_loopback_host(host) { "http" } else { "https" };
    format!("{scheme}://{host}")
}

/// Builds an HTTP client for registries, trusting `ca_file` in addition to
/// the system's roots when given.
pub fn registry_client(ca_file: Option<&Path>) -> Result<reqwest::Client> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("ecr-compose/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|error| {
            Error::not_found(
                "CaFileNotFound",
                format!("Could not read the CA file {}: {error}. Pass a PEM file that exists.", path.display()),
            )
        })?;
        let certificate = reqwest::Certificate::from_pem(&pem).map_err(|_| {
            Error::invalid("InvalidCaFile", format!("The CA file {} is not a PEM certificate.", path.display()))
        })?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build()
        .map_err(|error| Error::internal(format!("Could not build the HTTP client: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_host("127.0.0.1:5000"));
        assert!(is_loopback_host("127.8.0.1"));
        assert!(is_loopback_host("localhost:5000"));
        assert!(is_loopback_host("localhost"));
        assert!(is_loopback_host("[::1]:5000"));
        assert!(!is_loopback_host("123456789012.dkr.ecr.us-east-1.amazonaws.com"));
        assert!(!is_loopback_host("10.0.0.1:5000"));
    }

    #[test]
    fn base_url_scheme() {
        assert_eq!(registry_base_url("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(registry_base_url("a.example"), "https://a.example");
    }
}
