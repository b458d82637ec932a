//! Connector templates: the kinds of credential Personas knows, as data.
//!
//! A template names a credential type's fields, says which are secret, which environment
//! variable each becomes in a run, and how to check the credential works (an HTTP request, or a
//! TCP connection for services that do not speak HTTP). Checks are described here and performed
//! by the engine. Placeholders in check URLs and headers are `{field}`.

use serde::Serialize;

/// One field of a credential type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FieldSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// Stored encrypted, never shown, redacted from run output.
    pub secret: bool,
    pub required: bool,
    /// The environment variable a run gets (the user may rename it per credential).
    pub env: &'static str,
    /// Used when the user gives no value (e.g. the public API's URL).
    pub default: Option<&'static str>,
}

/// How `personas credential test` checks a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HealthCheck {
    /// No safe check exists (e.g. a webhook URL, where any request posts a message).
    None,
    /// An HTTP request that succeeds (2xx) only with valid credentials.
    Http(HttpCheck),
    /// A TCP connection to the service (SMTP, PostgreSQL): proves reachability, not the password.
    Tcp(TcpTarget),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HttpCheck {
    pub method: &'static str,
    /// URL template, e.g. `{api_url}/user`.
    pub url: &'static str,
    /// Header templates, e.g. `("Authorization", "Bearer {token}")`.
    pub headers: &'static [(&'static str, &'static str)],
    /// HTTP basic auth from two fields: (user field, password field).
    pub basic_auth: Option<(&'static str, &'static str)>,
    /// Request body template (sent as JSON).
    pub body: Option<&'static str>,
    /// A JSON field of the response that must be `true` (Slack and Telegram answer 200 with
    /// `"ok": false` for a bad token).
    pub json_ok_field: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum TcpTarget {
    HostPort {
        host: &'static str,
        port: &'static str,
    },
    /// A URL field such as `postgres://user:pass@host:5432/db`.
    Url {
        field: &'static str,
        default_port: u16,
    },
}

/// A credential type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ConnectorTemplate {
    pub kind: &'static str,
    pub label: &'static str,
    pub fields: &'static [FieldSpec],
    pub check: HealthCheck,
}

impl ConnectorTemplate {
    pub fn field(&self, name: &str) -> Option<&'static FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }
}

const fn secret(name: &'static str, env: &'static str, description: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        description,
        secret: true,
        required: true,
        env,
        default: None,
    }
}

const fn plain(name: &'static str, env: &'static str, description: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        description,
        secret: false,
        required: true,
        env,
        default: None,
    }
}

const fn optional(
    name: &'static str,
    env: &'static str,
    default: Option<&'static str>,
    description: &'static str,
) -> FieldSpec {
    FieldSpec {
        name,
        description,
        secret: false,
        required: false,
        env,
        default,
    }
}

const fn http(
    method: &'static str,
    url: &'static str,
    headers: &'static [(&'static str, &'static str)],
) -> HealthCheck {
    HealthCheck::Http(HttpCheck {
        method,
        url,
        headers,
        basic_auth: None,
        body: None,
        json_ok_field: None,
    })
}

