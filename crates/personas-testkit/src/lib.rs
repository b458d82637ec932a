//! Test support for Personas: everything needed to drive the real Claude Code CLI end to end
//! without a network, and a tiny stand-in CLI for benchmarks.
//!
//! - [`api`]: [`ScriptedApi`], a scripted imitation of the Anthropic Messages API on loopback that
//!   answers the CLI with the exact SSE/JSON shapes it accepts, plus errors, hangs and drops.
//! - [`claude`]: the pinned real CLI ([`claude_bin`]), an isolated environment for it
//!   ([`isolated_env`]) and a run-to-completion helper ([`run_claude`]).
//! - [`smtp`]: [`SmtpSink`], a small real SMTP server that records mail (email channels).
//! - [`http_sink`]: [`HttpSink`], a recording HTTP server with scripted replies (Slack,
//!   Telegram and webhook endpoints) or replies by bearer token (credential checks), and
//!   [`SilentServer`], one that never answers (timeouts).
//! - [`files`] and [`process`]: what a test left behind — files holding some bytes under a
//!   directory ([`files_containing`]), processes still alive ([`process_table_has`]).
//! - [`leak`]: searching everything a test can read — files, every text column of every table,
//!   responses, streams, sinks — for a secret in any of its encodings.
//! - The binary `personas-fake-claude` replays a recorded `stream-json` transcript instantly; it
//!   measures our own overhead without paying for the real CLI's ~0.7 s start-up and ~315 MiB RSS.
//!
//! This crate is only ever a dev-dependency. Its helpers panic with a clear message instead of
//! returning errors, because a failed setup step should fail the test that called it.
#![forbid(unsafe_code)]

pub mod api;
pub mod claude;
pub mod cloud;
pub mod files;
pub mod http_sink;
pub mod leak;
pub mod process;
pub mod smtp;

pub use api::{HangPoint, RecordedRequest, ScriptedApi, Step, ToolCall};
pub use claude::{
    CLAUDE_CODE_VERSION, ClaudeRun, IsolatedEnv, claude_bin, fake_claude_bin, isolated_env,
    run_claude, workspace_root,
};
pub use files::{files_containing, files_under};
pub use http_sink::{HttpSink, RecordedHttp, Reply, SilentServer};
pub use process::process_table_has;
pub use smtp::{ReceivedMail, SmtpMode, SmtpSink};
