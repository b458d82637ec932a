//! Parser for the Claude Code CLI's `--output-format stream-json --verbose` stdout.
//!
//! One JSON object per line (fixtures README §3.1, §5). Each line parses on its own into a
//! [`ClaudeLine`]; fields a product does not need are skipped without being materialised, which
//! keeps the parser well above the CLI's output rate. Unknown line types are kept as
//! [`ClaudeLine::Other`] rather than rejected: newer CLIs add types, and a runner must not fail
//! because of one.

use crate::model::{PermissionDenial, TokenUsage};
use serde::Deserialize;
use std::borrow::Cow;

/// One parsed stdout line.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaudeLine {
    /// `system/init`: the first line of a run.
    Init(Init),
    /// `system/api_retry`: the CLI is about to retry a failed API call.
    ApiRetry(ApiRetry),
    /// Any other `system` subtype (status, task_*, thinking_tokens, model_fallback, ...).
    System { subtype: String },
    /// One content block of an assistant message.
    Assistant(AssistantLine),
    /// Tool results and interruption markers.
    User(UserLine),
    /// The end of a turn: status, cost, usage, denials.
    Result(ResultLine),
    /// `stream_event` (partial messages) and `control_response`: not needed by the runner.
    Other { line_type: String },
}

impl ClaudeLine {
    /// The session id carried by the line, if any.
    pub fn session_id(&self) -> Option<&str> {
        match self {
            ClaudeLine::Init(i) => Some(&i.session_id),
            ClaudeLine::Result(r) => r.session_id.as_deref(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Init {
    pub session_id: String,
    pub model: Option<String>,
    pub cwd: Option<String>,
    pub permission_mode: Option<String>,
    pub tools: Vec<String>,
    pub claude_code_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApiRetry {
    pub attempt: u32,
    pub max_retries: u32,
    pub retry_delay_ms: u64,
    pub error_status: Option<u16>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AssistantLine {
    pub message_id: Option<String>,
    pub model: Option<String>,
    pub blocks: Vec<Block>,
    /// Set on the synthetic message the CLI prints for a final API error.
    pub error: Option<String>,
    /// Set for messages of sub-agents.
    pub parent_tool_use_id: Option<String>,
}

impl AssistantLine {
    /// True for the CLI's own "API Error: …" message (model `<synthetic>`).
    pub fn is_synthetic(&self) -> bool {
        self.model.as_deref() == Some("<synthetic>")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Text(String),
    Thinking(String),
    ToolUse {
        id: String,
        name: String,
        input: serde_json::Value,
    },
    ToolResult(ToolResult),
    Other(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    pub tool_use_id: String,
    pub content: String,
    pub is_error: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UserLine {
    pub blocks: Vec<Block>,
    pub parent_tool_use_id: Option<String>,
}

/// The `result` line (fixtures README §5).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResultLine {
    pub subtype: String,
    pub is_error: bool,
    pub result: Option<String>,
    pub errors: Vec<String>,
    pub num_turns: u32,
    pub total_cost_usd: f64,
    pub usage: TokenUsage,
    pub duration_ms: Option<u64>,
    pub api_error_status: Option<u16>,
    pub permission_denials: Vec<PermissionDenial>,
    pub terminal_reason: Option<String>,
    pub stop_reason: Option<String>,
    pub session_id: Option<String>,
}

impl ResultLine {
    /// The human-readable reason for a failed result: `result` text, else the `errors` list.
    pub fn error_text(&self) -> String {
        match &self.result {
            Some(r) if !r.is_empty() => r.clone(),
            _ if !self.errors.is_empty() => self.errors.join("; "),
            _ => format!("the CLI reported {}", self.subtype),
        }
    }
}

/// Why a line could not be parsed. Never fatal to a run: the line is stored as raw output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a stream-json line: {0}")]
pub struct ParseError(pub String);

/// Parses one stdout line (without its trailing newline).
pub fn parse_line(line: &[u8]) -> Result<ClaudeLine, ParseError> {
    match serde_json::from_slice::<RawLine<'_>>(line) {
        Ok(raw) => Ok(raw.into_line()),
        // Decode again, tracking the path, to name the field at fault: only a failed line pays
        // for it.
        Err(e) => Err(ParseError(
            crate::decode::from_json_slice::<RawLine<'_>>(line)
                .err()
                .map_or_else(|| e.to_string(), |located| located.to_string()),
        )),
    }
}

// ---- wire shapes ------------------------------------------------------------------------------

#[derive(Deserialize)]
struct RawLine<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    #[serde(default, borrow)]
    subtype: Option<Cow<'a, str>>,
    #[serde(default)]
    session_id: Option<String>,
    // system/init
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default, rename = "permissionMode")]
    permission_mode: Option<String>,
    #[serde(default)]
    tools: Option<Vec<String>>,
    #[serde(default)]
    claude_code_version: Option<String>,
    // system/api_retry
    #[serde(default)]
    attempt: Option<u32>,
    #[serde(default)]
    max_retries: Option<u32>,
    #[serde(default)]
    retry_delay_ms: Option<f64>,
    #[serde(default)]
    error_status: Option<u16>,
    // api_retry and synthetic assistant messages
    #[serde(default)]
    error: Option<String>,
    // assistant / user
    #[serde(default)]
    message: Option<RawMessage>,
    #[serde(default)]
    parent_tool_use_id: Option<String>,
    // result
    #[serde(default)]
    is_error: Option<bool>,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    errors: Option<Vec<String>>,
    #[serde(default)]
    num_turns: Option<u32>,
    #[serde(default)]
    total_cost_usd: Option<f64>,
    #[serde(default)]
    usage: Option<RawUsage>,
    #[serde(default)]
    duration_ms: Option<u64>,
    #[serde(default)]
    api_error_status: Option<u16>,
    #[serde(default)]
    permission_denials: Option<Vec<PermissionDenial>>,
    #[serde(default)]
    terminal_reason: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
    // Fields not listed here (modelUsage, stream events, slash_commands, ...) are skipped by
    // serde without being materialised.
}

#[derive(Deserialize)]
struct RawMessage {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: RawContent,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawContent {
    Blocks(Vec<RawBlock>),
    Text(String),
}

impl Default for RawContent {
    fn default() -> Self {
        RawContent::Blocks(Vec::new())
    }
}

#[derive(Deserialize)]
struct RawBlock {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<serde_json::Value>,
    #[serde(default)]
    tool_use_id: Option<String>,
    #[serde(default)]
    content: Option<RawContent>,
    #[serde(default)]
    is_error: Option<bool>,
}

#[derive(Deserialize, Default)]
struct RawUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: u64,
}

impl RawContent {
    fn into_blocks(self) -> Vec<Block> {
        match self {
            RawContent::Text(t) => vec![Block::Text(t)],
            RawContent::Blocks(b) => b.into_iter().map(RawBlock::into_block).collect(),
        }
    }

    /// Tool-result content flattened to text (a string, or text blocks joined by newlines).
    fn into_text(self) -> String {
        match self {
            RawContent::Text(t) => t,
            RawContent::Blocks(blocks) => blocks
                .into_iter()
                .filter_map(|b| b.text)
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

impl RawBlock {
    fn into_block(self) -> Block {
        match self.ty.as_str() {
            "text" => Block::Text(self.text.unwrap_or_default()),
            "thinking" => Block::Thinking(self.thinking.unwrap_or_default()),
            "tool_use" => Block::ToolUse {
                id: self.id.unwrap_or_default(),
                name: self.name.unwrap_or_default(),
                input: self.input.unwrap_or(serde_json::Value::Null),
            },
            "tool_result" => Block::ToolResult(ToolResult {
                tool_use_id: self.tool_use_id.unwrap_or_default(),
                content: self.content.map(RawContent::into_text).unwrap_or_default(),
                is_error: self.is_error.unwrap_or(false),
            }),
            _ => Block::Other(self.ty),
        }
    }
}

impl RawLine<'_> {
    fn into_line(self) -> ClaudeLine {
        match (&*self.ty, self.subtype.as_deref()) {
            ("system", Some("init")) => ClaudeLine::Init(Init {
                session_id: self.session_id.unwrap_or_default(),
                model: self.model,
                cwd: self.cwd,
                permission_mode: self.permission_mode,
                tools: self.tools.unwrap_or_default(),
                claude_code_version: self.claude_code_version,
            }),
            ("system", Some("api_retry")) => ClaudeLine::ApiRetry(ApiRetry {
                attempt: self.attempt.unwrap_or(0),
                max_retries: self.max_retries.unwrap_or(0),
                retry_delay_ms: self.retry_delay_ms.unwrap_or(0.0).max(0.0) as u64,
                error_status: self.error_status,
                error: self.error,
            }),
            ("system", sub) => ClaudeLine::System {
                subtype: sub.unwrap_or("").to_owned(),
            },
            ("assistant", _) => {
                let (message_id, model, blocks) = match self.message {
                    Some(m) => (m.id, m.model, m.content.into_blocks()),
                    None => (None, None, Vec::new()),
                };
                ClaudeLine::Assistant(AssistantLine {
                    message_id,
                    model,
                    blocks,
                    error: self.error,
                    parent_tool_use_id: self.parent_tool_use_id,
                })
            }
            ("user", _) => ClaudeLine::User(UserLine {
                blocks: self
                    .message
                    .map(|m| m.content.into_blocks())
                    .unwrap_or_default(),
                parent_tool_use_id: self.parent_tool_use_id,
            }),
            ("result", sub) => {
                let usage = self.usage.unwrap_or_default();
                ClaudeLine::Result(ResultLine {
                    subtype: sub.unwrap_or("").to_owned(),
                    is_error: self.is_error.unwrap_or(false),
                    result: self.result,
                    errors: self.errors.unwrap_or_default(),
                    num_turns: self.num_turns.unwrap_or(0),
                    total_cost_usd: self.total_cost_usd.unwrap_or(0.0),
                    usage: TokenUsage {
                        input: usage.input_tokens,
                        output: usage.output_tokens,
                        cache_read: usage.cache_read_input_tokens,
                        cache_creation: usage.cache_creation_input_tokens,
                    },
                    duration_ms: self.duration_ms,
                    api_error_status: self.api_error_status,
                    permission_denials: self.permission_denials.unwrap_or_default(),
                    terminal_reason: self.terminal_reason,
                    stop_reason: self.stop_reason,
                    session_id: self.session_id,
                })
            }
            (other, _) => ClaudeLine::Other {
                line_type: other.to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT_RUN: &str = include_str!("../../../fixtures/claude-code/01-text.stdout.jsonl");
    const BASH_RUN: &str =
        include_str!("../../../fixtures/claude-code/03f-bash-allowedtools.stdout.jsonl");
    const DENIED_RUN: &str =
        include_str!("../../../fixtures/claude-code/03a-bash-default-perms.stdout.jsonl");
    const API_500: &str =
        include_str!("../../../fixtures/claude-code/05i-http500-always-max-retries-2.stdout.jsonl");
    const MAX_TURNS: &str =
        include_str!("../../../fixtures/claude-code/04c-max-turns-1.stdout.jsonl");

    fn parse_all(s: &str) -> Vec<ClaudeLine> {
        s.lines()
            .map(|l| parse_line(l.as_bytes()).expect("fixture line parses"))
            .collect()
    }

    fn result_of(s: &str) -> ResultLine {
        parse_all(s)
            .into_iter()
            .rev()
            .find_map(|l| match l {
                ClaudeLine::Result(r) => Some(r),
                _ => None,
            })
            .expect("fixture has a result")
    }

    #[test]
    fn text_run_has_init_text_and_costed_result() {
        let lines = parse_all(TEXT_RUN);
        let ClaudeLine::Init(init) = &lines[0] else {
            panic!("first line is init: {:?}", lines[0]);
        };
        assert_eq!(init.session_id, "c1dc9179-c8f3-4e18-9b30-6dda737c35c1");
        assert_eq!(init.permission_mode.as_deref(), Some("default"));
        assert!(init.tools.iter().any(|t| t == "Bash"));
        let ClaudeLine::Assistant(a) = &lines[1] else {
            panic!("second line is assistant");
        };
        assert_eq!(
            a.blocks,
            vec![Block::Text("Hello from the imitation.".into())]
        );
        let r = result_of(TEXT_RUN);
        assert!(!r.is_error);
        assert_eq!(r.subtype, "success");
        assert_eq!(r.num_turns, 1);
        assert_eq!(r.usage.input, 10);
        assert_eq!(r.usage.output, 10);
        assert!((r.total_cost_usd - 0.0003).abs() < 1e-9);
        assert_eq!(r.result.as_deref(), Some("Hello from the imitation."));
    }

    #[test]
    fn tool_round_trip_pairs_use_and_result() {
        let lines = parse_all(BASH_RUN);
        let use_id = lines
            .iter()
            .find_map(|l| match l {
                ClaudeLine::Assistant(a) => a.blocks.iter().find_map(|b| match b {
                    Block::ToolUse { id, name, input } if name == "Bash" => {
                        assert!(input["command"].is_string());
                        Some(id.clone())
                    }
                    _ => None,
                }),
                _ => None,
            })
            .expect("a Bash tool_use");
        let result = lines
            .iter()
            .find_map(|l| match l {
                ClaudeLine::User(u) => u.blocks.iter().find_map(|b| match b {
                    Block::ToolResult(r) if r.tool_use_id == use_id => Some(r.clone()),
                    _ => None,
                }),
                _ => None,
            })
            .expect("matching tool_result");
        assert!(!result.is_error, "{result:?}");
        assert!(result.content.contains("hello"), "{result:?}");
    }

    #[test]
    fn denials_are_reported_on_the_result() {
        let r = result_of(DENIED_RUN);
        assert!(!r.is_error, "a denial does not fail the run");
        assert_eq!(r.permission_denials.len(), 1);
        assert_eq!(r.permission_denials[0].tool_name, "Bash");
    }

    #[test]
    fn api_failure_has_retries_synthetic_message_and_status() {
        let lines = parse_all(API_500);
        let retries = lines
            .iter()
            .filter(|l| matches!(l, ClaudeLine::ApiRetry(r) if r.error_status == Some(500)))
            .count();
        assert_eq!(retries, 2);
        assert!(
            lines
                .iter()
                .any(|l| matches!(l, ClaudeLine::Assistant(a) if a.is_synthetic()))
        );
        let r = result_of(API_500);
        assert!(r.is_error);
        assert_eq!(r.subtype, "success", "API errors keep subtype success");
        assert_eq!(r.api_error_status, Some(500));
        assert!(r.error_text().starts_with("API Error: 500"));
    }

    #[test]
    fn max_turns_result_has_errors_but_no_text() {
        let r = result_of(MAX_TURNS);
        assert_eq!(r.subtype, "error_max_turns");
        assert!(r.result.is_none());
        assert!(
            r.error_text().contains("maximum number of turns"),
            "{}",
            r.error_text()
        );
    }

    #[test]
    fn every_recorded_line_parses() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/claude-code");
        let mut count = 0;
        for entry in std::fs::read_dir(dir).expect("fixtures dir") {
            let path = entry.expect("entry").path();
            if !path.to_string_lossy().ends_with(".stdout.jsonl") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read fixture");
            for (i, line) in text.lines().enumerate() {
                parse_line(line.as_bytes())
                    .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1));
                count += 1;
            }
        }
        assert!(count > 300, "parsed only {count} lines");
    }

    #[test]
    fn garbage_and_unknown_types_do_not_panic() {
        assert!(parse_line(b"Warning: not json").is_err());
        assert!(parse_line(b"{\"no_type\":1}").is_err());
        assert_eq!(
            parse_line(br#"{"type":"rate_limit_event","x":1}"#),
            Ok(ClaudeLine::Other {
                line_type: "rate_limit_event".into()
            })
        );
    }
}
