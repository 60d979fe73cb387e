//! Shapes of the HTTP API shared by the server (which serialises them and describes them in
//! OpenAPI with the `openapi` feature) and the client (which deserialises them), so the two
//! can never drift apart.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

use crate::audit::{AuditEvent, ChainFault, ChainReport};

/// The one error body of the API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable, machine-readable code.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ready {
    pub status: String,
    pub database: String,
    pub backend: String,
    pub schema_version: i64,
}

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
    /// Signed checkpoints matched along the way.
    pub checkpoints: Option<usize>,
    /// First bad sequence number (when not ok).
    pub first_bad_seq: Option<i64>,
    /// What is wrong there.
    pub problem: Option<String>,
}

impl VerifyResult {
    pub fn from_outcome(r: Result<ChainReport, ChainFault>) -> Self {
        match r {
            Ok(rep) => Self {
                ok: true,
                events: Some(rep.events),
                last_hash: Some(rep.last_hash),
                checkpoints: Some(rep.checkpoints),
                first_bad_seq: None,
                problem: None,
            },
            Err(f) => Self {
                ok: false,
                events: None,
                last_hash: None,
                checkpoints: None,
                first_bad_seq: Some(f.seq()),
                problem: Some(f.to_string()),
            },
        }
    }
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
