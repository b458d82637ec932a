//! Notification channel configurations: parsing and checking what a user gives, and resolving
//! secret references when sending.
//!
//! A channel's config is stored, so it must never hold a secret. Secret fields (Slack webhook
//! URL and bot token, Telegram bot token, SMTP password, webhook signing key) are therefore
//! references resolved at send time into a [`Secret`]:
//! - `credential:NAME.FIELD` — a field of a credential in the vault (the way to store one);
//! - `env:NAME` — a variable of the runtime's environment (`config.toml` `[env]`, then the
//!   process environment), only when `NAME` is listed in `channel_env_allow` in `config.toml`,
//!   and never a `PERSONAS_*` variable (the vault passphrase and the API token are ours). Those
//!   variables are also withheld from runs (`runner::environment`).

use personas_core::ChannelKind;
pub use personas_core::secret::Secret;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A problem with a channel's configuration; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ChannelError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> ChannelError {
    ChannelError {
        field: field.into(),
        message: message.into(),
    }
}

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecretRef {
    /// An environment variable of the runtime (allowed by `channel_env_allow`).
    Env(String),
    /// A field of a credential in the vault.
    Credential { credential: String, field: String },
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::Credential { credential, field } => {
                write!(f, "credential:{credential}.{field}")
            }
        }
    }
}

/// True for names no channel may read: the runtime's own variables (the vault passphrase, the
/// API token, the run token).
pub fn is_reserved_env(name: &str) -> bool {
    name.to_ascii_uppercase().starts_with("PERSONAS_")
}

/// Checks an `env:NAME` reference against `channel_env_allow`.
pub fn check_env_allowed(name: &str, field: &str, allow: &[String]) -> Result<(), String> {
    if is_reserved_env(name) {
        return Err(format!(
            "{field}: env:{name} names one of Personas' own variables; channels cannot read those"
        ));
    }
    if !allow.iter().any(|a| a == name) {
        return Err(format!(
            "{field}: env:{name} is not in channel_env_allow in config.toml; store the secret in \
             the vault and give credential:NAME.FIELD, or add {name:?} to channel_env_allow"
        ));
    }
    Ok(())
}

/// Reads a secret reference. `env` is the runtime's configured environment, which wins over the
/// process environment; `allow` is `channel_env_allow`; `credential` opens a vault field.
pub fn resolve(
    r: &SecretRef,
    field: &str,
    env: &BTreeMap<String, String>,
    allow: &[String],
    credential: &mut dyn FnMut(&str, &str) -> Result<Secret, String>,
) -> Result<Secret, String> {
    match r {
        SecretRef::Env(name) => {
            check_env_allowed(name, field, allow)?;
            env.get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
                .filter(|v| !v.is_empty())
                .map(Secret::new)
                .ok_or_else(|| {
                    format!(
                        "{field}: the environment variable {name} is not set for the runtime \
                         (set it in config.toml [env] or in the environment of `personas up`)"
                    )
                })
        }
        SecretRef::Credential {
            credential: name,
            field: f,
        } => credential(name, f).map_err(|e| format!("{field}: {r}: {e}")),
    }
}

/// A channel's secrets, resolved before sending (resolving may unlock the vault, which blocks).
#[derive(Default)]
pub struct Resolved(BTreeMap<SecretRef, Secret>);

impl Resolved {
    /// Resolves every reference of `config`; the first that cannot be resolved is the error.
    pub fn of(
        config: &ChannelConfig,
        env: &BTreeMap<String, String>,
        allow: &[String],
        credential: &mut dyn FnMut(&str, &str) -> Result<Secret, String>,
    ) -> Result<Resolved, String> {
        let mut out = BTreeMap::new();
        for (field, r) in config.secret_refs() {
            if !out.contains_key(r) {
                out.insert(r.clone(), resolve(r, field, env, allow, credential)?);
            }
        }
        Ok(Resolved(out))
    }

    /// The value of `r` (resolved by [`Resolved::of`]).
    pub fn get(&self, r: &SecretRef, field: &str) -> Result<Secret, String> {
        self.0
            .get(r)
            .cloned()
            .ok_or_else(|| format!("{field}: {r} was not resolved"))
    }

