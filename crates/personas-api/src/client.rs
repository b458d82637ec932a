//! [`Client`]: the operations of the table as one front-end sees them, whichever process holds
//! the data dir.
//!
//! Two transports, one interface: when a runtime (`personas up` or the desktop app) holds the
//! data dir, every call is `POST /api/<operation>` to it, so it acts and announces the change on
//! its event stream at once; when nothing runs, the client holds an in-process [`Api`] over the
//! store. Either way the caller gets the operation's own response type (or its [`ApiError`]),
//! decoded from the same JSON the HTTP API returns — so a front-end printing a response prints
//! the HTTP body, whichever transport answered.
//!
//! `Client` implements [`Operations`] (expanded from the table, so it cannot miss an operation)
//! and [`Client::call_json`] calls one by name for hosts that route generically (MCP tools).

use crate::error::{ApiError, Code};
use crate::{Api, Operations};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

/// How long one HTTP call may take. Operations answer quickly (runs are queued, not awaited);
/// the slowest (`system_check` runs `claude --version`, `test_credential` calls a service) stay
/// well under this.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A front-end's handle on the operations; cheap to clone.
#[derive(Clone)]
pub struct Client {
    transport: Transport,
}

#[derive(Clone)]
enum Transport {
    /// A running runtime's HTTP API.
    Http(Http),
    /// The operations in this process, over the store (nothing else holds the data dir).
    Local(Api),
}

#[derive(Clone)]
struct Http {
    /// `http://127.0.0.1:<port>`, no trailing slash.
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    /// A client of the runtime serving at `base_url` with its API `token`.
    pub fn http(base_url: &str, token: &str) -> Result<Client, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| ApiError::internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            transport: Transport::Http(Http {
                base: base_url.trim_end_matches('/').to_string(),
                token: token.to_string(),
                http,
            }),
        })
    }

    /// A client calling `api` in this process.
    pub fn local(api: Api) -> Client {
        Client {
            transport: Transport::Local(api),
        }
    }

    /// The runtime's URL when calls go over HTTP; `None` in process.
    pub fn url(&self) -> Option<&str> {
        match &self.transport {
            Transport::Http(h) => Some(&h.base),
            Transport::Local(_) => None,
        }
    }

    /// The in-process API when calls stay in this process (a foreground run needs its engine).
    pub fn local_api(&self) -> Option<&Api> {
        match &self.transport {
            Transport::Http(_) => None,
            Transport::Local(api) => Some(api),
        }
    }

    /// Calls an operation by name with a JSON request and returns the JSON response: the body
    /// `POST /api/<name>` answers with.
    pub async fn call_json(&self, name: &str, input: Value) -> Result<Value, ApiError> {
        match &self.transport {
            Transport::Http(h) => h.post(name, &input).await,
            Transport::Local(api) => crate::dispatch(api, name, input).await,
        }
    }

    /// Calls an operation over HTTP and decodes its response as `T`.
    async fn http_call<Req: Serialize, Resp: DeserializeOwned>(
        h: &Http,
        name: &str,
        req: &Req,
    ) -> Result<Resp, ApiError> {
        let body = serde_json::to_value(req)
            .map_err(|e| ApiError::internal(format!("cannot encode the {name} request: {e}")))?;
        let answer = h.post(name, &body).await?;
        serde_json::from_value(answer).map_err(|e| {
            ApiError::internal(format!(
                "the runtime at {} answered {name} with an unexpected shape: {e}",
                h.base
            ))
        })
    }
}

impl Http {
    async fn post(&self, name: &str, body: &Value) -> Result<Value, ApiError> {
        let resp = self
            .http
            .post(format!("{}/api/{name}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(|e| {
                ApiError::new(
                    Code::Unavailable,
                    format!("cannot reach the runtime at {}: {e}", self.base),
                )
            })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| {
            ApiError::new(
                Code::Unavailable,
                format!("the runtime at {} stopped answering: {e}", self.base),
            )
        })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                ApiError::internal(format!(
                    "the runtime at {} answered {name} with bad JSON: {e}",
                    self.base
                ))
            });
        }
        // Every failure the API itself reports is `{code, message, field}`; anything else (a
        // proxy's page, a runtime of another version) is reported with its status.
        Err(
            serde_json::from_slice::<ApiError>(&bytes).unwrap_or_else(|_| {
                ApiError::internal(format!(
                    "the runtime at {} answered {name} with HTTP {status}: {}",
                    self.base,
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                ))
            }),
        )
    }
}

macro_rules! client_operations {
    ($( $(#[doc = $doc:literal])* $name:ident : $req:ty => $resp:ty ),* $(,)?) => {
        impl Operations for Client {
            $(
                async fn $name(&self, req: $req) -> Result<$resp, ApiError> {
                    match &self.transport {
                        Transport::Http(h) => Client::http_call(h, stringify!($name), &req).await,
                        Transport::Local(api) => Operations::$name(api, req).await,
                    }
                }
            )*
        }
    };
}

crate::for_each_operation!(client_operations);
