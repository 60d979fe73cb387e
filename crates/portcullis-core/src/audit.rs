//! The audit chain: canonical encoding of events, their hashes, checkpoints and verification.
//!
//! Invariant 2 of DESIGN.md: `hash = SHA-256(prev_hash ‖ canonical event)`. The canonical form is
//! a JSON array in a fixed field order with the details object's keys sorted (serde_json's
//! default map is ordered), so the same event always hashes the same on every backend.
//! Sequence numbers start at 1 with no gaps; the first event's `prev_hash` is 32 zero bytes.
//! A checkpoint is an Ed25519 signature by the server key over `(seq, hash)`, the previous
//! checkpoint's `(seq, digest)`, its creation time and the checkpoint cadence in force, so
//! checkpoints form a chain of their own: deleting or editing one breaks the next one's link.
//! Verification walks both chains and reports the *first* sequence number where something is
//! wrong. Deleting the newest checkpoints is found by the cadence rules (no more events, or
//! time, after the last checkpoint than its cadence allows) as long as events remain after
//! it; deleting them *with* every event after the remaining last one leaves a shorter chain
//! that is indistinguishable from a tenant that stopped there, which only an anchor outside
//! the database ([`AnchorRecord`], `audit_anchor_file`) can prove wrong.

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
    /// A checkpoint's signature does not verify, it names an unknown key, or it does not
    /// decode (edited row).
    BadCheckpointSignature { seq: i64 },
    /// A checkpoint's hash differs from the chain's hash at that sequence.
    CheckpointMismatch { seq: i64 },
    /// A checkpoint points past the end of the chain (events deleted from the tail).
    TruncatedChain { checkpoint_seq: i64, last_seq: i64 },
    /// The checkpoint at `seq` links to a checkpoint at `missing_seq` that is not there
    /// (deleted).
    CheckpointGap { seq: i64, missing_seq: i64 },
    /// The checkpoint at `seq` does not link to the checkpoint before it (one was inserted,
    /// replaced or moved).
    CheckpointLinkBroken { seq: i64 },
    /// A legacy (unchained) checkpoint after a chained one: the legacy format is only
    /// accepted as a prefix.
    UnlinkedCheckpoint { seq: i64 },
    /// More events follow the last checkpoint (at `checkpoint_seq`) than its cadence allows.
    TooManyUncheckpointedEvents { checkpoint_seq: i64, allowed: i64 },
    /// The events after the last checkpoint (at `checkpoint_seq`) span longer than its cadence
    /// allows; `seq` is the first event beyond the allowed span.
    UncheckpointedTooLong {
        checkpoint_seq: i64,
        seq: i64,
        allowed_seconds: i64,
    },
    /// An anchored checkpoint is not in the database (`last_seq`: where the chain ends).
    AnchoredCheckpointMissing { seq: i64, last_seq: i64 },
    /// More than one event and no checkpoint at all. A tenant checkpoints its head as soon as
    /// its signing key is loaded, so only `tenant.initialised` (written before the key exists)
    /// may stand alone: the checkpoints were deleted.
    NoCheckpoint { events: i64 },
    /// The database's checkpoint at `seq` differs from the anchored one.
    AnchorMismatch { seq: i64 },
}

impl ChainFault {
    /// The first sequence number found bad.
    pub fn seq(&self) -> i64 {
        match self {
            ChainFault::SequenceGap { expected, .. } => *expected,
            ChainFault::BrokenLink { seq }
            | ChainFault::HashMismatch { seq }
            | ChainFault::BadCheckpointSignature { seq }
            | ChainFault::CheckpointMismatch { seq }
            | ChainFault::CheckpointLinkBroken { seq }
            | ChainFault::UnlinkedCheckpoint { seq }
            | ChainFault::UncheckpointedTooLong { seq, .. }
            | ChainFault::AnchorMismatch { seq } => *seq,
            ChainFault::TruncatedChain { last_seq, .. } => last_seq + 1,
            ChainFault::CheckpointGap { missing_seq, .. } => *missing_seq,
            ChainFault::TooManyUncheckpointedEvents {
                checkpoint_seq,
                allowed,
            } => checkpoint_seq.saturating_add(*allowed).saturating_add(1),
            ChainFault::AnchoredCheckpointMissing { seq, last_seq } => {
                (*seq).min(last_seq.saturating_add(1))
            }
            ChainFault::NoCheckpoint { .. } => 2,
        }
    }

