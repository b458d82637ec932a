//! Sending one notice to one channel: Slack (incoming webhook or `chat.postMessage`), Telegram
//! (`sendMessage`), email over SMTP (lettre, rustls), a signed JSON webhook, or a desktop
//! notification on the engine's event channel.
//!
//! Errors never carry a secret: URLs are stripped from HTTP errors (a Slack webhook URL and the
//! Telegram API path contain tokens) and every resolved secret is redacted from the text.

use super::channel::{ChannelConfig, EmailConfig, Resolved, Secret, SmtpSecurity, Text};
use crate::events::{EngineEvent, EventBus};
use hmac::{Hmac, KeyInit, Mac};
use personas_store::Notice;
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::Duration;

/// Header names of a signed webhook delivery.
pub const SIGNATURE_HEADER: &str = "x-personas-signature";
pub const TIMESTAMP_HEADER: &str = "x-personas-timestamp";
pub const DELIVERY_HEADER: &str = "x-personas-delivery";
pub const EVENT_HEADER: &str = "x-personas-event";

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq)]
pub struct SendError {
    pub message: String,
    /// Retrying cannot help (bad config, 4xx other than 408/429).
    pub permanent: bool,
    /// The endpoint asked to wait this long.
    pub retry_after: Option<Duration>,
}

impl SendError {
    fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
            retry_after: None,
        }
    }
    /// A failure retrying cannot fix (a secret that cannot be resolved, a bad config).
    pub fn permanent_message(message: String) -> Self {
        Self::permanent(message)
    }
    fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
            retry_after: None,
        }
    }
}

/// What a send needs besides the channel and the notice.
pub struct SendContext<'a> {
    pub http: &'a reqwest::Client,
    /// The channel's secrets, resolved beforehand ([`super::resolve_secrets`]).
    pub secrets: &'a Resolved,
    /// Every secret the runtime knows: applied to the notice before it leaves, so text stored
    /// before a value was known (or through a path that missed one) is still not sent.
    pub redactor: &'a personas_core::redact::Redactor,
    pub slack_api_url: &'a str,
    pub telegram_api_url: &'a str,
    pub timeout: Duration,
    pub bus: &'a EventBus,
    pub delivery_id: &'a str,
    /// 1-based.
    pub attempt: u32,
}

/// The plain-text rendering used by chat and email channels.
pub fn render_text(n: &Notice) -> (String, String) {
    match n.kind.as_str() {
        "review" => {
            let subject = format!(
                "[{}] Review requested: {}",
                n.persona_name,
                n.title.as_deref().unwrap_or("")
            );
            let mut body = format!("Severity: {}\n", n.priority);
            if !n.body.trim().is_empty() {
                body.push_str(n.body.trim());
                body.push('\n');
            }
            if !n.suggested_actions.is_empty() {
                body.push_str(&format!("Suggested: {}\n", n.suggested_actions.join(", ")));
            }
            body.push_str(&format!(
                "Decide: personas review approve {0} [--note TEXT] | personas review reject {0} [--note TEXT]",
                n.id
            ));
            (subject, body)
        }
        _ => {
            let subject = match &n.title {
                Some(t) => format!("[{}] {t}", n.persona_name),
                None => format!("[{}] message", n.persona_name),
            };
            (subject, n.body.clone())
        }
    }
}

/// The JSON body of a webhook delivery.
pub fn webhook_body(n: &Notice, delivery_id: &str, attempt: u32) -> Value {
    json!({
        "type": n.kind,
        "id": n.id,
        "delivery_id": delivery_id,
        "attempt": attempt,
        "persona": {"id": n.persona_id, "name": n.persona_name},
        "execution_id": n.execution_id,
        "title": n.title,
        "content": n.body,
        "priority": n.priority,
        "suggested_actions": n.suggested_actions,
        "created_at": n.created_at,
    })
}

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm is unreachable in practice.
        Err(_) => return String::new(),
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn redact(mut text: String, secrets: &[&Secret]) -> String {
    for s in secrets {
        if !s.expose().is_empty() {
            text = text.replace(s.expose(), "[redacted]");
        }
    }
    text
}

