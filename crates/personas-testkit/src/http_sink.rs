//! [`HttpSink`]: a real HTTP server on 127.0.0.1 that records every request and answers from a
//! script, to imitate webhook receivers and chat APIs (Slack incoming webhooks and
//! `chat.postMessage`, Telegram `sendMessage`) in tests.
//!
//! Replies are taken in order; the last one repeats once the script runs out (so a single
//! `Reply::status(500)` fails forever). [`HttpSink::bearer`] instead answers by the request's
//! `Authorization` header, like an API checking a token (a credential's health check).
//! [`SilentServer`] accepts connections and never answers (timeouts).

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
    /// With a (path, token): the first reply answers requests for the path bearing the token,
    /// the second other requests for the path, the third other paths.
    bearer: Option<(String, String)>,
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
        Self::serve(replies, None).await
    }

    /// An API that checks a token: `granted` answers requests for `path` with
    /// `Authorization: Bearer <token>`, a 401 `{"message": "Bad credentials"}` (GitHub's answer)
    /// other requests for it, and a 404 any other path (query included in the comparison).
    pub async fn bearer(path: &str, token: &str, granted: Reply) -> HttpSink {
        let refused = Reply::json(401, &serde_json::json!({"message": "Bad credentials"}));
        let missing = Reply::json(404, &serde_json::json!({"message": "Not Found"}));
        let rule = Some((path.to_string(), token.to_string()));
        Self::serve(vec![granted, refused, missing], rule).await
    }

    /// A GitHub-like API for credential health checks (`GET {api_url}/user`): 200
    /// `{"login": "octo"}` with the token, 401 without, 404 elsewhere.
    pub async fn github_like(token: &str) -> HttpSink {
        let login = Reply::json(200, &serde_json::json!({"login": "octo"}));
        Self::bearer("/user", token, login).await
    }

    async fn serve(replies: Vec<Reply>, bearer: Option<(String, String)>) -> HttpSink {
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
            bearer,
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
    let headers: Vec<(String, String)> = req
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
    // Which reply a bearer-checking sink gives: 0 granted, 1 refused, 2 no such path.
    let by_token = shared.bearer.as_ref().map(|(want_path, token)| {
        let bears = headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("authorization") && *v == format!("Bearer {token}")
        });
        match (path == *want_path, bears) {
            (true, true) => 0,
            (true, false) => 1,
            (false, _) => 2,
        }
    });
    let reply = {
        let mut st = shared.lock();
        let (replies, next, log) = &mut *st;
        let reply = match by_token {
            Some(i) => replies[i].clone(),
            None => replies[(*next).min(replies.len() - 1)].clone(),
        };
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

/// A server on `127.0.0.1:0` that accepts connections and never answers, holding them open:
/// a peer that hangs, for timeouts. Serves until dropped.
pub struct SilentServer {
    port: u16,
    server: JoinHandle<()>,
}

impl SilentServer {
    pub async fn start() -> SilentServer {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("SilentServer: cannot bind 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("SilentServer: local address")
            .port();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        SilentServer { port, server }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One HTTP/1.1 GET over a fresh connection; the status line of the answer.
    async fn get(base: &str, path: &str, auth: Option<&str>) -> String {
        let addr = base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("test step");
        let auth = auth
            .map(|a| format!("authorization: {a}\r\n"))
            .unwrap_or_default();
        let req = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}connection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.expect("test step");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("test step");
        answer.lines().next().unwrap_or_default().to_string()
    }

    #[tokio::test]
    async fn a_bearer_sink_answers_by_token_and_records_every_request() {
        let sink = HttpSink::github_like("t0ken").await;
        let base = sink.base_url();
        assert!(
            get(&base, "/user", Some("Bearer t0ken"))
                .await
                .contains("200")
        );
        assert!(
            get(&base, "/user", Some("Bearer wrong"))
                .await
                .contains("401")
        );
        assert!(get(&base, "/user", None).await.contains("401"));
        assert!(
            get(&base, "/user", Some("Bearer t0ken"))
                .await
                .contains("200")
        );
        assert!(
            get(&base, "//user", Some("Bearer t0ken"))
                .await
                .contains("404")
        );
        let seen = sink.requests();
        assert_eq!(seen.len(), 5);
        assert!(seen.iter().all(|r| r.method == "GET"));
    }

    #[tokio::test]
    async fn a_silent_server_accepts_and_never_answers() {
        let silent = SilentServer::start().await;
        let answer = tokio::time::timeout(
            Duration::from_millis(300),
            get(&silent.base_url(), "/", None),
        )
        .await;
        assert!(answer.is_err(), "it answered: {answer:?}");
    }
}
