//! Why verification stopped: [`ChainFault`], with the first sequence number found bad and a
//! stable reason code (the serialised `kind`).

use serde::{Deserialize, Serialize};

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
