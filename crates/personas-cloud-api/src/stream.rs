//! The client stream: `GET /api/stream?after=N[&execution=ID]` upgraded to a WebSocket, with the
//! bearer token in the `Authorization` header.
//!
//! Every frame carries the tenant's journal sequence number: gapless and in commit order per
//! tenant, so a client that reconnects with `after=<last seq it saw>` gets exactly what it
//! missed (replayed from Postgres), then the live stream, with nothing twice. The same idea as
//! the local runtime's `/api/events`.

use crate::model::{CloudEvent, CloudExecution, CloudLine};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientEvent {
    /// An execution's output line.
    Output { line: CloudLine },
    /// An execution was queued, assigned, started, retried or ended.
    Execution { execution: Box<CloudExecution> },
    /// An event was published on the tenant's bus.
    Event { event: CloudEvent },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClientFrame {
    /// The tenant's journal sequence number.
    pub seq: i64,
    #[serde(flatten)]
    pub event: ClientEvent,
}
