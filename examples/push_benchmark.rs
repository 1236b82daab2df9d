//! Pushes the images of a compose file through the native path and prints
//! one JSON line with the push's time and counts. `scripts/benchmark.sh`
//! runs it against the stand-ins, under `/usr/bin/time` for the peak memory.
//!
//!     push_benchmark --compose FILE --alias HOST=ECR_HOST --serial-number ARN
//!                    [--compression-level N] [--timeline]
//!
//! AWS settings come from the environment (`AWS_ENDPOINT_URL`, `AWS_REGION`,
//! the base IAM user's keys), the engine from `DOCKER_HOST` and the digest
//! cache from `XDG_CACHE_HOME`. The process first gets an MFA session with
//! the code `123456`, then pushes with `createRepository` set. With
//! `--timeline` it also prints the debug log of the push to standard error,
//! each line with the seconds since the process started.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ecr_compose::events::LogLevel;
use ecr_compose::operation::{OperationContext, runtime};
use ecr_compose::push::{PushRequest, push};
use ecr_compose::secret::Secret;
use ecr_compose::session::{CacheMode, CacheOptions, TokenRequest, get_session_token};

/// MFA code sent to the STS stand-in, which accepts any code but its wrong one.
const TOKEN_CODE: &str = "123456";

struct Arguments {
    compose_file: PathBuf,
    aliases: BTreeMap<String, String>,
    serial_number: String,
    compression_level: Option<u8>,
    timeline: bool,
}

fn parse_arguments() -> Result<Arguments, String> {
    let mut compose_file = None;
    let mut aliases = BTreeMap::new();
    let mut serial_number = None;
    let mut timeline = false;
    let mut compression_level = None;
    let mut arguments = std::env::args().skip(1);
    while let Some(name) = arguments.next() {
        let mut value = || {
            arguments
                .next()
                .ok_or_else(|| format!("The option {name} is missing its value."))
        };
        match name.as_str() {
            "--compose" => compose_file = Some(PathBuf::from(value()?)),
            "--alias" => {
                let alias = value()?;
                let (host, ecr_host) = alias.split_once('=').ok_or_else(|| {
                    format!("The alias '{alias}' is invalid: write it as HOST=ECR_HOST.")
                })?;
                aliases.insert(host.to_owned(), ecr_host.to_owned());
            }
            "--serial-number" => serial_number = Some(value()?),
            "--timeline" => timeline = true,
            "--compression-level" => {
                let level = value()?;
                compression_level = Some(level.parse().map_err(|_| {
                    format!("The compression level '{level}' is not a number from 1 to 12.")
                })?);
            }
            _ => return Err(format!("The option '{name}' is unknown.")),
        }
    }
    Ok(Arguments {
        compose_file: compose_file.ok_or("The option --compose is missing.")?,
        aliases,
        serial_number: serial_number.ok_or("The option --serial-number is missing.")?,
        compression_level,
        timeline,
    })
}

/// Drains the operation's events, as the PowerShell module's poll loop
/// does, so that queued progress does not count as memory of the push.
/// With `timeline`, it prints every log event with the time since `started`.
fn drain_events(
    context: &OperationContext,
    timeline: Option<Instant>,
) -> std::thread::JoinHandle<()> {
    let events = context.events.clone();
    std::thread::spawn(move || {
        loop {
            let wait = if timeline.is_some() { 10 } else { 200 };
            let (drained, finished) = events.wait_and_drain(Duration::from_millis(wait));
            for event in drained {
                let is_problem = event["type"] == "log"
                    && (event["level"] == "warn" || event["level"] == "error");
                if let Some(started) = timeline.filter(|_| event["type"] == "log") {
                    eprintln!(
                        "{:7.3} {}",
                        started.elapsed().as_secs_f64(),
                        event["message"].as_str().unwrap_or_default()
                    );
                } else if is_problem {
                    eprintln!("{}", event["message"].as_str().unwrap_or_default());
                }
            }
            if finished {
                return;
            }
        }
    })
}

fn main() -> ExitCode {
    let arguments = match parse_arguments() {
        Ok(arguments) => arguments,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = runtime().expect("the async runtime starts");
    let level = if arguments.timeline {
        LogLevel::Debug
    } else {
        LogLevel::Info
    };
    let context = OperationContext::new(level);
    let started = Instant::now();
    let drainer = drain_events(&context, arguments.timeline.then_some(started));

    let session = runtime.block_on(get_session_token(
        &TokenRequest {
            serial_number: Some(arguments.serial_number),
            token_code: Some(Secret::new(TOKEN_CODE)),
            cache: CacheOptions {
                mode: CacheMode::Off,
                ..CacheOptions::default()
            },
            ..TokenRequest::default()
        },
        &context,
    ));
    let session = match session {
        Ok(session) => session,
        Err(error) => {
            eprintln!("Getting the MFA session failed: {}", error.message);
            return ExitCode::FAILURE;
        }
    };
    let request = PushRequest {
        credentials: Some(session.credentials()),
        compose_files: vec![arguments.compose_file],
        registry_aliases: arguments.aliases,
        create_repository: true,
        compression_level: arguments.compression_level,
        ..PushRequest::default()
    };

    let push_started = Instant::now();
    if arguments.timeline {
        eprintln!("{:7.3} the push starts", started.elapsed().as_secs_f64());
    }
    // Log events reach the context's sink inside an operation span only.
    ecr_compose::events::install_subscriber();
    let operation = ecr_compose::events::register(&context.events);
    let span = tracing::info_span!("operation", ecr_operation = operation);
    let result = runtime.block_on(tracing::Instrument::instrument(
        push(&request, &context),
        span,
    ));
    let seconds = push_started.elapsed().as_secs_f64();
    context.events.finish();
    let _ = drainer.join();

    let result = match result {
        Ok(result) => result,
        Err(error) => {
            eprintln!("The push failed: {}", error.message);
            return ExitCode::FAILURE;
        }
    };
    for image in &result.images {
        if let Some(error) = &image.error {
            eprintln!("{} failed: {}", image.reference, error.message);
        }
    }
    let blobs_uploaded: u32 = result.images.iter().map(|image| image.blobs_uploaded).sum();
    let blobs_skipped: u32 = result.images.iter().map(|image| image.blobs_skipped).sum();
    println!(
        "{}",
        serde_json::json!({
            "seconds": seconds,
            "pushed": result.summary.pushed,
            "failed": result.summary.failed,
            "bytesUploaded": result.summary.bytes_uploaded,
            "blobsUploaded": blobs_uploaded,
            "blobsSkipped": blobs_skipped,
        })
    );
    if result.summary.failed > 0 || result.summary.pushed == 0 {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
