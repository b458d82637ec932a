//! Human review of a paused run: the decisions a person (or a deadline) can take, what the
//! persona is configured to do on a rejection, and the message the resumed session receives.
//!
//! Pure: the store records decisions and the runner continues the Claude session with
//! [`resume_prompt`] on stdin (`claude -p --resume <session id>`).

use crate::status::ReviewStatus;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A person's answer to a review request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    /// The review status the decision leaves behind.
    pub fn status(self) -> ReviewStatus {
        match self {
            Decision::Approve => ReviewStatus::Approved,
            Decision::Reject => ReviewStatus::Rejected,
        }
    }
}

/// What happens to a review nobody decided before its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub enum TimeoutAction {
    /// Continue as if approved.
    Approve,
    /// Treat as rejected (then `OnReject` decides between resuming and ending).
    #[default]
    Reject,
    /// End the run without resuming it.
    Cancel,
}

/// What a rejection does to the paused run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub enum OnReject {
    /// Resume the session with the rejection, so the agent can adapt.
    #[default]
    Resume,
    /// End the run (status `cancelled`).
    End,
}

macro_rules! text_enum {
    ($name:ident, $what:literal, { $($variant:ident => $text:literal),+ }) => {
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.to_ascii_lowercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} {other:?}; expected one of: {}",
                        $what,
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

text_enum!(Decision, "decision", { Approve => "approve", Reject => "reject" });
text_enum!(TimeoutAction, "review timeout action", {
    Approve => "approve", Reject => "reject", Cancel => "cancel"
});
text_enum!(OnReject, "on-reject action", { Resume => "resume", End => "end" });

/// One decided review, as the resumed session is told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecidedReview<'a> {
    pub title: &'a str,
    pub decision: Decision,
    pub note: Option<&'a str>,
    /// True when no person answered in time and the deadline decided.
    pub by_timeout: bool,
}

/// The user message a paused session is resumed with: each decision, the reviewer's note, and
/// what to do next. Reviewer notes are the person's words, so they are quoted as such.
pub fn resume_prompt(reviews: &[DecidedReview<'_>]) -> String {
    let mut out = String::from("Review decision");
    if reviews.len() > 1 {
        out.push('s');
    }
    out.push_str(":\n");
    for r in reviews {
        let verdict = match (r.decision, r.by_timeout) {
            (Decision::Approve, false) => "APPROVED by the reviewer",
            (Decision::Reject, false) => "REJECTED by the reviewer",
            (Decision::Approve, true) => "APPROVED automatically (nobody answered in time)",
            (Decision::Reject, true) => "REJECTED automatically (nobody answered in time)",
        };
        out.push_str(&format!("- \"{}\": {verdict}.", r.title.trim()));
        if let Some(note) = r.note.map(str::trim).filter(|n| !n.is_empty()) {
            out.push_str(&format!(" Reviewer's note: \"{note}\""));
        }
        out.push('\n');
    }
    let any_rejected = reviews.iter().any(|r| r.decision == Decision::Reject);
    out.push_str(if any_rejected {
        "Do not carry out what was rejected. Adapt your work to the note if there is one, then \
         finish the task and end with an outcome_assessment line."
    } else {
        "Go on with the task as planned, taking the note into account, and end with an \
         outcome_assessment line."
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_errors_list_choices() {
        for d in [Decision::Approve, Decision::Reject] {
            assert_eq!(d.as_str().parse(), Ok(d));
        }
        assert_eq!("CANCEL".parse(), Ok(TimeoutAction::Cancel));
        let e = "later".parse::<TimeoutAction>().expect_err("unknown");
        assert!(e.contains("approve, reject, cancel"), "{e}");
        let e = "retry".parse::<OnReject>().expect_err("unknown");
        assert!(e.contains("resume, end"), "{e}");
    }

    #[test]
    fn resume_prompt_carries_each_decision_and_note() {
        let text = resume_prompt(&[DecidedReview {
            title: "Merge PR 7?",
            decision: Decision::Approve,
            note: Some("ship it"),
            by_timeout: false,
        }]);
        assert!(
            text.contains("\"Merge PR 7?\": APPROVED by the reviewer"),
            "{text}"
        );
        assert!(text.contains("Reviewer's note: \"ship it\""), "{text}");
        assert!(text.contains("Go on with the task"), "{text}");

        let text = resume_prompt(&[
            DecidedReview {
                title: "A",
                decision: Decision::Approve,
                note: None,
                by_timeout: false,
            },
            DecidedReview {
                title: "B",
                decision: Decision::Reject,
                note: Some("  "),
                by_timeout: true,
            },
        ]);
        assert!(text.starts_with("Review decisions:"), "{text}");
        assert!(text.contains("REJECTED automatically"), "{text}");
        assert!(
            !text.contains("Reviewer's note"),
            "blank notes are left out: {text}"
        );
        assert!(
            text.contains("Do not carry out what was rejected"),
            "{text}"
        );
    }
}
