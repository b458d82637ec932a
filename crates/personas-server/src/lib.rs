//! `personas-server`: the daemon's HTTP face.
//!
//! - [`auth`]: the API token (created once per data dir, file mode 0600) and the checks every
//!   request passes: token, Host (DNS-rebinding defence), Origin.
//! - [`routes`]: the routes, served by [`serve`] on a listener the caller binds (port 0 in tests).
//! - [`webhook`]: `POST /webhooks/{trigger_id}` — HMAC-signed calls become bus events.
#![forbid(unsafe_code)]

pub mod auth;
pub mod routes;
pub mod webhook;

pub use routes::{ServerState, router, serve};
