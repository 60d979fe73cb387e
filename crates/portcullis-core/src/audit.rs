//! The audit chain: canonical encoding of events, their hashes, checkpoints and verification.
//!
//! Invariant 2 of DESIGN.md: `hash = SHA-256(prev_hash ‖ canonical event)`. The canonical form is
//! a JSON array in a fixed field order with the details object's keys sorted (serde_json's
//! default map is ordered), so the same event always hashes the same on every backend.
//! Sequence numbers start at 1 with no gaps; the first event's `prev_hash` is 32 zero bytes.
//! A checkpoint is an Ed25519 signature by the server key over `(seq, hash)`; verification walks
//! the chain and reports the *first* sequence number where something is wrong.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
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

/// A signed statement "the chain up to `seq` ends in `hash`".
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: [u8; 32],
    pub key_id: String,
    pub signature: [u8; 64],
}

/// The message a checkpoint signature covers.
fn checkpoint_message(seq: i64, hash: &[u8; 32]) -> Vec<u8> {
    let mut m = b"portcullis-audit-checkpoint-v1".to_vec();
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m
}

impl Checkpoint {
    pub fn sign(seq: i64, hash: [u8; 32], key_id: &str, key: &SigningKey) -> Self {
        let signature = key.sign(&checkpoint_message(seq, &hash)).to_bytes();
        Self {
            seq,
            hash,
            key_id: key_id.to_owned(),
            signature,
        }
    }

    pub fn verify(&self, key: &VerifyingKey) -> bool {
        key.verify(
            &checkpoint_message(self.seq, &self.hash),
            &Signature::from_bytes(&self.signature),
        )
        .is_ok()
    }
}

/// Why verification stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChainFault {
    /// A sequence number is missing (deleted row) or out of order (swapped rows).
    SequenceGap { expected: i64, found: i64 },
    /// The event's `prev_hash` is not the previous event's hash.
    BrokenLink { seq: i64 },
    /// The stored hash does not match the event's contents (edited row).
    HashMismatch { seq: i64 },
    /// A checkpoint's signature does not verify, or it names an unknown key.
    BadCheckpointSignature { seq: i64 },
    /// A checkpoint's hash differs from the chain's hash at that sequence.
    CheckpointMismatch { seq: i64 },
    /// A checkpoint points past the end of the chain (events deleted from the tail).
    TruncatedChain { checkpoint_seq: i64, last_seq: i64 },
}

impl ChainFault {
    /// The first sequence number found bad.
    pub fn seq(&self) -> i64 {
        match self {
            ChainFault::SequenceGap { expected, .. } => *expected,
            ChainFault::BrokenLink { seq }
            | ChainFault::HashMismatch { seq }
            | ChainFault::BadCheckpointSignature { seq }
            | ChainFault::CheckpointMismatch { seq } => *seq,
            ChainFault::TruncatedChain { last_seq, .. } => last_seq + 1,
        }
    }
}

impl std::fmt::Display for ChainFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainFault::SequenceGap { expected, found } => write!(
                f,
                "sequence {expected}: missing or out of order (found {found} in its place)"
            ),
            ChainFault::BrokenLink { seq } => {
                write!(
                    f,
                    "sequence {seq}: prev_hash does not match the previous event"
                )
            }
            ChainFault::HashMismatch { seq } => {
                write!(f, "sequence {seq}: contents do not match the stored hash")
            }
            ChainFault::BadCheckpointSignature { seq } => {
                write!(f, "checkpoint at sequence {seq}: signature does not verify")
            }
            ChainFault::CheckpointMismatch { seq } => {
                write!(
                    f,
                    "sequence {seq}: chain hash differs from the signed checkpoint"
                )
            }
            ChainFault::TruncatedChain {
                checkpoint_seq,
                last_seq,
            } => write!(
                f,
                "sequence {}: events missing at the end (checkpoint at {checkpoint_seq}, chain ends at {last_seq})",
                last_seq + 1
            ),
        }
    }
}

