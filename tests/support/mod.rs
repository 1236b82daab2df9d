//! Local stand-ins for integration tests: moto behind the STS gate, Debian's
//! docker-registry and a private dockerd, started by `tests/stand-ins/standins.py`.
//!
//! Use from a test file with `mod support;`, then
//! `let stand_ins = support::StandIns::start(&["sts", "registry"]);`.
//! The services run until the value is dropped.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;

/// Environment variables that would steer AWS or Docker code away from the
/// stand-ins, removed by [`StandIns::apply_env`].
const AMBIENT_VARIABLES: &[&str] = &[
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_ECR",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_TLS_VERIFY",
    "DOCKER_CERT_PATH",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
];

/// Running stand-ins, as described by the `standins.json` that `start` writes.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StandIns {
    /// `http://127.0.0.1:PORT` of the STS gate, which forwards other AWS calls to moto.
    /// `None` when `sts` was not started.
    pub aws_endpoint: Option<String>,
    pub region: String,
    pub account_id: String,
    /// Base IAM user credentials that the gate verifies signatures against.
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Six-digit MFA code that the gate rejects with `AccessDenied`.
    pub wrong_token_code: String,
    /// MFA device ARN that the gate accepts.
    pub serial_number: String,
    /// Base URL of the gate's control API (`/stats`, `/reset`, `/faults`).
    pub control: Option<String>,
    pub registry: Option<Registry>,
    pub engine: Option<Engine>,
    pub state_dir: PathBuf,
    /// Empty AWS config and credentials files, so no test reads the user's.
    pub aws_config_file: PathBuf,
    pub aws_shared_credentials_file: PathBuf,
    /// Empty directory for `DOCKER_CONFIG`.
    pub docker_config: PathBuf,
    /// Empty directory for `XDG_CACHE_HOME`, so that caches of the code under
    /// test stay in the state directory.
    pub cache_dir: PathBuf,
    pub pids: BTreeMap<String, u32>,
    pub logs: BTreeMap<String, PathBuf>,
    #[serde(skip)]
    state: Option<tempfile::TempDir>,
}

/// The registry stand-in: docker-registry with htpasswd auth for the ECR password.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registry {
    /// `127.0.0.1:PORT`, as it appears in image references.
    pub host: String,
    /// `http://127.0.0.1:PORT`, or `https://` when started with `--registry-tls`.
    pub url: String,
    pub username: String,
    pub password: String,
    /// PEM file of the CA that signed the registry certificate, with `--registry-tls`.
    pub ca_file: Option<PathBuf>,
}

/// The private Docker Engine stand-in.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Engine {
    /// `unix:///…/docker.sock`, the value for `DOCKER_HOST`.
    pub host: String,
    pub run_dir: PathBuf,
}

impl StandIns {
    /// Starts the named services (`sts`, `registry`, `engine`) in a new temporary directory.
    ///
    /// Panics with the script's output when a service does not start.
    pub fn start(services: &[&str]) -> StandIns {
        StandIns::start_with(services, &[])
    }

