//! Health checks: does a credential work? One request (or TCP connection) as its template says,
//! with a deadline. The outcome is recorded on the credential; error texts are redacted with
//! the credential's own values first (a URL can carry a token, as Telegram's do) and never
//! include a response body.

use super::Opened;
use personas_core::connector::{self, HealthCheck, HttpCheck, TcpTarget};
use personas_store::{CheckRecord, CredentialRow, Store, StoreError};
use std::time::Duration;

/// What a check found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CheckOutcome {
    Ok {
        detail: String,
    },
    Failed {
        error: String,
    },
    /// This credential cannot be checked (no check defined, or an optional URL not set).
    Unsupported {
        reason: String,
    },
}

impl CheckOutcome {
    /// What is stored, when anything is.
    pub fn record(&self) -> Option<CheckRecord> {
        match self {
            CheckOutcome::Ok { .. } => Some(CheckRecord {
                ok: true,
                error: None,
            }),
            CheckOutcome::Failed { error } => Some(CheckRecord {
                ok: false,
                error: Some(error.clone()),
            }),
            CheckOutcome::Unsupported { .. } => None,
        }
    }
}

/// Records a check's outcome on the credential (an unsupported check records nothing) and
/// returns the credential as stored now.
pub fn record(
    store: &Store,
    cred: &Opened,
    outcome: &CheckOutcome,
) -> Result<CredentialRow, StoreError> {
    if let Some(rec) = outcome.record() {
        store.credentials().record_check(&cred.row.id, &rec)?;
    }
    store.credentials().find(&cred.row.id)
}

/// Runs the template's check for an opened credential.
pub async fn run(cred: &Opened, timeout: Duration) -> CheckOutcome {
    let redactor = cred.redactor();
    let outcome = match cred.template.check {
        HealthCheck::None => CheckOutcome::Unsupported {
            reason: format!(
                "{} credentials have no safe health check (any request would act)",
                cred.template.kind
            ),
        },
        HealthCheck::Http(h) => http(cred, &h, timeout).await,
        HealthCheck::Tcp(t) => tcp(cred, t, timeout).await,
    };
    // Belt and braces: whatever text leaves here has the credential's values removed.
    match outcome {
        CheckOutcome::Failed { error } => CheckOutcome::Failed {
            error: redactor.redact(&error).into_owned(),
        },
        CheckOutcome::Ok { detail } => CheckOutcome::Ok {
            detail: redactor.redact(&detail).into_owned(),
        },
        other => other,
    }
}

fn render(cred: &Opened, template: &str) -> Result<String, String> {
    connector::render(template, &|name| {
        cred.values.get(name).map(|v| v.expose().to_string())
    })
}

