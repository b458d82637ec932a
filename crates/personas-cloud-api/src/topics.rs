//! The Kafka topics of one deployment (seed §2.1), namespaced so several deployments can share
//! a broker: `<namespace>.persona.exec.v1` and so on.

/// Runs to start, keyed by persona (one persona's runs stay in order on one partition).
pub const EXEC: &str = "persona.exec.v1";
/// Output lines, keyed by execution.
pub const OUTPUT: &str = "persona.output.v1";
/// Bus events published by personas, triggers and people.
pub const EVENTS: &str = "persona.events.v1";
/// Execution status changes and control messages (cancel), keyed by execution.
pub const LIFECYCLE: &str = "persona.lifecycle.v1";
/// Runs that exhausted their attempts, with the reason.
pub const DLQ: &str = "persona.dlq.v1";

pub const ALL: [&str; 5] = [EXEC, OUTPUT, EVENTS, LIFECYCLE, DLQ];

/// The full name of `topic` in a deployment's namespace.
pub fn name(namespace: &str, topic: &str) -> String {
    if namespace.is_empty() {
        topic.to_string()
    } else {
        format!("{namespace}.{topic}")
    }
}

/// Whether `namespace` is usable in a topic name (Kafka allows `[a-zA-Z0-9._-]`, ≤ 249 chars).
pub fn valid_namespace(namespace: &str) -> bool {
    namespace.len() <= 200
        && namespace
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
