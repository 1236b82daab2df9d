//! Events of a running operation: log lines, progress and per-item results.
//!
//! A native callback would run on a runtime thread where the host (a
//! PowerShell runspace, say) cannot act, so every event is queued in an
//! [`EventSink`] and handed over by the thread that polls the operation, or
//! passed to a callback that only queues it on the host side.
//!
//! Log lines come from `tracing`: [`OperationLayer`] routes each event to the
//! sink of the operation whose span it runs in, and masks every secret that
//! the operation registered with [`EventSink::redact`].

use std::collections::{HashMap, VecDeque};
use std::fmt::{self, Write as _};
use std::sync::{Arc, Condvar, LazyLock, Mutex, OnceLock, Weak};
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Name of the span field that ties a span to an operation's sink.
pub const OPERATION_FIELD: &str = "ecr_operation";

/// Shortest secret that is masked; shorter values would mask ordinary words.
const MIN_REDACTED_LENGTH: usize = 8;

/// Mask written in place of a secret.
const REDACTION_MASK: &str = "***";

/// How much log detail an operation reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors and warnings, and the library's own info lines.
    #[default]
    Info,
    /// Adds the library's debug lines and the info lines of AWS and HTTP crates.
    Debug,
    /// The library's trace lines and the debug lines of every crate. Other
    /// crates' trace lines stay out: the AWS SDK traces raw response bodies,
    /// and ECR's authorization token is not marked sensitive there.
    Trace,
}

impl LogLevel {
    /// True when a line of `level` from `target` is reported at this setting.
    fn admits(self, level: &Level, target: &str) -> bool {
        let own = target.starts_with("ecr_compose");
        let limit = match (self, own) {
            (LogLevel::Info, true) => Level::INFO,
            (LogLevel::Info, false) => Level::WARN,
            (LogLevel::Debug, true) => Level::DEBUG,
            (LogLevel::Debug, false) => Level::INFO,
            (LogLevel::Trace, true) => Level::TRACE,
            (LogLevel::Trace, false) => Level::DEBUG,
        };
        // tracing orders levels by verbosity: TRACE > DEBUG > INFO > WARN > ERROR.
        *level <= limit
    }
}

/// Function the host may install to receive each event as JSON.
pub type EventHook = Box<dyn Fn(&str) + Send + Sync>;

/// Queue of one operation's events, shared by the core and the ABI layer.
pub struct EventSink {
    level: LogLevel,
    state: Mutex<SinkState>,
    changed: Condvar,
    hook: Option<EventHook>,
}

#[derive(Default)]
struct SinkState {
    queue: VecDeque<Value>,
    secrets: Vec<String>,
    finished: bool,
    next_progress_id: u32,
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSink").field("level", &self.level).finish_non_exhaustive()
    }
}

impl EventSink {
    /// Creates a sink that queues events, or passes them to `hook` when given.
    pub fn new(level: LogLevel, hook: Option<EventHook>) -> Arc<EventSink> {
        Arc::new(EventSink {
            level,
            state: Mutex::new(SinkState { next_progress_id: 1, ..SinkState::default() }),
            changed: Condvar::new(),
            hook,
        })
    }

    /// Registers a secret value that must never appear in an event.
    pub fn redact(&self, secret: &str) {
        if secret.len() >= MIN_REDACTED_LENGTH {
            let mut state = self.lock();
            if !state.secrets.iter().any(|known| known == secret) {
                state.secrets.push(secret.to_owned());
            }
        }
    }

    /// Returns a new progress id, unique within the operation (0 means no parent).
    pub fn next_progress_id(&self) -> u32 {
        let mut state = self.lock();
        let id = state.next_progress_id;
        state.next_progress_id += 1;
        id
    }

    /// Queues a log line.
    pub fn log(&self, level: &Level, target: &str, message: &str) {
        if !self.level.admits(level, target) {
            return;
        }
        let level_name = match *level {
            Level::ERROR => "error",
            Level::WARN => "warn",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        self.push(json!({"type": "log", "level": level_name, "target": target, "message": message}));
    }

    /// Queues a progress record.
    pub fn progress(&self, progress: &ProgressEvent) {
        let mut value = serde_json::to_value(progress).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.insert("type".to_owned(), Value::from("progress"));
        }
        self.push(value);
    }

    /// Queues one result item (for example one pushed image).
    pub fn item(&self, item: Value) {
        self.push(json!({"type": "item", "item": item}));
    }

