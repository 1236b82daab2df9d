//! The C ABI: JSON in, JSON out, one status code per call.
//!
//! This layer only converts. It checks pointers, decodes UTF-8, parses the
//! request, starts the core operation on the shared runtime and encodes the
//! response. Every function catches panics, so nothing unwinds into the host.

mod operation;
mod request;

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::time::Duration;

pub use operation::EcrOperation;
use serde_json::Value;

use crate::error::{EcrStatus, Error};

/// Version of this ABI; `ecr_abi_version` returns it.
pub const ECR_ABI_VERSION: u32 = 1;

/// Maximum wait that `ecr_operation_poll` honours, in milliseconds, so a
/// caller's Ctrl+C is never held up for long.
pub const ECR_MAX_POLL_WAIT_MS: u32 = 60_000;

/// Function that receives each event of an operation as JSON.
///
/// Called on a library thread, never on the caller's: it must be thread-safe,
/// return quickly, and copy `event_json`, which is valid only during the
/// call. `context` is the pointer given to `ecr_operation_start`.
pub type EcrEventCallback = Option<unsafe extern "C" fn(context: *mut c_void, event_json: *const c_char)>;

thread_local! {
    static LAST_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Returns the ABI version of the library, `ECR_ABI_VERSION`.
///
/// A caller built for another version must not call the other functions.
/// Thread-safe; never fails.
#[unsafe(no_mangle)]
pub extern "C" fn ecr_abi_version() -> u32 {
    ECR_ABI_VERSION
}

/// Gets an MFA session from STS GetSessionToken, blocking until it is done.
///
/// `request_json`: NUL-terminated UTF-8 JSON, owned by the caller and only
/// read during the call (see docs/abi.md for the fields).
/// `response_json`: receives a response document owned by the caller, to be
/// freed with `ecr_string_free`, on success and on failure; it is left
/// untouched only when the function returns `ECR_STATUS_INVALID_ARGUMENT`
/// for a NULL `response_json`.
/// Returns `ECR_STATUS_OK` or the status of the failure. Thread-safe.
///
/// # Safety
/// `request_json` must be NULL or point to a NUL-terminated string, and
/// `response_json` must be NULL or point to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ecr_token(request_json: *const c_char, response_json: *mut *mut c_char) -> EcrStatus {
    // SAFETY: the caller upholds this function's contract, which is run_blocking's.
    unsafe { run_blocking("token", request_json, response_json) }
}

/// Gets ECR authorization for each registry and logs the docker client in,
/// blocking until it is done.
///
/// Arguments, ownership and result as for `ecr_token`. Thread-safe.
///
/// # Safety
/// As for `ecr_token`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ecr_login(request_json: *const c_char, response_json: *mut *mut c_char) -> EcrStatus {
    // SAFETY: the caller upholds this function's contract, which is run_blocking's.
    unsafe { run_blocking("login", request_json, response_json) }
}

/// Pushes every ECR image of a compose project, blocking until it is done.
///
/// Arguments, ownership and result as for `ecr_token`; the events of the
/// push are in the response's `events` array. Use `ecr_operation_start` to
/// follow progress or to cancel. Thread-safe.
///
/// # Safety
/// As for `ecr_token`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ecr_push(request_json: *const c_char, response_json: *mut *mut c_char) -> EcrStatus {
    // SAFETY: the caller upholds this function's contract, which is run_blocking's.
    unsafe { run_blocking("push", request_json, response_json) }
}

/// Starts an operation on the library's runtime and returns at once.
///
/// `operation`: `"token"`, `"login"` or `"push"`. `request_json`: as for
/// `ecr_token`. `callback`: NULL to collect events with
/// `ecr_operation_poll`, or a function that receives each event instead
/// (see `EcrEventCallback`); `context` is passed to it unchanged.
/// `operation_out`: receives a handle owned by the caller, to be freed with
/// `ecr_operation_free`; set to NULL on failure.
/// Returns `ECR_STATUS_OK` when the operation started; a request that cannot
/// be parsed fails here, with the error in `ecr_last_error`. Thread-safe.
///
/// # Safety
/// `operation` and `request_json` must be NULL or NUL-terminated strings;
/// `operation_out` must be NULL or writable; `callback` must be safe to call
/// from any thread with `context` until the handle is freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ecr_operation_start(
    operation: *const c_char,
    request_json: *const c_char,
    callback: EcrEventCallback,
    context: *mut c_void,
    operation_out: *mut *mut EcrOperation,
) -> EcrStatus {
    guard(|| {
        if operation_out.is_null() {
            return fail(Error::new(EcrStatus::InvalidArgument, "NullArgument", "operation_out is NULL: pass the address of an EcrOperation pointer."));
        }
        // SAFETY: checked non-NULL above; the caller guarantees it is writable.
        unsafe { *operation_out = ptr::null_mut() };
        // SAFETY: the caller guarantees NULL or a NUL-terminated string.
        let kind = match unsafe { read_str(operation, "operation") } {
            Ok(kind) => kind,
            Err(error) => return fail(error),
        };
        // SAFETY: as above.
        let request = match unsafe { read_str(request_json, "request_json") } {
            Ok(request) => request,
            Err(error) => return fail(error),
        };
        let hook = callback.map(|function| make_hook(function, context));
        match EcrOperation::start(kind, request, hook) {
            Ok(handle) => {
                // SAFETY: checked non-NULL above.
                unsafe { *operation_out = Box::into_raw(Box::new(handle)) };
                EcrStatus::Ok
            }
            Err(error) => fail(error),
        }
    })
}

