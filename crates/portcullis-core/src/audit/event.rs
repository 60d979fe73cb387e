//! Audit events: an event about to be appended ([`NewAuditEvent`]) and sealed in the chain
//! ([`AuditEvent`]). Invariant: `hash = SHA-256(prev_hash ‖ canonical event)`, the canonical
//! form a JSON array in a fixed field order with the details' keys sorted.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: [u8; 32] = [0u8; 32];

/// Whether the recorded action succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            _ => None,
        }
    }
}

/// An event about to be appended: everything but its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAuditEvent {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: Outcome,
    pub details: serde_json::Value,
}

impl NewAuditEvent {
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        target: impl Into<String>,
    ) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            outcome: Outcome::Success,
            details: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// Places the event in the chain after `prev_hash` at `seq`, at `time` (truncated to
    /// microseconds, the precision both backends store).
    pub fn seal(self, seq: i64, time: OffsetDateTime, prev_hash: [u8; 32]) -> AuditEvent {
        let time_us = (time.unix_timestamp_nanos() / 1_000) as i64;
        let mut event = AuditEvent {
            seq,
            time_us,
            actor: self.actor,
            action: self.action,
            target: self.target,
            outcome: self.outcome,
            details: self.details,
            prev_hash,
            hash: [0u8; 32],
        };
        event.hash = event.compute_hash();
        event
    }
}

/// An event in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub seq: i64,
    /// Microseconds since the Unix epoch, UTC.
    pub time_us: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: Outcome,
    pub details: serde_json::Value,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

impl AuditEvent {
    /// The canonical bytes that are hashed: a JSON array in a fixed order.
    pub fn canonical(&self) -> Vec<u8> {
        // serde_json::Value objects are BTreeMaps (no `preserve_order`), so keys are sorted and
        // the encoding is deterministic.
        let value = serde_json::json!([
            self.seq,
            self.time_us,
            self.actor,
            self.action,
            self.target,
            self.outcome.as_str(),
            self.details,
        ]);
        value.to_string().into_bytes()
    }

    /// `SHA-256(prev_hash ‖ canonical event)`.
    pub fn compute_hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.prev_hash);
        h.update(self.canonical());
        h.finalize().into()
    }

    pub fn time(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(self.time_us as i128 * 1_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}
