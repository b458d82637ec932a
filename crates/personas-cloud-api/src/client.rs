//! [`CloudClient`]: the orchestrator's operations over HTTP (typed methods generated from the
//! table in `lib.rs`) and its client stream over a WebSocket.

use crate::error::{CloudError, CloudErrorCode};
use crate::stream::ClientFrame;
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A connection to one orchestrator (or a load balancer in front of several).
#[derive(Clone)]
pub struct CloudClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for CloudClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl CloudClient {
    /// `base` is the orchestrator's URL (`http://127.0.0.1:9500`); `token` a JWT or the
    /// deployment's admin token.
    pub fn new(base: &str, token: &str) -> Result<Self, CloudError> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CloudError::invalid(
                "url",
                format!("{base:?} is not an http:// or https:// URL"),
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| CloudError::internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            base,
            token: token.to_string(),
            http,
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// Calls an operation by name.
    pub async fn call<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        name: &str,
        req: &Req,
    ) -> Result<Resp, CloudError> {
        let body = self
            .call_json(
                name,
                &serde_json::to_value(req)
                    .map_err(|e| CloudError::internal(format!("cannot encode the request: {e}")))?,
            )
            .await?;
        serde_json::from_value(body).map_err(|e| {
            CloudError::internal(format!(
                "the orchestrator's answer to {name} does not decode: {e}"
            ))
        })
    }

    /// Calls an operation with a JSON request; the answer as JSON.
    pub async fn call_json(
        &self,
        name: &str,
        req: &serde_json::Value,
    ) -> Result<serde_json::Value, CloudError> {
        let resp = self
            .http
            .post(format!("{}/api/{name}", self.base))
            .bearer_auth(&self.token)
            .json(req)
            .send()
            .await
            .map_err(|e| unreachable(&self.base, &e))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| unreachable(&self.base, &e))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                CloudError::internal(format!("the orchestrator's answer does not decode: {e}"))
            });
        }
        Err(
            serde_json::from_slice::<CloudError>(&bytes).unwrap_or_else(|_| {
                let code = match status.as_u16() {
                    401 | 403 => CloudErrorCode::Unauthorized,
                    404 => CloudErrorCode::NotFound,
                    429 => CloudErrorCode::RateLimited,
                    400..=499 => CloudErrorCode::Invalid,
                    _ => CloudErrorCode::Unavailable,
                };
                CloudError::new(
                    code,
                    format!(
                        "the orchestrator answered {status}: {}",
                        String::from_utf8_lossy(&bytes)
                            .chars()
                            .take(300)
                            .collect::<String>()
                    ),
                )
            }),
        )
    }

    /// `GET /health`: whether the orchestrator answers at all (no token needed).
    pub async fn health(&self) -> Result<serde_json::Value, CloudError> {
        let resp = self
            .http
            .get(format!("{}/health", self.base))
            .send()
            .await
            .map_err(|e| unreachable(&self.base, &e))?;
        resp.json()
            .await
            .map_err(|e| CloudError::unavailable(format!("bad health answer: {e}")))
    }

    /// Opens the client stream from journal sequence `after` (0: only what happens from now…
    /// and everything stored after 0, i.e. the tenant's whole journal), optionally only one
    /// execution's frames. Ends when the connection does; reconnect with the last `seq` seen.
    pub async fn stream(
        &self,
        after: i64,
        execution: Option<&str>,
    ) -> Result<impl Stream<Item = Result<ClientFrame, CloudError>> + use<>, CloudError> {
        let ws_base = if let Some(rest) = self.base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            format!("ws://{}", self.base.trim_start_matches("http://"))
        };
        let mut url = format!("{ws_base}/api/stream?after={after}");
        if let Some(id) = execution {
            url.push_str("&execution=");
            url.push_str(id);
        }
        let mut request = url
            .into_client_request()
            .map_err(|e| CloudError::invalid("url", format!("bad stream URL: {e}")))?;
        let auth = format!("Bearer {}", self.token)
            .parse()
            .map_err(|_| CloudError::invalid("token", "the token is not a valid header value"))?;
        request.headers_mut().insert("authorization", auth);
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(resp) => {
                    let status = resp.status().as_u16();
                    let body = resp
                        .body()
                        .as_ref()
                        .and_then(|b| serde_json::from_slice::<CloudError>(b).ok());
                    body.unwrap_or_else(|| {
                        CloudError::new(
                            if status == 401 {
                                CloudErrorCode::Unauthorized
                            } else {
                                CloudErrorCode::Unavailable
                            },
                            format!("the stream was refused with HTTP {status}"),
                        )
                    })
                }
                other => CloudError::unavailable(format!("cannot open the stream: {other}")),
            })?;
        Ok(ws.filter_map(|msg| async move {
            match msg {
                Ok(Message::Text(text)) => {
                    Some(serde_json::from_str::<ClientFrame>(&text).map_err(|e| {
                        CloudError::internal(format!("a stream frame does not decode: {e}"))
                    }))
                }
                Ok(Message::Close(_)) => None,
                Ok(_) => None,
                Err(e) => Some(Err(CloudError::unavailable(format!(
                    "the stream broke: {e}"
                )))),
            }
        }))
    }
}

fn unreachable(base: &str, e: &reqwest::Error) -> CloudError {
    if e.is_timeout() {
        CloudError::unavailable(format!("the orchestrator at {base} did not answer in time"))
    } else {
        CloudError::unavailable(format!("cannot reach the orchestrator at {base}: {e}"))
    }
}
