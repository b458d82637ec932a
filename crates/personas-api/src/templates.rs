//! The template gallery: ready personas a new user creates in one click. Each is a complete,
//! valid [`PersonaSpec`] with a least-privilege permission policy and an example input, so the
//! first run works without editing anything.

use personas_core::{PermissionMode, PermissionPolicy, PersonaSpec, PromptSection};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use ts_rs::TS;

/// A persona ready to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct PersonaTemplate {
    /// Stable id, e.g. `pr-reviewer`.
    pub id: String,
    pub category: String,
    /// A lucide icon name for the gallery card.
    pub icon: String,
    /// One line for the gallery card.
    pub summary: String,
    pub spec: PersonaSpec,
    /// An input that shows what the persona expects.
    #[ts(type = "unknown")]
    pub example_input: Option<Value>,
}

struct T {
    id: &'static str,
    name: &'static str,
    category: &'static str,
    icon: &'static str,
    summary: &'static str,
    instructions: &'static str,
    output: &'static str,
    allow: &'static [&'static str],
    timeout_secs: u64,
    max_turns: u32,
    example: fn() -> Value,
}

const TEMPLATES: &[T] = &[
    T {
        id: "email-triage",
        name: "Email triage",
        category: "Inbox",
        icon: "mail",
        summary: "Sorts incoming email by urgency and drafts replies for the ones that need you.",
        instructions: "You triage email. For each message in the input, decide whether it is urgent, needs a reply, is informational, or is noise. Draft a short, polite reply for every message that needs one, in the sender's language. Never invent facts; if a reply needs information you do not have, say what is missing.",
        output: "A table: sender, subject, category, one-line reason. Then the drafts. Finish with one user_message line summarising how many messages need the user today (priority high if any is urgent).",
        allow: &[],
        timeout_secs: 300,
        max_turns: 4,
        example: || {
            json!({"emails": [
                {"from": "ceo@example.com", "subject": "Board deck by 3pm", "body": "Need the Q3 numbers slide."},
                {"from": "newsletter@example.com", "subject": "Weekly digest", "body": "Top stories..."}
            ]})
        },
    },
    T {
        id: "pr-reviewer",
        name: "PR reviewer",
        category: "Engineering",
        icon: "git-pull-request",
        summary: "Reviews a pull request's diff for bugs, risky changes and missing tests.",
        instructions: "You review pull requests. Read the diff in the input (or the repository in your working directory) and look for correctness bugs, security problems, missing tests and unclear code. Be specific: quote the line, say what is wrong and what to do instead. Do not comment on style that a formatter would fix.",
        output: "Start with a verdict: approve, approve with comments, or request changes. Then findings ordered by severity. If you request changes, add a manual_review line so a person confirms before anything is merged.",
        allow: &[
            "Read",
            "Grep",
            "Glob",
            "Bash(git diff *)",
            "Bash(git log *)",
        ],
        timeout_secs: 600,
        max_turns: 12,
        example: || json!({"repo": "acme/api", "pr": 42, "diff": "--- a/src/auth.rs\n+++ b/src/auth.rs\n-    if token == expected {\n+    if token.starts_with(expected) {"}),
    },
    T {
        id: "release-notes",
        name: "Release notes writer",
        category: "Engineering",
        icon: "scroll-text",
        summary: "Turns a list of commits into release notes people actually read.",
        instructions: "You write release notes. Group the commits in the input into New, Improved, Fixed and Breaking changes. Rewrite each in plain language for users, not developers; drop internal chores. Mention breaking changes first with what users must do.",
        output: "Markdown with a level-2 heading per group. When done, emit an event line of type release.notes_ready with the version in its data.",
        allow: &[],
        timeout_secs: 300,
        max_turns: 3,
        example: || json!({"version": "1.4.0", "commits": ["feat: dark mode", "fix: crash on empty input", "chore: bump deps", "feat!: drop Node 16"]}),
    },
    T {
        id: "daily-digest",
        name: "Daily digest",
        category: "Productivity",
        icon: "newspaper",
        summary: "A morning briefing from the notes, tasks and links you give it.",
        instructions: "You write a daily digest. From the items in the input (tasks, calendar entries, links, notes) produce a briefing a busy person can read in two minutes: what matters today, what is overdue, what can wait. Remember recurring preferences the user states as memories.",
        output: "Three short sections: Today, Overdue, Later. End with one user_message line titled \"Your day\" containing the three most important things.",
        allow: &[],
        timeout_secs: 300,
        max_turns: 3,
        example: || json!({"tasks": ["Send invoice to Acme (due yesterday)", "Prepare sprint demo"], "calendar": ["10:00 standup", "14:00 customer call"]}),
    },
    T {
        id: "incident-summariser",
        name: "Incident summariser",
        category: "Operations",
        icon: "siren",
        summary: "Condenses alerts and logs into a timeline, impact and next steps.",
        instructions: "You summarise incidents. From the alerts, logs and chat excerpts in the input, reconstruct a timeline with timestamps, state the customer impact, the most likely cause (say how sure you are), and the next steps with owners if named. Do not speculate beyond the evidence.",
        output: "Sections: Summary (two sentences), Timeline, Impact, Likely cause, Next steps. If the incident is still ongoing, send a user_message with priority urgent.",
        allow: &["Read", "Grep"],
        timeout_secs: 600,
        max_turns: 6,
        example: || json!({"alerts": ["12:01 p99 latency > 2s on api", "12:04 error rate 8%"], "logs": ["12:00 deploy v2.3.1 started", "12:03 db pool exhausted"], "ongoing": true}),
    },
    T {
        id: "lead-researcher",
        name: "Lead researcher",
        category: "Sales",
        icon: "user-search",
        summary: "Researches a company or contact and writes a short qualification brief.",
        instructions: "You research sales leads. For the company or person in the input, use the web to find what they do, their size, recent news and who decides on purchases. Judge fit against the ideal customer profile in the input. Cite every source URL.",
        output: "A brief: one-paragraph overview, fit score 1-5 with reasons, three talking points, sources. Remember useful facts about the company as a memory.",
        allow: &["WebSearch", "WebFetch"],
        timeout_secs: 900,
        max_turns: 15,
        example: || json!({"company": "Acme Robotics", "ideal_customer": "B2B SaaS, 50-500 employees, uses GitHub"}),
    },
    T {
        id: "docs-checker",
        name: "Docs checker",
        category: "Engineering",
        icon: "book-check",
        summary: "Checks documentation in a folder for broken examples, stale facts and gaps.",
        instructions: "You check documentation. Look through the files in your working directory (or the text in the input) for broken or outdated code examples, instructions that contradict each other, missing steps, and dead internal links. List each problem with the file and a suggested fix.",
        output: "A checklist of problems grouped by file, most serious first. If everything is fine, say so in one line. Finish with an outcome_assessment line.",
        allow: &["Read", "Glob", "Grep"],
        timeout_secs: 600,
        max_turns: 10,
        example: || json!({"focus": "installation guide", "product_version": "2.0"}),
    },
    T {
        id: "meeting-prep",
        name: "Meeting prep",
        category: "Productivity",
        icon: "calendar-check",
        summary: "Prepares an agenda, context and questions for an upcoming meeting.",
        instructions: "You prepare meetings. From the meeting description, attendees and notes in the input, write an agenda with time boxes, the context each attendee needs, open questions to settle, and the decision the meeting should end with. Use what you remember about the attendees from earlier runs.",
        output: "Agenda as a numbered list with minutes per item, then Context, Open questions, Desired outcome. Send a user_message titled with the meeting name when ready.",
        allow: &[],
        timeout_secs: 300,
        max_turns: 3,
        example: || json!({"meeting": "Q4 planning", "attendees": ["Ana (eng)", "Ben (sales)"], "notes": "Budget is flat; two hires max."}),
    },
];

