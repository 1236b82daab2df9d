//! Image references parsed and validated by the grammar of
//! `github.com/distribution/reference`, the library docker and compose use.
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [domain "/"] path
//! domain     := host [":" port]
//! path       := component ["/" component]*
//! component  := [a-z0-9]+ (separator [a-z0-9]+)*
//! separator  := "." | "_" | "__" | "-"+
//! tag        := [\w][\w.-]{0,127}
//! digest     := algorithm ":" hex
//! ```

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::error::{Error, Result};

/// Registry of images whose reference names no domain.
pub const DOCKER_HUB: &str = "docker.io";

/// Tag that docker adds to a reference with neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";

/// Maximum length of the name (domain and path), from `NameTotalLengthMax`.
const NAME_MAX_LENGTH: usize = 255;

static DOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$",
    )
    .expect("domain pattern is valid")
});

static PATH_COMPONENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$").expect("path pattern is valid")
});

// The grammar's `\w` is ASCII; the regex crate's `\w` is Unicode and takes
// milliseconds to compile, so the class is spelled out.
static TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$").expect("tag pattern is valid"));

static DIGEST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
        .expect("digest pattern is valid")
});

static IMAGE_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-f0-9]{64}$").expect("image id pattern is valid"));

/// A parsed image reference, kept as written: [`Reference::normalized`] adds
/// the Docker Hub domain and `library/` prefix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    /// Registry host with an optional port, when the reference names one.
    pub domain: Option<String>,
    /// Repository path below the registry, for example `team/app`.
    pub path: String,
    /// Tag, without the colon.
    pub tag: Option<String>,
    /// Content digest such as `sha256:…`, without the `@`.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and validates a reference.
    ///
    /// The error (`InvalidImageReference`) names the reference and the part
    /// that breaks the grammar.
    pub fn parse(text: &str) -> Result<Reference> {
        parse_reference(text).map_err(|reason| {
            Error::invalid(
                "InvalidImageReference",
                format!("Image reference '{text}' is invalid: {reason}."),
            )
            .with_target(text)
        })
    }

    /// Returns the registry host: the domain, or `docker.io` when there is none.
    pub fn host(&self) -> String {
        match self.domain.as_deref() {
            None | Some("index.docker.io") => DOCKER_HUB.to_owned(),
            Some(domain) => domain.to_owned(),
        }
    }

    /// Returns a copy with the tag `latest` when the reference has neither a
    /// tag nor a digest.
    pub fn with_default_tag(&self) -> Reference {
        let mut reference = self.clone();
        if reference.tag.is_none() && reference.digest.is_none() {
            reference.tag = Some(DEFAULT_TAG.to_owned());
        }
        reference
    }

    /// Returns the fully qualified form, as docker's `ParseNormalizedNamed`
    /// does: `docker.io` for a reference without a domain (`index.docker.io`
    /// too), and the `library/` prefix for a single-component Docker Hub path.
    pub fn normalized(&self) -> Reference {
        let domain = self.host();
        let path = if domain == DOCKER_HUB && !self.path.contains('/') {
            format!("library/{}", self.path)
        } else {
            self.path.clone()
        };
        Reference {
            domain: Some(domain),
            path,
            tag: self.tag.clone(),
            digest: self.digest.clone(),
        }
    }

    /// Returns the name: the domain (when present) and the path.
    pub fn name(&self) -> String {
        match &self.domain {
            Some(domain) => format!("{domain}/{}", self.path),
            None => self.path.clone(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Parses a reference, returning the reason when it is invalid.
pub(crate) fn parse_reference(text: &str) -> std::result::Result<Reference, String> {
    if text.is_empty() {
        return Err("the reference is empty".to_owned());
    }
    if IMAGE_ID.is_match(text) {
        return Err(
            "a 64-character hexadecimal string is an image ID, not a repository name".to_owned(),
        );
    }

    let (domain, remainder) = split_domain(text);
    let (name_part, digest) = match remainder.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (remainder, None),
    };
    let (path, tag) = match name_part.rsplit_once(':') {
        Some((path, tag)) => (path, Some(tag)),
        None => (name_part, None),
    };

    if let Some(domain) = domain {
        if !DOMAIN.is_match(domain) {
            return Err(format!(
                "the registry host '{domain}' is not a valid host name with an optional port"
            ));
        }
    }
    validate_path(path)?;
    if let Some(tag) = tag {
        if !TAG.is_match(tag) {
            return Err(format!(
                "the tag '{tag}' must start with a letter, digit or underscore, contain only letters, digits, '_', '.' and '-', and be at most 128 characters long"
            ));
        }
    }
    if let Some(digest) = digest {
        validate_digest(digest)?;
    }

    let reference = Reference {
        domain: domain.map(str::to_owned),
        path: path.to_owned(),
        tag: tag.map(str::to_owned),
        digest: digest.map(str::to_owned),
    };
    if reference.name().len() > NAME_MAX_LENGTH {
        return Err(format!(
            "the repository name is longer than {NAME_MAX_LENGTH} characters"
        ));
    }
    Ok(reference)
}

/// Splits the domain off as `splitDockerDomain` does: the first component is
/// a domain when it contains `.` or `:`, is `localhost`, or has an uppercase
/// letter (a path component never has one).
fn split_domain(text: &str) -> (Option<&str>, &str) {
    let Some((first, rest)) = text.split_once('/') else {
        return (None, text);
    };
    let is_domain = first.contains(['.', ':'])
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase());
    if is_domain {
        (Some(first), rest)
    } else {
        (None, text)
    }
}

fn validate_path(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() {
        return Err("the repository name is empty".to_owned());
    }
    for component in path.split('/') {
        if PATH_COMPONENT.is_match(component) {
            continue;
        }
        if PATH_COMPONENT.is_match(&component.to_ascii_lowercase()) {
            return Err(format!("the repository name '{path}' must be lowercase"));
        }
        if component.is_empty() {
            return Err(format!(
                "the repository name '{path}' has an empty path component"
            ));
        }
        return Err(format!(
            "the repository path component '{component}' must be lowercase letters and digits, separated by '.', '_', '__' or dashes"
        ));
    }
    Ok(())
}

fn validate_digest(digest: &str) -> std::result::Result<(), String> {
    if !DIGEST.is_match(digest) {
        return Err(format!(
            "the digest '{digest}' must have the form 'algorithm:hex', for example 'sha256:' and 64 hexadecimal digits"
        ));
    }
    let (algorithm, hex) = digest
        .split_once(':')
        .expect("the digest pattern has a colon");
    let expected_length = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => {
            return Err(format!(
                "the digest algorithm '{algorithm}' is not supported: use sha256, sha384 or sha512"
            ));
        }
    };
    let lowercase_hex = hex
        .chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if hex.len() != expected_length || !lowercase_hex {
        return Err(format!(
            "the {algorithm} digest must be {expected_length} lowercase hexadecimal digits"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parse(text: &str) -> Reference {
        Reference::parse(text).unwrap()
    }

    #[test]
    fn parse_plain_name() {
        let reference = parse("nginx");
        assert_eq!(reference.domain, None);
        assert_eq!(reference.path, "nginx");
        assert_eq!(reference.tag, None);
        assert_eq!(reference.host(), "docker.io");
    }

    #[test]
    fn parse_domain_port_tag() {
        let reference = parse("localhost:5000/team/app:1.2");
        assert_eq!(reference.domain.as_deref(), Some("localhost:5000"));
        assert_eq!(reference.path, "team/app");
        assert_eq!(reference.tag.as_deref(), Some("1.2"));
    }

    #[test]
    fn parse_first_component_rules() {
        assert_eq!(parse("localhost/app").domain.as_deref(), Some("localhost"));
        assert_eq!(
            parse("example.com/app").domain.as_deref(),
            Some("example.com")
        );
        assert_eq!(parse("team/app").domain, None);
        assert_eq!(parse("host:80/app").domain.as_deref(), Some("host:80"));
    }

    #[test]
    fn parse_tag_and_digest() {
        let reference = parse(&format!("app:1@{SHA}"));
        assert_eq!(reference.tag.as_deref(), Some("1"));
        assert_eq!(reference.digest.as_deref(), Some(SHA));
    }

    #[test]
    fn parse_ipv6_domain() {
        let reference = parse("[::1]:5000/app");
        assert_eq!(reference.domain.as_deref(), Some("[::1]:5000"));
    }

    #[test]
    fn parse_separators() {
        for text in ["a.b/c_d", "a__b", "a-b", "a---b", "a1/b2/c3"] {
            assert!(Reference::parse(text).is_ok(), "{text} should parse");
        }
        for text in ["a..b", "a___b", "-a", "a-", "a/", "/a", "a//b", "a_.b"] {
            assert!(Reference::parse(text).is_err(), "{text} should be rejected");
        }
    }

    #[test]
    fn parse_uppercase_repository_rejected() {
        let error = Reference::parse("example.com/Team/app").unwrap_err();
        assert_eq!(error.error_id, "InvalidImageReference");
        assert!(
            error.message.contains("must be lowercase"),
            "{}",
            error.message
        );
    }

    #[test]
    fn parse_uppercase_first_component_is_domain() {
        let reference = parse("Example/app");
        assert_eq!(reference.domain.as_deref(), Some("Example"));
    }

    #[test]
    fn parse_bad_tags_rejected() {
        assert!(Reference::parse("app:").is_err());
        assert!(Reference::parse("app:.x").is_err());
        assert!(Reference::parse(&format!("app:{}", "a".repeat(129))).is_err());
        assert!(Reference::parse(&format!("app:{}", "a".repeat(128))).is_ok());
    }

    #[test]
    fn parse_bad_digests_rejected() {
        assert!(Reference::parse("app@sha256:abc").is_err());
        assert!(Reference::parse(&format!("app@{}", SHA.to_uppercase())).is_err());
        let md5 = format!("app@md5:{}", "a".repeat(32));
        assert!(
            Reference::parse(&md5)
                .unwrap_err()
                .message
                .contains("not supported")
        );
    }

    #[test]
    fn parse_image_id_rejected() {
        assert!(Reference::parse(&"a".repeat(64)).is_err());
    }

    #[test]
    fn parse_long_name_rejected() {
        let long = format!("example.com/{}", "a".repeat(250));
        assert!(Reference::parse(&long).is_err());
    }

    #[test]
    fn normalized_docker_hub() {
        assert_eq!(
            parse("nginx").normalized().to_string(),
            "docker.io/library/nginx"
        );
        assert_eq!(
            parse("team/app:1").normalized().to_string(),
            "docker.io/team/app:1"
        );
        assert_eq!(
            parse("index.docker.io/nginx").normalized().to_string(),
            "docker.io/library/nginx"
        );
        assert_eq!(
            parse("example.com/app").normalized().to_string(),
            "example.com/app"
        );
    }

    #[test]
    fn default_tag_only_without_digest() {
        assert_eq!(
            parse("app").with_default_tag().tag.as_deref(),
            Some("latest")
        );
        assert_eq!(parse(&format!("app@{SHA}")).with_default_tag().tag, None);
        assert_eq!(
            parse("app:v1").with_default_tag().tag.as_deref(),
            Some("v1")
        );
    }

    fn component() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,2}"
    }

    fn reference_strategy() -> impl Strategy<Value = Reference> {
        (
            proptest::option::of("[a-z0-9]{1,8}(\\.[a-z0-9]{1,8}){1,2}(:[0-9]{1,5})?"),
            proptest::collection::vec(component(), 1..4),
            proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
            proptest::option::of("[0-9a-f]{64}"),
        )
            .prop_filter(
                "a path without a domain must not start like a domain",
                |(domain, components, _, _)| domain.is_some() || !components[0].contains('.'),
            )
            .prop_map(|(domain, components, tag, hex)| Reference {
                domain,
                path: components.join("/"),
                tag,
                digest: hex.map(|hex| format!("sha256:{hex}")),
            })
    }

    proptest! {
        #[test]
        fn formatted_reference_round_trips(reference in reference_strategy()) {
            let text = reference.to_string();
            prop_assert_eq!(Reference::parse(&text).unwrap(), reference);
        }

        #[test]
        fn normalized_reference_round_trips(reference in reference_strategy()) {
            let normalized = reference.normalized();
            let reparsed = Reference::parse(&normalized.to_string()).unwrap();
            prop_assert_eq!(reparsed.normalized(), normalized);
        }
    }
}