/// Waits up to `wait_ms` milliseconds for the operation and returns its
/// events.
///
/// Returns `ECR_STATUS_PENDING` while the operation runs, with
/// `{"done": false, "events": [...]}` in `response_json`; once it has
/// finished, returns the operation's own status with the full response
/// document (`"done": true`), again on every later poll. `wait_ms` above
/// `ECR_MAX_POLL_WAIT_MS` is lowered to it. `response_json` is owned by the
/// caller and freed with `ecr_string_free`. Thread-safe, but events are
/// delivered to one poller only.
///
/// # Safety
/// `operation` must be NULL or a live handle from `ecr_operation_start`;
/// `response_json` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ecr_operation_poll(
    operation: *const EcrOperation,
    wait_ms: u32,
    response_json: *mut *mut c_char,
) -> EcrStatus {
    guard(|| {
        if response_json.is_null() {
            return fail(Error::new(EcrStatus::InvalidArgument, "NullArgument", "response_json is NULL: pass the address of a char pointer."));
        }
        // SAFETY: the caller guarantees NULL or a live handle.
        let Some(handle) = (unsafe { operation.as_ref() }) else {
            let error = Error::new(EcrStatus::InvalidArgument, "NullArgument", "operation is NULL: pass the handle from ecr_operation_start.");
            // SAFETY: checked non-NULL above.
            unsafe { write_response(response_json, &request_error(&error)) };
            return fail(error);
        };
        let wait = Duration::from_millis(u64::from(wait_ms.min(ECR_MAX_POLL_WAIT_MS)));
        let (status, response) = handle.poll(wait);
        // SAFETY: checked non-NULL above.
        unsafe { write_response(response_json, &response) };
        record_status(status, &response)
    })
}

/// Asks an operation to stop; its next polls return `ECR_STATUS_CANCELLED`
/// once it has, usually within a second.
///
/// Returns `ECR_STATUS_INVALID_ARGUMENT` for a NULL handle. Thread-safe.
///
/// # Safety
/// `operation` must be NULL or a live handle from `ecr_operation_start`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ecr_operation_cancel(operation: *const EcrOperation) -> EcrStatus {
    guard(|| {
        // SAFETY: the caller guarantees NULL or a live handle.
        match unsafe { operation.as_ref() } {
            Some(handle) => {
                handle.cancel();
                EcrStatus::Ok
            }
            None => fail(Error::new(EcrStatus::InvalidArgument, "NullArgument", "operation is NULL: pass the handle from ecr_operation_start.")),
        }
    })
}

/// Frees an operation handle, cancelling the operation if it still runs.
///
/// NULL is ignored. The handle must not be used afterwards.
///
/// # Safety
/// `operation` must be NULL or a handle from `ecr_operation_start` that was
/// not freed yet, and no other thread may use it during or after the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ecr_operation_free(operation: *mut EcrOperation) {
    let _ = guard(|| {
        if !operation.is_null() {
            // SAFETY: the caller passes a handle made by Box::into_raw in ecr_operation_start, once.
            drop(unsafe { Box::from_raw(operation) });
        }
        EcrStatus::Ok
    });
}

/// Frees a string returned by the library. NULL is ignored.
///
/// # Safety
/// `string` must be NULL or a string returned by this library that was not
/// freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ecr_string_free(string: *mut c_char) {
    let _ = guard(|| {
        if !string.is_null() {
            // SAFETY: the caller passes a pointer made by CString::into_raw in this library, once.
            drop(unsafe { CString::from_raw(string) });
        }
        EcrStatus::Ok
    });
}

/// Returns the error document of the last call on this thread that failed,
/// or NULL when none failed yet.
///
/// The string is owned by the caller and freed with `ecr_string_free`; the
/// stored error stays until the next failure on this thread.
#[unsafe(no_mangle)]
pub extern "C" fn ecr_last_error() -> *mut c_char {
    let stored = panic::catch_unwind(|| LAST_ERROR.with(|last| last.borrow().clone())).ok().flatten();
    stored.map_or(ptr::null_mut(), |text| to_c_string(&text))
}