/// Every template, in the order `credential types` lists them.
pub const TEMPLATES: &[ConnectorTemplate] = &[
    ConnectorTemplate {
        kind: "bearer",
        label: "Generic bearer token",
        fields: &[
            secret("token", "BEARER_TOKEN", "the token"),
            optional(
                "check_url",
                "BEARER_CHECK_URL",
                None,
                "a URL that answers 2xx only with a valid token",
            ),
        ],
        check: http("GET", "{check_url}", &[("Authorization", "Bearer {token}")]),
    },
    ConnectorTemplate {
        kind: "api_key",
        label: "Generic API key (sent in a header)",
        fields: &[
            secret("key", "API_KEY", "the API key"),
            optional(
                "header",
                "API_KEY_HEADER",
                Some("X-API-Key"),
                "the header that carries the key",
            ),
            optional(
                "check_url",
                "API_KEY_CHECK_URL",
                None,
                "a URL that answers 2xx only with a valid key",
            ),
        ],
        check: http("GET", "{check_url}", &[("{header}", "{key}")]),
    },
    ConnectorTemplate {
        kind: "http_basic",
        label: "HTTP basic auth",
        fields: &[
            plain("username", "HTTP_USERNAME", "user name"),
            secret("password", "HTTP_PASSWORD", "password"),
            optional(
                "check_url",
                "HTTP_CHECK_URL",
                None,
                "a URL that answers 2xx only when logged in",
            ),
        ],
        check: HealthCheck::Http(HttpCheck {
            method: "GET",
            url: "{check_url}",
            headers: &[],
            basic_auth: Some(("username", "password")),
            body: None,
            json_ok_field: None,
        }),
    },
    ConnectorTemplate {
        kind: "github",
        label: "GitHub token",
        fields: &[
            secret(
                "token",
                "GITHUB_TOKEN",
                "a personal access token (ghp_… or github_pat_…)",
            ),
            optional(
                "api_url",
                "GITHUB_API_URL",
                Some("https://api.github.com"),
                "API base URL (GitHub Enterprise: https://HOST/api/v3)",
            ),
        ],
        check: http(
            "GET",
            "{api_url}/user",
            &[
                ("Authorization", "Bearer {token}"),
                ("Accept", "application/vnd.github+json"),
            ],
        ),
    },
    ConnectorTemplate {
        kind: "slack_bot",
        label: "Slack bot token",
        fields: &[
            secret("token", "SLACK_BOT_TOKEN", "a bot token (xoxb-…)"),
            optional(
                "api_url",
                "SLACK_API_URL",
                Some("https://slack.com/api"),
                "API base URL",
            ),
        ],
        check: HealthCheck::Http(HttpCheck {
            method: "POST",
            url: "{api_url}/auth.test",
            headers: &[("Authorization", "Bearer {token}")],
            basic_auth: None,
            body: None,
            json_ok_field: Some("ok"),
        }),
    },
    ConnectorTemplate {
        kind: "slack_webhook",
        label: "Slack incoming webhook",
        fields: &[secret(
            "url",
            "SLACK_WEBHOOK_URL",
            "the webhook URL (https://hooks.slack.com/…)",
        )],
        // Any request to a webhook posts a message; there is no harmless check.
        check: HealthCheck::None,
    },
    ConnectorTemplate {
        kind: "telegram_bot",
        label: "Telegram bot",
        fields: &[
            secret(
                "token",
                "TELEGRAM_BOT_TOKEN",
                "the bot token from @BotFather",
            ),
            optional(
                "api_url",
                "TELEGRAM_API_URL",
                Some("https://api.telegram.org"),
                "API base URL",
            ),
        ],
        check: HealthCheck::Http(HttpCheck {
            method: "GET",
            url: "{api_url}/bot{token}/getMe",
            headers: &[],
            basic_auth: None,
            body: None,
            json_ok_field: Some("ok"),
        }),
    },
    ConnectorTemplate {
        kind: "openai",
        label: "OpenAI-compatible API key (bring your own model)",
        fields: &[
            secret("api_key", "OPENAI_API_KEY", "the API key"),
            optional(
                "base_url",
                "OPENAI_BASE_URL",
                Some("https://api.openai.com/v1"),
                "API base URL of any OpenAI-compatible server",
            ),
        ],
        check: http(
            "GET",
            "{base_url}/models",
            &[("Authorization", "Bearer {api_key}")],
        ),
    },
    ConnectorTemplate {
        kind: "anthropic",
        label: "Anthropic API key (bring your own model)",
        fields: &[
            secret("api_key", "ANTHROPIC_API_KEY", "the API key (sk-ant-…)"),
            optional(
                "base_url",
                "ANTHROPIC_BASE_URL",
                Some("https://api.anthropic.com"),
                "API base URL (a gateway)",
            ),
        ],
        check: http(
            "GET",
            "{base_url}/v1/models",
            &[
                ("x-api-key", "{api_key}"),
                ("anthropic-version", "2023-06-01"),
            ],
        ),
    },
    ConnectorTemplate {
        kind: "smtp",
        label: "SMTP mail server",
        fields: &[
            plain("host", "SMTP_HOST", "server host name"),
            optional("port", "SMTP_PORT", Some("587"), "server port"),
            plain("username", "SMTP_USERNAME", "user name"),
            secret("password", "SMTP_PASSWORD", "password"),
            optional("from", "SMTP_FROM", None, "sender address"),
        ],
        check: HealthCheck::Tcp(TcpTarget::HostPort {
            host: "host",
            port: "port",
        }),
    },
    ConnectorTemplate {
        kind: "postgres",
        label: "PostgreSQL connection URL",
        fields: &[secret(
            "url",
            "DATABASE_URL",
            "postgres://user:password@host:5432/database",
        )],
        check: HealthCheck::Tcp(TcpTarget::Url {
            field: "url",
            default_port: 5432,
        }),
    },
    ConnectorTemplate {
        kind: "notion",
        label: "Notion integration token",
        fields: &[
            secret(
                "token",
                "NOTION_TOKEN",
                "an internal integration secret (ntn_… or secret_…)",
            ),
            optional(
                "api_url",
                "NOTION_API_URL",
                Some("https://api.notion.com"),
                "API base URL",
            ),
        ],
        check: http(
            "GET",
            "{api_url}/v1/users/me",
            &[
                ("Authorization", "Bearer {token}"),
                ("Notion-Version", "2022-06-28"),
            ],
        ),
    },
    ConnectorTemplate {
        kind: "linear",
        label: "Linear API key",
        fields: &[
            secret(
                "api_key",
                "LINEAR_API_KEY",
                "a personal API key (lin_api_…)",
            ),
            optional(
                "api_url",
                "LINEAR_API_URL",
                Some("https://api.linear.app"),
                "API base URL",
            ),
        ],
        check: HealthCheck::Http(HttpCheck {
            method: "POST",
            url: "{api_url}/graphql",
            headers: &[("Authorization", "{api_key}")],
            basic_auth: None,
            body: Some(r#"{"query":"{ viewer { id } }"}"#),
            json_ok_field: None,
        }),
    },
    ConnectorTemplate {
        kind: "jira",
        label: "Jira Cloud API token",
        fields: &[
            plain(
                "base_url",
                "JIRA_BASE_URL",
                "your site, e.g. https://acme.atlassian.net",
            ),
            plain("email", "JIRA_EMAIL", "the account's email address"),
            secret("api_token", "JIRA_API_TOKEN", "an API token"),
        ],
        check: HealthCheck::Http(HttpCheck {
            method: "GET",
            url: "{base_url}/rest/api/3/myself",
            headers: &[("Accept", "application/json")],
            basic_auth: Some(("email", "api_token")),
            body: None,
            json_ok_field: None,
        }),
    },
];

/// The template for a credential type.
pub fn template(kind: &str) -> Option<&'static ConnectorTemplate> {
    TEMPLATES.iter().find(|t| t.kind == kind)
}

