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

mod anchor;
mod checkpoint;
mod event;
pub mod export;
mod fault;
mod verify;

#[cfg(test)]
mod tests;

pub use anchor::{AnchorError, AnchorRecord, ParsedAnchors, parse_anchor_lines};
pub use checkpoint::{
    Checkpoint, CheckpointCadence, CheckpointLink, GENESIS_CHECKPOINT_DIGEST, TAIL_EVENTS_MARGIN,
    TAIL_SECONDS_MARGIN,
};
pub use event::{AuditEvent, GENESIS_HASH, NewAuditEvent, Outcome};
pub use fault::ChainFault;
pub use verify::{
    ChainReport, ChainVerifier, Verification, verify_chain, verify_chain_with,
    verify_checkpoint_chain,
};