    /// Starts the named services with extra `standins.py start` arguments,
    /// such as `--registry-tls` or `--wrong-token-code 111111`.
    pub fn start_with(services: &[&str], extra_args: &[&str]) -> StandIns {
        let state = tempfile::Builder::new()
            .prefix("standins-")
            .tempdir()
            .expect("create a temporary directory for the stand-ins");
        let services = services.join(",");
        let output = Command::new(python())
            .arg(script())
            .args(["start", "--state"])
            .arg(state.path())
            .args(["--services", &services])
            .args(extra_args)
            .output()
            .expect("run python3 tests/stand-ins/standins.py (set STANDINS_PYTHON to pick an interpreter)");
        if !output.status.success() {
            panic!(
                "stand-ins {services} did not start ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut stand_ins: StandIns = match serde_json::from_slice(&output.stdout) {
            Ok(value) => value,
            Err(error) => {
                stop(state.path());
                panic!("standins.py printed invalid JSON: {error}");
            }
        };
        stand_ins.state = Some(state);
        stand_ins
    }

    /// Returns the STS gate endpoint, panicking when `sts` was not started.
    pub fn sts_endpoint(&self) -> &str {
        self.aws_endpoint
            .as_deref()
            .expect("stand-ins started without sts")
    }

    /// Returns the registry stand-in, panicking when `registry` was not started.
    pub fn registry(&self) -> &Registry {
        self.registry
            .as_ref()
            .expect("stand-ins started without registry")
    }

    /// Returns the engine stand-in, panicking when `engine` was not started.
    pub fn engine(&self) -> &Engine {
        self.engine
            .as_ref()
            .expect("stand-ins started without engine")
    }

    /// Returns the environment that points AWS and Docker code at the stand-ins.
    ///
    /// Sets endpoint, region, base credentials, empty AWS files, no instance
    /// metadata, `DOCKER_CONFIG`, `XDG_CACHE_HOME`, `DOCKER_HOST` when the
    /// engine runs, and `NO_PROXY` for loopback.
    pub fn base_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("AWS_REGION", self.region.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
            ("AWS_CONFIG_FILE", path_text(&self.aws_config_file)),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                path_text(&self.aws_shared_credentials_file),
            ),
            ("DOCKER_CONFIG", path_text(&self.docker_config)),
            ("XDG_CACHE_HOME", path_text(&self.cache_dir)),
            ("NO_PROXY", "127.0.0.1,localhost".to_string()),
            ("no_proxy", "127.0.0.1,localhost".to_string()),
        ];
        if let Some(endpoint) = &self.aws_endpoint {
            env.push(("AWS_ENDPOINT_URL", endpoint.clone()));
        }
        if let Some(engine) = &self.engine {
            env.push(("DOCKER_HOST", engine.host.clone()));
        }
        env.into_iter()
            .map(|(name, value)| (name.to_string(), value))
            .collect()
    }

    /// Sets [`base_env`](Self::base_env) on a command and removes variables
    /// (profiles, session tokens, proxies, other Docker hosts) that would override it.
    pub fn apply_env(&self, command: &mut Command) {
        for name in AMBIENT_VARIABLES {
            command.env_remove(name);
        }
        command.envs(self.base_env());
    }

    /// Returns how many requests the gate received per action since the last reset.
    pub fn stats(&self) -> BTreeMap<String, u64> {
        let (status, body) = self.control_request("GET", "/stats", None);
        assert_eq!(status, 200, "GET /_standin/stats failed: {body}");
        serde_json::from_str(&body).expect("stats are a JSON object of counts")
    }

    /// Sets all request counts of the gate to zero.
    pub fn reset_stats(&self) {
        let (status, body) = self.control_request("POST", "/reset", None);
        assert_eq!(status, 200, "POST /_standin/reset failed: {body}");
    }

    /// Makes the gate return an AWS error for the next `count` requests for `action`.
    pub fn set_fault(&self, action: &str, status: u16, code: &str, count: u32) {
        let fault = serde_json::json!({
            "action": action, "status": status, "code": code, "count": count,
        });
        let (reply, body) = self.control_request("POST", "/faults", Some(&fault.to_string()));
        assert_eq!(reply, 200, "POST /_standin/faults failed: {body}");
    }

    /// Removes every pending fault.
    pub fn clear_faults(&self) {
        let (status, body) = self.control_request("DELETE", "/faults", None);
        assert_eq!(status, 200, "DELETE /_standin/faults failed: {body}");
    }

    /// Returns the last `lines` lines of a service log, for failure messages.
    pub fn log_tail(&self, service: &str, lines: usize) -> String {
        let Some(path) = self.logs.get(service) else {
            return format!("(no log for {service})");
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let all: Vec<&str> = text.lines().collect();
                all[all.len().saturating_sub(lines)..].join("\n")
            }
            Err(error) => format!("({} could not be read: {error})", path.display()),
        }
    }

    /// Sends one HTTP/1.0 request to the control API and returns status and body.
    fn control_request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let control = self
            .control
            .as_deref()
            .expect("stand-ins started without sts");
        let rest = control
            .strip_prefix("http://")
            .expect("control URL starts with http://");
        let (address, prefix) = rest.split_once('/').expect("control URL has a path");

        let mut stream = TcpStream::connect(address).expect("connect to the STS gate");
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let body = body.unwrap_or("");
        let request = format!(
            "{method} /{prefix}{path} HTTP/1.0\r\nHost: {address}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .expect("send a control request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read a control response");

        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        (status, body.to_string())
    }
}

impl Drop for StandIns {
    /// Stops the services. After a failed test the state directory and its
    /// logs are kept, and their path and tails are printed.
    fn drop(&mut self) {
        let Some(state) = self.state.take() else {
            return;
        };
        stop(state.path());
        if std::thread::panicking() {
            let kept = state.keep();
            eprintln!("stand-ins state kept in {}", kept.display());
            for service in self.logs.keys() {
                eprintln!("--- {service} log ---\n{}", self.log_tail(service, 20));
            }
        }
    }
}

impl fmt::Debug for StandIns {
    /// Lists endpoints and pids. The secret access key and the registry password are left out.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("StandIns")
            .field("aws_endpoint", &self.aws_endpoint)
            .field("region", &self.region)
            .field("account_id", &self.account_id)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "registry",
                &self.registry.as_ref().map(|registry| &registry.url),
            )
            .field("engine", &self.engine.as_ref().map(|engine| &engine.host))
            .field("state_dir", &self.state_dir)
            .field("pids", &self.pids)
            .finish_non_exhaustive()
    }
}

fn stop(state: &Path) {
    let result = Command::new(python())
        .arg(script())
        .args(["stop", "--state"])
        .arg(state)
        .output();
    match result {
        Ok(output) if output.status.success() => {}
        Ok(output) => eprintln!(
            "stand-ins in {} did not stop cleanly ({}): {}",
            state.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(error) => eprintln!("stand-ins in {} not stopped: {error}", state.display()),
    }
}

fn python() -> String {
    std::env::var("STANDINS_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stand-ins/standins.py")
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