fn http_error(e: reqwest::Error) -> SendError {
    // The URL may hold a token (Slack webhook, Telegram path): never keep it.
    SendError::transient(format!("request failed: {}", e.without_url()))
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

fn status_error(status: reqwest::StatusCode, body: &str, after: Option<Duration>) -> SendError {
    let snippet: String = body.chars().take(300).collect();
    let permanent = status.is_client_error()
        && status != reqwest::StatusCode::TOO_MANY_REQUESTS
        && status != reqwest::StatusCode::REQUEST_TIMEOUT;
    SendError {
        message: format!("HTTP {status}: {}", snippet.trim()),
        permanent,
        retry_after: after,
    }
}

async fn post_json(
    http: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<(reqwest::StatusCode, Option<Duration>, String), SendError> {
    let mut req = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(
            reqwest::header::USER_AGENT,
            concat!("personas/", env!("CARGO_PKG_VERSION")),
        );
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.body(body).send().await.map_err(http_error)?;
    let status = resp.status();
    let after = retry_after(&resp);
    let text = resp.text().await.map_err(http_error)?;
    Ok((status, after, text))
}

/// Sends `notice` through `channel`. `Ok` means the endpoint accepted it.
pub async fn send(
    ctx: &SendContext<'_>,
    channel: &ChannelConfig,
    notice: &Notice,
) -> Result<(), SendError> {
    let secret = |r, field: &str| ctx.secrets.get(r, field).map_err(SendError::permanent);
    let redacted;
    let notice = if ctx.redactor.is_empty() {
        notice
    } else {
        let mut n = notice.clone();
        for t in n.title.iter_mut().chain(std::iter::once(&mut n.body)) {
            ctx.redactor.redact_string(t);
        }
        for a in &mut n.suggested_actions {
            ctx.redactor.redact_string(a);
        }
        redacted = n;
        &redacted
    };
    let (subject, body) = render_text(notice);
    match channel {
        ChannelConfig::Desktop => {
            ctx.bus.send(EngineEvent::Notification {
                persona_name: notice.persona_name.clone(),
                subject_kind: notice.kind,
                subject_id: notice.id.clone(),
                title: subject,
                body,
                priority: notice.priority.clone(),
            });
            Ok(())
        }
        ChannelConfig::SlackWebhook { webhook_url } => {
            let url = secret(webhook_url, "webhook_url")?;
            let payload = json!({"text": format!("*{subject}*\n{body}")});
            let (status, after, text) = post_json(
                ctx.http,
                url.expose(),
                &[],
                payload.to_string().into_bytes(),
            )
            .await?;
            if status.is_success() {
                Ok(())
            } else {
                Err(redact_err(status_error(status, &text, after), &[&url]))
            }
        }
        ChannelConfig::SlackBot { bot_token, channel } => {
            let token = secret(bot_token, "bot_token")?;
            let url = format!(
                "{}/chat.postMessage",
                ctx.slack_api_url.trim_end_matches('/')
            );
            let payload = json!({"channel": channel, "text": format!("*{subject}*\n{body}")});
            let (status, after, text) = post_json(
                ctx.http,
                &url,
                &[("authorization", format!("Bearer {}", token.expose()))],
                payload.to_string().into_bytes(),
            )
            .await?;
            if !status.is_success() {
                return Err(redact_err(status_error(status, &text, after), &[&token]));
            }
            // The Web API answers 200 with {"ok": false, "error": "..."} on failures.
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if v["ok"] == Value::Bool(true) {
                Ok(())
            } else {
                let code = v["error"].as_str().unwrap_or("unreadable answer");
                let permanent = !matches!(
                    code,
                    "ratelimited"
                        | "internal_error"
                        | "fatal_error"
                        | "service_unavailable"
                        | "request_timeout"
                );
                Err(redact_err(
                    SendError {
                        message: format!("Slack refused the message: {code}"),
                        permanent,
                        retry_after: after,
                    },
                    &[&token],
                ))
            }
        }
        ChannelConfig::Telegram { bot_token, chat_id } => {
            let token = secret(bot_token, "bot_token")?;
            let url = format!(
                "{}/bot{}/sendMessage",
                ctx.telegram_api_url.trim_end_matches('/'),
                token.expose()
            );
            let payload = json!({
                "chat_id": chat_id,
                "text": format!("{subject}\n\n{body}"),
                "disable_web_page_preview": true,
            });
            let (status, after, text) =
                post_json(ctx.http, &url, &[], payload.to_string().into_bytes()).await?;
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if status.is_success() && v["ok"] == Value::Bool(true) {
                return Ok(());
            }
            let after = after.or_else(|| {
                v["parameters"]["retry_after"]
                    .as_u64()
                    .map(Duration::from_secs)
            });
            let mut e = status_error(status, v["description"].as_str().unwrap_or(&text), after);
            e.message = format!("Telegram refused the message: {}", e.message);
            Err(redact_err(e, &[&token]))
        }
        ChannelConfig::Webhook { url, secret: key } => {
            let key = secret(key, "secret")?;
            let url_value = match url {
                Text::Plain(u) => Secret::new(u.clone()),
                Text::Secret(r) => secret(r, "url")?,
            };
            let body = webhook_body(notice, ctx.delivery_id, ctx.attempt).to_string();
            let ts = chrono::Utc::now().timestamp().to_string();
            let sig = signature(key.expose().as_bytes(), &ts, body.as_bytes());
            let headers = [
                (SIGNATURE_HEADER, sig),
                (TIMESTAMP_HEADER, ts),
                (DELIVERY_HEADER, ctx.delivery_id.to_string()),
                (EVENT_HEADER, notice.kind.to_string()),
            ];
            let (status, after, text) =
                post_json(ctx.http, url_value.expose(), &headers, body.into_bytes()).await?;
            if status.is_success() {
                Ok(())
            } else {
                let hide: Vec<&Secret> = match url {
                    Text::Secret(_) => vec![&key, &url_value],
                    Text::Plain(_) => vec![&key],
                };
                Err(redact_err(status_error(status, &text, after), &hide))
            }
        }
        ChannelConfig::Email(cfg) => send_email(ctx, cfg, &subject, &body).await,
    }
}

fn redact_err(mut e: SendError, secrets: &[&Secret]) -> SendError {
    e.message = redact(e.message, secrets);
    e
}

async fn send_email(
    ctx: &SendContext<'_>,
    cfg: &EmailConfig,
    subject: &str,
    body: &str,
) -> Result<(), SendError> {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    let mut msg = Message::builder().from(cfg.from.clone()).subject(subject);
    for to in &cfg.to {
        msg = msg.to(to.clone());
    }
    let msg = msg
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(body.to_string())
        .map_err(|e| SendError::permanent(format!("cannot build the email: {e}")))?;
    let host = cfg.url.host.as_str();
    let builder = match cfg.url.security {
        SmtpSecurity::ImplicitTls => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
        SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
        SmtpSecurity::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            host,
        )),
    }
    .map_err(|e| SendError::permanent(format!("SMTP setup for {host} failed: {e}")))?;
    let mut builder = builder.port(cfg.url.port).timeout(Some(ctx.timeout));
    let mut password = None;
    if let (Some(user), Some(pass)) = (&cfg.username, &cfg.password) {
        let p = ctx
            .secrets
            .get(pass, "password")
            .map_err(SendError::permanent)?;
        builder = builder.credentials(Credentials::new(user.clone(), p.expose().to_string()));
        password = Some(p);
    }
    let transport = builder.build();
    match transport.send(msg).await {
        Ok(_) => Ok(()),
        Err(e) => {
            let permanent = e.is_permanent();
            let text = format!("SMTP {host}:{}: {e}", cfg.url.port);
            let hide: Vec<&Secret> = password.iter().collect();
            Err(SendError {
                message: redact(text, &hide),
                permanent,
                retry_after: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_over_timestamp_dot_body() {
        // RFC 4231 test case 2 (key "Jefe"): the primitive and its hex encoding.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // The framing: "<timestamp>.<body>".
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"1700000000.{\"a\":1}");
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(signature(b"Jefe", "1700000000", br#"{"a":1}"#), expected);
    }

    #[test]
    fn reviews_render_with_how_to_decide() {
        let n = Notice {
            kind: personas_core::NoticeKind::Review,
            id: "r-1".into(),
            persona_id: None,
            persona_name: "Shipper".into(),
            execution_id: None,
            title: Some("Merge PR 7?".into()),
            body: "CI is green".into(),
            priority: "high".into(),
            suggested_actions: vec!["merge".into()],
            created_at: chrono::Utc::now(),
        };
        let (subject, body) = render_text(&n);
        assert_eq!(subject, "[Shipper] Review requested: Merge PR 7?");
        assert!(body.contains("Severity: high") && body.contains("Suggested: merge"));
        assert!(body.contains("personas review approve r-1"), "{body}");
    }

    #[test]
    fn redaction_removes_every_secret() {
        let s = Secret::new("tok-123");
        assert_eq!(
            redact("GET /bottok-123/sendMessage failed: tok-123".into(), &[&s]),
            "GET /bot[redacted]/sendMessage failed: [redacted]"
        );
    }
}
