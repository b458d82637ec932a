//! Personas domain core: the types every other crate speaks, and the pure logic that needs no I/O.
//!
//! - [`model`]: personas, executions, statuses, error classes, permission policies.
//! - [`stream`]: the Claude Code CLI's `stream-json` output, one line at a time.
//! - [`protocol`]: the persona protocol — single-line JSON objects an agent writes in its text.
//! - [`prompt`]: prompt assembly, one pure function per section.
//! - [`trigger`]: trigger definitions, event-type patterns, chain conditions, missed-run policies.
//! - [`cron`]: cron schedules in named time zones and what to fire after downtime.
//! - [`frame`]: the typed frame of a stored output line, computed where lines are served.
//! - [`decode`]: JSON/YAML decoding whose errors name the field at fault.
//! - [`persona_file`]: the YAML/JSON file users share to move a persona between machines.
//! - [`grant`]: what importing a persona file would grant beyond what the persona has.
//! - [`status`]: the closed sets of names rows store and the API serves (review, event,
//!   message, delivery, healing statuses; channel kinds) with their stored text.
//! - [`review`]: review decisions and the message a paused session is resumed with.
//! - [`secret`]: the [`Secret`] type credential values live in.
//! - [`redact`]: replacing known secret values (and their encodings) in text.
//! - [`connector`]: credential types — fields, environment names, health checks — as data.
//!
//! Nothing here touches the file system, the network, a clock-driven runtime or tokio; that keeps
//! it fast to test and usable from every host (daemon, desktop app, CLI, cloud worker).
#![forbid(unsafe_code)]

pub mod connector;
pub mod cron;
pub mod decode;
pub mod frame;
pub mod grant;
pub mod ids;
pub mod model;
pub mod persona_file;
pub mod prompt;
pub mod protocol;
pub mod redact;
pub mod review;
pub mod secret;
pub mod status;
pub mod stream;
pub mod trigger;
pub mod validate;

pub use ids::{ExecutionId, PersonaId, TriggerId};
pub use model::*;
pub use secret::Secret;
pub use status::*;
pub use validate::ValidationError;