/// The known kinds, for error messages.
pub fn kinds() -> String {
    TEMPLATES
        .iter()
        .map(|t| t.kind)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fills `{field}` placeholders from `lookup`. A placeholder whose field has no value is an
/// error naming it.
pub fn render(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return Ok(out);
        };
        let name = &after[..close];
        let is_field =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if is_field {
            match lookup(name) {
                Some(v) => out.push_str(&v),
                None => return Err(name.to_string()),
            }
        } else {
            out.push('{');
            out.push_str(name);
            out.push('}');
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_required_kind_exists_and_has_a_secret() {
        for kind in [
            "bearer",
            "api_key",
            "http_basic",
            "github",
            "slack_bot",
            "slack_webhook",
            "telegram_bot",
            "openai",
            "anthropic",
            "smtp",
            "postgres",
            "notion",
            "linear",
            "jira",
        ] {
            let t = template(kind).unwrap_or_else(|| panic!("{kind} missing"));
            assert!(
                t.fields.iter().any(|f| f.secret),
                "{kind} has no secret field"
            );
            assert!(
                t.fields
                    .iter()
                    .all(|f| crate::validate::env_name(f.env).is_ok()),
                "{kind}: a default env name is refused by the deny-list"
            );
        }
        assert_eq!(
            template("github")
                .and_then(|t| t.field("token"))
                .map(|f| f.env),
            Some("GITHUB_TOKEN")
        );
    }

    #[test]
    fn check_placeholders_name_existing_fields() {
        for t in TEMPLATES {
            let texts: Vec<&str> = match t.check {
                HealthCheck::Http(h) => {
                    let mut v = vec![h.url];
                    for (k, val) in h.headers {
                        v.push(k);
                        v.push(val);
                    }
                    v
                }
                _ => vec![],
            };
            for text in texts {
                render(text, &|name| t.field(name).map(|_| "x".to_string()))
                    .unwrap_or_else(|f| panic!("{}: placeholder {{{f}}} is not a field", t.kind));
            }
        }
    }

    #[test]
    fn render_fills_fields_and_names_a_missing_one() {
        let lookup = |n: &str| (n == "api_url").then(|| "http://127.0.0.1:1".to_string());
        assert_eq!(
            render("{api_url}/user", &lookup).as_deref(),
            Ok("http://127.0.0.1:1/user")
        );
        assert_eq!(render("{token}", &lookup), Err("token".to_string()));
        assert_eq!(render("{\"a\": 1}", &lookup).as_deref(), Ok("{\"a\": 1}"));
    }
}