    /// Every resolved value.
    pub fn values(&self) -> impl Iterator<Item = (&SecretRef, &Secret)> {
        self.0.iter()
    }
}

/// A plain value, or one read from the environment (for URLs that may embed tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Text {
    Plain(String),
    Secret(SecretRef),
}

/// SMTP transport security.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtps://`: TLS from the first byte (port 465 by default).
    ImplicitTls,
    /// `smtp://`: STARTTLS, required (port 587 by default).
    StartTls,
    /// `smtp://…?tls=none`: no encryption; only to a relay on this machine.
    None,
}

/// A checked `email.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    pub security: SmtpSecurity,
    pub host: String,
    pub port: u16,
}

impl FromStr for SmtpUrl {
    type Err = ChannelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = "use smtps://HOST[:PORT] (TLS), smtp://HOST[:PORT] (STARTTLS) or \
                     smtp://127.0.0.1:PORT?tls=none (a relay on this machine)";
        let url = reqwest::Url::parse(s).map_err(|e| {
            err(
                "url",
                format!("{s:?} is not a valid SMTP URL ({e}); {usage}"),
            )
        })?;
        let mut security = match url.scheme() {
            "smtps" => SmtpSecurity::ImplicitTls,
            "smtp" => SmtpSecurity::StartTls,
            other => {
                return Err(err(
                    "url",
                    format!("unsupported scheme {other:?} in {s:?}; {usage}"),
                ));
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(err(
                "url",
                "must not carry credentials (they would be stored); give username and \
                 password (as env:NAME) as their own fields",
            ));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| err("url", format!("{s:?} has no host; {usage}")))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_string();
        if !matches!(url.path(), "" | "/") || url.fragment().is_some() {
            return Err(err("url", format!("{s:?} must not have a path; {usage}")));
        }
        for (k, v) in url.query_pairs() {
            match (k.as_ref(), v.as_ref()) {
                ("tls", "none") if security == SmtpSecurity::StartTls => {
                    security = SmtpSecurity::None
                }
                ("tls", "required") if security == SmtpSecurity::StartTls => {}
                _ => {
                    return Err(err(
                        "url",
                        format!("unsupported option {k}={v} in {s:?}; {usage}"),
                    ));
                }
            }
        }
        if security == SmtpSecurity::None && !is_loopback(&host) {
            return Err(err(
                "url",
                format!(
                    "tls=none sends mail and passwords in clear text; it is only allowed to a \
                     relay on this machine, not {host:?}"
                ),
            ));
        }
        let port = url.port().unwrap_or(match security {
            SmtpSecurity::ImplicitTls => 465,
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::None => 25,
        });
        Ok(SmtpUrl {
            security,
            host,
            port,
        })
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A checked email channel.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailConfig {
    pub url: SmtpUrl,
    pub username: Option<String>,
    pub password: Option<SecretRef>,
    pub from: lettre::message::Mailbox,
    pub to: Vec<lettre::message::Mailbox>,
}

/// A checked channel configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelConfig {
    /// Slack incoming webhook: POST `{"text": …}` to the (secret) URL.
    SlackWebhook {
        webhook_url: SecretRef,
    },
    /// Slack Web API `chat.postMessage` with a bot token.
    SlackBot {
        bot_token: SecretRef,
        channel: String,
    },
    /// Telegram Bot API `sendMessage`.
    Telegram {
        bot_token: SecretRef,
        chat_id: String,
    },
    Email(EmailConfig),
    /// POST signed JSON: `X-Personas-Signature: sha256=<hex HMAC-SHA256(secret, "<ts>.<body>")>`.
    Webhook {
        url: Text,
        secret: SecretRef,
    },
    /// A notification on the engine's event channel (the desktop app and the UI show it).
    Desktop,
}

impl ChannelConfig {
    /// Every secret reference, with the field it fills.
    pub fn secret_refs(&self) -> Vec<(&'static str, &SecretRef)> {
        match self {
            ChannelConfig::SlackWebhook { webhook_url } => vec![("webhook_url", webhook_url)],
            ChannelConfig::SlackBot { bot_token, .. }
            | ChannelConfig::Telegram { bot_token, .. } => {
                vec![("bot_token", bot_token)]
            }
            ChannelConfig::Email(e) => e.password.iter().map(|p| ("password", p)).collect(),
            ChannelConfig::Webhook { url, secret } => {
                let mut v = vec![("secret", secret)];
                if let Text::Secret(r) = url {
                    v.push(("url", r));
                }
                v
            }
            ChannelConfig::Desktop => Vec::new(),
        }
    }

