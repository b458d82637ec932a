//! The Personas local runtime, built from components that share one typed event channel:
//!
//! - [`runner`]: spawns the real Claude Code CLI for one execution, streams and parses its
//!   output, applies the persona protocol, enforces timeouts, and cancels cleanly.
//! - [`writer`]: group-commits output lines to the store, then broadcasts them.
//! - [`reaper`]: finds and kills processes a run left behind, also after a crash.
//! - [`vault`]: seals credential values (AES-256-GCM) under a data key kept in the OS keychain
//!   or wrapped under a passphrase; [`credentials`]: connector templates applied, values sealed,
//!   a persona's credentials resolved for a run (environment, prompt docs, redactor), health
//!   checks.
//! - [`bus`]: the durable event bus — publisher, dispatcher (events → executions, exactly once
//!   per recipient), subscription matching, chain triggers.
//! - [`scheduler`]: cron triggers (with missed-run policies) and file watchers.
//! - [`triggers`]: triggers as people ask for them (CLI flags, API fields) resolved for the
//!   store, fired by hand, previewed and described — shared by every front-end.
//! - [`component`]: the [`component::Component`] trait every long-running loop implements, the
//!   one "sleep until due or woken" helper, and the host that starts and stops them.
//! - [`metrics`]: named internal events that both log and count.
//! - [`engine`]: wires the components; its queue admits work under the global and per-persona
//!   limits (priority, then FIFO, enforced in one store transaction) and the admission rules
//!   (scheduled retries, paused personas, budgets, provider breaker); recovers after a crash;
//!   heartbeats running executions.
//! - [`review`]: pauses a run that asked for review, resumes its Claude session with the
//!   decision, and times reviews out.
//! - [`healing`]: scheduled retries, circuit breakers and healing issues after each run.
//! - [`delivery`]: sends messages and review requests to personas' notification channels.
//! - [`retention`]: prunes old output, executions, events, deliveries and messages on a
//!   schedule (and for `personas gc`).
//!
//! The engine knows nothing of HTTP, Tauri or terminals; hosts subscribe to [`EngineEvent`]s.
#![forbid(unsafe_code)]

pub mod bus;
pub mod component;
pub mod config;
pub mod credentials;
pub mod delivery;
pub mod engine;
pub mod events;
pub mod healing;
pub mod known;
pub mod locate;
pub mod metrics;
pub mod policy_config;
pub mod reaper;
pub mod retention;
pub mod review;
pub mod runner;
pub mod scheduler;
pub mod tools;
pub mod transcripts;
pub mod triggers;
pub mod vault;
pub mod writer;

pub use config::EngineConfig;
pub use engine::{Engine, EngineError, Gauges};
pub use events::EngineEvent;
