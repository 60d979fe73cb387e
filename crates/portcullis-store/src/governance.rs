//! Reads of change requests (four eyes on the PAM's own settings), and who else can reach the
//! top tier. (Writes are [`crate::GovernanceChange`]s through the writer.)

use portcullis_core::governance::ChangeState;
use sqlx::Row;

use crate::{Result, Store, on_pool};

/// A change request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRequest {
    pub id: String,
    pub kind: String,
    pub subject: String,
    pub payload: String,
    pub weakenings: Vec<String>,
    pub requested_by_id: String,
    pub requested_by: String,
    pub requested_at_us: i64,
    pub effective_at_us: Option<i64>,
    pub state: ChangeState,
    pub decided_by: Option<String>,
    pub decided_at_us: Option<i64>,
    pub reason: Option<String>,
}

const COLS: &str = "id, kind, subject, payload, weakenings, requested_by_id, requested_by, requested_at_us, effective_at_us, state, decided_by, decided_at_us, reason";

macro_rules! change_row {
    ($r:expr) => {
        ChangeRequest {
            id: $r.try_get("id")?,
            kind: $r.try_get("kind")?,
            subject: $r.try_get("subject")?,
            payload: $r.try_get("payload")?,
            weakenings: serde_json::from_str(&$r.try_get::<String, _>("weakenings")?)
                .unwrap_or_default(),
            requested_by_id: $r.try_get("requested_by_id")?,
            requested_by: $r.try_get("requested_by")?,
            requested_at_us: $r.try_get("requested_at_us")?,
            effective_at_us: $r.try_get("effective_at_us")?,
            state: crate::decoded(
                $r.try_get::<String, _>("state")?,
                ChangeState::parse,
                "change request state",
            )?,
            decided_by: $r.try_get("decided_by")?,
            decided_at_us: $r.try_get("decided_at_us")?,
            reason: $r.try_get("reason")?,
        }
    };
}

fn sql(s: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(s)
}

impl Store {
    /// One change request.
    pub async fn change_request(&self, id: &str) -> Result<Option<ChangeRequest>> {
        let q = sql(format!("SELECT {COLS} FROM change_requests WHERE id = $1"));
        on_pool!(&self.backend, pool => {
            match sqlx::query(q).bind(id).fetch_optional(pool).await? {
                Some(r) => Ok(Some(change_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// Change requests, newest first; only those in `state` when given.
    pub async fn change_requests(
        &self,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ChangeRequest>> {
        let q = sql(format!(
            "SELECT {COLS} FROM change_requests WHERE ($1 IS NULL OR state = $1) ORDER BY requested_at_us DESC, id LIMIT $2"
        ));
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query(q).bind(state).bind(limit).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(change_row!(r)); }
            Ok(out)
        })
    }

    /// Pending change requests whose cooling-off ended at `now_us`, oldest first.
    pub async fn due_change_requests(&self, now_us: i64) -> Result<Vec<ChangeRequest>> {
        let q = sql(format!(
            "SELECT {COLS} FROM change_requests WHERE state = 'pending' AND effective_at_us <= $1 ORDER BY effective_at_us, id LIMIT 100"
        ));
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query(q).bind(now_us).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(change_row!(r)); }
            Ok(out)
        })
    }

    /// Whether a person other than `principal_id` can reach one of `roles` at `/`: an enabled,
    /// non-emergency user with a live assignment (eligible or active) of it, directly or
    /// through a role-assignable group, at `now_us`.
    pub async fn another_person_reaches(
        &self,
        principal_id: &str,
        roles: &[String],
        now_us: i64,
    ) -> Result<bool> {
        on_pool!(&self.backend, pool => {
            let held: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT a.role FROM principals p JOIN role_assignments a ON a.scope = '/' AND a.ended_at_us IS NULL \
                     AND a.starts_at_us <= $2 AND (a.ends_at_us IS NULL OR a.ends_at_us > $2) \
                 JOIN principals h ON h.id = a.principal_id \
                 WHERE p.kind = 'user' AND p.enabled AND NOT p.emergency AND p.id <> $1 \
                     AND (a.principal_id = p.id OR (h.kind = 'group' AND h.role_assignable AND EXISTS \
                         (SELECT 1 FROM group_reach m WHERE m.group_id = h.id AND m.member_id = p.id AND (m.until_us IS NULL OR m.until_us > $2))))")
                .bind(principal_id).bind(now_us).fetch_all(pool).await?;
            Ok(held.iter().any(|r| roles.contains(r)))
        })
    }
}
