//! On-disk cache of compressed layer digests, keyed by uncompressed digest.
//!
//! A layer that was compressed and pushed once is remembered as
//! `diff id → (compressed digest, size)`. On the next push the uploader
//! checks the registry for that digest first and skips the compression when
//! the registry has it. Any entry is safe to use: it names bytes that this
//! library produced from that very layer, whatever compressor made them.
//!
//! Engine images are remembered too (`image id → config size`), once an
//! export has shown that the image id is the digest of its config, so an
//! unchanged image can be checked at the registry without exporting it.
//!
//! The file is versioned JSON, written to a temporary file in the same
//! folder and renamed, with mode 0600, under a lock file. A corrupt file or
//! another version is ignored and replaced on the next write.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Version written in the file; a file with another version is ignored.
const CACHE_VERSION: u32 = 1;
const CACHE_FILE: &str = "layer-digests-v1.json";
const LOCK_FILE: &str = "layer-digests.lock";
/// Entries kept per kind; the least recently recorded go first.
const MAX_LAYER_ENTRIES: usize = 4096;
const MAX_IMAGE_ENTRIES: usize = 1024;

/// A compressed form of a layer that was pushed before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedLayer {
    /// Digest of the gzip-compressed layer.
    pub digest: String,
    /// Size of the gzip-compressed layer in bytes.
    pub size: u64,
    /// Seconds since the Unix epoch when the entry was last written.
    #[serde(default)]
    pub recorded_at: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CachedImage {
    config_size: u64,
    #[serde(default)]
    recorded_at: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    #[serde(default)]
    layers: BTreeMap<String, CachedLayer>,
    #[serde(default)]
    images: BTreeMap<String, CachedImage>,
}

#[derive(Debug)]
struct CacheInner {
    /// Folder of the cache file; `None` keeps entries in memory only.
    dir: Option<PathBuf>,
    /// Entries, loaded from the file on first use.
    entries: Mutex<Option<CacheFile>>,
}

/// Cache of compressed layer digests; clones share their entries.
#[derive(Clone, Debug)]
pub struct DigestCache {
    inner: Arc<CacheInner>,
}

impl DigestCache {
    /// Returns the cache in the folder of the session cache
    /// (`ECR_COMPOSE_CACHE_DIR`, else `dirs::cache_dir()/ecr-compose/`), or a
    /// memory-only cache when the platform has no cache folder. The variable
    /// is read on each call, because a PowerShell session may change it.
    pub fn user_default() -> Self {
        let configured = std::env::var_os(crate::session::CACHE_DIR_VARIABLE)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from);
        Self::shared(configured.or_else(|| dirs::cache_dir().map(|dir| dir.join("ecr-compose"))))
    }

    /// Returns the process-wide cache of `dir`, so that the pushes of one
    /// process share the entries they have loaded.
    fn shared(dir: Option<PathBuf>) -> Self {
        static CACHES: OnceLock<Mutex<HashMap<Option<PathBuf>, DigestCache>>> = OnceLock::new();
        let mut caches = CACHES
            .get_or_init(|| Mutex::new(HashMap::new()))
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        caches
            .entry(dir.clone())
            .or_insert_with(|| Self::with_dir(dir))
            .clone()
    }

    /// Creates a cache stored in `dir`, which is created on the first write.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self::with_dir(Some(dir.into()))
    }

    /// Creates a cache that lives only as long as the process.
    pub fn in_memory() -> Self {
        Self::with_dir(None)
    }

    fn with_dir(dir: Option<PathBuf>) -> Self {
        DigestCache {
            inner: Arc::new(CacheInner {
                dir,
                entries: Mutex::new(None),
            }),
        }
    }

    /// Path of the cache file, if the cache has one.
    pub fn file_path(&self) -> Option<PathBuf> {
        self.inner.dir.as_ref().map(|dir| dir.join(CACHE_FILE))
    }

    /// Looks up the compressed form of the layer with this diff id.
    pub fn layer(&self, diff_id: &str) -> Option<CachedLayer> {
        self.with_entries(|entries| entries.layers.get(diff_id).cloned())
    }

    /// Looks up the config size of an engine image whose id is its config digest.
    pub fn image_config_size(&self, image_id: &str) -> Option<u64> {
        self.with_entries(|entries| entries.images.get(image_id).map(|image| image.config_size))
    }

    /// Records the compressed form of a layer. A failure to write the file
    /// is logged and otherwise ignored: the cache only saves work.
    pub async fn record_layer(&self, diff_id: &str, digest: &str, size: u64) {
        let entry = CachedLayer {
            digest: digest.to_owned(),
            size,
            recorded_at: now_seconds(),
        };
        let key = diff_id.to_owned();
        self.update(move |file| {
            file.layers.insert(key.clone(), entry.clone());
        })
        .await;
    }

    /// Records that an engine image id is the digest of a config of `size` bytes.
    pub async fn record_image_config(&self, image_id: &str, size: u64) {
        let entry = CachedImage {
            config_size: size,
            recorded_at: now_seconds(),
        };
        let key = image_id.to_owned();
        self.update(move |file| {
            file.images.insert(key.clone(), entry.clone());
        })
        .await;
    }

    fn with_entries<T>(&self, read: impl FnOnce(&CacheFile) -> T) -> T {
        let mut guard = self
            .inner
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let entries = guard.get_or_insert_with(|| match &self.inner.dir {
            Some(dir) => load(&dir.join(CACHE_FILE)),
            None => CacheFile::default(),
        });
        read(entries)
    }

    async fn update(&self, change: impl Fn(&mut CacheFile) + Send + 'static) {
        self.with_entries(|_| ());
        {
            let mut guard = self
                .inner
                .entries
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(entries) = guard.as_mut() {
                change(entries);
            }
        }
        let Some(dir) = self.inner.dir.clone() else {
            return;
        };
        let inner = self.inner.clone();
        let written = tokio::task::spawn_blocking(move || {
            let merged = write_locked(&dir, &change)?;
            let mut guard = inner
                .entries
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            *guard = Some(merged);
            Ok::<(), std::io::Error>(())
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "could not write the layer digest cache"),
            Err(error) => tracing::warn!(%error, "the layer digest cache writer stopped"),
        }
    }
}

