//! Parsing of request JSON and building of response JSON for the ABI.

use std::sync::LazyLock;

use regex::Regex;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::error::{EcrStatus, Error, Result};
use crate::events::LogLevel;
use super::ECR_ABI_VERSION as ABI_VERSION;

/// Largest request accepted, in bytes. A compose project's request is a few
/// kilobytes; anything near this size is a caller bug.
pub(crate) const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Fields every request may carry besides its operation's own.
#[derive(Debug)]
pub struct Envelope {
    /// Log detail asked for.
    pub log_level: LogLevel,
    /// The operation's own fields.
    pub body: Value,
}

/// Splits a request document into its envelope fields and the operation body.
pub fn parse_envelope(text: &str) -> Result<Envelope> {
    if text.len() > MAX_REQUEST_BYTES {
        return Err(Error::invalid(
            "RequestTooLarge",
            format!("The request has {} bytes, more than the {MAX_REQUEST_BYTES} accepted: send only the fields of the operation.", text.len()),
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|error| {
        Error::invalid(
            "InvalidRequestJson",
            format!("The request is not valid JSON ({}): send one JSON object.", sanitize_serde_message(&error.to_string())),
        )
    })?;
    let Value::Object(mut fields) = value else {
        return Err(Error::invalid("InvalidRequestJson", "The request must be a JSON object, for example {\"tokenCode\": \"123456\"}."));
    };
    check_abi_version(&mut fields)?;
    let log_level = match fields.remove("logLevel") {
        None | Some(Value::Null) => LogLevel::default(),
        Some(level) => serde_json::from_value(level.clone()).map_err(|_| {
            Error::invalid(
                "InvalidLogLevel",
                format!("The logLevel {level} is invalid: use \"info\", \"debug\" or \"trace\"."),
            )
        })?,
    };
    Ok(Envelope { log_level, body: Value::Object(fields) })
}

fn check_abi_version(fields: &mut Map<String, Value>) -> Result<()> {
    match fields.remove("abiVersion") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(number)) if number.as_u64() == Some(u64::from(ABI_VERSION)) => Ok(()),
        Some(other) => Err(Error::new(
            EcrStatus::AbiVersion,
            "AbiVersionMismatch",
            format!(
                "The caller speaks ABI version {other}, but this library speaks version {ABI_VERSION}: install the module and the native library from the same release."
            ),
        )),
    }
}

/// Deserializes an operation body, naming the field at fault on error.
pub fn parse_body<T: DeserializeOwned>(operation: &str, body: Value) -> Result<T> {
    serde_path_to_error::deserialize(body).map_err(|error| {
        let path = error.path().to_string();
        let detail = sanitize_serde_message(&error.inner().to_string());
        let location = if path == "." { String::new() } else { format!(" at '{path}'") };
        Error::invalid(
            "InvalidRequest",
            format!("The {operation} request is invalid{location}: {detail}. See docs/abi.md for the fields of each request."),
        )
    })
}

/// Removes the offending value from a serde message: it may be a secret sent
/// with the wrong type, and the field name says enough.
fn sanitize_serde_message(message: &str) -> String {
    static VALUE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(invalid (?:type|value|length): [a-z ]+?) (?:`[^`]*`|"(?:[^"\\]|\\.)*")"#).expect("pattern is valid")
    });
    VALUE.replace_all(message, "$1").into_owned()
}

/// Builds the response document of a finished operation.
pub fn response(outcome: &Result<Value>, events: Vec<Value>) -> (EcrStatus, Value) {
    match outcome {
        Ok(result) => (
            EcrStatus::Ok,
            json!({"ok": true, "status": "Ok", "done": true, "result": result, "events": events}),
        ),
        Err(error) => (error.status, error_response(error, events)),
    }
}

/// Builds the response document of a failure.
pub fn error_response(error: &Error, events: Vec<Value>) -> Value {
    json!({"ok": false, "status": error.status.name(), "done": true, "error": error, "events": events})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_reads_level_and_version() {
        let envelope = parse_envelope(r#"{"abiVersion":1,"logLevel":"debug","tokenCode":"1"}"#).unwrap();
        assert_eq!(envelope.log_level, LogLevel::Debug);
        assert_eq!(envelope.body, json!({"tokenCode": "1"}));
    }

    #[test]
    fn envelope_rejects_other_version() {
        let error = parse_envelope(r#"{"abiVersion":2}"#).unwrap_err();
        assert_eq!(error.status, EcrStatus::AbiVersion);
    }

    #[test]
    fn envelope_rejects_array() {
        assert_eq!(parse_envelope("[]").unwrap_err().error_id, "InvalidRequestJson");
    }

    #[test]
    fn envelope_rejects_deep_nesting() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(parse_envelope(&deep).unwrap_err().error_id, "InvalidRequestJson");
    }

    proptest::proptest! {
        #[test]
        fn envelope_never_panics(text in "\\PC{0,200}") {
            let _ = parse_envelope(&text);
        }

        #[test]
        fn token_body_never_panics(
            serial in proptest::option::of("\\PC{0,40}"),
            code in proptest::option::of("\\PC{0,10}"),
            duration in proptest::option::of(proptest::num::i64::ANY),
        ) {
            let body = json!({"serialNumber": serial, "tokenCode": code, "durationSeconds": duration});
            let _ = parse_body::<crate::session::TokenRequest>("token", body);
        }

        #[test]
        fn body_error_never_echoes_string(value in "[A-Za-z0-9/+]{16,40}") {
            let body = json!({"durationSeconds": value.clone()});
            let error = parse_body::<crate::session::TokenRequest>("token", body).unwrap_err();
            proptest::prop_assert!(!error.message.contains(&value));
        }
    }

    #[test]
    fn body_error_hides_value() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Body {
            secret: u32,
        }
        let error = parse_body::<Body>("token", json!({"secret": "wJalrXUtnFEMI"})).unwrap_err();
        assert!(!error.message.contains("wJalrXUtnFEMI"), "{}", error.message);
        assert!(error.message.contains("'secret'"), "{}", error.message);
    }
}
