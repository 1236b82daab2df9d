//! Recognition of Amazon ECR registry host names and of the aliases that
//! point other host names at an ECR registry.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Private ECR host names in every partition, FIPS and dual-stack included.
///
/// Same shapes as amazon-ecr-credential-helper's `ecrPattern`: 12-digit
/// account, `dkr.ecr` or `dkr-ecr`, optional `-fips`, region, partition suffix.
static ECR_HOST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?P<account>[0-9]{12})\.dkr[.-]ecr(?P<fips>-fips)?\.(?P<region>[a-z0-9][a-z0-9-]*)\.(?P<suffix>amazonaws\.com(?:\.cn)?|on\.aws|on\.amazonwebservices\.com\.cn|sc2s\.sgov\.gov|c2s\.ic\.gov|cloud\.adc-e\.uk|csp\.hci\.ic\.gov)$",
    )
    .expect("ECR host pattern is valid")
});

/// Repository names that ECR accepts (the `repositoryName` pattern of the ECR API).
static ECR_REPOSITORY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
        .expect("ECR repository pattern is valid")
});

/// Length limits of an ECR repository name, from the ECR API reference.
pub const ECR_REPOSITORY_LENGTH: std::ops::RangeInclusive<usize> = 2..=256;

/// True when ECR accepts `name` as a repository name: 2 to 256 characters,
/// lowercase letters and digits separated by single `.`, `_`, `-` or `/`.
pub fn is_valid_ecr_repository_name(name: &str) -> bool {
    ECR_REPOSITORY_LENGTH.contains(&name.len()) && ECR_REPOSITORY.is_match(name)
}

/// An ECR registry that images are pushed to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EcrRegistry {
    /// Host name (and port) as the image references name it: the ECR host or an alias.
    pub host: String,
    /// Real ECR host name, for example `123456789012.dkr.ecr.eu-west-1.amazonaws.com`.
    pub ecr_host: String,
    /// 12-digit AWS account id that owns the registry.
    pub account_id: String,
    /// AWS region of the registry.
    pub region: String,
    /// True for a FIPS endpoint (`dkr.ecr-fips`).
    pub fips: bool,
}

impl EcrRegistry {
    /// Parses a real ECR host name; returns `None` for any other host.
    pub fn from_ecr_host(host: &str) -> Option<EcrRegistry> {
        let lower = host.to_ascii_lowercase();
        let captures = ECR_HOST.captures(&lower)?;
        Some(EcrRegistry {
            host: lower.clone(),
            ecr_host: lower.clone(),
            account_id: captures["account"].to_owned(),
            region: captures["region"].to_owned(),
            fips: captures.name("fips").is_some(),
        })
    }

    /// True when the images name the registry through an alias.
    pub fn is_alias(&self) -> bool {
        self.host != self.ecr_host
    }
}

/// Other host names (a DNS alias, a proxy, `127.0.0.1:5000`) mapped to ECR registries.
///
/// Deserialization validates the map as [`RegistryAliases::new`] does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, String>",
    into = "BTreeMap<String, String>"
)]
pub struct RegistryAliases(BTreeMap<String, String>);

impl TryFrom<BTreeMap<String, String>> for RegistryAliases {
    type Error = Error;

    fn try_from(map: BTreeMap<String, String>) -> Result<Self> {
        RegistryAliases::new(map)
    }
}

impl From<RegistryAliases> for BTreeMap<String, String> {
    fn from(aliases: RegistryAliases) -> Self {
        aliases.0
    }
}

impl RegistryAliases {
    /// Validates a map of alias host to ECR host.
    ///
    /// An alias is a host name with an optional port and no scheme or path;
    /// the target must be a real ECR host name.
    pub fn new(map: BTreeMap<String, String>) -> Result<Self> {
        let mut aliases = BTreeMap::new();
        for (alias, target) in map {
            let alias = normalize_host(&alias);
            if alias.is_empty() || alias.contains('/') || alias.contains("://") {
                return Err(Error::invalid(
                    "InvalidRegistryAlias",
                    format!(
                        "Registry alias '{alias}' is invalid: give a host name with an optional port, for example 'registry.example.com' or '127.0.0.1:5000', without a scheme or path."
                    ),
                )
                .with_target(alias));
            }
            let target_host = normalize_host(&target);
            if EcrRegistry::from_ecr_host(&target_host).is_none() {
                return Err(Error::invalid(
                    "InvalidRegistryAliasTarget",
                    format!(
                        "Registry alias '{alias}' points at '{target}', which is not an ECR registry host: use the form '<account>.dkr.ecr.<region>.amazonaws.com'."
                    ),
                )
                .with_target(target));
            }
            aliases.insert(alias, target_host);
        }
        Ok(RegistryAliases(aliases))
    }

