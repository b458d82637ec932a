//! Deciding how a run ended, from what the CLI printed — never from its exit code alone
//! (fixtures README §3.2: exit 0 can mean an interrupted run, exit 1 a clean API failure).

use personas_core::stream::{ApiRetry, ResultLine};
use personas_core::{ErrorClass, ExecutionOutcome, ExecutionStatus};

/// Why the runner itself stopped the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Cancelled,
    /// The persona's overall timeout passed.
    Timeout,
    /// No output for the inactivity window while no tool was running.
    Inactivity,
    /// The runtime hosting the run is shutting down.
    Shutdown,
}

/// Everything observed about a finished CLI process.
#[derive(Debug, Default)]
pub struct Observed<'a> {
    pub result: Option<&'a ResultLine>,
    pub stop: Option<StopReason>,
    /// How the process ended, e.g. "exit code 1" or "signal 9".
    pub exit: String,
    /// The last lines of stderr.
    pub stderr_tail: &'a str,
    /// The last `api_retry` line, if the CLI was retrying when it ended.
    pub last_retry: Option<&'a ApiRetry>,
    /// The agent's `outcome_assessment.accomplished`, if given.
    pub accomplished: Option<bool>,
    pub timeout_secs: u64,
    pub inactivity_secs: u64,
}

pub fn decide(o: &Observed<'_>) -> ExecutionOutcome {
    let mut out = match (o.stop, o.result) {
        (Some(StopReason::Cancelled), _) => ExecutionOutcome::ended(
            ExecutionStatus::Cancelled,
            Some(ErrorClass::Cancelled),
            Some("cancelled by user".into()),
        ),
        (Some(StopReason::Timeout), _) => ExecutionOutcome::ended(
            ExecutionStatus::TimedOut,
            Some(ErrorClass::Timeout),
            Some(format!(
                "stopped after the persona's timeout of {} s",
                o.timeout_secs
            )),
        ),
        (Some(StopReason::Inactivity), _) => ExecutionOutcome::ended(
            ExecutionStatus::TimedOut,
            Some(ErrorClass::Inactivity),
            Some(format!(
                "stopped: no output for {} s while no tool was running{}",
                o.inactivity_secs,
                o.last_retry
                    .map(|r| format!(" (the CLI was retrying the API: {})", retry_text(r)))
                    .unwrap_or_default()
            )),
        ),
        (Some(StopReason::Shutdown), _) => ExecutionOutcome::failed(
            ErrorClass::Interrupted,
            "the Personas runtime shut down while this ran; it was not resumed",
        ),
        (None, Some(r)) if !r.is_error => {
            if o.accomplished == Some(false) {
                ExecutionOutcome::ended(
                    ExecutionStatus::Incomplete,
                    None,
                    Some("the agent reported it did not accomplish the task".into()),
                )
            } else {
                ExecutionOutcome::ended(ExecutionStatus::Completed, None, None)
            }
        }
        (None, Some(r)) => ExecutionOutcome::failed(classify_error(r), r.error_text()),
        (None, None) => {
            let mut msg = format!("the Claude CLI ended ({}) without a result line", o.exit);
            let tail = o.stderr_tail.trim();
            if !tail.is_empty() {
                msg.push_str(": ");
                msg.push_str(tail);
            }
            ExecutionOutcome::failed(ErrorClass::Crash, msg)
        }
    };
    if let Some(r) = o.result {
        out.session_id = r.session_id.clone();
        out.num_turns = r.num_turns;
        out.tokens = r.usage;
        out.cost_usd = r.total_cost_usd;
        out.result_text = r.result.clone();
        out.permission_denials = r.permission_denials.clone();
    }
    out
}

fn retry_text(r: &ApiRetry) -> String {
    match (r.error_status, &r.error) {
        (Some(s), Some(e)) => format!("HTTP {s} {e}, attempt {}", r.attempt),
        (None, Some(e)) => format!("{e}, attempt {}", r.attempt),
        _ => format!("attempt {}", r.attempt),
    }
}

