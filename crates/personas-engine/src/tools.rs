//! Custom tools as a run's prompt documents them. A tool is called by the agent through its own
//! Bash tool: a command line as given, or an HTTP request as a `curl` line whose credential
//! placeholders are environment variables (`$GITHUB_TOKEN`), so values never enter the prompt.

use personas_core::prompt::ToolDoc;
use personas_store::{ToolCall, ToolDefinition};

/// Single-quotes a word for a POSIX shell, leaving `$VAR` references outside the quotes so the
/// shell expands them.
fn shell_word(s: &str) -> String {
    let mut out = String::from("'");
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => out.push_str("'\\''"),
            '$' if chars
                .peek()
                .is_some_and(|n| n.is_ascii_uppercase() || *n == '_' || *n == '{') =>
            {
                // Close the quote, let the shell expand the variable (double-quoted), reopen.
                let mut var = String::from("$");
                while let Some(&n) = chars.peek() {
                    if n.is_ascii_alphanumeric() || n == '_' || n == '{' || n == '}' {
                        var.push(n);
                        chars.next();
                        if n == '}' {
                            break;
                        }
                    } else {
                        break;
                    }
                }
                out.push_str(&format!("'\"{var}\"'"));
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// How the prompt documents a tool.
pub fn doc(t: &ToolDefinition) -> ToolDoc {
    let usage = match &t.call {
        ToolCall::Command { command } => format!("{command}\n(run it with your Bash tool)"),
        ToolCall::Http {
            method,
            url,
            headers,
            body,
        } => {
            let mut line = format!(
                "curl -sS -X {} {}",
                method.to_ascii_uppercase(),
                shell_word(url)
            );
            for (k, v) in headers {
                line.push_str(&format!(" -H {}", shell_word(&format!("{k}: {v}"))));
            }
            if let Some(b) = body {
                line.push_str(&format!(" --data {}", shell_word(b)));
            }
            format!("{line}\n(run it with your Bash tool; fill in the input)")
        }
    };
    let schema = if t.input_schema.as_object().is_some_and(|o| !o.is_empty()) {
        format!("\nInput (JSON Schema): {}", t.input_schema)
    } else {
        String::new()
    };
    ToolDoc {
        name: t.name.clone(),
        description: format!("{}{schema}", t.description.trim()),
        usage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_tools_become_curl_lines_with_env_references_never_values() {
        let t = ToolDefinition {
            id: "t".into(),
            name: "open-issue".into(),
            description: "Opens an issue".into(),
            input_schema: serde_json::json!({"type": "object", "properties": {"title": {"type": "string"}}}),
            call: ToolCall::Http {
                method: "post".into(),
                url: "https://api.github.com/repos/o/r/issues".into(),
                headers: vec![("Authorization".into(), "Bearer $GITHUB_TOKEN".into())],
                body: Some("{\"title\": \"it's broken\"}".into()),
            },
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        };
        let d = doc(&t);
        assert!(
            d.usage
                .starts_with("curl -sS -X POST 'https://api.github.com/repos/o/r/issues'"),
            "{}",
            d.usage
        );
        assert!(
            d.usage
                .contains("-H 'Authorization: Bearer '\"$GITHUB_TOKEN\"''"),
            "{}",
            d.usage
        );
        assert!(d.usage.contains("it'\\''s broken"), "{}", d.usage);
        assert!(d.description.contains("JSON Schema"));
        // The line really runs in a shell and expands the variable.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "printf %s {}",
                shell_word("Bearer $GITHUB_TOKEN it's")
            ))
            .env("GITHUB_TOKEN", "tok123")
            .output()
            .expect("sh");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "Bearer tok123 it's");
    }
}
