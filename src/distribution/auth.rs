//! Registry authentication: `WWW-Authenticate` challenges, HTTP Basic and
//! the bearer token flow of the distribution token specification.

use std::collections::HashMap;

use base64::Engine as _;
use serde::Deserialize;

use crate::secret::Secret;

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="..."`, as ECR and distribution with htpasswd send.
    Basic,
    /// `Bearer realm="...",service="..."`: a token server hands out tokens.
    Bearer {
        /// Token server URL.
        realm: String,
        /// Service name to ask the token for.
        service: Option<String>,
    },
}

/// Parses the first challenge of a `WWW-Authenticate` value; `None` for
/// schemes other than Basic and Bearer.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    let parameters = parse_parameters(rest);
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        let realm = parameters.get("realm")?.clone();
        return Some(Challenge::Bearer {
            realm,
            service: parameters.get("service").cloned(),
        });
    }
    None
}

/// Parses `key="value", key=value` pairs; commas inside quotes stay in the value.
fn parse_parameters(text: &str) -> HashMap<String, String> {
    let mut parameters = HashMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    _ => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        parameters.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    parameters
}

/// Returns the `Authorization` value for HTTP Basic.
pub fn basic_header(username: &str, password: &Secret) -> Secret {
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(format!("{username}:{}", password.expose()));
    Secret::new(format!("Basic {encoded}"))
}

/// Returns the `Authorization` value for a bearer token.
pub fn bearer_header(token: &Secret) -> Secret {
    Secret::new(format!("Bearer {}", token.expose()))
}

/// Body of a token server's response.
#[derive(Deserialize)]
pub struct TokenResponse {
    /// The token (distribution token specification).
    #[serde(default)]
    pub token: Option<String>,
    /// The same token under its OAuth 2 name.
    #[serde(default)]
    pub access_token: Option<String>,
}

impl TokenResponse {
    /// Returns the token, whichever field contains it.
    pub fn into_token(self) -> Option<Secret> {
        self.token
            .filter(|token| !token.is_empty())
            .or(self.access_token.filter(|token| !token.is_empty()))
            .map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_challenge() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
    }

    #[test]
    fn bearer_challenge_with_scope_commas() {
        let value = r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#;
        assert_eq!(
            parse_challenge(value),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".to_owned(),
                service: Some("registry.example".to_owned()),
            })
        );
    }

    #[test]
    fn bearer_without_realm_is_ignored() {
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn basic_header_encodes_credentials() {
        let header = basic_header("AWS", &Secret::new("pw"));
        assert_eq!(header.expose(), "Basic QVdTOnB3");
    }

    #[test]
    fn token_prefers_token_field() {
        let response: TokenResponse =
            serde_json::from_str(r#"{"token":"a","access_token":"b"}"#).unwrap();
        assert_eq!(response.into_token().unwrap().expose(), "a");
    }
}