    /// Marks the operation as finished and wakes a waiting poll.
    pub fn finish(&self) {
        self.lock().finished = true;
        self.changed.notify_all();
    }

    /// Waits up to `wait` for the operation to finish or for a new event, then
    /// drains the queue. Returns the events and whether the operation finished.
    pub fn wait_and_drain(&self, wait: Duration) -> (Vec<Value>, bool) {
        let state = self.lock();
        let (mut state, _) = self
            .changed
            .wait_timeout_while(state, wait, |state| !state.finished && state.queue.is_empty())
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let events = state.queue.drain(..).collect();
        (events, state.finished)
    }

    /// Drains the queue without waiting.
    pub fn drain(&self) -> Vec<Value> {
        self.lock().queue.drain(..).collect()
    }

    fn push(&self, event: Value) {
        let mut state = self.lock();
        let event = redact_value(event, &state.secrets);
        match &self.hook {
            Some(hook) => {
                drop(state);
                hook(&event.to_string());
            }
            None => {
                state.queue.push_back(event);
                drop(state);
                self.changed.notify_all();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SinkState> {
        // A panic while the lock was held leaves plain data behind, still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A progress record, as PowerShell's Write-Progress takes it.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressEvent {
    /// Progress id, unique within the operation.
    pub id: u32,
    /// Id of the parent record, 0 for a top-level one.
    pub parent_id: u32,
    /// What is being done, for example `Pushing 127.0.0.1:5000/app:1.0`.
    pub activity: String,
    /// The current step, for example `Uploading 2 of 5 layers`.
    pub status: String,
    /// Percent done, 0 to 100, or -1 when unknown.
    pub percent: i32,
    /// Bytes done so far.
    pub current_bytes: u64,
    /// Bytes in all, 0 when unknown.
    pub total_bytes: u64,
    /// True on the last record of this id.
    pub completed: bool,
}

fn redact_value(value: Value, secrets: &[String]) -> Value {
    match value {
        Value::String(text) => Value::String(redact_text(&text, secrets)),
        Value::Array(items) => Value::Array(items.into_iter().map(|item| redact_value(item, secrets)).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, item)| (key, redact_value(item, secrets)))
                .collect(),
        ),
        other => other,
    }
}

/// Credential fields as AWS responses and SDK Debug output spell them, with
/// their values; masked even before the operation has registered the values.
/// ASCII mode (`-u`) keeps the case-insensitive pattern quick to compile.
static SECRET_FIELDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i-u)((?:authorization_?token|secret_?access_?key|session_?token|password)(?:["']?\s*[:=]\s*(?:Some\()?["']?|>))[A-Za-z0-9+/=_\-.%]{8,}"#,
    )
    .expect("secret field pattern is valid")
});

/// Replaces every occurrence of each secret in `text`, and the value of
/// every credential field, by a mask.
pub fn redact_text(text: &str, secrets: &[String]) -> String {
    let mut output = SECRET_FIELDS.replace_all(text, format!("${{1}}{REDACTION_MASK}").as_str()).into_owned();
    for secret in secrets {
        if output.contains(secret.as_str()) {
            output = output.replace(secret.as_str(), REDACTION_MASK);
        }
    }
    output
}

/// Operations whose spans are live, by operation id. Weak, so a finished
/// operation's sink is dropped with its handle.
fn registry() -> &'static Mutex<HashMap<u64, Weak<EventSink>>> {
    static OPERATIONS: OnceLock<Mutex<HashMap<u64, Weak<EventSink>>>> = OnceLock::new();
    OPERATIONS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Registers a sink and returns the id to put in the operation's span field.
pub fn register(sink: &Arc<EventSink>) -> u64 {
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut operations = registry().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    operations.retain(|_, sink| sink.strong_count() > 0);
    operations.insert(id, Arc::downgrade(sink));
    id
}

fn lookup(id: u64) -> Option<Arc<EventSink>> {
    let operations = registry().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    operations.get(&id).and_then(Weak::upgrade)
}

/// Installs the process-wide `tracing` subscriber that feeds operation sinks.
///
/// Does nothing when a global subscriber exists already (another library in
/// the host process may have set one); log lines then go to that subscriber.
pub fn install_subscriber() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(OperationLayer);
        if tracing::subscriber::set_global_default(subscriber).is_err() {
            // NOTE: the host installed its own subscriber; operation logs reach it instead.
        }
    });
}

