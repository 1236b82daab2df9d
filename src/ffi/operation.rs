//! Operations that run on the shared runtime behind an opaque handle.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::request::{self, Envelope};
use crate::error::{EcrStatus, Error, Result};
use crate::events::{self, EventHook, EventSink};
use crate::operation::{self, OperationContext};
use crate::{login, push, session};

/// A running or finished operation, owned by the caller through a pointer.
pub struct EcrOperation {
    events: Arc<EventSink>,
    cancel: CancellationToken,
    outcome: Arc<Mutex<Option<Result<Value>>>>,
}

/// Kinds of operation that `ecr_operation_start` takes.
const OPERATIONS: [&str; 4] = ["token", "login", "push", "cache-clear"];

impl EcrOperation {
    /// Parses the request and starts the operation on the shared runtime.
    pub fn start(kind: &str, request_text: &str, hook: Option<EventHook>) -> Result<EcrOperation> {
        if !OPERATIONS.contains(&kind) {
            return Err(Error::invalid(
                "UnknownOperation",
                format!("The operation '{kind}' is unknown: use one of {}.", OPERATIONS.join(", ")),
            )
            .with_target(kind));
        }
        let Envelope { log_level, body } = request::parse_envelope(request_text)?;
        let context = OperationContext {
            events: EventSink::new(log_level, hook),
            cancel: CancellationToken::new(),
        };
        let future = build_future(kind, body, context.clone())?;
        #[cfg(debug_assertions)]
        let future = inject_panic(future);
        EcrOperation::spawn(kind, future, context)
    }

    /// Runs `future` on the shared runtime, catching a panic inside it.
    fn spawn(kind: &str, future: BoxFuture<'static, Result<Value>>, context: OperationContext) -> Result<EcrOperation> {
        let runtime = operation::runtime()?;
        events::install_subscriber();
        let operation_id = events::register(&context.events);
        let outcome = Arc::new(Mutex::new(None));
        let task_outcome = Arc::clone(&outcome);
        let task_events = Arc::clone(&context.events);
        let span = tracing::info_span!("operation", ecr_operation = operation_id, kind = kind);
        runtime.spawn(
            async move {
                let result = match AssertUnwindSafe(future).catch_unwind().await {
                    Ok(result) => result,
                    Err(panic) => Err(panic_error(panic.as_ref())),
                };
                if let Err(error) = &result {
                    tracing::debug!(error_id = %error.error_id, "operation failed");
                }
                *task_outcome.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(result);
                task_events.finish();
            }
            .instrument(span),
        );
        Ok(EcrOperation { events: context.events, cancel: context.cancel, outcome })
    }

    /// Waits up to `wait` and returns the status and the response document:
    /// [`EcrStatus::Pending`] with the new events while the operation runs.
    pub fn poll(&self, wait: Duration) -> (EcrStatus, Value) {
        let (events, finished) = self.events.wait_and_drain(wait);
        if !finished {
            return (EcrStatus::Pending, serde_json::json!({"done": false, "events": events}));
        }
        let outcome = self.outcome.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match outcome.as_ref() {
            Some(result) => request::response(result, events),
            None => {
                let error = Error::internal("The operation finished without a result.");
                (error.status, request::error_response(&error, events))
            }
        }
    }

    /// Waits for the end of the operation and returns its full response.
    pub fn wait(&self) -> (EcrStatus, Value) {
        let mut all_events = Vec::new();
        loop {
            let (status, mut response) = self.poll(Duration::from_millis(500));
            if let Some(Value::Array(events)) = response.get_mut("events").map(Value::take) {
                all_events.extend(events);
            }
            if status != EcrStatus::Pending {
                response["events"] = Value::Array(all_events);
                return (status, response);
            }
        }
    }

    /// Asks the operation to stop.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}

impl Drop for EcrOperation {
    fn drop(&mut self) {
        // A handle freed while the operation runs stops it rather than leaving work behind.
        self.cancel.cancel();
    }
}

fn build_future(kind: &str, body: Value, context: OperationContext) -> Result<BoxFuture<'static, Result<Value>>> {
    let future: BoxFuture<'static, Result<Value>> = match kind {
        "token" => {
            let request: session::TokenRequest = request::parse_body(kind, body)?;
            Box::pin(async move { to_value(session::get_session_token(&request, &context).await?) })
        }
        "login" => {
            let request: login::LoginRequest = request::parse_body(kind, body)?;
            Box::pin(async move { to_value(login::login(&request, &context).await?) })
        }
        "cache-clear" => {
            let request: session::ClearRequest = request::parse_body(kind, body)?;
            Box::pin(async move { to_value(session::clear_cache(&request).await?) })
        }
        _ => {
            let request: push::PushRequest = request::parse_body(kind, body)?;
            Box::pin(async move { to_value(push::push(&request, &context).await?) })
        }
    };
    Ok(future)
}

/// Replaces the operation by a panic when `ECR_COMPOSE_TEST_PANIC` is set,
/// so the C test can check that a panic in the core reaches the host as
/// `ECR_STATUS_PANIC`. Debug builds only: release builds have no such hook.
#[cfg(debug_assertions)]
fn inject_panic(future: BoxFuture<'static, Result<Value>>) -> BoxFuture<'static, Result<Value>> {
    if std::env::var_os("ECR_COMPOSE_TEST_PANIC").is_some() {
        return Box::pin(async { panic!("panic injected by ECR_COMPOSE_TEST_PANIC") });
    }
    future
}

fn to_value<T: serde::Serialize>(value: T) -> Result<Value> {
    serde_json::to_value(value).map_err(|error| Error::internal(format!("Could not serialize the result: {error}")))
}

/// Turns a caught panic into an error that names where it happened.
pub fn panic_error(panic: &(dyn std::any::Any + Send)) -> Error {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    Error::new(
        EcrStatus::Panic,
        "InternalPanic",
        format!("The native library hit a bug and stopped the operation ({detail}). Please report it with the command you ran."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::LogLevel;

    #[test]
    fn panic_in_core_becomes_panic_status() {
        let context = OperationContext::new(LogLevel::Info);
        let future: BoxFuture<'static, Result<Value>> = Box::pin(async { panic!("core bug") });
        let handle = EcrOperation::spawn("token", future, context).unwrap();
        let (status, response) = handle.wait();
        assert_eq!(status, EcrStatus::Panic);
        assert_eq!(response["error"]["errorId"], "InternalPanic");
        assert!(response["error"]["message"].as_str().unwrap().contains("core bug"));
    }

    #[test]
    fn cancel_stops_operation() {
        let context = OperationContext::new(LogLevel::Info);
        let cancel = context.cancel.clone();
        let future: BoxFuture<'static, Result<Value>> = Box::pin(async move {
            cancel.cancelled().await;
            Err(Error::cancelled())
        });
        let handle = EcrOperation::spawn("push", future, context).unwrap();
        let (status, _) = handle.poll(Duration::from_millis(50));
        assert_eq!(status, EcrStatus::Pending);
        handle.cancel();
        let (status, _) = handle.wait();
        assert_eq!(status, EcrStatus::Cancelled);
    }
}
