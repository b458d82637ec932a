//! The worker protocol: orchestrator ⇄ worker over one WebSocket (`GET /worker`; TLS in
//! production, plain on loopback in tests).
//!
//! ## Authentication
//! Each worker has a token derived from the deployment secret: `HMAC-SHA256(secret,
//! "personas-worker-token:v1:" || worker_id)` ([`worker_token`]). The orchestrator can derive any
//! worker's token; a worker holds only its own (or the secret, when self-hosting keeps it simple).
//! The token never crosses the wire. Instead:
//! 1. On connect the orchestrator sends a [`Challenge`] (a fresh random nonce) in the clear.
//! 2. From then on every frame, both ways, is an [`Envelope`]: a counter `n` (1, 2, 3… per
//!    direction, no gaps), the frame's JSON as text, and `HMAC-SHA256(token, nonce ‖ dir ‖ n ‖
//!    body)` ([`Envelope::seal`]). The first frame from the worker is [`WorkerFrame::Hello`]
//!    naming the worker, whose token keys every MAC of the connection.
//!
//! A frame with a wrong MAC, a counter out of order, or from a worker whose token does not
//! match is refused and the connection closed: a forged, replayed or reflected frame cannot act.
//!
//! ## Flow
//! hello (id, version, capacity, what it still runs) → ack (with where to resume each run) ·
//! heartbeats both ways · assign → started → output… → complete → complete_ack · cancel.
//! A worker keeps every output line until `output_ack` covers it and resends the rest after a
//! reconnect (to any orchestrator), so a dropped connection or a dead orchestrator loses nothing;
//! the orchestrator stores lines idempotently by `(execution, seq)`.

use crate::model::WireSecret;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use personas_core::{Execution, ExecutionId, LineKind, PersonaId};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::BTreeMap;

/// The protocol's version; a worker of another major version is refused at hello.
pub const PROTOCOL_VERSION: u32 = 1;
/// How often each side sends a heartbeat.
pub const HEARTBEAT_MS: u64 = 1_000;
/// A peer silent for this long is gone (the orchestrator then re-queues its runs).
pub const PEER_TIMEOUT_MS: u64 = 5_000;

type HmacSha256 = Hmac<Sha256>;

/// A worker's token, derived from the deployment secret and the worker's id.
pub fn worker_token(deployment_secret: &[u8], worker_id: &str) -> [u8; 32] {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(deployment_secret)
        .expect("HMAC accepts keys of any length");
    mac.update(b"personas-worker-token:v1:");
    mac.update(worker_id.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Who sent a frame; part of its MAC so a frame cannot be reflected back to its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ToOrchestrator,
    ToWorker,
}

impl Direction {
    fn tag(self) -> &'static [u8] {
        match self {
            Self::ToOrchestrator => b"w2o",
            Self::ToWorker => b"o2w",
        }
    }
}

/// The first message on a worker connection, from the orchestrator, in the clear.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Challenge {
    /// 32 random bytes, hex; part of every MAC of this connection.
    pub nonce: String,
    pub orchestrator_id: String,
    pub protocol: u32,
}

/// Every frame after the challenge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub n: u64,
    /// The frame, as JSON text (the MAC covers these exact bytes).
    pub body: String,
    /// Hex HMAC-SHA256.
    pub mac: String,
}

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("the frame's MAC does not verify")]
    BadMac,
    #[error("frame {got} arrived where {expected} was due (replayed or reordered)")]
    OutOfOrder { expected: u64, got: u64 },
    #[error("the frame does not decode: {0}")]
    Malformed(String),
}

fn mac_of(token: &[u8; 32], nonce: &str, dir: Direction, n: u64, body: &str) -> HmacSha256 {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(token).expect("32-byte key");
    mac.update(nonce.as_bytes());
    mac.update(b"|");
    mac.update(dir.tag());
    mac.update(b"|");
    mac.update(&n.to_be_bytes());
    mac.update(b"|");
    mac.update(body.as_bytes());
    mac
}

