//! `personas-server`: the daemon's HTTP face, a thin host of `personas-api`.
//!
//! - [`auth`]: the API token (created once per data dir, file mode 0600) and the checks every
//!   request passes: token, Host (DNS-rebinding defence), Origin.
//! - [`routes`]: one JSON route per operation (expanded from the operation table), the OpenAPI
//!   document, the CLI's wake/cancel, served by [`serve`] on a listener the caller binds (port 0
//!   in tests).
//! - [`events`]: the WebSocket event stream with sequence numbers, a replay buffer and resume.
//! - [`ui`]: the built web UI at `/`.
//! - [`instance`]: one runtime per data dir (the lock, `daemon.json`) and [`instance::Host`],
//!   which starts engine + server for `personas up` and the desktop app.
//! - [`webhook`]: `POST /webhooks/{trigger_id}` — HMAC-signed calls become bus events.
//! - [`metrics`]: `GET /metrics`, the runtime's counters and gauges in Prometheus text format.
#![forbid(unsafe_code)]

pub mod auth;
pub mod events;
pub mod instance;
pub mod metrics;
pub mod routes;
pub mod ui;
pub mod webhook;

pub use routes::{ServerState, router, serve};