    /// A stable reason code (the `kind` of the serialised fault).
    pub fn code(&self) -> &'static str {
        match self {
            ChainFault::SequenceGap { .. } => "sequence_gap",
            ChainFault::BrokenLink { .. } => "broken_link",
            ChainFault::HashMismatch { .. } => "hash_mismatch",
            ChainFault::BadCheckpointSignature { .. } => "bad_checkpoint_signature",
            ChainFault::CheckpointMismatch { .. } => "checkpoint_mismatch",
            ChainFault::TruncatedChain { .. } => "truncated_chain",
            ChainFault::CheckpointGap { .. } => "checkpoint_gap",
            ChainFault::CheckpointLinkBroken { .. } => "checkpoint_link_broken",
            ChainFault::UnlinkedCheckpoint { .. } => "unlinked_checkpoint",
            ChainFault::TooManyUncheckpointedEvents { .. } => "too_many_uncheckpointed_events",
            ChainFault::UncheckpointedTooLong { .. } => "uncheckpointed_too_long",
            ChainFault::AnchoredCheckpointMissing { .. } => "anchored_checkpoint_missing",
            ChainFault::AnchorMismatch { .. } => "anchor_mismatch",
            ChainFault::NoCheckpoint { .. } => "no_checkpoint",
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
            ChainFault::CheckpointGap { seq, missing_seq } => write!(
                f,
                "checkpoint at sequence {missing_seq} is missing (deleted): the checkpoint at {seq} links to it"
            ),
            ChainFault::CheckpointLinkBroken { seq } => write!(
                f,
                "checkpoint at sequence {seq}: does not link to the checkpoint before it"
            ),
            ChainFault::UnlinkedCheckpoint { seq } => write!(
                f,
                "checkpoint at sequence {seq}: unchained (legacy) checkpoint after chained ones"
            ),
            ChainFault::TooManyUncheckpointedEvents {
                checkpoint_seq,
                allowed,
            } => write!(
                f,
                "sequence {}: more than {allowed} events after the last checkpoint (at {checkpoint_seq}; newer checkpoints deleted?)",
                self.seq(),
            ),
            ChainFault::UncheckpointedTooLong {
                checkpoint_seq,
                seq,
                allowed_seconds,
            } => write!(
                f,
                "sequence {seq}: the events after the last checkpoint (at {checkpoint_seq}) span more than {allowed_seconds} seconds (newer checkpoints deleted?)"
            ),
            ChainFault::AnchoredCheckpointMissing { seq, last_seq } => write!(
                f,
                "the anchored checkpoint at sequence {seq} is not in the database (chain ends at {last_seq}): history was deleted"
            ),
            ChainFault::AnchorMismatch { seq } => write!(
                f,
                "checkpoint at sequence {seq}: differs from the anchored checkpoint"
            ),
            ChainFault::NoCheckpoint { events } => write!(
                f,
                "{events} events and no checkpoint at all (checkpoints deleted?)"
            ),
        }
    }
}

/// Summary of a verification: complete when the chain is intact, the progress up to the
/// fault otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    /// Events walked (all of them when intact).
    pub events: i64,
    pub last_seq: i64,
    pub last_hash: String,
    /// Signed checkpoints matched against the chain along the way.
    pub checkpoints: usize,
    /// How many of the checkpoints are legacy (unchained, written before schema 0016).
    #[serde(default)]
    pub legacy_checkpoints: usize,
    /// The newest checkpoint's sequence number, if any.
    #[serde(default)]
    pub last_checkpoint_seq: Option<i64>,
    /// Events after the newest checkpoint.
    #[serde(default)]
    pub events_after_last_checkpoint: i64,
    /// Anchored checkpoints found in the database, identical.
    #[serde(default)]
    pub anchors_matched: usize,
    /// The newest of them.
    #[serde(default)]
    pub anchored_seq: Option<i64>,
}

/// The outcome of a verification: the report, and the first fault if there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub report: ChainReport,
    pub fault: Option<ChainFault>,
}

impl Verification {
    pub fn into_result(self) -> Result<ChainReport, ChainFault> {
        match self.fault {
            None => Ok(self.report),
            Some(f) => Err(f),
        }
    }
}

