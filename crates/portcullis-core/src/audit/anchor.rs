//! Anchor records: chained checkpoints written outside the database, and reading them back.
//! Invariant: a record is accepted only when its digest matches its own fields; a torn append
//! is skipped, anything else that is not a record is an error.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::checkpoint::{Checkpoint, CheckpointCadence, CheckpointLink};

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