/// Incremental verifier: feed events in sequence order (a stream of any length; memory stays
/// constant), then checkpoints, then call [`ChainVerifier::finish`].
#[derive(Debug)]
pub struct ChainVerifier {
    expected_seq: i64,
    prev_hash: [u8; 32],
    fault: Option<ChainFault>,
    /// Hashes at checkpointed sequence numbers, checked as the walk passes them.
    checkpoints: std::collections::BTreeMap<i64, [u8; 32]>,
    checked_checkpoints: usize,
}

/// Summary of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    pub events: i64,
    pub last_seq: i64,
    pub last_hash: String,
    pub checkpoints: usize,
}

impl ChainVerifier {
    /// `checkpoints` must already have had their signatures checked with
    /// [`verify_checkpoint_signatures`].
    pub fn new(checkpoints: &[Checkpoint]) -> Self {
        Self {
            expected_seq: 1,
            prev_hash: GENESIS_HASH,
            fault: None,
            checkpoints: checkpoints.iter().map(|c| (c.seq, c.hash)).collect(),
            checked_checkpoints: 0,
        }
    }

    /// Feeds the next event. Returns `false` once a fault has been found (stop feeding).
    pub fn push(&mut self, event: &AuditEvent) -> bool {
        if self.fault.is_some() {
            return false;
        }
        let fault = if event.seq != self.expected_seq {
            Some(ChainFault::SequenceGap {
                expected: self.expected_seq,
                found: event.seq,
            })
        } else if event.prev_hash != self.prev_hash {
            Some(ChainFault::BrokenLink { seq: event.seq })
        } else if event.compute_hash() != event.hash {
            Some(ChainFault::HashMismatch { seq: event.seq })
        } else if self
            .checkpoints
            .get(&event.seq)
            .is_some_and(|h| *h != event.hash)
        {
            Some(ChainFault::CheckpointMismatch { seq: event.seq })
        } else {
            None
        };
        if let Some(f) = fault {
            self.fault = Some(f);
            return false;
        }
        if self.checkpoints.contains_key(&event.seq) {
            self.checked_checkpoints += 1;
        }
        self.prev_hash = event.hash;
        self.expected_seq += 1;
        true
    }

    pub fn finish(self) -> Result<ChainReport, ChainFault> {
        if let Some(f) = self.fault {
            return Err(f);
        }
        let last_seq = self.expected_seq - 1;
        if let Some((&cp_seq, _)) = self.checkpoints.iter().next_back()
            && cp_seq > last_seq
        {
            return Err(ChainFault::TruncatedChain {
                checkpoint_seq: cp_seq,
                last_seq,
            });
        }
        Ok(ChainReport {
            events: last_seq,
            last_seq,
            last_hash: hex::encode(self.prev_hash),
            checkpoints: self.checked_checkpoints,
        })
    }
}

/// Checks every checkpoint's signature against the known public keys (`key_id → key`).
/// Returns the first bad one.
pub fn verify_checkpoint_signatures(
    checkpoints: &[Checkpoint],
    keys: &std::collections::HashMap<String, VerifyingKey>,
) -> Result<(), ChainFault> {
    for c in checkpoints {
        let ok = keys.get(&c.key_id).is_some_and(|k| c.verify(k));
        if !ok {
            return Err(ChainFault::BadCheckpointSignature { seq: c.seq });
        }
    }
    Ok(())
}