/// Checks every checkpoint's signature against the known public keys (`key_id → key`) and
/// the chain they form, in sequence order: legacy checkpoints only as a prefix, each chained
/// one linked to the checkpoint before it (or to genesis). Returns the number of legacy
/// checkpoints, or the first fault.
pub fn verify_checkpoint_chain(
    checkpoints: &[Checkpoint],
    keys: &std::collections::HashMap<String, VerifyingKey>,
) -> Result<usize, ChainFault> {
    let mut sorted: Vec<&Checkpoint> = checkpoints.iter().collect();
    sorted.sort_by_key(|c| c.seq);
    let mut prev: Option<(i64, [u8; 32])> = None;
    let mut chained_seen = false;
    let mut legacy = 0;
    for c in sorted {
        if !keys.get(&c.key_id).is_some_and(|k| c.verify(k)) {
            return Err(ChainFault::BadCheckpointSignature { seq: c.seq });
        }
        match &c.link {
            None if chained_seen => return Err(ChainFault::UnlinkedCheckpoint { seq: c.seq }),
            None => legacy += 1,
            Some(link) => {
                let (expected_seq, expected_digest) =
                    prev.unwrap_or((0, GENESIS_CHECKPOINT_DIGEST));
                if link.prev_seq > expected_seq {
                    // It was signed after a checkpoint that is no longer here.
                    return Err(ChainFault::CheckpointGap {
                        seq: c.seq,
                        missing_seq: link.prev_seq,
                    });
                }
                if link.prev_seq != expected_seq || link.prev_digest != expected_digest {
                    return Err(ChainFault::CheckpointLinkBroken { seq: c.seq });
                }
                chained_seen = true;
            }
        }
        if prev.is_some_and(|(s, _)| s == c.seq) {
            return Err(ChainFault::CheckpointLinkBroken { seq: c.seq });
        }
        prev = Some((c.seq, c.digest()));
    }
    Ok(legacy)
}

/// Incremental verifier: built from the checkpoints (their chain is checked at once), fed
/// events in sequence order (a stream of any length; memory stays constant), then
/// [`ChainVerifier::finish`]ed with the anchored checkpoints, if any.
#[derive(Debug)]
pub struct ChainVerifier {
    expected_seq: i64,
    prev_hash: [u8; 32],
    fault: Option<ChainFault>,
    /// `seq → (hash, digest)` of every checkpoint; hashes are checked as the walk passes.
    checkpoints: std::collections::BTreeMap<i64, ([u8; 32], [u8; 32])>,
    checked_checkpoints: usize,
    legacy_checkpoints: usize,
    /// The newest checkpoint's sequence number, 0 if there is none.
    last_checkpoint: i64,
    /// The cadence the events after it are judged by.
    cadence: CheckpointCadence,
    /// Time of the first event after the newest checkpoint.
    tail_started_us: Option<i64>,
}

