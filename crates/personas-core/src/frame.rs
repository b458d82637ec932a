//! The typed form of a stored output line, for viewers: what the runtime's stream-json parser
//! ([`crate::stream`]) and protocol parser ([`crate::protocol`]) read from the line, as data.
//!
//! Lines are stored once, as the CLI printed them (`OutputLine::text`); the frame is computed
//! where lines are served (an `execution_output` page, the event stream's output events), so a
//! viewer renders from the same parse the runner acted on instead of parsing stream-json again.
//! Lines that are plain text already (stderr, engine notes, raw output) have no frame.

use crate::model::{LineKind, OutputLine, PermissionDenial};
use crate::protocol::{ProtocolMessage, ProtocolWarning};
use crate::stream::{self, Block, ClaudeLine};
use serde::{Deserialize, Serialize};

/// What one output line says, parsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub enum OutputFrame {
    /// `system/init`: the run's session, model, working directory and tools.
    Session {
        session_id: String,
        model: Option<String>,
        cwd: Option<String>,
        tools: Vec<String>,
    },
    /// Any other `system` line (status, task progress, …), or a line type this version does not
    /// know, by its subtype or type.
    System { subtype: String },
    /// The CLI is about to retry a failed API call.
    Retry {
        attempt: u32,
        max_retries: u32,
        retry_delay_ms: u64,
        error_status: Option<u16>,
        error: Option<String>,
    },
    /// An assistant message: text, thinking, tool calls. `error` is set on the CLI's own
    /// message for a final API error; `parent_tool_use_id` on a sub-agent's message.
    Assistant {
        blocks: Vec<FrameBlock>,
        error: Option<String>,
        parent_tool_use_id: Option<String>,
    },
    /// A user message: tool results (and interruption markers).
    User {
        blocks: Vec<FrameBlock>,
        parent_tool_use_id: Option<String>,
    },
    /// The end of a turn.
    Result {
        subtype: String,
        is_error: bool,
        /// The final text, or why it failed.
        text: Option<String>,
        cost_usd: f64,
        num_turns: u32,
        duration_ms: Option<u64>,
        permission_denials: Vec<PermissionDenial>,
    },
    /// A persona-protocol message the runtime recognised and applied.
    Protocol { message: ProtocolMessage },
    /// Something the runtime warns about: a malformed protocol message (`key` names its
    /// wrapper when one could be read) or a problem with the run's output.
    Warning {
        key: Option<String>,
        message: String,
    },
    /// A line stored as stream-json that does not parse as such (kept for what it says).
    Unparsed { error: String },
}

/// One content block of an assistant or user message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub enum FrameBlock {
    Text {
        text: String,
    },
    Thinking {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: serde_json::Value,
    },
    ToolResult {
        tool_use_id: String,
        /// The result flattened to text.
        content: String,
        is_error: bool,
    },
    /// A block type this version does not render, by name.
    Other {
        block_type: String,
    },
}

/// The frame of a line of `kind` with `text`; `None` for lines that are plain text.
pub fn frame_of(kind: LineKind, text: &str) -> Option<OutputFrame> {
    match kind {
        LineKind::System
        | LineKind::Retry
        | LineKind::AssistantText
        | LineKind::Thinking
        | LineKind::ToolUse
        | LineKind::ToolResult
        | LineKind::User
        | LineKind::Result => Some(match stream::parse_line(text.as_bytes()) {
            Ok(line) => from_claude(line),
            Err(e) => OutputFrame::Unparsed { error: e.0 },
        }),
        LineKind::Protocol => Some(match serde_json::from_str::<ProtocolMessage>(text) {
            Ok(message) => OutputFrame::Protocol { message },
            Err(e) => OutputFrame::Unparsed {
                error: format!("not a protocol message: {e}"),
            },
        }),
        LineKind::Warning => Some(match serde_json::from_str::<ProtocolWarning>(text) {
            Ok(w) => OutputFrame::Warning {
                key: w.key,
                message: w.reason,
            },
            Err(_) => OutputFrame::Warning {
                key: None,
                message: text.to_string(),
            },
        }),
        LineKind::Stderr | LineKind::Raw | LineKind::Engine => None,
    }
}

impl OutputLine {
    /// The line with its [`OutputFrame`] filled in, as served to viewers.
    pub fn framed(mut self) -> Self {
        self.frame = frame_of(self.kind, &self.text);
        self
    }
}

