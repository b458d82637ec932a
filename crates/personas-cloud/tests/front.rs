//! The orchestrator's front door against a real Postgres (its own cluster per test), served on
//! loopback by the real router, called with the real `CloudClient` and raw HTTP: JWT and
//! admin-token authentication (a real JWKS on loopback with freshly generated EC P-256 and RSA
//! keys), tenant isolation, field-naming 400s for every operation, sealed credentials (no
//! plaintext in `pg_dump`), the OpenAPI document, and the client stream's resume and order.
//!
//! Most tests run without a broker: the producer points at a closed port, so outbox rows stay
//! pending and the live journal is fed by the test itself (as the broadcast consumers would),
//! which lets them order and withhold live entries at will. `live` runs a whole orchestrator
//! (`orchestrator::start`) on the real Tansu broker and checks the frames arrive through it.

#[path = "front/harness.rs"]
mod harness;

#[path = "front/auth.rs"]
mod auth;
#[path = "front/live.rs"]
mod live;
#[path = "front/ops.rs"]
mod ops;
#[path = "front/stream.rs"]
mod stream;