async fn http(cred: &Opened, h: &HttpCheck, timeout: Duration) -> CheckOutcome {
    let url = match render(cred, h.url) {
        Ok(u) => u,
        Err(field) => {
            return CheckOutcome::Unsupported {
                reason: format!(
                    "set the {field} field to check this credential (e.g. personas credential \
                     remove + add with --field {field}=URL)"
                ),
            };
        }
    };
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        // A redirect could carry the Authorization header somewhere else; a check never needs one.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("personas/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            return CheckOutcome::Failed {
                error: format!("cannot build an HTTP client: {}", e.without_url()),
            };
        }
    };
    let method = match reqwest::Method::from_bytes(h.method.as_bytes()) {
        Ok(m) => m,
        Err(_) => {
            return CheckOutcome::Failed {
                error: format!("bad method {}", h.method),
            };
        }
    };
    let mut req = client.request(method, &url);
    for (k, v) in h.headers {
        match (render(cred, k), render(cred, v)) {
            (Ok(k), Ok(v)) => req = req.header(k, v),
            (Err(f), _) | (_, Err(f)) => {
                return CheckOutcome::Unsupported {
                    reason: format!("set the {f} field to check this credential"),
                };
            }
        }
    }
    if let Some((user, pass)) = h.basic_auth {
        let (Some(u), Some(p)) = (cred.values.get(user), cred.values.get(pass)) else {
            return CheckOutcome::Unsupported {
                reason: format!("set the {user} and {pass} fields to check this credential"),
            };
        };
        req = req.basic_auth(u.expose(), Some(p.expose()));
    }
    if let Some(body) = h.body {
        req = req
            .header("Content-Type", "application/json")
            .body(body.to_string());
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return CheckOutcome::Failed {
                error: format!("timed out after {} s", timeout.as_secs_f64()),
            };
        }
        Err(e) => {
            return CheckOutcome::Failed {
                error: format!("request failed: {}", describe(&e)),
            };
        }
    };
    let status = resp.status();
    if !status.is_success() {
        return CheckOutcome::Failed {
            error: format!("HTTP {status}: the service refused the credential"),
        };
    }
    if let Some(field) = h.json_ok_field {
        let body: serde_json::Value = match resp.json().await {
            Ok(v) => v,
            Err(e) if e.is_timeout() => {
                return CheckOutcome::Failed {
                    error: format!("timed out after {} s", timeout.as_secs_f64()),
                };
            }
            Err(_) => {
                return CheckOutcome::Failed {
                    error: format!("HTTP {status} but the answer was not JSON"),
                };
            }
        };
        if body.get(field) != Some(&serde_json::Value::Bool(true)) {
            let why = body
                .get("error")
                .or_else(|| body.get("description"))
                .and_then(|v| v.as_str())
                .map(|s| format!(" ({})", s.chars().take(120).collect::<String>()))
                .unwrap_or_default();
            return CheckOutcome::Failed {
                error: format!("HTTP {status} but {field:?} is not true{why}"),
            };
        }
    }
    CheckOutcome::Ok {
        detail: format!("HTTP {status}"),
    }
}

/// A reqwest error without its URL (which can carry a token), with its cause chain.
fn describe(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        parts.push(s.to_string());
        src = s.source();
    }
    let head = if e.is_connect() {
        "could not connect"
    } else if e.is_request() {
        "could not send the request"
    } else {
        "no valid answer"
    };
    if parts.is_empty() {
        head.to_string()
    } else {
        format!("{head}: {}", parts.join(": "))
    }
}

async fn tcp(cred: &Opened, target: TcpTarget, timeout: Duration) -> CheckOutcome {
    let addr = match target {
        TcpTarget::HostPort { host, port } => {
            let h = cred.values.get(host).map(|v| v.expose().to_string());
            let p = cred.values.get(port).map(|v| v.expose().to_string());
            match (h, p) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                _ => {
                    return CheckOutcome::Unsupported {
                        reason: format!("set the {host} and {port} fields to check it"),
                    };
                }
            }
        }
        TcpTarget::Url {
            field,
            default_port,
        } => {
            let Some(v) = cred.values.get(field) else {
                return CheckOutcome::Unsupported {
                    reason: format!("set the {field} field to check it"),
                };
            };
            match reqwest::Url::parse(v.expose()) {
                Ok(u) => match u.host_str() {
                    Some(h) => format!("{h}:{}", u.port().unwrap_or(default_port)),
                    None => {
                        return CheckOutcome::Failed {
                            error: format!("the {field} field has no host"),
                        };
                    }
                },
                // The parse error never quotes the input, but say nothing of it anyway.
                Err(e) => {
                    return CheckOutcome::Failed {
                        error: format!("the {field} field is not a valid URL: {e}"),
                    };
                }
            }
        }
    };
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => CheckOutcome::Ok {
            detail: format!("connected to {addr} (the password is not checked)"),
        },
        Ok(Err(e)) => CheckOutcome::Failed {
            error: format!("could not connect to {addr}: {e}"),
        },
        Err(_) => CheckOutcome::Failed {
            error: format!(
                "timed out after {} s connecting to {addr}",
                timeout.as_secs_f64()
            ),
        },
    }
}