/// `tracing` layer that copies each event into the sink of its operation.
pub struct OperationLayer;

struct OperationId(u64);

impl<S> Layer<S> for OperationLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, context: Context<'_, S>) {
        let mut visitor = OperationIdVisitor(None);
        attributes.record(&mut visitor);
        if let (Some(operation), Some(span)) = (visitor.0, context.span(id)) {
            span.extensions_mut().insert(OperationId(operation));
        }
    }

    fn on_event(&self, event: &Event<'_>, context: Context<'_, S>) {
        let Some(scope) = context.event_scope(event) else {
            return;
        };
        let operation = scope
            .from_root()
            .filter_map(|span| span.extensions().get::<OperationId>().map(|id| id.0))
            .last();
        let Some(sink) = operation.and_then(lookup) else {
            return;
        };
        let metadata = event.metadata();
        if !sink.level.admits(metadata.level(), metadata.target()) {
            return;
        }
        let mut visitor = MessageVisitor::default();
        event.record(&mut visitor);
        sink.log(metadata.level(), metadata.target(), &visitor.finish());
    }
}

struct OperationIdVisitor(Option<u64>);

impl Visit for OperationIdVisitor {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == OPERATION_FIELD {
            self.0 = Some(value);
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn fmt::Debug) {}
}

#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
}

impl MessageVisitor {
    fn finish(self) -> String {
        if self.fields.is_empty() {
            self.message
        } else if self.message.is_empty() {
            self.fields.trim_start().to_owned()
        } else {
            format!("{}{}", self.message, self.fields)
        }
    }
}

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Instrument;

    #[test]
    fn level_info_hides_foreign_info() {
        assert!(LogLevel::Info.admits(&Level::INFO, "ecr_compose::push"));
        assert!(!LogLevel::Info.admits(&Level::INFO, "aws_smithy_runtime"));
        assert!(LogLevel::Info.admits(&Level::WARN, "aws_smithy_runtime"));
        assert!(!LogLevel::Info.admits(&Level::DEBUG, "ecr_compose::push"));
    }

    #[test]
    fn sink_masks_registered_secret() {
        let sink = EventSink::new(LogLevel::Info, None);
        sink.redact("wJalrXUtnFEMIK7MDENG");
        sink.log(&Level::INFO, "ecr_compose::test", "key wJalrXUtnFEMIK7MDENG here");
        let events = sink.drain();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["message"], "key *** here");
    }

    #[test]
    fn credential_fields_masked_without_registration() {
        let masked = redact_text(
            r#"{"authorizationData":[{"authorizationToken":"QVdTOjEyMzQ1Njc4OTAxMi1hdXRoLXRva2Vu"}]} <SecretAccessKey>wJalrXUtnFEMIK7MDENG</SecretAccessKey> session_token: Some("FwoGZXIvYXdzEBYaDH")"#,
            &[],
        );
        assert!(!masked.contains("QVdTOjEyMzQ1Njc4OTAxMi1hdXRoLXRva2Vu"), "{masked}");
        assert!(!masked.contains("wJalrXUtnFEMIK7MDENG"), "{masked}");
        assert!(!masked.contains("FwoGZXIvYXdzEBYaDH"), "{masked}");
    }

    #[test]
    fn trace_keeps_foreign_trace_out() {
        assert!(LogLevel::Trace.admits(&Level::TRACE, "ecr_compose::push"));
        assert!(!LogLevel::Trace.admits(&Level::TRACE, "aws_smithy_runtime::client"));
        assert!(LogLevel::Trace.admits(&Level::DEBUG, "aws_smithy_runtime::client"));
    }

    #[test]
    fn layer_routes_event_to_operation() {
        install_subscriber();
        let sink = EventSink::new(LogLevel::Debug, None);
        let id = register(&sink);
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(
            async {
                tracing::info!(registry = "127.0.0.1:5000", "logging in");
            }
            .instrument(tracing::info_span!("operation", ecr_operation = id)),
        );
        let events = sink.drain();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["message"], "logging in registry=127.0.0.1:5000");
    }

    #[test]
    fn wait_returns_when_finished() {
        let sink = EventSink::new(LogLevel::Info, None);
        sink.finish();
        let (events, finished) = sink.wait_and_drain(Duration::from_secs(5));
        assert!(events.is_empty());
        assert!(finished);
    }
}