fn from_claude(line: ClaudeLine) -> OutputFrame {
    match line {
        ClaudeLine::Init(i) => OutputFrame::Session {
            session_id: i.session_id,
            model: i.model,
            cwd: i.cwd,
            tools: i.tools,
        },
        ClaudeLine::ApiRetry(r) => OutputFrame::Retry {
            attempt: r.attempt,
            max_retries: r.max_retries,
            retry_delay_ms: r.retry_delay_ms,
            error_status: r.error_status,
            error: r.error,
        },
        ClaudeLine::System { subtype } => OutputFrame::System { subtype },
        ClaudeLine::Other { line_type } => OutputFrame::System { subtype: line_type },
        ClaudeLine::Assistant(a) => OutputFrame::Assistant {
            blocks: a.blocks.into_iter().map(block).collect(),
            error: a.error,
            parent_tool_use_id: a.parent_tool_use_id,
        },
        ClaudeLine::User(u) => OutputFrame::User {
            blocks: u.blocks.into_iter().map(block).collect(),
            parent_tool_use_id: u.parent_tool_use_id,
        },
        ClaudeLine::Result(r) => OutputFrame::Result {
            text: match &r.result {
                Some(t) if !t.is_empty() => Some(t.clone()),
                _ if r.is_error => Some(r.error_text()),
                _ => None,
            },
            subtype: r.subtype,
            is_error: r.is_error,
            cost_usd: r.total_cost_usd,
            num_turns: r.num_turns,
            duration_ms: r.duration_ms,
            permission_denials: r.permission_denials,
        },
    }
}

fn block(b: Block) -> FrameBlock {
    match b {
        Block::Text(text) => FrameBlock::Text { text },
        Block::Thinking(text) => FrameBlock::Thinking { text },
        Block::ToolUse { id, name, input } => FrameBlock::ToolUse { id, name, input },
        Block::ToolResult(r) => FrameBlock::ToolResult {
            tool_use_id: r.tool_use_id,
            content: r.content,
            is_error: r.is_error,
        },
        Block::Other(block_type) => FrameBlock::Other { block_type },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stream_json_lines_become_typed_frames() {
        let init = r#"{"type":"system","subtype":"init","session_id":"s-1","model":"claude-x","cwd":"/w","tools":["Bash","Read"]}"#;
        assert_eq!(
            frame_of(LineKind::System, init),
            Some(OutputFrame::Session {
                session_id: "s-1".into(),
                model: Some("claude-x".into()),
                cwd: Some("/w".into()),
                tools: vec!["Bash".into(), "Read".into()],
            })
        );
        let tool = r#"{"type":"assistant","message":{"id":"m","model":"claude-x","content":[{"type":"text","text":"Looking."},{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"ls"}}]}}"#;
        assert_eq!(
            frame_of(LineKind::ToolUse, tool),
            Some(OutputFrame::Assistant {
                blocks: vec![
                    FrameBlock::Text {
                        text: "Looking.".into()
                    },
                    FrameBlock::ToolUse {
                        id: "t1".into(),
                        name: "Bash".into(),
                        input: json!({"command": "ls"}),
                    },
                ],
                error: None,
                parent_tool_use_id: None,
            })
        );
        let result = r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"a\nb"}],"is_error":true}]}}"#;
        assert_eq!(
            frame_of(LineKind::ToolResult, result),
            Some(OutputFrame::User {
                blocks: vec![FrameBlock::ToolResult {
                    tool_use_id: "t1".into(),
                    content: "a\nb".into(),
                    is_error: true,
                }],
                parent_tool_use_id: None,
            })
        );
        let end = r#"{"type":"result","subtype":"error_max_turns","is_error":true,"errors":["too many turns"],"num_turns":3,"total_cost_usd":0.25,"permission_denials":[{"tool_name":"Bash","tool_use_id":"t1","tool_input":{}}]}"#;
        let Some(OutputFrame::Result {
            text,
            is_error,
            num_turns,
            permission_denials,
            ..
        }) = frame_of(LineKind::Result, end)
        else {
            panic!("not a result frame");
        };
        assert_eq!(text.as_deref(), Some("too many turns"));
        assert!(is_error);
        assert_eq!((num_turns, permission_denials.len()), (3, 1));
    }

    #[test]
    fn protocol_warnings_and_plain_lines() {
        let msg = ProtocolMessage::AgentMemory {
            title: "fact".into(),
            content: "water is wet".into(),
            category: "general".into(),
            importance: 3,
        };
        let text = serde_json::to_string(&msg).expect("serialise");
        assert_eq!(
            frame_of(LineKind::Protocol, &text),
            Some(OutputFrame::Protocol { message: msg })
        );
        let warning = r#"{"key":"user_message","reason":"content: missing field","excerpt":"{…}"}"#;
        assert_eq!(
            frame_of(LineKind::Warning, warning),
            Some(OutputFrame::Warning {
                key: Some("user_message".into()),
                message: "content: missing field".into(),
            })
        );
        assert_eq!(
            frame_of(LineKind::Warning, "disk is slow"),
            Some(OutputFrame::Warning {
                key: None,
                message: "disk is slow".into(),
            })
        );
        assert!(matches!(
            frame_of(LineKind::AssistantText, "not json"),
            Some(OutputFrame::Unparsed { .. })
        ));
        assert_eq!(frame_of(LineKind::Stderr, "oops"), None);
        assert_eq!(frame_of(LineKind::Engine, "queued"), None);
    }
}