impl Envelope {
    /// Wraps `frame` as the `n`th frame in direction `dir`.
    pub fn seal<T: Serialize>(
        token: &[u8; 32],
        nonce: &str,
        dir: Direction,
        n: u64,
        frame: &T,
    ) -> Envelope {
        let body = serde_json::to_string(frame).expect("frames always encode");
        let mac = hex::encode(mac_of(token, nonce, dir, n, &body).finalize().into_bytes());
        Envelope { n, body, mac }
    }

    /// Checks the MAC (in constant time) and the counter, then decodes the frame.
    pub fn open<T: for<'de> Deserialize<'de>>(
        &self,
        token: &[u8; 32],
        nonce: &str,
        dir: Direction,
        expected_n: u64,
    ) -> Result<T, FrameError> {
        let given = hex::decode(&self.mac).map_err(|_| FrameError::BadMac)?;
        mac_of(token, nonce, dir, self.n, &self.body)
            .verify_slice(&given)
            .map_err(|_| FrameError::BadMac)?;
        if self.n != expected_n {
            return Err(FrameError::OutOfOrder {
                expected: expected_n,
                got: self.n,
            });
        }
        serde_json::from_str(&self.body).map_err(|e| FrameError::Malformed(e.to_string()))
    }

    /// The frame's body decoded without checking anything: only to learn which worker claims
    /// to speak (its hello), so its token can be derived and the envelope then checked.
    pub fn peek<T: for<'de> Deserialize<'de>>(&self) -> Result<T, FrameError> {
        serde_json::from_str(&self.body).map_err(|e| FrameError::Malformed(e.to_string()))
    }
}

/// A run the worker holds when it (re)connects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldRun {
    pub execution_id: ExecutionId,
    pub attempt: u32,
    /// The lowest sequence number not yet acknowledged.
    pub first_unacked_seq: i64,
    /// The run has ended; its `complete` is waiting for an acknowledgement.
    pub finished: bool,
}

/// One output line on the wire (already redacted by the worker's runner).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireLine {
    pub seq: i64,
    pub kind: LineKind,
    pub text: String,
    pub at: DateTime<Utc>,
}

/// Worker → orchestrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerFrame {
    Hello {
        worker_id: String,
        version: String,
        protocol: u32,
        /// Runs it can hold at once.
        capacity: u32,
        /// What it still runs or has finished without an acknowledgement.
        held: Vec<HeldRun>,
    },
    Heartbeat {
        at: DateTime<Utc>,
    },
    /// The CLI started for this attempt.
    Started {
        execution_id: ExecutionId,
        attempt: u32,
        at: DateTime<Utc>,
    },
    Output {
        execution_id: ExecutionId,
        attempt: u32,
        lines: Vec<WireLine>,
    },
    /// The run ended; `execution` is the runner's record of it (status, cost, result, …).
    Complete {
        execution_id: ExecutionId,
        attempt: u32,
        /// The last line's sequence number (all lines up to it were sent before this frame).
        last_seq: i64,
        execution: Box<Execution>,
    },
}

/// A credential sealed with the deployment master key (AES-256-GCM); opened only in the worker's
/// memory for the one run it is assigned with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedCredential {
    pub name: String,
    pub service_type: String,
    /// Base64 of nonce ‖ ciphertext ‖ tag; the AAD binds it to its tenant and name.
    pub sealed: String,
}

/// The tenant's own Claude credential, sealed like the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedModelCredential {
    pub kind: crate::model::ModelCredentialKind,
    pub sealed: String,
}

/// One run for a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub execution_id: ExecutionId,
    pub attempt: u32,
    pub tenant_id: String,
    pub persona_id: PersonaId,
    /// The persona file, as pushed.
    pub persona_text: String,
    pub input: Option<serde_json::Value>,
    /// What caused the run (`manual`, `schedule`, `event`, …) and its reference.
    pub trigger: personas_core::TriggerKind,
    pub trigger_ref: Option<String>,
    /// Number this attempt's lines from here (a retry continues its execution's numbering).
    pub first_seq: i64,
    pub credentials: Vec<SealedCredential>,
    pub model_credential: Option<SealedModelCredential>,
    /// Longest the run may take, the plan's limit included.
    pub timeout_ms: Option<u64>,
}