/// The error class of a failed `result` line.
pub fn classify_error(r: &ResultLine) -> ErrorClass {
    match r.subtype.as_str() {
        "error_max_turns" => return ErrorClass::MaxTurns,
        "error_max_budget_usd" => return ErrorClass::BudgetExceeded,
        _ => {}
    }
    if let Some(status) = r.api_error_status {
        return match status {
            401 | 403 => ErrorClass::AuthFailed,
            429 => ErrorClass::RateLimited,
            529 => ErrorClass::Overloaded,
            500..=599 => ErrorClass::ServerError,
            400..=499 => ErrorClass::BadRequest,
            _ => ErrorClass::Unknown,
        };
    }
    let text = r.error_text();
    let has = |needle: &str| text.contains(needle);
    if has("Not logged in") || has("/login") {
        ErrorClass::NotLoggedIn
    } else if has("Invalid API key") || has("authentication") {
        ErrorClass::AuthFailed
    } else if has("529") || has("Overloaded") {
        ErrorClass::Overloaded
    } else if has("Unable to connect")
        || has("Request timed out")
        || has("ECONN")
        || has("fetch failed")
    {
        ErrorClass::Network
    } else if has("No conversation found") {
        ErrorClass::BadRequest
    } else if r.subtype == "error_during_execution" {
        ErrorClass::Crash
    } else {
        ErrorClass::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use personas_core::stream::{ClaudeLine, parse_line};
    use rstest::rstest;

    fn fixture_result(name: &str) -> ResultLine {
        let path = format!(
            "{}/../../fixtures/claude-code/{name}.stdout.jsonl",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        text.lines()
            .filter_map(|l| match parse_line(l.as_bytes()) {
                Ok(ClaudeLine::Result(r)) => Some(r),
                _ => None,
            })
            .next_back()
            .unwrap_or_else(|| panic!("{name} has no result"))
    }

    #[rstest]
    #[case("01-text", ExecutionStatus::Completed, None)]
    #[case("03a-bash-default-perms", ExecutionStatus::Completed, None)]
    #[case("04c-max-turns-1", ExecutionStatus::Failed, Some(ErrorClass::MaxTurns))]
    #[case(
        "04h-max-budget-usd",
        ExecutionStatus::Failed,
        Some(ErrorClass::BudgetExceeded)
    )]
    #[case(
        "05a-http500-always",
        ExecutionStatus::Failed,
        Some(ErrorClass::ServerError)
    )]
    #[case(
        "05b-http529-always",
        ExecutionStatus::Failed,
        Some(ErrorClass::Overloaded)
    )]
    #[case(
        "05c-http429-always-retry-after-2",
        ExecutionStatus::Failed,
        Some(ErrorClass::RateLimited)
    )]
    #[case(
        "05d-http401-always",
        ExecutionStatus::Failed,
        Some(ErrorClass::AuthFailed)
    )]
    #[case(
        "05e-http400-always",
        ExecutionStatus::Failed,
        Some(ErrorClass::BadRequest)
    )]
    #[case(
        "05j-sse-error-event-always",
        ExecutionStatus::Failed,
        Some(ErrorClass::Overloaded)
    )]
    #[case(
        "05l-connection-refused",
        ExecutionStatus::Failed,
        Some(ErrorClass::Network)
    )]
    #[case(
        "06e-hang-before-headers-api-timeout-10s",
        ExecutionStatus::Failed,
        Some(ErrorClass::Network)
    )]
    #[case(
        "08e4-resume-unknown",
        ExecutionStatus::Failed,
        Some(ErrorClass::BadRequest)
    )]
    #[case(
        "11a-no-api-key",
        ExecutionStatus::Failed,
        Some(ErrorClass::NotLoggedIn)
    )]
    fn recorded_results_are_classified(
        #[case] name: &str,
        #[case] status: ExecutionStatus,
        #[case] class: Option<ErrorClass>,
    ) {
        let r = fixture_result(name);
        let out = decide(&Observed {
            result: Some(&r),
            ..Observed::default()
        });
        assert_eq!(
            (out.status, out.error_class),
            (status, class),
            "{name}: {:?}",
            out.error_message
        );
        if class.is_some() {
            assert!(out.error_message.as_deref().is_some_and(|m| !m.is_empty()));
        }
    }

    #[test]
    fn missing_result_is_a_crash_with_stderr() {
        let out = decide(&Observed {
            exit: "exit code 1".into(),
            stderr_tail: "Error: Invalid MCP configuration",
            ..Observed::default()
        });
        assert_eq!(
            (out.status, out.error_class),
            (ExecutionStatus::Failed, Some(ErrorClass::Crash))
        );
        let msg = out.error_message.expect("message");
        assert!(
            msg.contains("without a result line") && msg.contains("Invalid MCP"),
            "{msg}"
        );
    }

    #[test]
    fn runner_stops_win_over_any_result() {
        let r = fixture_result("07b-sigint-midstream");
        for (stop, status, class) in [
            (
                StopReason::Cancelled,
                ExecutionStatus::Cancelled,
                ErrorClass::Cancelled,
            ),
            (
                StopReason::Timeout,
                ExecutionStatus::TimedOut,
                ErrorClass::Timeout,
            ),
            (
                StopReason::Inactivity,
                ExecutionStatus::TimedOut,
                ErrorClass::Inactivity,
            ),
        ] {
            let out = decide(&Observed {
                result: Some(&r),
                stop: Some(stop),
                ..Observed::default()
            });
            assert_eq!((out.status, out.error_class), (status, Some(class)));
        }
    }

    #[test]
    fn not_accomplished_is_incomplete() {
        let r = fixture_result("01-text");
        let out = decide(&Observed {
            result: Some(&r),
            accomplished: Some(false),
            ..Observed::default()
        });
        assert_eq!(out.status, ExecutionStatus::Incomplete);
        assert!((out.cost_usd - 0.0003).abs() < 1e-9);
        assert_eq!(out.num_turns, 1);
    }
}
