//! Verification: the event chain walked against the checkpoint chain, incrementally or in
//! memory. Invariant: the *first* fault by sequence number is reported, and memory stays
//! constant however long the chain.

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::checkpoint::{Checkpoint, CheckpointCadence, GENESIS_CHECKPOINT_DIGEST};
use super::event::{AuditEvent, GENESIS_HASH};
use super::fault::ChainFault;

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
    /// ([`parse_anchor_lines`](super::parse_anchor_lines)): each must be in the database,
    /// identical, and reached by the chain.
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
