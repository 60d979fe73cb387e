//! The audit log: events, chain verification, checkpoints and anchors.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

use crate::audit::{AnchorRecord, AuditEvent, ChainFault, ChainReport, Verification};

/// One audit event as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEventView {
    pub seq: i64,
    /// RFC 3339, UTC, microsecond precision.
    pub time: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl From<AuditEvent> for AuditEventView {
    fn from(e: AuditEvent) -> Self {
        Self {
            seq: e.seq,
            time: e.time().format(&Rfc3339).unwrap_or_default(),
            actor: e.actor,
            action: e.action,
            target: e.target,
            outcome: e.outcome.as_str().to_owned(),
            details: e.details,
            prev_hash: hex::encode(e.prev_hash),
            hash: hex::encode(e.hash),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventPage {
    pub events: Vec<AuditEventView>,
    /// Pass as `after` to get the next page; absent at the end.
    pub next_after: Option<i64>,
}

/// Result of walking the chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyResult {
    /// True when every link and checkpoint is intact.
    pub ok: bool,
    /// Events walked (when ok).
    pub events: Option<i64>,
    pub last_hash: Option<String>,
    /// Signed checkpoints matched along the way (when not ok: before the fault).
    pub checkpoints: Option<usize>,
    /// First bad sequence number (when not ok).
    pub first_bad_seq: Option<i64>,
    /// What is wrong there.
    pub problem: Option<String>,
    /// Stable code of what is wrong (when not ok), e.g. `checkpoint_gap`,
    /// `too_many_uncheckpointed_events`, `anchored_checkpoint_missing`.
    #[serde(default)]
    pub reason: Option<String>,
    /// Checkpoints written before chaining (schema 0016), verified as a legacy prefix.
    #[serde(default)]
    pub legacy_checkpoints: Option<usize>,
    /// Sequence number of the newest checkpoint.
    #[serde(default)]
    pub last_checkpoint_seq: Option<i64>,
    /// Events after the newest checkpoint.
    #[serde(default)]
    pub events_after_last_checkpoint: Option<i64>,
    /// Anchored checkpoints given and found identical in the database.
    #[serde(default)]
    pub anchors_matched: Option<usize>,
    /// The newest of them: the database provably holds everything up to it.
    #[serde(default)]
    pub anchored_seq: Option<i64>,
}

impl VerifyResult {
    pub fn from_outcome(r: Result<ChainReport, ChainFault>) -> Self {
        match r {
            Ok(report) => Self::from_verification(Verification {
                report,
                fault: None,
            }),
            Err(f) => Self {
                ok: false,
                events: None,
                last_hash: None,
                checkpoints: None,
                first_bad_seq: Some(f.seq()),
                reason: Some(f.code().to_owned()),
                problem: Some(f.to_string()),
                legacy_checkpoints: None,
                last_checkpoint_seq: None,
                events_after_last_checkpoint: None,
                anchors_matched: None,
                anchored_seq: None,
            },
        }
    }

    pub fn from_verification(v: Verification) -> Self {
        let r = v.report;
        let ok = v.fault.is_none();
        Self {
            ok,
            events: ok.then_some(r.events),
            last_hash: ok.then_some(r.last_hash),
            checkpoints: Some(r.checkpoints),
            first_bad_seq: v.fault.as_ref().map(ChainFault::seq),
            problem: v.fault.as_ref().map(ToString::to_string),
            reason: v.fault.as_ref().map(|f| f.code().to_owned()),
            legacy_checkpoints: Some(r.legacy_checkpoints),
            last_checkpoint_seq: r.last_checkpoint_seq,
            events_after_last_checkpoint: ok.then_some(r.events_after_last_checkpoint),
            anchors_matched: Some(r.anchors_matched),
            anchored_seq: r.anchored_seq,
        }
    }
}

/// Most anchor records one `POST /api/v1/audit/verify` takes. The newest anchored checkpoint
/// alone pins the whole chain before it (events through the hash chain, checkpoints through
/// their links), so the CLI sends the newest ones.
pub const MAX_VERIFY_ANCHORS: usize = 100;

/// Body of `POST /api/v1/audit/verify`: verify the chain and prove that the database still
/// holds these anchored checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// Lines of an `audit_anchor_file` (at most 100).
    pub anchors: Vec<AnchorRecord>,
}

/// Body of `POST /api/v1/audit/checkpoints`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CheckpointRequest {
    /// Why (recorded in the audit event), e.g. "before backup".
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckpointCreated {
    /// Sequence number of the audit event recording the request; the checkpoint covers it.
    pub seq: i64,
    pub hash: String,
}

api_type! {
    /// A signed audit checkpoint as the API shows it.
    pub struct CheckpointView {
        /// Sequence number of the last event the checkpoint covers.
        pub seq: i64,
        /// Chain hash at that event (hex).
        pub hash: String,
        /// When it was written: RFC 3339, UTC.
        pub created_at: String,
    }
}

/// One finding of the posture report.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PostureFindingView {
    /// `MS.AAD.7.1` … for a CISA SCuBA policy; `pim.*` and `portcullis.*` for the others.
    pub id: String,
    /// `high`, `medium` or `low`.
    pub severity: String,
    pub title: String,
    pub evidence: Vec<String>,
    pub fix: String,
}

/// `GET /api/v1/posture`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PostureReport {
    /// RFC 3339.
    pub generated_at: String,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
    /// Most severe first.
    pub findings: Vec<PostureFindingView>,
}
