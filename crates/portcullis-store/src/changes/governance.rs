//! Change requests (four eyes on the PAM's own settings): created pending, then closed once,
//! from `pending` only, so an approval, a denial, a cancel and the cooling-off racing on two
//! replicas end a request exactly once (the change a close applies is written in the same
//! transaction, so it applies exactly once too).

use portcullis_core::governance::ChangeState;

use super::conflicts::conflict;
use super::sql::{Conn, args};
use crate::Result;

/// The conflict a close reports when the request is no longer pending.
pub const CHANGE_MOVED: &str = "the change request is no longer pending";

/// A new change request.
#[derive(Debug, Clone)]
pub struct NewChangeRequest {
    pub id: String,
    pub kind: String,
    pub subject: String,
    /// The change as asked (JSON).
    pub payload: String,
    pub weakenings: Vec<String>,
    pub requested_by_id: String,
    pub requested_by: String,
    pub requested_at_us: i64,
    /// When it takes effect by itself (cooling-off); `None`: only by approval.
    pub effective_at_us: Option<i64>,
}

/// What happens to a change request.
#[derive(Debug, Clone)]
pub enum GovernanceChange {
    Create(NewChangeRequest),
    /// Moves request `id` from `pending` to `to`; conflicts unless it is pending.
    Close {
        id: String,
        to: ChangeState,
        by: String,
        reason: Option<String>,
        at_us: i64,
    },
}

pub(crate) async fn apply(c: &mut Conn<'_>, g: &GovernanceChange) -> Result<()> {
    match g {
        GovernanceChange::Create(n) => {
            let weakenings = serde_json::to_string(&n.weakenings).unwrap_or_else(|_| "[]".into());
            c.execute("INSERT INTO change_requests (id, kind, subject, payload, weakenings, requested_by_id, requested_by, requested_at_us, effective_at_us, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending')", args![&n.id, &n.kind, &n.subject, &n.payload, weakenings, &n.requested_by_id, &n.requested_by, n.requested_at_us, n.effective_at_us]).await?;
        }
        GovernanceChange::Close {
            id,
            to,
            by,
            reason,
            at_us,
        } => {
            let n = c.execute("UPDATE change_requests SET state = $1, decided_by = $2, decided_at_us = $3, reason = $4 WHERE id = $5 AND state = 'pending'", args![to.as_str(), by, *at_us, reason, id]).await?;
            if n == 0 {
                return Err(conflict(CHANGE_MOVED));
            }
        }
    }
    Ok(())
}
