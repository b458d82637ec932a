//! Human-readable rendering: execution output as a conversation, summaries, tables.

use personas_core::stream::{Block, ClaudeLine, parse_line};
use personas_core::{Execution, ExecutionStatus, LineKind, OutputLine};
use std::io::IsTerminal;

/// Terminal styling, off when stdout is not a terminal or `NO_COLOR` is set.
#[derive(Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn detect() -> Style {
        Style {
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    pub fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    pub fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    pub fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    pub fn cyan(&self, s: &str) -> String {
        self.paint("36", s)
    }
    pub fn magenta(&self, s: &str) -> String {
        self.paint("35", s)
    }
}

fn shorten(s: &str, max: usize) -> String {
    let one_line = s.replace('\n', " ⏎ ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut t: String = one_line.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// The most telling argument of a tool call (a command, a path), or its JSON.
fn tool_summary(name: &str, input: &serde_json::Value) -> String {
    let key = [
        "command",
        "file_path",
        "path",
        "pattern",
        "url",
        "query",
        "prompt",
    ]
    .into_iter()
    .find_map(|k| input.get(k).and_then(|v| v.as_str()));
    let text = key.map(str::to_string).unwrap_or_else(|| input.to_string());
    format!("{name}: {}", shorten(&text, 160))
}

/// Renders one stored line for `--follow` / `execution logs`; `None` for lines not worth showing.
pub fn line(l: &OutputLine, st: Style) -> Option<String> {
    match l.kind {
        LineKind::Engine => Some(st.dim(&format!("· {}", l.text))),
        LineKind::Stderr => Some(st.yellow(&format!("stderr: {}", l.text))),
        LineKind::Raw => Some(st.yellow(&format!("(not JSON) {}", shorten(&l.text, 200)))),
        LineKind::Warning => Some(st.yellow(&format!("⚠ {}", l.text))),
        LineKind::Protocol => {
            let v: serde_json::Value = serde_json::from_str(&l.text).ok()?;
            let kind = v["kind"].as_str().unwrap_or("protocol");
            let detail = match kind {
                "user_message" => format!(
                    "{} {}",
                    v["title"]
                        .as_str()
                        .map(|t| format!("{t}:"))
                        .unwrap_or_default(),
                    v["content"].as_str().unwrap_or("")
                ),
                "emit_event" => format!("{} {}", v["event_type"].as_str().unwrap_or(""), v["data"]),
                "persona_action" => format!(
                    "→ {} {}",
                    v["target"].as_str().unwrap_or(""),
                    v["action"].as_str().unwrap_or("")
                ),
                "agent_memory" => format!(
                    "{} (importance {})",
                    v["title"].as_str().unwrap_or(""),
                    v["importance"]
                ),
                "manual_review" => format!(
                    "{} [{}]",
                    v["title"].as_str().unwrap_or(""),
                    v["severity"].as_str().unwrap_or("")
                ),
                "outcome_assessment" => format!(
                    "{} — {}",
                    if v["accomplished"].as_bool() == Some(true) {
                        "accomplished"
                    } else {
                        "not accomplished"
                    },
                    v["summary"].as_str().unwrap_or("")
                ),
                _ => l.text.clone(),
            };
            Some(st.magenta(&format!("★ {kind}: {}", shorten(detail.trim(), 300))))
        }
        LineKind::Result => None,
        _ => match parse_line(l.text.as_bytes()).ok()? {
            ClaudeLine::Init(i) => Some(st.dim(&format!(
                "· session {} · model {} · permissions {}",
                i.session_id,
                i.model.as_deref().unwrap_or("?"),
                i.permission_mode.as_deref().unwrap_or("?")
            ))),
            ClaudeLine::ApiRetry(r) => Some(st.yellow(&format!(
                "! API error{}{}, retry {}/{} in {:.1} s",
                r.error_status.map(|s| format!(" HTTP {s}")).unwrap_or_default(),
                r.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default(),
                r.attempt,
                r.max_retries,
                r.retry_delay_ms as f64 / 1000.0
            ))),
            ClaudeLine::Assistant(a) => {
                let parts: Vec<String> = a
                    .blocks
                    .iter()
                    .filter_map(|b| match b {
                        Block::Text(t) if a.is_synthetic() => Some(st.red(t)),
                        Block::Text(t) => Some(t.clone()),
                        Block::Thinking(_) => Some(st.dim("(thinking…)")),
                        Block::ToolUse { name, input, .. } => {
                            Some(st.cyan(&format!("→ {}", tool_summary(name, input))))
                        }
                        _ => None,
                    })
                    .collect();
                (!parts.is_empty()).then(|| parts.join("\n"))
            }
            ClaudeLine::User(u) => {
                let parts: Vec<String> = u
                    .blocks
                    .iter()
                    .filter_map(|b| match b {
                        Block::ToolResult(r) if r.is_error => {
                            Some(st.red(&format!("← error: {}", shorten(&r.content, 300))))
                        }
                        Block::ToolResult(r) => {
                            Some(st.dim(&format!("← {}", shorten(&r.content, 300))))
                        }
                        Block::Text(t) => Some(st.dim(&format!("(user) {}", shorten(t, 200)))),
                        _ => None,
                    })
                    .collect();
                (!parts.is_empty()).then(|| parts.join("\n"))
            }
            ClaudeLine::System { .. } | ClaudeLine::Other { .. } | ClaudeLine::Result(_) => None,
        },
    }
}

pub fn status(s: ExecutionStatus, st: Style) -> String {
    match s {
        ExecutionStatus::Completed => st.green(s.as_str()),
        ExecutionStatus::Failed | ExecutionStatus::TimedOut => st.red(s.as_str()),
        ExecutionStatus::Cancelled | ExecutionStatus::Incomplete => st.yellow(s.as_str()),
        _ => st.cyan(s.as_str()),
    }
}

pub fn duration_ms(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 120_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

/// The closing line of a run: status, duration, turns, tokens, cost, and why it failed.
pub fn summary(e: &Execution, st: Style) -> String {
    let icon = match e.status {
        ExecutionStatus::Completed => st.green("✔"),
        ExecutionStatus::AwaitingReview => st.cyan("⏸"),
        _ => st.red("✘"),
    };
    let dur = e
        .duration_ms(chrono::Utc::now())
        .map(duration_ms)
        .unwrap_or_else(|| "-".into());
    let mut s = format!(
        "{icon} {} in {dur} · {} turn{} · {} in / {} out tokens{} · ${:.4}",
        status(e.status, st),
        e.num_turns,
        if e.num_turns == 1 { "" } else { "s" },
        e.tokens.input,
        e.tokens.output,
        if e.tokens.cache_read + e.tokens.cache_creation > 0 {
            format!(
                " ({} cache read, {} cache write)",
                e.tokens.cache_read, e.tokens.cache_creation
            )
        } else {
            String::new()
        },
        e.cost_usd
    );
    if let Some(class) = e.error_class {
        s.push_str(&format!(
            "\n  {} {}",
            st.red(&format!("[{class}]")),
            e.error_message.as_deref().unwrap_or("")
        ));
    }
    if !e.permission_denials.is_empty() {
        let names: Vec<&str> = e
            .permission_denials
            .iter()
            .map(|d| d.tool_name.as_str())
            .collect();
        s.push_str(&format!(
            "\n  {} {} tool call(s) denied by the persona's permission policy: {}",
            st.yellow("⚠"),
            names.len(),
            names.join(", ")
        ));
    }
    if !e.persona_denials.is_empty() {
        let names: Vec<&str> = e
            .persona_denials
            .iter()
            .map(|d| d.target.as_str())
            .collect();
        s.push_str(&format!(
            "\n  {} {} persona start(s) denied (not in allow_personas): {}",
            st.yellow("⚠"),
            names.len(),
            names.join(", ")
        ));
    }
    s
}

/// A plain text table with left-aligned columns.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(width(c));
            }
        }
    }
    let fmt_row = |cells: Vec<&str>| {
        let mut line = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                line.push_str(c);
            } else {
                line.push_str(c);
                line.push_str(&" ".repeat(widths[i] - width(c) + 2));
            }
        }
        line.trim_end().to_string()
    };
    let mut out = fmt_row(headers.to_vec());
    for r in rows {
        out.push('\n');
        out.push_str(&fmt_row(r.iter().map(String::as_str).collect()));
    }
    out
}

/// "3m ago" style relative times for listings.
pub fn ago(t: chrono::DateTime<chrono::Utc>) -> String {
    let secs = (chrono::Utc::now() - t).num_seconds().max(0);
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(
            &["A", "LONG"],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["q".into(), "22".into()],
            ],
        );
        assert_eq!(t, "A    LONG\nxyz  1\nq    22");
    }

    #[test]
    fn tool_calls_show_their_command() {
        let s = tool_summary(
            "Bash",
            &serde_json::json!({"command": "ls -la", "description": "list"}),
        );
        assert_eq!(s, "Bash: ls -la");
    }
}
