//! The closed sets of names the store keeps in text columns and the API serves as strings:
//! review, message, event, delivery and healing statuses, channel and notice kinds, breaker
//! states. Each is an enum whose `as_str` is exactly the stored (and wire) text, so old rows
//! read unchanged, and whose `FromStr` error names the value and the choices; the generated
//! TypeScript and OpenAPI types are closed unions of the same names.
//!
//! Execution statuses, error classes and line kinds live in [`crate::model`]; priorities and
//! severities in [`crate::protocol`]; event source kinds in [`crate::trigger`].

use crate::model::{ErrorClass, string_enum};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

string_enum!(
    /// Where a review request stands (`cancelled`: the run ended some other way before anyone
    /// decided).
    ReviewStatus {
        Pending => "pending",
        Approved => "approved",
        Rejected => "rejected",
        TimedOut => "timed_out",
        Cancelled => "cancelled",
    }
);

string_enum!(
    /// Who decided a review.
    ReviewDecider {
        User => "user",
        Timeout => "timeout",
        System => "system",
    }
);

string_enum!(
    /// Whether a person has seen an inbox message.
    MessageStatus {
        Unread => "unread",
        Read => "read",
    }
);

string_enum!(
    /// Where a bus event is in its delivery.
    EventStatus {
        Pending => "pending",
        Processing => "processing",
        Delivered => "delivered",
        Skipped => "skipped",
        Failed => "failed",
        DeadLetter => "dead_letter",
    }
);

string_enum!(
    /// What became of an event for one recipient.
    EventDeliveryStatus {
        Delivered => "delivered",
        Failed => "failed",
        Skipped => "skipped",
    }
);

string_enum!(
    /// Where a persona's notifications go.
    ChannelKind {
        Slack => "slack",
        Telegram => "telegram",
        Email => "email",
        Webhook => "webhook",
        Desktop => "desktop",
    }
);

string_enum!(
    /// What a notification carries: an inbox message or a review request.
    NoticeKind {
        Message => "message",
        Review => "review",
    }
);

string_enum!(
    /// Where a notification delivery stands (retried until delivered or out of attempts).
    NotificationStatus {
        Pending => "pending",
        Delivered => "delivered",
        Failed => "failed",
    }
);

string_enum!(
    /// Whether a healing issue still needs a person.
    IssueStatus {
        Open => "open",
        Resolved => "resolved",
    }
);

string_enum!(
    /// A circuit breaker's state. `half_open` is served for the provider breaker whose
    /// cool-down has passed (one run may probe); it is never stored.
    BreakerState {
        Closed => "closed",
        Open => "open",
        HalfOpen => "half_open",
    }
);

string_enum!(
    /// The class of the issue recorded when a persona's circuit breaker opens.
    PauseClass {
        CircuitOpen => "circuit_open",
    }
);

/// What a healing issue is about: the error class of the failed run, or the persona's breaker
/// having opened. One text column holds both; their names do not overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub enum IssueClass {
    Failure(ErrorClass),
    Paused(PauseClass),
}

impl IssueClass {
    pub const CIRCUIT_OPEN: IssueClass = IssueClass::Paused(PauseClass::CircuitOpen);

    pub fn as_str(self) -> &'static str {
        match self {
            IssueClass::Failure(c) => c.as_str(),
            IssueClass::Paused(p) => p.as_str(),
        }
    }
}

impl From<ErrorClass> for IssueClass {
    fn from(c: ErrorClass) -> Self {
        IssueClass::Failure(c)
    }
}

impl fmt::Display for IssueClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IssueClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(p) = s.parse::<PauseClass>() {
            return Ok(IssueClass::Paused(p));
        }
        s.parse::<ErrorClass>()
            .map(IssueClass::Failure)
            .map_err(|_| {
                format!(
                    "unknown issue class {s:?}; expected an error class ({}) or circuit_open",
                    ErrorClass::ALL
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T>(all: &[T])
    where
        T: Copy + fmt::Debug + PartialEq + fmt::Display + FromStr<Err = String> + Serialize,
    {
        for v in all {
            let text = v.to_string();
            assert_eq!(text.parse::<T>(), Ok(*v));
            assert_eq!(
                serde_json::to_value(v).expect("serialise"),
                serde_json::Value::String(text)
            );
        }
    }

    #[test]
    fn every_name_round_trips_through_text_and_json() {
        round_trips(ReviewStatus::ALL);
        round_trips(ReviewDecider::ALL);
        round_trips(MessageStatus::ALL);
        round_trips(EventStatus::ALL);
        round_trips(EventDeliveryStatus::ALL);
        round_trips(ChannelKind::ALL);
        round_trips(NoticeKind::ALL);
        round_trips(NotificationStatus::ALL);
        round_trips(IssueStatus::ALL);
        round_trips(BreakerState::ALL);
        round_trips(crate::protocol::Priority::ALL);
        round_trips(crate::protocol::Severity::ALL);
        let classes: Vec<IssueClass> = ErrorClass::ALL
            .iter()
            .map(|c| IssueClass::from(*c))
            .chain([IssueClass::CIRCUIT_OPEN])
            .collect();
        round_trips(&classes);
    }

    #[test]
    fn unknown_names_are_refused_with_the_choices() {
        let e = "archived".parse::<ReviewStatus>().expect_err("unknown");
        assert!(e.contains("\"archived\""), "{e}");
        assert!(e.contains("pending, approved"), "{e}");
        let e = "sms".parse::<ChannelKind>().expect_err("unknown");
        assert!(
            e.contains("slack, telegram, email, webhook, desktop"),
            "{e}"
        );
        let e = "meltdown".parse::<IssueClass>().expect_err("unknown");
        assert!(e.contains("circuit_open"), "{e}");
        assert!(serde_json::from_str::<EventStatus>("\"lost\"").is_err());
    }
}
