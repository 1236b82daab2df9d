//! Content digests in the OCI form `algorithm:hex`.

use sha2::{Digest, Sha256, Sha512};

use crate::error::{Error, Result};

/// Returns the `sha256:` digest of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A digest split into its algorithm and its lowercase hex value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedDigest<'a> {
    /// `sha256` or `sha512`.
    pub algorithm: &'a str,
    /// Hex value: 64 characters for sha256, 128 for sha512.
    pub hex: &'a str,
}

/// Checks a digest and splits it. Only sha256 and sha512 are accepted, so a
/// digest can name a file under `blobs/` without escaping the folder.
pub fn parse_digest(digest: &str) -> Result<ParsedDigest<'_>> {
    let invalid = || {
        Error::invalid(
            "InvalidDigest",
            format!(
                "The digest '{digest}' is invalid: expected sha256:<64 hex digits> or sha512:<128 hex digits>."
            ),
        )
    };
    let (algorithm, hex) = digest.split_once(':').ok_or_else(invalid)?;
    let expected_len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return Err(invalid()),
    };
    let lowercase_hex = hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hex.len() != expected_len || !lowercase_hex {
        return Err(invalid());
    }
    Ok(ParsedDigest { algorithm, hex })
}

/// Incremental digest of a byte stream, with its length.
pub struct StreamDigest {
    hasher: Hasher,
    length: u64,
}

enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl StreamDigest {
    /// Starts a sha256 digest.
    pub fn sha256() -> Self {
        StreamDigest {
            hasher: Hasher::Sha256(Sha256::new()),
            length: 0,
        }
    }

    /// Starts a digest with the algorithm of `digest` (sha256 or sha512).
    pub fn like(digest: &str) -> Result<Self> {
        let parsed = parse_digest(digest)?;
        let hasher = match parsed.algorithm {
            "sha512" => Hasher::Sha512(Sha512::new()),
            _ => Hasher::Sha256(Sha256::new()),
        };
        Ok(StreamDigest { hasher, length: 0 })
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.hasher {
            Hasher::Sha256(hasher) => hasher.update(bytes),
            Hasher::Sha512(hasher) => hasher.update(bytes),
        }
        self.length += bytes.len() as u64;
    }

    /// Number of bytes added so far.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Returns the digest of the bytes added so far, in `algorithm:hex` form.
    pub fn finish(&self) -> String {
        match &self.hasher {
            Hasher::Sha256(hasher) => format!("sha256:{}", hex::encode(hasher.clone().finalize())),
            Hasher::Sha512(hasher) => format!("sha512:{}", hex::encode(hasher.clone().finalize())),
        }
    }
}

/// Shortens a digest for messages: `sha256:0123456789ab`.
pub fn short_digest(digest: &str) -> &str {
    let end = digest.find(':').map_or(0, |colon| colon + 13);
    digest.get(..end).unwrap_or(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty_input() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_accepts_sha256() {
        let digest = sha256_digest(b"x");
        assert_eq!(parse_digest(&digest).unwrap().algorithm, "sha256");
    }

    #[test]
    fn parse_rejects_path_characters() {
        assert!(parse_digest("sha256:../../etc/passwd").is_err());
    }

    #[test]
    fn parse_rejects_uppercase_hex() {
        let digest = sha256_digest(b"x")
            .to_uppercase()
            .replace("SHA256", "sha256");
        assert!(parse_digest(&digest).is_err());
    }

    #[test]
    fn parse_rejects_unknown_algorithm() {
        assert!(parse_digest("md5:d41d8cd98f00b204e9800998ecf8427e").is_err());
    }

    #[test]
    fn stream_digest_matches_one_shot() {
        let mut stream = StreamDigest::sha256();
        stream.update(b"hello ");
        stream.update(b"world");
        assert_eq!(stream.finish(), sha256_digest(b"hello world"));
        assert_eq!(stream.length(), 11);
    }

    #[test]
    fn short_digest_keeps_twelve_hex_digits() {
        assert_eq!(short_digest(&sha256_digest(b"")), "sha256:e3b0c44298fc");
    }
}
