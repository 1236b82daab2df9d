//! The per-user cache of MFA sessions, so a session that is still good is
//! reused without a new MFA code and without a call to STS.
//!
//! One versioned JSON file, `sessions.json`, in the platform's cache folder
//! (`ECR_COMPOSE_CACHE_DIR` overrides it). Readers and writers hold an
//! advisory lock on `sessions.lock` beside it; writes go to a temporary file
//! in the same folder that is then renamed over the old one, with mode 0600 on
//! Unix. A file that cannot be parsed, or of another version, is ignored and
//! replaced on the next write.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::MfaSession;
use super::protect::{protect, unprotect};
use crate::error::{EcrStatus, Error, Result};
use crate::secret::Secret;

/// Version of the file format; a file of another version is ignored.
const CACHE_VERSION: u32 = 1;

/// Environment variable that moves the cache folder.
pub const CACHE_DIR_VARIABLE: &str = "ECR_COMPOSE_CACHE_DIR";

const CACHE_FILE: &str = "sessions.json";
const LOCK_FILE: &str = "sessions.lock";

#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CacheFile {
    version: u32,
    sessions: BTreeMap<String, CachedSession>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CachedSession {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
    serial_number: String,
    account_id: Option<String>,
    profile: String,
    region: String,
}

/// The session cache of the current user.
#[derive(Clone, Debug)]
pub struct SessionCache {
    dir: PathBuf,
}

impl SessionCache {
    /// Opens the cache in `dir`, `ECR_COMPOSE_CACHE_DIR`, or the platform's
    /// cache folder (`~/.cache/ecr-compose`, `%LOCALAPPDATA%\ecr-compose`).
    pub fn open(dir: Option<&Path>) -> Result<SessionCache> {
        let dir = match dir {
            Some(dir) => checked_dir(dir, "The cache folder")?,
            None => match std::env::var_os(CACHE_DIR_VARIABLE).filter(|value| !value.is_empty()) {
                Some(dir) => checked_dir(Path::new(&dir), CACHE_DIR_VARIABLE)?,
                None => dirs::cache_dir().map(|base| base.join("ecr-compose")).ok_or_else(|| {
                    Error::not_found(
                        "CacheFolderNotFound",
                        format!("The user's cache folder is unknown: set {CACHE_DIR_VARIABLE} to a folder for the session cache, or pass -NoCache."),
                    )
                })?,
            },
        };
        Ok(SessionCache { dir })
    }

