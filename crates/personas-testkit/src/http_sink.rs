//! [`HttpSink`]: a real HTTP server on 127.0.0.1 that records every request and answers from a
//! script, to imitate webhook receivers and chat APIs (Slack incoming webhooks and
//! `chat.postMessage`, Telegram `sendMessage`) in tests.
//!
//! Replies are taken in order; the last one repeats once the script runs out (so a single
//! `Reply::status(500)` fails forever).

use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// One scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// A status with an empty body.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    /// A status with a text body.
    pub fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: body.into(),
        }
    }

    /// A status with a JSON body.
    pub fn json(status: u16, body: &Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// One request received.
#[derive(Debug, Clone)]
pub struct RecordedHttp {
    pub method: String,
    /// Path and query, e.g. `/bot123:abc/sendMessage`.
    pub path: String,
    /// Names lower-case, in wire order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedHttp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

struct Shared {
    state: Mutex<(Vec<Reply>, usize, Vec<RecordedHttp>)>,
    count: watch::Sender<usize>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, (Vec<Reply>, usize, Vec<RecordedHttp>)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The recording server; serves until dropped.
pub struct HttpSink {
    shared: Arc<Shared>,
    port: u16,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink")
            .field("port", &self.port)
            .finish()
    }
}

impl HttpSink {
    /// Binds `127.0.0.1:0` and answers with `replies` (200 "ok" when empty).
    pub async fn start(replies: Vec<Reply>) -> HttpSink {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("HttpSink: cannot bind 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("HttpSink: local address")
            .port();
        let replies = if replies.is_empty() {
            vec![Reply::text(200, "ok")]
        } else {
            replies
        };
        let shared = Arc::new(Shared {
            state: Mutex::new((replies, 0, Vec::new())),
            count: watch::Sender::new(0),
        });
        let server = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        HttpSink {
            shared,
            port,
            server,
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<RecordedHttp> {
        self.shared.lock().2.clone()
    }

    /// Waits until `n` requests arrived.
    ///
    /// # Panics
    /// When `timeout` passes first.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedHttp> {
        let mut rx = self.shared.count.subscribe();
        let ok = tokio::time::timeout(timeout, async {
            let _ = rx.wait_for(|c| *c >= n).await;
        })
        .await;
        assert!(
            ok.is_ok(),
            "HttpSink: expected {n} requests within {timeout:?}, got {}",
            self.requests().len()
        );
        self.requests()
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = Arc::clone(&shared);
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            handle(req, Arc::clone(&shared))
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let reply = {
        let mut st = shared.lock();
        let (replies, next, log) = &mut *st;
        let reply = replies[(*next).min(replies.len() - 1)].clone();
        *next += 1;
        log.push(RecordedHttp {
            method,
            path,
            headers,
            body,
        });
        shared.count.send_replace(log.len());
        reply
    };
    let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
    *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    for (k, v) in &reply.headers {
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_str(v),
        ) {
            resp.headers_mut().append(k, v);
        }
    }
    Ok(resp)
}