/// Verifies a complete chain held in memory.
pub fn verify_chain(
    events: &[AuditEvent],
    checkpoints: &[Checkpoint],
    keys: &std::collections::HashMap<String, VerifyingKey>,
) -> Result<ChainReport, ChainFault> {
    verify_checkpoint_signatures(checkpoints, keys)?;
    let mut v = ChainVerifier::new(checkpoints);
    for e in events {
        if !v.push(e) {
            break;
        }
    }
    v.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn chain(n: i64) -> Vec<AuditEvent> {
        let mut prev = GENESIS_HASH;
        let mut out = Vec::new();
        for seq in 1..=n {
            let e = NewAuditEvent::new("system", "test.event", format!("t{seq}"))
                .details(serde_json::json!({"n": seq, "b": "x", "a": [1, 2]}))
                .seal(
                    seq,
                    OffsetDateTime::from_unix_timestamp(1_700_000_000 + seq).expect("time"),
                    prev,
                );
            prev = e.hash;
            out.push(e);
        }
        out
    }

    fn key() -> (SigningKey, HashMap<String, VerifyingKey>) {
        let k = SigningKey::from_bytes(&[7u8; 32]);
        let mut m = HashMap::new();
        m.insert("k1".to_owned(), k.verifying_key());
        (k, m)
    }

    #[test]
    fn intact_chain_verifies() {
        let (k, keys) = key();
        let events = chain(10);
        let cp = Checkpoint::sign(5, events[4].hash, "k1", &k);
        let report = verify_chain(&events, &[cp], &keys).expect("verifies");
        assert_eq!(report.last_seq, 10);
        assert_eq!(report.checkpoints, 1);
    }

    #[test]
    fn canonical_form_is_independent_of_key_order() {
        let a = NewAuditEvent::new("a", "b", "c")
            .details(serde_json::from_str(r#"{"z":1,"a":2}"#).expect("json"))
            .seal(1, OffsetDateTime::UNIX_EPOCH, GENESIS_HASH);
        let b = NewAuditEvent::new("a", "b", "c")
            .details(serde_json::from_str(r#"{"a":2,"z":1}"#).expect("json"))
            .seal(1, OffsetDateTime::UNIX_EPOCH, GENESIS_HASH);
        assert_eq!(a.hash, b.hash);
    }

    #[test]
    fn edited_field_is_found() {
        let (_, keys) = key();
        let mut events = chain(10);
        events[3].target = "edited".into();
        assert_eq!(
            verify_chain(&events, &[], &keys),
            Err(ChainFault::HashMismatch { seq: 4 })
        );
    }

    #[test]
    fn edited_field_with_recomputed_hash_breaks_next_link() {
        let (_, keys) = key();
        let mut events = chain(10);
        events[3].outcome = Outcome::Failure;
        events[3].hash = events[3].compute_hash();
        assert_eq!(
            verify_chain(&events, &[], &keys),
            Err(ChainFault::BrokenLink { seq: 5 })
        );
    }

    #[test]
    fn deleted_row_is_found() {
        let (_, keys) = key();
        let mut events = chain(10);
        events.remove(6);
        let err = verify_chain(&events, &[], &keys).expect_err("must fail");
        assert_eq!(err.seq(), 7);
    }

    #[test]
    fn swapped_rows_are_found() {
        let (_, keys) = key();
        let mut events = chain(10);
        events.swap(2, 3);
        let err = verify_chain(&events, &[], &keys).expect_err("must fail");
        assert_eq!(err.seq(), 3);
    }

    #[test]
    fn truncated_tail_is_found_by_checkpoint() {
        let (k, keys) = key();
        let events = chain(10);
        let cp = Checkpoint::sign(10, events[9].hash, "k1", &k);
        let err = verify_chain(&events[..8], &[cp], &keys).expect_err("must fail");
        assert_eq!(err.seq(), 9);
    }

    #[test]
    fn rewritten_chain_disagrees_with_checkpoint() {
        let (k, keys) = key();
        let events = chain(10);
        let cp = Checkpoint::sign(10, events[9].hash, "k1", &k);
        // An attacker rewrites the whole chain consistently from seq 3 on.
        let mut forged = events.clone();
        forged[2].actor = "mallory".into();
        let mut prev = forged[1].hash;
        for e in forged.iter_mut().skip(2) {
            e.prev_hash = prev;
            e.hash = e.compute_hash();
            prev = e.hash;
        }
        assert_eq!(
            verify_chain(&forged, &[cp], &keys),
            Err(ChainFault::CheckpointMismatch { seq: 10 })
        );
    }

    #[test]
    fn forged_checkpoint_signature_is_found() {
        let (_, keys) = key();
        let events = chain(3);
        let other = SigningKey::from_bytes(&[9u8; 32]);
        let cp = Checkpoint::sign(3, events[2].hash, "k1", &other);
        assert_eq!(
            verify_chain(&events, &[cp], &keys),
            Err(ChainFault::BadCheckpointSignature { seq: 3 })
        );
    }
}
