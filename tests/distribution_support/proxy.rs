//! A small HTTP proxy between the uploader and the registry that records
//! every request and can fail chosen ones: return a status, drop the
//! connection or hold the request for a while.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One request that went through the proxy.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Path without the query.
    pub path: String,
    pub content_range: Option<String>,
    pub body_length: usize,
    /// Status returned to the client; 0 when the connection was dropped.
    pub status: u16,
}

impl Recorded {
    /// True for a request that sends blob data (`PATCH`, or `PUT` to an upload).
    pub fn is_blob_upload(&self) -> bool {
        self.path.contains("/blobs/uploads/") && (self.method == "PATCH" || self.method == "PUT")
    }
}

/// What a fault does to a matching request.
#[derive(Clone, Debug)]
pub enum FaultAction {
    /// Respond with this status and a distribution error body, without forwarding.
    Status(u16),
    /// Close the connection without a response and without forwarding.
    Drop,
    /// Wait, then forward.
    Delay(Duration),
}

/// A rule that applies to the next `count` matching requests.
#[derive(Clone, Debug)]
pub struct Fault {
    pub method: &'static str,
    /// Substring of the path that a request must contain.
    pub path_contains: &'static str,
    pub action: FaultAction,
    pub count: u32,
}

#[derive(Default)]
struct State {
    log: Mutex<Vec<Recorded>>,
    faults: Mutex<Vec<Fault>>,
    active_uploads: AtomicUsize,
    max_active_uploads: AtomicUsize,
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    /// `127.0.0.1:PORT`, to use as the registry host.
    pub host: String,
    state: Arc<State>,
    stop: CancellationToken,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (`127.0.0.1:PORT`, plain HTTP).
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let address: SocketAddr = listener.local_addr().expect("proxy address");
        let host = address.to_string();
        let state = Arc::new(State::default());
        let stop = CancellationToken::new();
        let client = super::plain_http_client();

        let upstream = upstream.to_owned();
        let (loop_state, loop_stop, loop_host) = (state.clone(), stop.clone(), host.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = loop_stop.cancelled() => break,
                    accepted = listener.accept() => accepted,
                };
                let Ok((stream, _)) = accepted else { continue };
                let (state, client, upstream, host) = (
                    loop_state.clone(),
                    client.clone(),
                    upstream.clone(),
                    loop_host.clone(),
                );
                let stop = loop_stop.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        handle(
                            request,
                            state.clone(),
                            client.clone(),
                            upstream.clone(),
                            host.clone(),
                        )
                    });
                    let connection =
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = connection => {}
                    }
                });
            }
        });
        Proxy { host, state, stop }
    }

    /// Adds a fault rule.
    pub fn add_fault(&self, fault: Fault) {
        self.state.faults.lock().unwrap().push(fault);
    }

    /// Returns the requests so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.log.lock().unwrap().clone()
    }

    /// Forgets the requests so far.
    pub fn clear(&self) {
        self.state.log.lock().unwrap().clear();
    }

    /// Most blob uploads that were in flight at the same time.
    pub fn max_concurrent_uploads(&self) -> usize {
        self.state.max_active_uploads.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Error that makes hyper close the connection without a response.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the test proxy")
    }
}

impl std::error::Error for Dropped {}

async fn handle(
    request: Request<Incoming>,
    state: Arc<State>,
    client: reqwest::Client,
    upstream: String,
    host: String,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |value| value.to_string());
    let content_range = request
        .headers()
        .get("content-range")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let headers = request.headers().clone();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();

    let mut record = Recorded {
        method: method.clone(),
        path: path.clone(),
        content_range,
        body_length: body.len(),
        status: 0,
    };
    let is_upload = record.is_blob_upload();
    let fault = take_fault(&state, &method, &path);

    let result = async {
        match fault {
            Some(FaultAction::Drop) => return Err(Dropped),
            Some(FaultAction::Status(status)) => {
                let body = format!(
                    r#"{{"errors":[{{"code":"INJECTED","message":"injected {status}"}}]}}"#
                );
                let response = Response::builder()
                    .status(status)
                    .header("Content-Type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap();
                return Ok(response);
            }
            Some(FaultAction::Delay(delay)) => tokio::time::sleep(delay).await,
            None => {}
        }
        forward(
            &client,
            &upstream,
            &host,
            &method,
            &path_and_query,
            &headers,
            body,
        )
        .await
    };

    if is_upload {
        let active = state.active_uploads.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_active_uploads.fetch_max(active, Ordering::SeqCst);
    }
    let outcome = result.await;
    if is_upload {
        state.active_uploads.fetch_sub(1, Ordering::SeqCst);
    }
    record.status = outcome
        .as_ref()
        .map_or(0, |response| response.status().as_u16());
    state.log.lock().unwrap().push(record);
    outcome
}

fn take_fault(state: &State, method: &str, path: &str) -> Option<FaultAction> {
    let mut faults = state.faults.lock().unwrap();
    let fault = faults.iter_mut().find(|fault| {
        fault.count > 0 && fault.method == method && path.contains(fault.path_contains)
    })?;
    fault.count -= 1;
    Some(fault.action.clone())
}

async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    host: &str,
    method: &str,
    path_and_query: &str,
    headers: &hyper::HeaderMap,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut outgoing = client.request(method, format!("http://{upstream}{path_and_query}"));
    for (name, value) in headers {
        if name != "host" && name != "content-length" && name != "connection" {
            outgoing = outgoing.header(name.as_str(), value.as_bytes());
        }
    }
    // The registry builds Location URLs from this header, so uploads keep
    // going through the proxy.
    outgoing = outgoing.header("X-Forwarded-Host", host).body(body);
    let response = outgoing.send().await.map_err(|_| Dropped)?;

    // Headers go through as they are, Content-Length included: for a HEAD
    // response it is the blob's size, not the (empty) body's.
    let mut builder = Response::builder().status(response.status().as_u16());
    for (name, value) in response.headers() {
        if name != "transfer-encoding" && name != "connection" {
            builder = builder.header(name.as_str(), value.as_bytes());
        }
    }
    let bytes = response.bytes().await.map_err(|_| Dropped)?;
    Ok(builder.body(Full::new(bytes)).unwrap())
}
