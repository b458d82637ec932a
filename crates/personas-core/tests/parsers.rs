//! Property tests for every parser of personas-core that reads input from outside the process:
//! the Claude CLI's stream-json lines, persona protocol lines, persona files, cron expressions
//! and time zones, and trigger definitions.
//!
//! Each parser gets three kinds of properties:
//! - arbitrary bytes or text never panic;
//! - near-valid input (valid JSON with a wrong type, a missing or unknown field, huge numbers,
//!   deep nesting, unicode, very long strings) is refused with an error naming the field at fault;
//! - values built from generated data survive a round trip through the format.
//!
//! Case counts stay moderate so the suite runs in seconds; a failure prints its seed and is kept
//! in `tests/parsers.proptest-regressions` so it replays first on every later run.

#[path = "parsers/gen.rs"]
mod r#gen;

#[path = "parsers/cron.rs"]
mod cron;
#[path = "parsers/persona_file.rs"]
mod persona_file;
#[path = "parsers/protocol.rs"]
mod protocol;
#[path = "parsers/stream.rs"]
mod stream;
#[path = "parsers/trigger.rs"]
mod trigger;