/// Runs an operation to its end on the runtime and writes its response.
///
/// # Safety
/// `request_json` must be NULL or NUL-terminated; `response_json` must be
/// NULL or writable.
unsafe fn run_blocking(kind: &str, request_json: *const c_char, response_json: *mut *mut c_char) -> EcrStatus {
    guard(|| {
        if response_json.is_null() {
            return fail(Error::new(EcrStatus::InvalidArgument, "NullArgument", "response_json is NULL: pass the address of a char pointer."));
        }
        // SAFETY: the caller guarantees NULL or a NUL-terminated string.
        let started = unsafe { read_str(request_json, "request_json") }
            .and_then(|request| EcrOperation::start(kind, request, None));
        let (status, response) = match started {
            Ok(handle) => handle.wait(),
            Err(error) => (error.status, request_error(&error)),
        };
        // SAFETY: checked non-NULL above.
        unsafe { write_response(response_json, &response) };
        record_status(status, &response)
    })
}

/// Runs `body`, turning a panic into `ECR_STATUS_PANIC`.
fn guard(body: impl FnOnce() -> EcrStatus) -> EcrStatus {
    install_panic_hook();
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(status) => status,
        Err(panic) => fail(operation::panic_error(panic.as_ref())),
    }
}

/// Sends panic messages to the operation's log instead of the host's stderr.
///
/// The library links its own copy of std, so this hook receives only the
/// library's panics, never the host's.
fn install_panic_hook() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        panic::set_hook(Box::new(|info| {
            tracing::error!("native library panic: {info}");
        }));
    });
}

fn fail(error: Error) -> EcrStatus {
    let text = serde_json::to_string(&error).unwrap_or_default();
    LAST_ERROR.with(|last| *last.borrow_mut() = Some(text));
    error.status
}

fn record_status(status: EcrStatus, response: &Value) -> EcrStatus {
    if status != EcrStatus::Ok && status != EcrStatus::Pending {
        let text = response.get("error").map(Value::to_string).unwrap_or_default();
        LAST_ERROR.with(|last| *last.borrow_mut() = Some(text));
    }
    status
}

fn request_error(error: &Error) -> Value {
    request::error_response(error, Vec::new())
}

/// Reads a caller's string argument.
///
/// # Safety
/// `pointer` must be NULL or point to a NUL-terminated string that lives for `'a`.
unsafe fn read_str<'a>(pointer: *const c_char, name: &str) -> Result<&'a str, Error> {
    if pointer.is_null() {
        return Err(Error::new(EcrStatus::InvalidArgument, "NullArgument", format!("{name} is NULL: pass a NUL-terminated UTF-8 string.")));
    }
    // SAFETY: non-NULL, and the caller guarantees NUL termination and lifetime.
    let bytes = unsafe { CStr::from_ptr(pointer) };
    bytes.to_str().map_err(|error| {
        Error::new(
            EcrStatus::InvalidArgument,
            "InvalidUtf8",
            format!("{name} is not valid UTF-8 (invalid byte at offset {}): encode the text as UTF-8.", error.valid_up_to()),
        )
    })
}

/// Writes a response document to the caller's pointer.
///
/// # Safety
/// `target` must be non-NULL and writable.
unsafe fn write_response(target: *mut *mut c_char, response: &Value) {
    // SAFETY: the caller guarantees a writable target.
    unsafe { *target = to_c_string(&response.to_string()) };
}

fn to_c_string(text: &str) -> *mut c_char {
    // serde_json escapes NUL inside strings, so the text holds none; the
    // fallback only guards against a future change of that.
    CString::new(text).unwrap_or_else(|_| CString::new(text.replace('\0', "")).unwrap_or_default()).into_raw()
}

struct CallbackTarget {
    function: unsafe extern "C" fn(*mut c_void, *const c_char),
    context: *mut c_void,
}

// SAFETY: ecr_operation_start's contract makes the caller guarantee that the
// callback may be called from any thread with this context.
unsafe impl Send for CallbackTarget {}
// SAFETY: as above; the library only reads the two pointers.
unsafe impl Sync for CallbackTarget {}

fn make_hook(function: unsafe extern "C" fn(*mut c_void, *const c_char), context: *mut c_void) -> crate::events::EventHook {
    let target = CallbackTarget { function, context };
    Box::new(move |event: &str| target.send(event))
}

impl CallbackTarget {
    fn send(&self, event: &str) {
        let Ok(text) = CString::new(event) else { return };
        // SAFETY: the caller guarantees the callback accepts this context on any
        // thread; the string lives until the call returns.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| unsafe { (self.function)(self.context, text.as_ptr()) }));
    }
}