    /// Refuses `env:` references that `channel_env_allow` does not list (checked when a channel
    /// is added, so a bad one is refused then rather than at its first send).
    pub fn check_env_refs(&self, allow: &[String]) -> Result<(), ChannelError> {
        for (field, r) in self.secret_refs() {
            if let SecretRef::Env(name) = r {
                check_env_allowed(name, field, allow).map_err(|m| ChannelError {
                    field: field.to_string(),
                    message: m
                        .strip_prefix(&format!("{field}: "))
                        .unwrap_or(&m)
                        .to_string(),
                })?;
            }
        }
        Ok(())
    }
}

/// Reads a `credential:NAME.FIELD` or `env:NAME` reference; a plain value in a secret field is
/// refused (it would be stored in plaintext), and so is any `PERSONAS_*` variable.
fn secret_ref(field: &str, v: &Value) -> Result<SecretRef, ChannelError> {
    let s = v
        .as_str()
        .ok_or_else(|| err(field, "must be a string like \"credential:NAME.FIELD\""))?;
    if let Some(rest) = s.strip_prefix("credential:") {
        return match rest.split_once('.') {
            Some((c, f)) if valid_credential_part(c) && valid_credential_part(f) => {
                Ok(SecretRef::Credential {
                    credential: c.to_string(),
                    field: f.to_string(),
                })
            }
            _ => Err(err(
                field,
                format!(
                    "{s:?} is not a credential reference; give credential:NAME.FIELD, e.g. \
                     credential:slack.webhook_url"
                ),
            )),
        };
    }
    match s.strip_prefix("env:") {
        Some(name) if is_reserved_env(name) => Err(err(
            field,
            format!("env:{name} names one of Personas' own variables; channels cannot read those"),
        )),
        Some(name) if valid_env_name(name) => Ok(SecretRef::Env(name.to_string())),
        Some(name) => Err(err(
            field,
            format!("{name:?} is not a valid environment variable name"),
        )),
        None => Err(err(
            field,
            "holds a secret: store it in the vault and give credential:NAME.FIELD (or env:NAME \
             for a variable listed in channel_env_allow), not the value itself, so it is never \
             stored",
        )),
    }
}

fn valid_credential_part(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn string(field: &str, v: &Value) -> Result<String, ChannelError> {
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| err(field, "must be a non-empty string"))
}

fn mailbox(field: &str, s: &str) -> Result<lettre::message::Mailbox, ChannelError> {
    s.parse::<lettre::message::Mailbox>()
        .map_err(|e| err(field, format!("{s:?} is not an email address ({e})")))
}

/// Checks that `obj` has only `allowed` keys.
fn only(kind: &str, obj: &Map<String, Value>, allowed: &[&str]) -> Result<(), ChannelError> {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(err(
                k.clone(),
                format!(
                    "unknown field for a {kind} channel; expected: {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Parses and checks a channel of `kind` with `config` (a JSON object).
pub fn parse(channel_kind: ChannelKind, config: &Value) -> Result<ChannelConfig, ChannelError> {
    let kind = channel_kind.as_str();
    let empty = Map::new();
    let obj = match config {
        Value::Object(m) => m,
        Value::Null => &empty,
        _ => return Err(err("config", "must be a JSON object")),
    };
    let get = |k: &str| obj.get(k).filter(|v| !v.is_null());
    match channel_kind {
        ChannelKind::Slack => {
            only(kind, obj, &["webhook_url", "bot_token", "channel"])?;
            match (get("webhook_url"), get("bot_token")) {
                (Some(url), None) => {
                    if get("channel").is_some() {
                        return Err(err(
                            "channel",
                            "an incoming webhook posts to its own channel; give channel only with bot_token",
                        ));
                    }
                    Ok(ChannelConfig::SlackWebhook {
                        webhook_url: secret_ref("webhook_url", url)?,
                    })
                }
                (None, Some(token)) => Ok(ChannelConfig::SlackBot {
                    bot_token: secret_ref("bot_token", token)?,
                    channel: string(
                        "channel",
                        get("channel").ok_or_else(|| {
                            err(
                                "channel",
                                "is required with bot_token (e.g. \"#alerts\" or a channel id)",
                            )
                        })?,
                    )?,
                }),
                (Some(_), Some(_)) => Err(err(
                    "webhook_url",
                    "give either webhook_url or bot_token, not both",
                )),
                (None, None) => Err(err(
                    "webhook_url",
                    "a slack channel needs webhook_url (incoming webhook) or bot_token and channel",
                )),
            }
        }
        ChannelKind::Telegram => {
            only(kind, obj, &["bot_token", "chat_id"])?;
            let token = get("bot_token").ok_or_else(|| err("bot_token", "is required"))?;
            let chat = get("chat_id").ok_or_else(|| err("chat_id", "is required"))?;
            let chat_id = match chat {
                Value::Number(n) => n.to_string(),
                other => string("chat_id", other)?,
            };
            Ok(ChannelConfig::Telegram {
                bot_token: secret_ref("bot_token", token)?,
                chat_id,
            })
        }
        ChannelKind::Email => {
            only(kind, obj, &["url", "username", "password", "from", "to"])?;
            let url: SmtpUrl = string(
                "url",
                get("url")
                    .ok_or_else(|| err("url", "is required, e.g. smtps://smtp.example.com"))?,
            )?
            .parse()?;
            let username = get("username").map(|v| string("username", v)).transpose()?;
            let password = get("password")
                .map(|v| secret_ref("password", v))
                .transpose()?;
            if username.is_some() != password.is_some() {
                return Err(err("password", "username and password go together"));
            }
            let from = mailbox(
                "from",
                &string(
                    "from",
                    get("from").ok_or_else(|| err("from", "is required"))?,
                )?,
            )?;
            let to = match get("to").ok_or_else(|| err("to", "is required"))? {
                Value::String(s) => vec![mailbox("to", s)?],
                Value::Array(list) if !list.is_empty() => list
                    .iter()
                    .map(|v| mailbox("to", &string("to", v)?))
                    .collect::<Result<_, _>>()?,
                _ => return Err(err("to", "must be an address or a non-empty list of them")),
            };
            Ok(ChannelConfig::Email(EmailConfig {
                url,
                username,
                password,
                from,
                to,
            }))
        }
        ChannelKind::Webhook => {
            only(kind, obj, &["url", "secret"])?;
            let raw = string("url", get("url").ok_or_else(|| err("url", "is required"))?)?;
            let url = match raw.starts_with("env:") || raw.starts_with("credential:") {
                true => Text::Secret(secret_ref("url", &Value::String(raw.clone()))?),
                false => {
                    let parsed = reqwest::Url::parse(&raw)
                        .map_err(|e| err("url", format!("{raw:?} is not a valid URL ({e})")))?;
                    if !matches!(parsed.scheme(), "http" | "https") {
                        return Err(err("url", format!("{raw:?} must be an http(s) URL")));
                    }
                    if !parsed.username().is_empty() || parsed.password().is_some() {
                        return Err(err(
                            "url",
                            "must not carry credentials; give the whole URL as env:NAME instead",
                        ));
                    }
                    Text::Plain(raw)
                }
            };
            let secret = secret_ref(
                "secret",
                get("secret").ok_or_else(|| {
                    err("secret", "is required: the HMAC-SHA256 key receivers verify signatures with, as env:NAME")
                })?,
            )?;
            Ok(ChannelConfig::Webhook { url, secret })
        }
        ChannelKind::Desktop => {
            only(kind, obj, &[])?;
            Ok(ChannelConfig::Desktop)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `super::parse` with the kind given by name, as a request gives it.
    fn parse(kind: &str, config: &Value) -> Result<ChannelConfig, ChannelError> {
        let kind: ChannelKind = kind.parse().map_err(|e| err("type", e))?;
        super::parse(kind, config)
    }

    fn field(kind: &str, config: Value) -> String {
        parse(kind, &config).expect_err("invalid").field
    }

    #[test]
    fn each_kind_parses_its_config() {
        assert_eq!(
            parse("slack", &json!({"webhook_url": "env:SLACK_URL"})),
            Ok(ChannelConfig::SlackWebhook {
                webhook_url: SecretRef::Env("SLACK_URL".into())
            })
        );
        assert!(matches!(
            parse("slack", &json!({"bot_token": "env:T", "channel": "#ops"})),
            Ok(ChannelConfig::SlackBot { ref channel, .. }) if channel == "#ops"
        ));
        assert!(matches!(
            parse("telegram", &json!({"bot_token": "env:T", "chat_id": -100123})),
            Ok(ChannelConfig::Telegram { ref chat_id, .. }) if chat_id == "-100123"
        ));
        let Ok(ChannelConfig::Email(e)) = parse(
            "email",
            &json!({"url": "smtp://127.0.0.1:2525?tls=none", "from": "Personas <p@example.com>",
                    "to": ["a@example.com", "b@example.com"], "username": "u", "password": "env:P"}),
        ) else {
            panic!("email");
        };
        assert_eq!(
            (e.url.security, e.url.port, e.to.len()),
            (SmtpSecurity::None, 2525, 2)
        );
        assert!(matches!(
            parse(
                "webhook",
                &json!({"url": "https://hooks.example.com/x", "secret": "env:K"})
            ),
            Ok(ChannelConfig::Webhook {
                url: Text::Plain(_),
                ..
            })
        ));
        assert_eq!(parse("desktop", &json!({})), Ok(ChannelConfig::Desktop));
        assert_eq!(parse("desktop", &Value::Null), Ok(ChannelConfig::Desktop));
    }

    #[test]
    fn bad_configs_name_the_field() {
        let e = parse("pager", &json!({})).expect_err("kind");
        assert!(
            e.field == "type"
                && e.message
                    .contains("slack, telegram, email, webhook, desktop")
        );
        let e = parse(
            "slack",
            &json!({"webhook_url": "https://hooks.slack.com/services/T/B/x"}),
        )
        .expect_err("plain secret");
        assert!(
            e.field == "webhook_url" && e.message.contains("env:NAME"),
            "{e}"
        );
        assert_eq!(field("slack", json!({"bot_token": "env:T"})), "channel");
        assert_eq!(field("slack", json!({"webhok_url": "env:X"})), "webhok_url");
        assert_eq!(field("telegram", json!({"bot_token": "env:T"})), "chat_id");
        assert_eq!(
            field("webhook", json!({"url": "https://x.example"})),
            "secret"
        );
        assert_eq!(
            field("webhook", json!({"url": "ftp://x", "secret": "env:K"})),
            "url"
        );
        assert_eq!(
            field("email", json!({"url": "smtps://h", "to": "a@b.c"})),
            "from"
        );
        assert_eq!(
            field(
                "email",
                json!({"url": "smtps://h", "from": "nope", "to": "a@b.c"})
            ),
            "from"
        );
        assert_eq!(field("desktop", json!({"x": 1})), "x");
        assert_eq!(
            field("slack", json!({"bot_token": "env:1BAD", "channel": "c"})),
            "bot_token"
        );
    }

    #[test]
    fn smtp_urls_are_checked() {
        let u: SmtpUrl = "smtps://smtp.example.com".parse().expect("smtps");
        assert_eq!((u.security, u.port), (SmtpSecurity::ImplicitTls, 465));
        let u: SmtpUrl = "smtp://smtp.example.com".parse().expect("smtp");
        assert_eq!((u.security, u.port), (SmtpSecurity::StartTls, 587));
        for (bad, says) in [
            ("not a url", "not a valid SMTP URL"),
            ("http://smtp.example.com", "unsupported scheme \"http\""),
            (
                "smtp://user:pw@smtp.example.com",
                "must not carry credentials",
            ),
            (
                "smtp://smtp.example.com?tls=none",
                "only allowed to a relay on this machine",
            ),
            ("smtps://smtp.example.com?tls=none", "unsupported option"),
            ("smtp://smtp.example.com/path", "must not have a path"),
            ("smtp://", "has no host"),
        ] {
            let e = bad.parse::<SmtpUrl>().expect_err(bad);
            assert_eq!(e.field, "url");
            assert!(e.message.contains(says), "{bad}: {e}");
        }
        assert!("smtp://[::1]:25?tls=none".parse::<SmtpUrl>().is_ok());
    }

    fn no_vault(_: &str, _: &str) -> Result<Secret, String> {
        Err("no vault here".into())
    }

    #[test]
    fn env_secrets_resolve_only_when_allowed_from_config_env_first_and_never_print() {
        let env = BTreeMap::from([("CHANNEL_TEST_SECRET_A".to_string(), "s3cret".to_string())]);
        let allow = vec![
            "CHANNEL_TEST_SECRET_A".to_string(),
            "CHANNEL_TEST_SECRET_UNSET".to_string(),
        ];
        let a = SecretRef::Env("CHANNEL_TEST_SECRET_A".into());
        let v = resolve(&a, "x", &env, &allow, &mut no_vault).expect("set");
        assert_eq!(v.expose(), "s3cret");
        assert!(!format!("{v:?}").contains("s3cret"));
        let e = resolve(
            &SecretRef::Env("CHANNEL_TEST_SECRET_UNSET".into()),
            "bot_token",
            &env,
            &allow,
            &mut no_vault,
        )
        .expect_err("unset");
        assert!(
            e.contains("bot_token") && e.contains("CHANNEL_TEST_SECRET_UNSET"),
            "{e}"
        );
        // Not on the allow-list: refused, with the way out.
        let e = resolve(&a, "secret", &env, &[], &mut no_vault).expect_err("not allowed");
        assert!(
            e.contains("channel_env_allow") && e.contains("credential:"),
            "{e}"
        );
    }

    #[test]
    fn personas_own_variables_are_never_a_channel_secret() {
        for name in [
            "PERSONAS_VAULT_PASSPHRASE",
            "personas_api_token",
            "PERSONAS_MCP_TOKEN",
        ] {
            let e = parse("slack", &json!({"webhook_url": format!("env:{name}")}))
                .expect_err("reserved");
            assert_eq!(e.field, "webhook_url");
            assert!(e.message.contains("Personas' own"), "{e}");
            // Even when a config lists it, resolving refuses.
            let allow = vec![name.to_string()];
            let e = resolve(
                &SecretRef::Env(name.into()),
                "password",
                &BTreeMap::new(),
                &allow,
                &mut no_vault,
            )
            .expect_err("reserved");
            assert!(e.contains("Personas' own"), "{e}");
        }
    }

    #[test]
    fn credential_references_resolve_through_the_vault() {
        let c = parse(
            "webhook",
            &json!({"url": "credential:hook.url", "secret": "credential:hook.signing_key"}),
        )
        .expect("parse");
        let refs: Vec<String> = c.secret_refs().iter().map(|(_, r)| r.to_string()).collect();
        assert_eq!(refs, ["credential:hook.signing_key", "credential:hook.url"]);
        let mut vault = |name: &str, field: &str| -> Result<Secret, String> {
            Ok(Secret::new(format!("{name}/{field}/value")))
        };
        let r = Resolved::of(&c, &BTreeMap::new(), &[], &mut vault).expect("resolved");
        let (_, url) = c.secret_refs()[1];
        assert_eq!(r.get(url, "url").expect("url").expose(), "hook/url/value");
        for bad in ["credential:hook", "credential:.x", "credential:a b.c"] {
            let e = parse("slack", &json!({"webhook_url": bad})).expect_err(bad);
            assert!(e.message.contains("credential:NAME.FIELD"), "{bad}: {e}");
        }
        // env: references are checked against the allow-list when a channel is added.
        let c = parse("slack", &json!({"webhook_url": "env:SLACK_URL"})).expect("parse");
        let e = c.check_env_refs(&[]).expect_err("not allowed");
        assert_eq!(e.field, "webhook_url");
        assert!(c.check_env_refs(&["SLACK_URL".to_string()]).is_ok());
    }
}