    /// Returns the cache file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(CACHE_FILE)
    }

    /// Returns the cached session for `profile` and `serial` when it has more
    /// than `min_remaining` left.
    pub fn load(&self, profile: &str, serial: &str, min_remaining: Duration) -> Option<MfaSession> {
        let _lock = self.lock(false).ok()?;
        let file = self.read();
        let entry = file.sessions.get(&cache_key(profile, serial))?;
        let expires_at = OffsetDateTime::parse(&entry.expiration, &Rfc3339).ok()?;
        let left = expires_at - OffsetDateTime::now_utc();
        if left <= time::Duration::try_from(min_remaining).ok()? {
            tracing::debug!(expiration = %entry.expiration, "cached session expires too soon to reuse");
            return None;
        }
        let secret_access_key = unprotect(&entry.secret_access_key).ok()?;
        let session_token = unprotect(&entry.session_token).ok()?;
        Some(MfaSession {
            access_key_id: entry.access_key_id.clone(),
            secret_access_key: Secret::new(secret_access_key),
            session_token: Secret::new(session_token),
            expiration: entry.expiration.clone(),
            serial_number: entry.serial_number.clone(),
            account_id: entry.account_id.clone(),
            profile: entry.profile.clone(),
            region: entry.region.clone(),
            from_cache: true,
        })
    }

    /// Stores a session under its profile and serial, dropping expired entries.
    pub fn store(&self, session: &MfaSession) -> Result<()> {
        let _lock = self.lock(true)?;
        let mut file = self.read();
        let now = OffsetDateTime::now_utc();
        file.sessions.retain(|_, entry| {
            OffsetDateTime::parse(&entry.expiration, &Rfc3339).is_ok_and(|expires_at| expires_at > now)
        });
        file.sessions.insert(
            cache_key(&session.profile, &session.serial_number),
            CachedSession {
                access_key_id: session.access_key_id.clone(),
                secret_access_key: protect(session.secret_access_key.expose())?,
                session_token: protect(session.session_token.expose())?,
                expiration: session.expiration.clone(),
                serial_number: session.serial_number.clone(),
                account_id: session.account_id.clone(),
                profile: session.profile.clone(),
                region: session.region.clone(),
            },
        );
        self.write(&file)
    }

    /// Removes the sessions of `profile` (all profiles when `None`) and
    /// returns how many were removed.
    pub fn clear(&self, profile: Option<&str>) -> Result<usize> {
        let _lock = self.lock(true)?;
        let mut file = self.read();
        let before = file.sessions.len();
        match profile {
            Some(profile) => file.sessions.retain(|_, entry| entry.profile != profile),
            None => file.sessions.clear(),
        }
        let removed = before - file.sessions.len();
        self.write(&file)?;
        Ok(removed)
    }

    fn read(&self) -> CacheFile {
        let path = self.path();
        let Ok(bytes) = fs::read(&path) else {
            return CacheFile { version: CACHE_VERSION, ..CacheFile::default() };
        };
        match serde_json::from_slice::<CacheFile>(&bytes) {
            Ok(file) if file.version == CACHE_VERSION => file,
            _ => {
                tracing::warn!(path = %path.display(), "the session cache file is unreadable or of another version; it is ignored and will be replaced");
                CacheFile { version: CACHE_VERSION, ..CacheFile::default() }
            }
        }
    }

    fn write(&self, file: &CacheFile) -> Result<()> {
        let path = self.path();
        let io_error = |error: std::io::Error| {
            Error::new(
                EcrStatus::InvalidRequest,
                "SessionCacheWriteFailed",
                format!("Could not write the session cache {}: {error}. Check the folder's permissions; Get-EcrMfaSession -NoCache skips the cache.", path.display()),
            )
        };
        let text = serde_json::to_vec_pretty(&CacheFile { version: CACHE_VERSION, sessions: file.sessions.clone() })
            .map_err(|error| Error::internal(error.to_string()))?;
        let mut temporary = tempfile::Builder::new().prefix(".sessions.").tempfile_in(&self.dir).map_err(io_error)?;
        restrict(temporary.as_file()).map_err(io_error)?;
        temporary.write_all(&text).map_err(io_error)?;
        temporary.as_file().sync_all().map_err(io_error)?;
        temporary.persist(&path).map_err(|error| io_error(error.error))?;
        Ok(())
    }

    /// Takes the cache lock: exclusive for writers, shared for readers.
    fn lock(&self, exclusive: bool) -> Result<File> {
        let io_error = |error: std::io::Error| {
            Error::new(
                EcrStatus::InvalidRequest,
                "SessionCacheLockFailed",
                format!("Could not lock the session cache in {}: {error}. Check that it is a folder you may write; Get-EcrMfaSession -NoCache skips the cache.", self.dir.display()),
            )
        };
        create_private_dir(&self.dir).map_err(io_error)?;
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(self.dir.join(LOCK_FILE)).map_err(io_error)?;
        restrict(&lock).map_err(io_error)?;
        // fs4, not std's File::lock, which needs Rust 1.89.
        if exclusive { fs4::FileExt::lock(&lock) } else { fs4::FileExt::lock_shared(&lock) }.map_err(io_error)?;
        Ok(lock)
    }
}