    /// Adds the aliases of `other` that this set does not define yet.
    pub fn merge_missing(&mut self, other: &RegistryAliases) {
        for (alias, target) in &other.0 {
            self.0
                .entry(alias.clone())
                .or_insert_with(|| target.clone());
        }
    }

    /// True when no alias is defined.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Resolves a host name (ECR host or alias) to its ECR registry.
    pub fn resolve(&self, host: &str) -> Option<EcrRegistry> {
        let host = normalize_host(host);
        if let Some(target) = self.0.get(&host) {
            let mut registry = EcrRegistry::from_ecr_host(target)?;
            registry.host = host;
            return Some(registry);
        }
        EcrRegistry::from_ecr_host(&host)
    }
}

/// Lower-cases a host and strips a scheme and a trailing slash, as docker does
/// for registry keys.
pub fn normalize_host(host: &str) -> String {
    let trimmed = host.trim();
    let without_scheme = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .unwrap_or(trimmed);
    without_scheme.trim_end_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecr_host_commercial() {
        let registry =
            EcrRegistry::from_ecr_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com").unwrap();
        assert_eq!(registry.account_id, "123456789012");
        assert_eq!(registry.region, "eu-west-1");
        assert!(!registry.fips);
    }

    #[test]
    fn ecr_host_china_and_fips() {
        let china =
            EcrRegistry::from_ecr_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn").unwrap();
        assert_eq!(china.region, "cn-north-1");
        let fips =
            EcrRegistry::from_ecr_host("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com")
                .unwrap();
        assert!(fips.fips);
        assert_eq!(fips.region, "us-gov-west-1");
    }

    #[test]
    fn ecr_host_rejects_others() {
        assert!(EcrRegistry::from_ecr_host("docker.io").is_none());
        assert!(EcrRegistry::from_ecr_host("12345.dkr.ecr.us-east-1.amazonaws.com").is_none());
        assert!(
            EcrRegistry::from_ecr_host("123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.com")
                .is_none()
        );
    }

    #[test]
    fn alias_resolves_to_target() {
        let aliases = RegistryAliases::new(BTreeMap::from([(
            "127.0.0.1:5000".to_owned(),
            "123456789012.dkr.ecr.us-east-1.amazonaws.com".to_owned(),
        )]))
        .unwrap();
        let registry = aliases.resolve("127.0.0.1:5000").unwrap();
        assert_eq!(registry.host, "127.0.0.1:5000");
        assert_eq!(registry.region, "us-east-1");
        assert!(registry.is_alias());
    }

    #[test]
    fn ecr_repository_names() {
        assert!(is_valid_ecr_repository_name("team/app.v2_x-y"));
        assert!(!is_valid_ecr_repository_name("a"));
        assert!(!is_valid_ecr_repository_name("team__app"));
        assert!(!is_valid_ecr_repository_name("team--app"));
        assert!(!is_valid_ecr_repository_name("Team/app"));
        assert!(!is_valid_ecr_repository_name(&"a".repeat(257)));
    }

    #[test]
    fn alias_deserialization_validates() {
        let parsed: std::result::Result<RegistryAliases, _> =
            serde_json::from_str(r#"{"mirror.example": "docker.io"}"#);
        assert!(parsed.is_err());
        let parsed: RegistryAliases = serde_json::from_str(
            r#"{"Mirror.Example": "123456789012.dkr.ecr.us-east-1.amazonaws.com"}"#,
        )
        .unwrap();
        assert!(parsed.resolve("mirror.example").is_some());
    }

    #[test]
    fn alias_rejects_non_ecr_target() {
        let error = RegistryAliases::new(BTreeMap::from([(
            "a.example".to_owned(),
            "docker.io".to_owned(),
        )]))
        .unwrap_err();
        assert_eq!(error.error_id, "InvalidRegistryAliasTarget");
        assert!(error.message.contains("docker.io"));
    }
}
