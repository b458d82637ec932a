//! The orchestrator's front door against a real Postgres (its own cluster per test), served on
//! loopback by the real router, called with the real `CloudClient` and raw HTTP: JWT and
//! admin-token authentication (a real JWKS on loopback with freshly generated EC P-256 and RSA
//! keys), tenant isolation, field-naming 400s for every operation, sealed credentials (no
//! plaintext in `pg_dump`), the OpenAPI document, and the client stream's resume and order.
//!
//! No broker runs here: the producer points at a closed port, so outbox rows stay pending and
//! the live journal is fed by the test itself (as the broadcast consumers would).

#[path = "front/harness.rs"]
mod harness;

#[path = "front/auth.rs"]
mod auth;
#[path = "front/ops.rs"]
mod ops;
#[path = "front/stream.rs"]
mod stream;
