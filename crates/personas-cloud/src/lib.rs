//! `personas-cloud`: the cloud runtime (seed §5, §9.2). One binary, two modes:
//!
//! - [`orchestrator`]: the HTTP API (the operation table of `personas-cloud-api`), the client
//!   stream, the worker pool (WebSocket), Kafka (`rdkafka`) and Postgres (`tokio-postgres` with
//!   a `deadpool` pool, `refinery` migrations). Orchestrators are peers: any number run against
//!   one Postgres and one broker; they form one consumer group on the execution topic.
//! - [`worker`]: connects to an orchestrator, takes assignments and runs each through the
//!   same `personas-engine` runner as the desktop (the real Claude CLI, prompt assembly,
//!   protocol parsing, redaction, watchdogs, stop and reap).
//!
//! [`config`] holds both modes' settings (flags > environment > config file > defaults);
//! [`seal`] seals and opens credentials with the deployment master key (AES-256-GCM).

pub mod auth;
pub mod config;
pub mod orchestrator;
pub mod seal;
pub mod worker;
