//! Progress counters of one push, reported through a throttled callback.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Progress;

/// Shortest time between two reports, except forced ones: at most ten a second.
const REPORT_INTERVAL: Duration = Duration::from_millis(100);

/// Counters of a push and the callback that reports them.
pub struct ProgressTracker<'a> {
    callback: &'a (dyn Fn(Progress) + Send + Sync),
    image: String,
    completed_bytes: Arc<AtomicU64>,
    total_bytes: AtomicU64,
    blobs_done: AtomicU32,
    blobs_total: AtomicU32,
    uploaded_bytes: AtomicU64,
    blobs_uploaded: AtomicU32,
    blobs_skipped: AtomicU32,
    /// Time of the last report.
    last: Mutex<Option<Instant>>,
}

impl<'a> ProgressTracker<'a> {
    /// Creates a tracker for the image `image`.
    pub fn new(image: String, callback: &'a (dyn Fn(Progress) + Send + Sync)) -> Self {
        ProgressTracker {
            callback,
            image,
            completed_bytes: Arc::new(AtomicU64::new(0)),
            total_bytes: AtomicU64::new(0),
            blobs_done: AtomicU32::new(0),
            blobs_total: AtomicU32::new(0),
            uploaded_bytes: AtomicU64::new(0),
            blobs_uploaded: AtomicU32::new(0),
            blobs_skipped: AtomicU32::new(0),
            last: Mutex::new(None),
        }
    }

    /// Sets the totals once the plan is known.
    pub fn set_totals(&self, blobs: u32, bytes: u64) {
        self.blobs_total.store(blobs, Ordering::Relaxed);
        self.total_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Returns the counter of completed bytes, which request bodies raise
    /// as they are sent (and lower again when a request fails).
    pub fn sent_counter(&self) -> Arc<AtomicU64> {
        self.completed_bytes.clone()
    }

    /// Records a blob that the registry already had; `estimate` was counted
    /// in the total and is replaced by the real `size`.
    pub fn blob_skipped(&self, estimate: u64, size: u64) {
        self.replace_estimate(estimate, size);
        self.completed_bytes.fetch_add(size, Ordering::Relaxed);
        self.blobs_skipped.fetch_add(1, Ordering::Relaxed);
        self.blobs_done.fetch_add(1, Ordering::Relaxed);
    }

    /// Records an uploaded blob of `size` bytes whose estimate was `estimate`.
    pub fn blob_uploaded(&self, estimate: u64, size: u64) {
        self.replace_estimate(estimate, size);
        self.completed_bytes.fetch_add(size, Ordering::Relaxed);
        self.uploaded_bytes.fetch_add(size, Ordering::Relaxed);
        self.blobs_uploaded.fetch_add(1, Ordering::Relaxed);
        self.blobs_done.fetch_add(1, Ordering::Relaxed);
    }

    fn replace_estimate(&self, estimate: u64, size: u64) {
        let _ = self
            .total_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |total| {
                Some(total.saturating_sub(estimate).saturating_add(size))
            });
    }

    /// Uploaded blobs, skipped blobs and uploaded bytes.
    pub fn counts(&self) -> (u32, u32, u64) {
        (
            self.blobs_uploaded.load(Ordering::Relaxed),
            self.blobs_skipped.load(Ordering::Relaxed),
            self.uploaded_bytes.load(Ordering::Relaxed),
        )
    }

    /// Calls the callback, unless the last report was less than 100 ms ago;
    /// `force` reports anyway.
    pub fn report(&self, status: &str, force: bool) {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let due = last.is_none_or(|at| at.elapsed() >= REPORT_INTERVAL);
        if !force && !due {
            return;
        }
        *last = Some(Instant::now());
        let completed = self.completed_bytes.load(Ordering::Relaxed);
        let total = self.total_bytes.load(Ordering::Relaxed).max(completed);
        (self.callback)(Progress {
            image: self.image.clone(),
            completed_bytes: completed,
            total_bytes: total,
            blobs_done: self.blobs_done.load(Ordering::Relaxed),
            blobs_total: self.blobs_total.load(Ordering::Relaxed),
            status: status.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_throttled() {
        let count = AtomicU32::new(0);
        let callback = |_: Progress| {
            count.fetch_add(1, Ordering::Relaxed);
        };
        let tracker = ProgressTracker::new("app".to_owned(), &callback);
        for _ in 0..1000 {
            tracker.report("Uploading", false);
        }
        assert_eq!(count.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn forced_report_always_sent() {
        let count = AtomicU32::new(0);
        let callback = |_: Progress| {
            count.fetch_add(1, Ordering::Relaxed);
        };
        let tracker = ProgressTracker::new("app".to_owned(), &callback);
        tracker.report("Preparing", true);
        tracker.report("Pushed", true);
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn estimate_replaced_by_size() {
        let callback = |_: Progress| {};
        let tracker = ProgressTracker::new("app".to_owned(), &callback);
        tracker.set_totals(1, 100);
        tracker.blob_uploaded(100, 40);
        assert_eq!(tracker.total_bytes.load(Ordering::Relaxed), 40);
    }
}
