//! The orchestrator's dispatch and durability core and the worker's connection, against real
//! Postgres (the testkit's own cluster) and the real Kafka-protocol broker (Tansu).
// A failed unwrap is a failed test; its location says which.
#![allow(clippy::unwrap_used)]

mod core {
    pub mod attempts;
    pub mod bench;
    pub mod broker;
    pub mod fake_worker;
    pub mod flow;
    pub mod peers;
    pub mod pool;
    pub mod process;
    pub mod support;
}