impl ChainVerifier {
    /// `default_cadence` judges the events after the last checkpoint when that checkpoint
    /// does not record one (legacy, or no checkpoint at all): the verifier's own setting.
    pub fn new(
        checkpoints: &[Checkpoint],
        keys: &std::collections::HashMap<String, VerifyingKey>,
        default_cadence: CheckpointCadence,
    ) -> Self {
        let (legacy_checkpoints, fault) = match verify_checkpoint_chain(checkpoints, keys) {
            Ok(n) => (n, None),
            Err(f) => (0, Some(f)),
        };
        let newest = checkpoints.iter().max_by_key(|c| c.seq);
        Self {
            expected_seq: 1,
            prev_hash: GENESIS_HASH,
            fault,
            checkpoints: checkpoints
                .iter()
                .map(|c| (c.seq, (c.hash, c.digest())))
                .collect(),
            checked_checkpoints: 0,
            legacy_checkpoints,
            last_checkpoint: newest.map_or(0, |c| c.seq),
            cadence: newest
                .and_then(|c| c.link.map(|l| l.cadence))
                .unwrap_or(default_cadence),
            tail_started_us: None,
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
            .is_some_and(|(h, _)| *h != event.hash)
        {
            Some(ChainFault::CheckpointMismatch { seq: event.seq })
        } else {
            self.judge_tail(event)
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

    /// Records a fault found outside the walk (a row that does not even decode is as bad as
    /// an edited one); of two faults, the one at the lower sequence number stands (this one
    /// on a tie: it names the row itself).
    pub fn fail(&mut self, fault: ChainFault) {
        if self.fault.as_ref().is_none_or(|f| fault.seq() <= f.seq()) {
            self.fault = Some(fault);
        }
    }

    /// The cadence rules for an event after the newest checkpoint.
    fn judge_tail(&mut self, event: &AuditEvent) -> Option<ChainFault> {
        if event.seq <= self.last_checkpoint || self.checkpoints.is_empty() {
            // With none at all, `finish` reports that instead.
            return None;
        }
        let allowed = self.cadence.max_events_after_checkpoint();
        if event.seq - self.last_checkpoint > allowed {
            return Some(ChainFault::TooManyUncheckpointedEvents {
                checkpoint_seq: self.last_checkpoint,
                allowed,
            });
        }
        let started = *self.tail_started_us.get_or_insert(event.time_us);
        let allowed_seconds = self.cadence.max_seconds_after_checkpoint();
        if event.time_us.saturating_sub(started) > allowed_seconds.saturating_mul(1_000_000) {
            return Some(ChainFault::UncheckpointedTooLong {
                checkpoint_seq: self.last_checkpoint,
                seq: event.seq,
                allowed_seconds,
            });
        }
        None
    }

    /// Ends the walk; `anchors` are checkpoints read back from outside the database
    /// ([`parse_anchor_lines`]): each must be in the database, identical, and reached by the
    /// chain.
    pub fn finish(self, anchors: &[Checkpoint]) -> Verification {
        let last_seq = self.expected_seq - 1;
        let mut report = ChainReport {
            events: last_seq,
            last_seq,
            last_hash: hex::encode(self.prev_hash),
            checkpoints: self.checked_checkpoints,
            legacy_checkpoints: self.legacy_checkpoints,
            last_checkpoint_seq: (self.last_checkpoint > 0).then_some(self.last_checkpoint),
            events_after_last_checkpoint: (last_seq - self.last_checkpoint).max(0),
            anchors_matched: 0,
            anchored_seq: None,
        };
        let fault = self.fault.clone().or_else(|| {
            if self.checkpoints.is_empty() && last_seq > 1 {
                return Some(ChainFault::NoCheckpoint { events: last_seq });
            }
            if self.last_checkpoint > last_seq {
                return Some(ChainFault::TruncatedChain {
                    checkpoint_seq: self.last_checkpoint,
                    last_seq,
                });
            }
            let mut sorted: Vec<&Checkpoint> = anchors.iter().collect();
            sorted.sort_by_key(|a| a.seq);
            for a in sorted {
                match self.checkpoints.get(&a.seq) {
                    None => {
                        return Some(ChainFault::AnchoredCheckpointMissing {
                            seq: a.seq,
                            last_seq,
                        });
                    }
                    Some((hash, digest)) if *hash != a.hash || *digest != a.digest() => {
                        return Some(ChainFault::AnchorMismatch { seq: a.seq });
                    }
                    Some(_) => {
                        report.anchors_matched += 1;
                        report.anchored_seq = Some(a.seq);
                    }
                }
            }
            None
        });
        Verification { report, fault }
    }
}

/// Verifies a complete chain held in memory under the default cadence, without anchors.
pub fn verify_chain(
    events: &[AuditEvent],
    checkpoints: &[Checkpoint],
    keys: &std::collections::HashMap<String, VerifyingKey>,
) -> Result<ChainReport, ChainFault> {
    verify_chain_with(events, checkpoints, keys, CheckpointCadence::default(), &[]).into_result()
}

/// Verifies a complete chain held in memory.
pub fn verify_chain_with(
    events: &[AuditEvent],
    checkpoints: &[Checkpoint],
    keys: &std::collections::HashMap<String, VerifyingKey>,
    cadence: CheckpointCadence,
    anchors: &[Checkpoint],
) -> Verification {
    let mut v = ChainVerifier::new(checkpoints, keys, cadence);
    for e in events {
        if !v.push(e) {
            break;
        }
    }
    v.finish(anchors)
}

/// One line of an anchor file (`audit_anchor_file`): a chained checkpoint as written outside
/// the database, with its digest. It carries every signed field, so it can be checked
/// against the tenant's public key without the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AnchorRecord {
    pub seq: i64,
    /// Hex SHA-256 chain hash at `seq`.
    pub hash: String,
    /// Hex digest of the checkpoint (what the next checkpoint links to).
    pub digest: String,
    pub prev_seq: i64,
    pub prev_digest: String,
    pub key_id: String,
    /// Hex Ed25519 signature.
    pub signature: String,
    /// When the checkpoint was made (RFC 3339, UTC, microseconds).
    pub time: String,
    /// The cadence in force: a checkpoint after this many events…
    pub checkpoint_events: i64,
    /// …or seconds.
    pub checkpoint_seconds: i64,
}

/// Why an anchor record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    #[error("line {line}: not an anchor record")]
    NotARecord { line: usize },
    #[error("line {line}: {field} is malformed")]
    Malformed { line: usize, field: &'static str },
    #[error("line {line}: the digest does not match the record's fields")]
    DigestMismatch { line: usize },
}

fn hex_array<const N: usize>(
    v: &str,
    line: usize,
    field: &'static str,
) -> Result<[u8; N], AnchorError> {
    hex::decode(v)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(AnchorError::Malformed { line, field })
}

impl AnchorRecord {
    /// The record of a chained checkpoint (`None` for a legacy one: never anchored).
    pub fn of(cp: &Checkpoint) -> Option<Self> {
        let link = cp.link?;
        let time =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(link.created_at_us) * 1_000)
                .ok()?
                .format(&time::format_description::well_known::Rfc3339)
                .ok()?;
        Some(Self {
            seq: cp.seq,
            hash: hex::encode(cp.hash),
            digest: hex::encode(cp.digest()),
            prev_seq: link.prev_seq,
            prev_digest: hex::encode(link.prev_digest),
            key_id: cp.key_id.clone(),
            signature: hex::encode(cp.signature),
            time,
            checkpoint_events: link.cadence.events,
            checkpoint_seconds: link.cadence.seconds,
        })
    }

    /// The checkpoint the record describes, checked to agree with its own digest. `line`
    /// names the record in errors.
    pub fn checkpoint(&self, line: usize) -> Result<Checkpoint, AnchorError> {
        let created =
            OffsetDateTime::parse(&self.time, &time::format_description::well_known::Rfc3339)
                .map_err(|_| AnchorError::Malformed {
                    line,
                    field: "time",
                })?;
        let cp = Checkpoint {
            seq: self.seq,
            hash: hex_array(&self.hash, line, "hash")?,
            key_id: self.key_id.clone(),
            signature: hex_array(&self.signature, line, "signature")?,
            link: Some(CheckpointLink {
                prev_seq: self.prev_seq,
                prev_digest: hex_array(&self.prev_digest, line, "prev_digest")?,
                created_at_us: (created.unix_timestamp_nanos() / 1_000) as i64,
                cadence: CheckpointCadence {
                    events: self.checkpoint_events,
                    seconds: self.checkpoint_seconds,
                },
            }),
        };
        let digest: [u8; 32] = hex_array(&self.digest, line, "digest")?;
        if cp.digest() != digest {
            return Err(AnchorError::DigestMismatch { line });
        }
        Ok(cp)
    }
}

/// What an anchor file holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedAnchors {
    pub anchors: Vec<Checkpoint>,
    /// Lines that are the start of a record cut short (a crash mid-append), skipped.
    pub torn_lines: usize,
}

