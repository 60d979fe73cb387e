//! Signed checkpoints, the link each makes to the one before it, and the cadence they are
//! written at. Invariant: a chained checkpoint signs `(seq, hash)`, the previous checkpoint's
//! `(seq, digest)`, its time and its cadence, so deleting or editing one breaks the next link.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How often checkpoints are written: after `events` events or `seconds` seconds, whichever
/// comes first. A chained checkpoint records the cadence in force when it was written, so
/// verification (also offline) knows how much history may lawfully follow the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointCadence {
    pub events: i64,
    pub seconds: i64,
}

impl Default for CheckpointCadence {
    fn default() -> Self {
        Self {
            events: 1000,
            seconds: 60,
        }
    }
}

/// Events allowed after the last checkpoint beyond the cadence's count. The writer checkpoints
/// at the end of the batch that reaches the count, so a committed chain has fewer than
/// `events` after its last checkpoint; the margin is slack for a batch in flight on another
/// replica and keeps a small mismatch between replicas' settings from raising a false alarm.
pub const TAIL_EVENTS_MARGIN: i64 = 100;
/// Seconds allowed beyond twice the cadence's interval (see
/// [`CheckpointCadence::max_seconds_after_checkpoint`]): clock differences between replicas.
pub const TAIL_SECONDS_MARGIN: i64 = 60;

impl CheckpointCadence {
    /// Most events that may follow the last checkpoint.
    pub fn max_events_after_checkpoint(self) -> i64 {
        self.events.max(1).saturating_add(TAIL_EVENTS_MARGIN)
    }

    /// Longest time, in seconds, that the events after the last checkpoint may span (oldest
    /// to newest). Every running writer checkpoints an uncovered head within one interval
    /// (its timer also fires when idle, and a wall-clock jump such as a resumed VM makes it
    /// due at once); the batch in progress when it fires may take up to another. So twice the
    /// interval plus [`TAIL_SECONDS_MARGIN`]. Measured between events, not against "now": an
    /// idle or stopped tenant does not age its tail, and a clean stop ends on a checkpoint.
    pub fn max_seconds_after_checkpoint(self) -> i64 {
        self.seconds
            .max(1)
            .saturating_mul(2)
            .saturating_add(TAIL_SECONDS_MARGIN)
    }
}

/// The `prev_digest` of the first chained checkpoint when no checkpoint precedes it.
pub const GENESIS_CHECKPOINT_DIGEST: [u8; 32] = [0u8; 32];

/// What a chained checkpoint signs besides `(seq, hash)`: the previous checkpoint, when it
/// was made and the cadence then in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointLink {
    /// Sequence number of the previous checkpoint (0 for the first).
    pub prev_seq: i64,
    /// [`Checkpoint::digest`] of the previous checkpoint ([`GENESIS_CHECKPOINT_DIGEST`] for the
    /// first).
    pub prev_digest: [u8; 32],
    /// Microseconds since the Unix epoch, UTC.
    pub created_at_us: i64,
    pub cadence: CheckpointCadence,
}

impl CheckpointLink {
    /// The link of a checkpoint that follows `prev` (`None`: the first checkpoint). A legacy
    /// `prev` is linked to like any other, which is how the legacy prefix is sealed.
    pub fn after(
        prev: Option<&Checkpoint>,
        created_at_us: i64,
        cadence: CheckpointCadence,
    ) -> Self {
        let (prev_seq, prev_digest) = match prev {
            Some(p) => (p.seq, p.digest()),
            None => (0, GENESIS_CHECKPOINT_DIGEST),
        };
        Self {
            prev_seq,
            prev_digest,
            created_at_us,
            cadence,
        }
    }
}

/// A signed statement "the chain up to `seq` ends in `hash`", chained to the checkpoint
/// before it.
///
/// Checkpoints written before schema 0016 are *legacy*: they sign `(seq, hash)` only
/// (`link: None`). They are verified as a prefix: no legacy checkpoint may follow a chained
/// one, and the first chained checkpoint links to the last legacy one, so deleting that one or
/// all of them is found. A legacy checkpoint in the middle of the prefix can be deleted
/// unnoticed, but the events it covered stay pinned by the hash chain up to the first chained
/// checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: [u8; 32],
    pub key_id: String,
    pub signature: [u8; 64],
    /// `None` for a legacy checkpoint.
    pub link: Option<CheckpointLink>,
}

const CHECKPOINT_V1: &[u8] = b"portcullis-audit-checkpoint-v1";
const CHECKPOINT_V2: &[u8] = b"portcullis-audit-checkpoint-v2";
const CHECKPOINT_DIGEST: &[u8] = b"portcullis-audit-checkpoint-digest";

/// The message a checkpoint signature covers. Fixed-width fields, the key id last with its
/// length, so no two different checkpoints share a message.
fn checkpoint_message(
    seq: i64,
    hash: &[u8; 32],
    key_id: &str,
    link: Option<&CheckpointLink>,
) -> Vec<u8> {
    let Some(link) = link else {
        let mut m = CHECKPOINT_V1.to_vec();
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(hash);
        return m;
    };
    let mut m = CHECKPOINT_V2.to_vec();
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m.extend_from_slice(&link.prev_seq.to_be_bytes());
    m.extend_from_slice(&link.prev_digest);
    m.extend_from_slice(&link.created_at_us.to_be_bytes());
    m.extend_from_slice(&link.cadence.events.to_be_bytes());
    m.extend_from_slice(&link.cadence.seconds.to_be_bytes());
    m.extend_from_slice(&(key_id.len() as u64).to_be_bytes());
    m.extend_from_slice(key_id.as_bytes());
    m
}

impl Checkpoint {
    /// A chained checkpoint at `seq` whose chain hash is `hash`.
    pub fn sign(
        seq: i64,
        hash: [u8; 32],
        link: CheckpointLink,
        key_id: &str,
        key: &SigningKey,
    ) -> Self {
        let signature = key
            .sign(&checkpoint_message(seq, &hash, key_id, Some(&link)))
            .to_bytes();
        Self {
            seq,
            hash,
            key_id: key_id.to_owned(),
            signature,
            link: Some(link),
        }
    }

    /// A legacy checkpoint as written before schema 0016 (for tests of the legacy prefix).
    pub fn sign_legacy(seq: i64, hash: [u8; 32], key_id: &str, key: &SigningKey) -> Self {
        let signature = key
            .sign(&checkpoint_message(seq, &hash, key_id, None))
            .to_bytes();
        Self {
            seq,
            hash,
            key_id: key_id.to_owned(),
            signature,
            link: None,
        }
    }

    pub fn is_legacy(&self) -> bool {
        self.link.is_none()
    }

    fn message(&self) -> Vec<u8> {
        checkpoint_message(self.seq, &self.hash, &self.key_id, self.link.as_ref())
    }

    pub fn verify(&self, key: &VerifyingKey) -> bool {
        key.verify(&self.message(), &Signature::from_bytes(&self.signature))
            .is_ok()
    }

    /// What the next checkpoint links to and what an anchor records:
    /// `SHA-256(tag ‖ signed message ‖ signature)`, so it pins everything the checkpoint says
    /// (and, through `prev_digest`, every checkpoint before it).
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(CHECKPOINT_DIGEST);
        h.update(self.message());
        h.update(self.signature);
        h.finalize().into()
    }
}
