//! The worker pool: `GET /worker`, one WebSocket per worker (see `personas_cloud_api::wire`).

pub mod registry;

pub use registry::{Outgoing, Registry, Slot, WorkerInfo};