/// Rejects a cache folder that is relative or has a blank component, which
/// would scatter session files into whatever the working folder is.
fn checked_dir(dir: &Path, source: &str) -> Result<PathBuf> {
    let blank = dir.components().any(|component| component.as_os_str().to_string_lossy().trim().is_empty());
    if dir.is_absolute() && !blank {
        return Ok(dir.to_path_buf());
    }
    Err(Error::invalid(
        "InvalidCacheFolder",
        format!("{source} '{}' is not an absolute folder path: give a full path such as /home/dev/.cache/ecr-compose.", dir.display()),
    )
    .with_target(dir.display().to_string()))
}

fn cache_key(profile: &str, serial: &str) -> String {
    let digest = Sha256::digest(format!("{profile}\n{serial}").as_bytes());
    hex::encode(digest)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(dir)
    }
}

fn restrict(file: &File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(expiration: OffsetDateTime) -> MfaSession {
        MfaSession {
            access_key_id: "ASIAEXAMPLE".to_owned(),
            secret_access_key: Secret::new("secret-access-key"),
            session_token: Secret::new("session-token-value"),
            expiration: expiration.format(&Rfc3339).unwrap(),
            serial_number: "arn:aws:iam::123456789012:mfa/dev".to_owned(),
            account_id: Some("123456789012".to_owned()),
            profile: "default".to_owned(),
            region: "us-east-1".to_owned(),
            from_cache: false,
        }
    }

    #[test]
    fn stored_session_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = SessionCache::open(Some(dir.path())).unwrap();
        cache.store(&session(OffsetDateTime::now_utc() + time::Duration::hours(1))).unwrap();
        let loaded = cache.load("default", "arn:aws:iam::123456789012:mfa/dev", Duration::from_secs(300)).unwrap();
        assert_eq!(loaded.secret_access_key.expose(), "secret-access-key");
        assert!(loaded.from_cache);
    }

    #[test]
    fn session_near_expiry_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = SessionCache::open(Some(dir.path())).unwrap();
        cache.store(&session(OffsetDateTime::now_utc() + time::Duration::minutes(4))).unwrap();
        assert!(cache.load("default", "arn:aws:iam::123456789012:mfa/dev", Duration::from_secs(300)).is_none());
    }

    #[test]
    fn other_profile_misses() {
        let dir = tempfile::tempdir().unwrap();
        let cache = SessionCache::open(Some(dir.path())).unwrap();
        cache.store(&session(OffsetDateTime::now_utc() + time::Duration::hours(1))).unwrap();
        assert!(cache.load("prod", "arn:aws:iam::123456789012:mfa/dev", Duration::from_secs(300)).is_none());
    }

    #[test]
    fn corrupt_file_is_ignored_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CACHE_FILE), b"\x00not json").unwrap();
        let cache = SessionCache::open(Some(dir.path())).unwrap();
        assert!(cache.load("default", "x", Duration::ZERO).is_none());
        cache.store(&session(OffsetDateTime::now_utc() + time::Duration::hours(1))).unwrap();
        let text = fs::read_to_string(dir.path().join(CACHE_FILE)).unwrap();
        assert!(text.contains("\"version\": 1"));
    }

    #[cfg(unix)]
    #[test]
    fn file_mode_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = SessionCache::open(Some(dir.path())).unwrap();
        cache.store(&session(OffsetDateTime::now_utc() + time::Duration::hours(1))).unwrap();
        let mode = fs::metadata(cache.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn clear_removes_profile_entries() {
        let dir = tempfile::tempdir().unwrap();
        let cache = SessionCache::open(Some(dir.path())).unwrap();
        cache.store(&session(OffsetDateTime::now_utc() + time::Duration::hours(1))).unwrap();
        assert_eq!(cache.clear(Some("default")).unwrap(), 1);
        assert!(cache.load("default", "arn:aws:iam::123456789012:mfa/dev", Duration::ZERO).is_none());
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join(CACHE_FILE), &bytes).unwrap();
            let cache = SessionCache::open(Some(dir.path())).unwrap();
            let _ = cache.load("default", "x", Duration::ZERO);
        }
    }
}
