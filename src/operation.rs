//! Context of every core operation besides its request: the queue of its
//! events and the token that signals the caller's cancellation.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::events::{EventSink, LogLevel};

/// Context of one running operation.
#[derive(Clone, Debug)]
pub struct OperationContext {
    /// Queue of the operation's log, progress and item events.
    pub events: Arc<EventSink>,
    /// Cancelled when the caller cancels the operation.
    pub cancel: CancellationToken,
}

impl OperationContext {
    /// Creates a context with a fresh queue at `level` and no hook.
    pub fn new(level: LogLevel) -> OperationContext {
        OperationContext {
            events: EventSink::new(level, None),
            cancel: CancellationToken::new(),
        }
    }

    /// Runs `future` unless the operation is cancelled first.
    pub async fn run_cancellable<T>(&self, future: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(Error::cancelled()),
            output = future => output,
        }
    }
}

/// Returns the runtime shared by every operation, created on first use.
pub fn runtime() -> Result<&'static Runtime> {
    static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("ecr-compose")
                .build()
                .map_err(|error| error.to_string())
        })
        .as_ref()
        .map_err(|error| Error::internal(format!("Could not start the async runtime: {error}")))
}