/// Where a reconnecting worker resumes one of its held runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resume {
    pub execution_id: ExecutionId,
    pub attempt: u32,
    /// The orchestrator stored every line below this; resend from here.
    pub resend_from_seq: i64,
    /// `false`: this attempt is no longer current (the run was re-queued or cancelled while the
    /// worker was away) — stop it and drop its lines.
    pub current: bool,
}

/// Orchestrator → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrchestratorFrame {
    Ack {
        orchestrator_id: String,
        heartbeat_ms: u64,
        resume: Vec<Resume>,
    },
    Heartbeat {
        at: DateTime<Utc>,
    },
    Assign {
        assignment: Box<Assignment>,
    },
    /// Every line up to and including `up_to_seq` is stored.
    OutputAck {
        execution_id: ExecutionId,
        attempt: u32,
        up_to_seq: i64,
    },
    /// The completion is stored (`accepted`), or was refused because the attempt is no longer
    /// current; either way the worker forgets the run.
    CompleteAck {
        execution_id: ExecutionId,
        attempt: u32,
        accepted: bool,
    },
    Cancel {
        execution_id: ExecutionId,
        attempt: u32,
    },
    /// The worker is refused (bad version, unknown id); the connection closes.
    Refused {
        reason: String,
    },
}

/// Decoded field values of a credential opened on a worker.
pub type OpenedFields = BTreeMap<String, WireSecret>;

#[cfg(test)]
mod tests {
    use super::*;

    fn hb() -> WorkerFrame {
        WorkerFrame::Heartbeat { at: Utc::now() }
    }

    #[test]
    fn a_sealed_frame_opens_with_the_same_token_nonce_and_counter() {
        let token = worker_token(b"deployment secret", "w1");
        let env = Envelope::seal(&token, "abc", Direction::ToOrchestrator, 1, &hb());
        let frame: WorkerFrame = env
            .open(&token, "abc", Direction::ToOrchestrator, 1)
            .expect("opens");
        assert!(matches!(frame, WorkerFrame::Heartbeat { .. }));
    }

    #[test]
    fn a_forged_replayed_or_reflected_frame_is_refused() {
        let token = worker_token(b"deployment secret", "w1");
        let other = worker_token(b"deployment secret", "w2");
        assert_ne!(token, other, "tokens differ per worker");
        let env = Envelope::seal(&token, "abc", Direction::ToOrchestrator, 1, &hb());
        // Another worker's token, another connection's nonce, the other direction.
        let e = env.open::<WorkerFrame>(&other, "abc", Direction::ToOrchestrator, 1);
        assert_eq!(e.expect_err("refused"), FrameError::BadMac);
        let e = env.open::<WorkerFrame>(&token, "abd", Direction::ToOrchestrator, 1);
        assert_eq!(e.expect_err("refused"), FrameError::BadMac);
        let e = env.open::<WorkerFrame>(&token, "abc", Direction::ToWorker, 1);
        assert_eq!(e.expect_err("refused"), FrameError::BadMac);
        // A replay (counter already used).
        let e = env.open::<WorkerFrame>(&token, "abc", Direction::ToOrchestrator, 2);
        assert_eq!(
            e.expect_err("refused"),
            FrameError::OutOfOrder {
                expected: 2,
                got: 1
            }
        );
        // A changed body.
        let mut tampered = env.clone();
        tampered.body = tampered.body.replace("heartbeat", "hello");
        let e = tampered.open::<WorkerFrame>(&token, "abc", Direction::ToOrchestrator, 1);
        assert_eq!(e.expect_err("refused"), FrameError::BadMac);
    }
}