/// Every template, in gallery order.
pub fn all() -> Vec<PersonaTemplate> {
    TEMPLATES.iter().map(to_template).collect()
}

/// One template by id.
pub fn find(id: &str) -> Option<PersonaTemplate> {
    TEMPLATES.iter().find(|t| t.id == id).map(to_template)
}

fn to_template(t: &T) -> PersonaTemplate {
    let mut spec = PersonaSpec::new(t.name, t.instructions);
    spec.description = t.summary.to_string();
    spec.sections = vec![PromptSection {
        title: "Output".into(),
        body: t.output.into(),
    }];
    spec.timeout_secs = t.timeout_secs;
    spec.max_turns = Some(t.max_turns);
    spec.permissions = PermissionPolicy {
        mode: PermissionMode::Default,
        allow: t.allow.iter().map(|s| s.to_string()).collect(),
        deny: Vec::new(),
        allow_personas: Vec::new(),
    };
    PersonaTemplate {
        id: t.id.into(),
        category: t.category.into(),
        icon: t.icon.into(),
        summary: t.summary.into(),
        spec,
        example_input: Some((t.example)()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn at_least_eight_valid_templates_with_unique_ids_and_names() {
        let all = all();
        assert!(all.len() >= 8, "{}", all.len());
        let ids: HashSet<_> = all.iter().map(|t| t.id.as_str()).collect();
        let names: HashSet<_> = all.iter().map(|t| t.spec.name.to_lowercase()).collect();
        assert_eq!(ids.len(), all.len());
        assert_eq!(names.len(), all.len());
        for t in &all {
            personas_core::validate::persona_spec(&t.spec)
                .unwrap_or_else(|e| panic!("template {} is invalid: {e}", t.id));
        }
        assert!(find("pr-reviewer").is_some());
        assert!(find("nope").is_none());
    }
}