/// Reads an anchor file: one JSON record per line, blank lines skipped. A line that begins
/// a JSON object but is not valid JSON is a torn append (the writer crashed mid-line; the next
/// append starts a new line) and is skipped; anything else that is not a self-consistent
/// record is an error (line numbers from 1), so a wrong or edited file is never read as "no
/// anchors".
pub fn parse_anchor_lines(text: &str) -> Result<ParsedAnchors, AnchorError> {
    let mut out = ParsedAnchors::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Value>(line) {
            Err(_) if line.starts_with('{') => out.torn_lines += 1,
            Err(_) => return Err(AnchorError::NotARecord { line: i + 1 }),
            Ok(v) => {
                let record: AnchorRecord = serde_json::from_value(v)
                    .map_err(|_| AnchorError::NotARecord { line: i + 1 })?;
                out.anchors.push(record.checkpoint(i + 1)?);
            }
        }
    }
    Ok(out)
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
        let cp = Checkpoint::sign_legacy(5, events[4].hash, "k1", &k);
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
        let cp = Checkpoint::sign_legacy(10, events[9].hash, "k1", &k);
        let err = verify_chain(&events[..8], &[cp], &keys).expect_err("must fail");
        assert_eq!(err.seq(), 9);
    }

    #[test]
    fn rewritten_chain_disagrees_with_checkpoint() {
        let (k, keys) = key();
        let events = chain(10);
        let cp = Checkpoint::sign_legacy(10, events[9].hash, "k1", &k);
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
        let cp = Checkpoint::sign_legacy(3, events[2].hash, "k1", &other);
        assert_eq!(
            verify_chain(&events, &[cp], &keys),
            Err(ChainFault::BadCheckpointSignature { seq: 3 })
        );
    }

    // ---- chained checkpoints, cadence rules and anchors

    const CADENCE: CheckpointCadence = CheckpointCadence {
        events: 10,
        seconds: 60,
    };

    /// Chained checkpoints at `seqs` over `events`, made at the event's time.
    fn chained(events: &[AuditEvent], seqs: &[i64], k: &SigningKey) -> Vec<Checkpoint> {
        chained_after(None, events, seqs, k)
    }

    fn chained_after(
        prev: Option<Checkpoint>,
        events: &[AuditEvent],
        seqs: &[i64],
        k: &SigningKey,
    ) -> Vec<Checkpoint> {
        let mut prev = prev;
        let mut out = Vec::new();
        for &seq in seqs {
            let e = &events[(seq - 1) as usize];
            let link = CheckpointLink::after(prev.as_ref(), e.time_us, CADENCE);
            let cp = Checkpoint::sign(seq, e.hash, link, "k1", k);
            prev = Some(cp.clone());
            out.push(cp);
        }
        out
    }

    fn verify(
        events: &[AuditEvent],
        cps: &[Checkpoint],
        keys: &HashMap<String, VerifyingKey>,
        anchors: &[Checkpoint],
    ) -> Verification {
        verify_chain_with(events, cps, keys, CADENCE, anchors)
    }

    /// A chain whose events are `gaps[i]` seconds apart.
    fn chain_with_gaps(gaps: &[i64]) -> Vec<AuditEvent> {
        let mut prev = GENESIS_HASH;
        let mut t = 1_700_000_000;
        let mut out = Vec::new();
        for (i, gap) in gaps.iter().enumerate() {
            t += gap;
            let e = NewAuditEvent::new("system", "test.event", "t").seal(
                i as i64 + 1,
                OffsetDateTime::from_unix_timestamp(t).expect("time"),
                prev,
            );
            prev = e.hash;
            out.push(e);
        }
        out
    }

    #[test]
    fn chained_checkpoints_verify() {
        let (k, keys) = key();
        let events = chain(30);
        let cps = chained(&events, &[10, 20, 30], &k);
        let v = verify(&events, &cps, &keys, &[]);
        assert_eq!(v.fault, None);
        assert_eq!(v.report.checkpoints, 3);
        assert_eq!(v.report.last_checkpoint_seq, Some(30));
        assert_eq!(v.report.events_after_last_checkpoint, 0);
        assert_eq!(cps[0].link.map(|l| l.prev_seq), Some(0));
        assert_eq!(
            cps[0].link.map(|l| l.prev_digest),
            Some(GENESIS_CHECKPOINT_DIGEST)
        );
    }

    #[test]
    fn deleted_middle_checkpoint_is_a_gap() {
        let (k, keys) = key();
        let events = chain(30);
        let mut cps = chained(&events, &[10, 20, 30], &k);
        cps.remove(1);
        let f = verify(&events, &cps, &keys, &[]).fault.expect("gap");
        assert_eq!(
            f,
            ChainFault::CheckpointGap {
                seq: 30,
                missing_seq: 20
            }
        );
        assert_eq!(f.seq(), 20);
        assert_eq!(f.code(), "checkpoint_gap");
    }

    #[test]
    fn deleted_first_checkpoint_is_a_gap() {
        let (k, keys) = key();
        let events = chain(30);
        let mut cps = chained(&events, &[10, 20], &k);
        cps.remove(0);
        assert_eq!(
            verify(&events, &cps, &keys, &[]).fault,
            Some(ChainFault::CheckpointGap {
                seq: 20,
                missing_seq: 10
            })
        );
    }

    #[test]
    fn edited_chained_checkpoint_fails_its_signature() {
        let (k, keys) = key();
        let events = chain(30);
        for edit in 0..4 {
            let mut cps = chained(&events, &[10, 20], &k);
            let link = cps[1].link.as_mut().expect("chained");
            match edit {
                0 => link.created_at_us += 1,
                1 => link.cadence.events = 1_000_000,
                2 => link.prev_digest[0] ^= 1,
                _ => cps[1].key_id = "k2".into(),
            }
            assert_eq!(
                verify(&events, &cps, &keys, &[]).fault,
                Some(ChainFault::BadCheckpointSignature { seq: 20 }),
                "edit {edit}"
            );
        }
    }

    #[test]
    fn a_signed_checkpoint_with_a_wrong_link_is_found() {
        let (k, keys) = key();
        let events = chain(30);
        let mut cps = chained(&events, &[10], &k);
        // Signed by the right key, but linking to a checkpoint 10 that is not this one.
        let wrong = CheckpointLink {
            prev_seq: 10,
            prev_digest: [7u8; 32],
            created_at_us: events[19].time_us,
            cadence: CADENCE,
        };
        cps.push(Checkpoint::sign(20, events[19].hash, wrong, "k1", &k));
        assert_eq!(
            verify(&events, &cps, &keys, &[]).fault,
            Some(ChainFault::CheckpointLinkBroken { seq: 20 })
        );
        // Linking back past an existing checkpoint (one inserted between them) too.
        let mut cps = chained(&events, &[10], &k);
        cps.extend(chained(&events, &[20], &k)); // links to genesis, skipping 10
        assert_eq!(
            verify(&events, &cps, &keys, &[]).fault,
            Some(ChainFault::CheckpointLinkBroken { seq: 20 })
        );
    }

    #[test]
    fn legacy_checkpoints_verify_as_a_prefix() {
        let (k, keys) = key();
        let events = chain(30);
        let legacy = [
            Checkpoint::sign_legacy(5, events[4].hash, "k1", &k),
            Checkpoint::sign_legacy(10, events[9].hash, "k1", &k),
        ];
        let chained = chained_after(Some(legacy[1].clone()), &events, &[20, 30], &k);
        let all: Vec<Checkpoint> = legacy.iter().chain(chained.iter()).cloned().collect();
        let v = verify(&events, &all, &keys, &[]);
        assert_eq!(v.fault, None);
        assert_eq!(v.report.legacy_checkpoints, 2);
        assert_eq!(v.report.checkpoints, 4);

        // Deleting the last legacy checkpoint (or all of them) is found by the first link.
        let without_last: Vec<Checkpoint> = all.iter().filter(|c| c.seq != 10).cloned().collect();
        assert_eq!(
            verify(&events, &without_last, &keys, &[]).fault,
            Some(ChainFault::CheckpointGap {
                seq: 20,
                missing_seq: 10
            })
        );
        let no_legacy: Vec<Checkpoint> = chained.clone();
        assert_eq!(
            verify(&events, &no_legacy, &keys, &[])
                .fault
                .map(|f| f.seq()),
            Some(10)
        );
        // A legacy checkpoint after a chained one is refused.
        let mut late = all.clone();
        late.push(Checkpoint::sign_legacy(30, events[29].hash, "k1", &k));
        late.retain(|c| c.seq != 30 || c.is_legacy());
        assert_eq!(
            verify(&events, &late, &keys, &[]).fault,
            Some(ChainFault::UnlinkedCheckpoint { seq: 30 })
        );
    }

    #[test]
    fn events_with_no_checkpoint_at_all_are_broken() {
        let (_, keys) = key();
        let events = chain(5);
        let f = verify(&events, &[], &keys, &[]).fault.expect("uncovered");
        assert_eq!(f, ChainFault::NoCheckpoint { events: 5 });
        assert_eq!((f.seq(), f.code()), (2, "no_checkpoint"));
        // `tenant.initialised` alone (written before the key exists) is fine.
        assert_eq!(verify(&events[..1], &[], &keys, &[]).fault, None);
        // A concrete edit is still named first.
        let mut edited = events.clone();
        edited[3].actor = "mallory".into();
        assert_eq!(
            verify(&edited, &[], &keys, &[]).fault,
            Some(ChainFault::HashMismatch { seq: 4 })
        );
    }

    #[test]
    fn too_many_events_after_the_last_checkpoint() {
        let (k, keys) = key();
        let events = chain(150);
        let cps = chained(&events, &[10, 20], &k);
        let f = verify(&events, &cps, &keys, &[]).fault.expect("uncovered");
        assert_eq!(
            f,
            ChainFault::TooManyUncheckpointedEvents {
                checkpoint_seq: 20,
                allowed: 110
            }
        );
        assert_eq!(f.seq(), 131);
    }

    #[test]
    fn the_last_checkpoints_cadence_judges_the_tail() {
        let (k, keys) = key();
        let events = chain(150);
        let mut prev = None;
        let mut cps = Vec::new();
        for seq in [10, 20] {
            let e = &events[seq as usize - 1];
            let cadence = CheckpointCadence {
                events: 500,
                seconds: 600,
            };
            let cp = Checkpoint::sign(
                seq,
                e.hash,
                CheckpointLink::after(prev.as_ref(), e.time_us, cadence),
                "k1",
                &k,
            );
            prev = Some(cp.clone());
            cps.push(cp);
        }
        // 130 events after it: more than the verifier's default (10 + 100), within the
        // recorded 500 + 100.
        assert_eq!(verify(&events, &cps, &keys, &[]).fault, None);
    }

    #[test]
    fn events_after_the_last_checkpoint_spanning_too_long() {
        let (k, keys) = key();
        let events = chain_with_gaps(&[1; 100]);
        let cps = chained(&events, &[5], &k);
        // Allowed: 2 × 60 + 60 = 180 s; the tail starts at seq 6, one second apart.
        let short = &events[..100];
        assert_eq!(verify(short, &cps, &keys, &[]).fault, None);
        let mut gaps = vec![1; 100];
        gaps[60] = 200;
        let events = chain_with_gaps(&gaps);
        let cps = chained(&events, &[5], &k);
        let f = verify(&events, &cps, &keys, &[]).fault.expect("too long");
        assert_eq!(
            f,
            ChainFault::UncheckpointedTooLong {
                checkpoint_seq: 5,
                seq: 61,
                allowed_seconds: 180
            }
        );
    }

    #[test]
    fn an_idle_gap_before_the_tail_does_not_count() {
        let (k, keys) = key();
        // A day of silence after the checkpoint at 5, then a short burst: a stopped or idle
        // tenant that came back.
        let mut gaps = vec![1; 20];
        gaps[5] = 86_400;
        let events = chain_with_gaps(&gaps);
        let cps = chained(&events, &[5], &k);
        assert_eq!(verify(&events, &cps, &keys, &[]).fault, None);
    }

    #[test]
    fn truncation_to_a_checkpoint_is_caught_only_by_the_anchor() {
        let (k, keys) = key();
        let events = chain(30);
        let cps = chained(&events, &[10, 20, 30], &k);
        let anchored = vec![cps[2].clone()];
        assert_eq!(
            verify(&events, &cps, &keys, &anchored)
                .report
                .anchors_matched,
            1
        );
        // Delete the newest checkpoint and every event after the remaining last one.
        let truncated_events = &events[..20];
        let truncated_cps = &cps[..2];
        // Without the anchor the shorter chain is a tenant that stopped at 20.
        assert_eq!(
            verify(truncated_events, truncated_cps, &keys, &[]).fault,
            None
        );
        let f = verify(truncated_events, truncated_cps, &keys, &anchored)
            .fault
            .expect("anchored");
        assert_eq!(
            f,
            ChainFault::AnchoredCheckpointMissing {
                seq: 30,
                last_seq: 20
            }
        );
        assert_eq!(f.seq(), 21);
    }

    #[test]
    fn a_rewritten_checkpoint_disagrees_with_its_anchor() {
        let (k, keys) = key();
        let events = chain(30);
        let cps = chained(&events, &[10, 20], &k);
        // Someone holding the key re-signs checkpoint 20 with another time: the digest moves.
        let mut other = chained(&events, &[10, 20], &k);
        let link = CheckpointLink::after(Some(&other[0]), events[19].time_us + 5, CADENCE);
        other[1] = Checkpoint::sign(20, events[19].hash, link, "k1", &k);
        assert_eq!(
            verify(&events, &other, &keys, &[cps[1].clone()]).fault,
            Some(ChainFault::AnchorMismatch { seq: 20 })
        );
    }

    #[test]
    fn anchor_records_round_trip_and_refuse_edits() {
        let (k, _) = key();
        let events = chain(30);
        let cps = chained(&events, &[10, 20], &k);
        let lines: Vec<String> = cps
            .iter()
            .map(|c| serde_json::to_string(&AnchorRecord::of(c).expect("chained")).expect("json"))
            .collect();
        let text = format!("{}\n\n{}\n", lines[0], lines[1]);
        assert_eq!(parse_anchor_lines(&text).expect("parses").anchors, cps);
        // A torn line (a crash mid-append, finished by the next append) is skipped…
        let torn = format!("{}\n{}\n{}", &lines[1][..40], lines[0], lines[1]);
        let parsed = parse_anchor_lines(&torn).expect("parses");
        assert_eq!(parsed.anchors, cps);
        assert_eq!(parsed.torn_lines, 1);
        // …but not a line that is not a record at all, nor an edited record.
        assert_eq!(
            parse_anchor_lines("seq=20 hash=ab\n"),
            Err(AnchorError::NotARecord { line: 1 })
        );
        assert_eq!(
            parse_anchor_lines("{\"seq\": 20}\n"),
            Err(AnchorError::NotARecord { line: 1 })
        );
        let edited = lines[1].replace("\"seq\":20", "\"seq\":21");
        assert_eq!(
            parse_anchor_lines(&format!("{edited}\n")),
            Err(AnchorError::DigestMismatch { line: 1 })
        );
        assert!(AnchorRecord::of(&Checkpoint::sign_legacy(1, events[0].hash, "k1", &k)).is_none());
    }

    proptest::proptest! {
        /// Any chain of checkpoints verifies; deleting any one but the newest is a gap at
        /// exactly that checkpoint; flipping any bit of any checkpoint is found.
        #[test]
        fn checkpoint_chain_finds_every_deletion_and_edit(
            positions in proptest::collection::btree_set(1i64..=60, 2..12),
            victim in 0usize..64,
            bit in 0usize..(8 * 32),
            field in 0u8..4,
        ) {
            let (k, keys) = key();
            let events = chain(60);
            let seqs: Vec<i64> = positions.into_iter().collect();
            let cps = chained(&events, &seqs, &k);
            proptest::prop_assert_eq!(verify(&events, &cps, &keys, &[]).fault, None);

            let i = victim % (cps.len() - 1);
            let mut deleted = cps.clone();
            let gone = deleted.remove(i);
            proptest::prop_assert_eq!(
                verify(&events, &deleted, &keys, &[]).fault.map(|f| f.seq()),
                Some(gone.seq)
            );

            let j = victim % cps.len();
            let mut edited = cps.clone();
            let c = &mut edited[j];
            match field {
                0 => c.hash[bit / 8] ^= 1 << (bit % 8),
                1 => c.signature[bit / 8] ^= 1 << (bit % 8),
                2 => if let Some(l) = c.link.as_mut() { l.prev_digest[bit / 8] ^= 1 << (bit % 8) },
                _ => if let Some(l) = c.link.as_mut() { l.created_at_us ^= 1 << (bit % 63) },
            }
            proptest::prop_assert!(verify(&events, &edited, &keys, &[]).fault.is_some());
            // And every intact checkpoint matches its own anchor record.
            proptest::prop_assert!(
                verify(&events, &cps, &keys, &[cps[j].clone()]).fault.is_none()
            );
        }
    }
}