/// Reads the cache file; a missing, corrupt or other-version file reads as empty.
fn load(path: &Path) -> CacheFile {
    let Ok(bytes) = fs::read(path) else {
        return CacheFile::default();
    };
    match serde_json::from_slice::<CacheFile>(&bytes) {
        Ok(file) if file.version == CACHE_VERSION => file,
        Ok(_) => CacheFile::default(),
        Err(error) => {
            tracing::debug!(%error, path = %path.display(), "ignoring a corrupt layer digest cache");
            CacheFile::default()
        }
    }
}

/// Applies `change` to the file's current entries under the lock, writes
/// the result atomically and returns it.
fn write_locked(dir: &Path, change: &dyn Fn(&mut CacheFile)) -> std::io::Result<CacheFile> {
    fs::create_dir_all(dir)?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))?;
    fs4::FileExt::lock(&lock)?;

    let path = dir.join(CACHE_FILE);
    let mut file = load(&path);
    file.version = CACHE_VERSION;
    change(&mut file);
    prune(&mut file.layers, MAX_LAYER_ENTRIES, |entry| {
        entry.recorded_at
    });
    prune(&mut file.images, MAX_IMAGE_ENTRIES, |entry| {
        entry.recorded_at
    });

    let mut temporary = tempfile::NamedTempFile::new_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        temporary
            .as_file()
            .set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    let json = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
    temporary.write_all(&json)?;
    temporary.as_file().sync_all()?;
    temporary.persist(&path).map_err(|error| error.error)?;

    fs4::FileExt::unlock(&lock)?;
    Ok(file)
}

/// Removes the oldest entries beyond `max`.
fn prune<T>(entries: &mut BTreeMap<String, T>, max: usize, recorded_at: impl Fn(&T) -> u64) {
    if entries.len() <= max {
        return;
    }
    let mut ages: Vec<(u64, String)> = entries
        .iter()
        .map(|(key, entry)| (recorded_at(entry), key.clone()))
        .collect();
    ages.sort();
    let excess = entries.len() - max;
    for (_, key) in ages.into_iter().take(excess) {
        entries.remove(&key);
    }
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_cache_follows_its_folder() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        let cache = DigestCache::shared(Some(first.path().to_path_buf()));
        let again = DigestCache::shared(Some(first.path().to_path_buf()));
        let other = DigestCache::shared(Some(second.path().to_path_buf()));
        assert!(Arc::ptr_eq(&cache.inner, &again.inner));
        assert!(!Arc::ptr_eq(&cache.inner, &other.inner));
        assert_eq!(other.inner.dir.as_deref(), Some(second.path()));
    }

    #[tokio::test]
    async fn record_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DigestCache::in_dir(dir.path());
        cache.record_layer("sha256:diff", "sha256:gz", 42).await;
        let reopened = DigestCache::in_dir(dir.path());
        let entry = reopened.layer("sha256:diff").unwrap();
        assert_eq!(entry.digest, "sha256:gz");
        assert_eq!(entry.size, 42);
    }

    #[tokio::test]
    async fn corrupt_file_reads_empty() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CACHE_FILE), b"{not json").unwrap();
        let cache = DigestCache::in_dir(dir.path());
        assert!(cache.layer("sha256:diff").is_none());
    }

    #[tokio::test]
    async fn corrupt_file_replaced_on_write() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CACHE_FILE), b"{not json").unwrap();
        let cache = DigestCache::in_dir(dir.path());
        cache.record_layer("sha256:diff", "sha256:gz", 1).await;
        let text = fs::read_to_string(dir.path().join(CACHE_FILE)).unwrap();
        assert!(text.contains("\"version\": 1"));
    }

    #[tokio::test]
    async fn other_version_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let other = r#"{"version":99,"layers":{"sha256:diff":{"digest":"sha256:gz","size":1}}}"#;
        fs::write(dir.path().join(CACHE_FILE), other).unwrap();
        let cache = DigestCache::in_dir(dir.path());
        assert!(cache.layer("sha256:diff").is_none());
    }

    #[tokio::test]
    async fn writes_merge_with_other_writers() {
        let dir = tempfile::tempdir().unwrap();
        let first = DigestCache::in_dir(dir.path());
        let second = DigestCache::in_dir(dir.path());
        first.layer("sha256:a");
        second.layer("sha256:b");
        first.record_layer("sha256:a", "sha256:ga", 1).await;
        second.record_layer("sha256:b", "sha256:gb", 2).await;
        let reopened = DigestCache::in_dir(dir.path());
        assert!(reopened.layer("sha256:a").is_some());
        assert!(reopened.layer("sha256:b").is_some());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn file_mode_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = DigestCache::in_dir(dir.path());
        cache.record_image_config("sha256:id", 7).await;
        let mode = fs::metadata(dir.path().join(CACHE_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn prune_drops_oldest() {
        let mut entries = BTreeMap::new();
        entries.insert("old".to_owned(), 1u64);
        entries.insert("new".to_owned(), 2u64);
        prune(&mut entries, 1, |age| *age);
        assert!(entries.contains_key("new"));
        assert!(!entries.contains_key("old"));
    }
}
