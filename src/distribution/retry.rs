//! Exponential backoff with jitter for registry requests.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Maximum wait between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// How often and how long to retry.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Delay before the first retry, before jitter.
    pub base_delay: Duration,
}

impl RetryPolicy {
    /// Returns the delay before retry number `retry` (0 for the first):
    /// `base * 2^retry`, capped at [`MAX_DELAY`], then scaled by a random
    /// factor in [0.5, 1] so that parallel uploads do not retry in step.
    pub fn delay(&self, retry: u32) -> Duration {
        let exponential = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.min(16)));
        let capped = exponential.min(MAX_DELAY);
        capped.mul_f64(rand::random_range(0.5..=1.0))
    }

    /// Returns the delay before a retry, honouring a `Retry-After` header in
    /// seconds when the response has one.
    pub fn delay_after(&self, retry: u32, headers: &HeaderMap) -> Duration {
        let requested = headers
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        match requested {
            Some(requested) => requested.min(MAX_DELAY),
            None => self.delay(retry),
        }
    }
}

/// True for statuses that a later attempt may not get: 429 and 5xx, except
/// 501 (not implemented) and 505 (HTTP version not supported).
pub fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || (status.is_server_error()
            && status != StatusCode::NOT_IMPLEMENTED
            && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED)
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(100),
        }
    }

    #[test]
    fn delay_grows_exponentially() {
        let third = policy().delay(2);
        assert!(third >= Duration::from_millis(200));
        assert!(third <= Duration::from_millis(400));
    }

    #[test]
    fn delay_is_capped() {
        assert!(policy().delay(40) <= MAX_DELAY);
    }

    #[test]
    fn retry_after_wins() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(policy().delay_after(0, &headers), Duration::from_secs(3));
    }

    #[test]
    fn retryable_statuses() {
        assert!(is_retryable_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(is_retryable_status(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!is_retryable_status(StatusCode::NOT_IMPLEMENTED));
        assert!(!is_retryable_status(StatusCode::BAD_REQUEST));
    }
}
