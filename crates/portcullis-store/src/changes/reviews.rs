//! Access reviews: definitions, rounds opened and closed once, decisions made once, and a
//! person's manager. Every step is a conditional change, so two replicas (or a reviewer and
//! the close) racing resolve to one winner and the loser writes nothing, not even its events:
//!
//! - A round opens only while its review is enabled, (when scheduled) due, and has no open
//!   round ([`REVIEW_NOT_DUE`]); the partial unique index on open rounds backs this up.
//! - A decision lands only on an undecided item of an open round ([`REVIEW_ITEM_MOVED`]).
//! - A close moves the round open → closed, and only when the number of decided items is the
//!   one its caller read ([`REVIEW_DECISIONS_MOVED`]): the caller chose which assignments to
//!   end from that read, and those ends ride in the same [`super::Change::Many`].
//! - A reminder is recorded once per round.

use super::conflicts::conflict;
use super::sql::{Conn, args};
use crate::Result;

/// The conflict a round's open reports when the review is disabled, not due, or has an open
/// round already (another replica opened it).
pub const REVIEW_NOT_DUE: &str = "the review is disabled, not due, or has an open round";
/// The conflict a decision, reminder or close reports when the round is no longer open or the
/// item was decided meanwhile.
pub const REVIEW_ITEM_MOVED: &str = "the review round is closed or the item was decided";
/// The conflict a close reports when the round is not open any more (another replica closed
/// it).
pub const REVIEW_ROUND_NOT_OPEN: &str = "the review round is not open";
/// The conflict a close reports when a decision arrived after its caller read the items.
pub const REVIEW_DECISIONS_MOVED: &str = "a decision arrived while the round was closing";

/// A new review definition.
#[derive(Debug, Clone)]
pub struct NewAccessReview {
    pub id: String,
    pub role: String,
    pub scope: String,
    /// `group:NAME`, `user:NAME` or `managers`.
    pub reviewers: String,
    pub fallback: Option<String>,
    pub every_seconds: Option<i64>,
    pub duration_seconds: i64,
    /// `keep` or `remove`.
    pub default_decision: String,
    pub created_by: String,
    pub created_at_us: i64,
    pub next_round_at_us: Option<i64>,
}

/// One assignment in a new round.
#[derive(Debug, Clone)]
pub struct NewReviewItem {
    pub assignment_id: String,
    pub principal_id: String,
    pub role: String,
    pub scope: String,
    pub kind: portcullis_core::roles::AssignmentKind,
    /// `user:NAME` or `group:NAME`.
    pub reviewer: String,
}

/// A new round with its items.
#[derive(Debug, Clone)]
pub struct NewReviewRound {
    pub id: String,
    pub review_id: String,
    pub opened_by: String,
    pub opened_at_us: i64,
    pub closes_at_us: i64,
    pub reminder_at_us: i64,
    /// Opened by the schedule: conflicts unless the review's next round is due at
    /// `opened_at_us`.
    pub scheduled: bool,
    /// When the round after this one opens (None: only on request).
    pub next_round_at_us: Option<i64>,
    pub items: Vec<NewReviewItem>,
}

/// How one item ends its round.
#[derive(Debug, Clone)]
pub struct ClosedItem {
    pub assignment_id: String,
    /// For an undecided item: the decision the close gives it (`keep` or `remove`) and why.
    pub default: Option<(String, String)>,
    /// `kept`, `removed`, `already_ended`, `refused_breakglass_minimum`, …
    pub outcome: String,
}

/// A round's close.
#[derive(Debug, Clone)]
pub struct ReviewClose {
    pub round_id: String,
    /// The decided items the caller read.
    pub decided_before: i64,
    pub items: Vec<ClosedItem>,
    pub at_us: i64,
}

/// The access-review changes (one [`super::Change::Review`] variant holds them all).
#[derive(Debug, Clone)]
pub enum ReviewChange {
    Create(NewAccessReview),
    /// Disables a review and cancels its open round (nothing applied); conflicts when it is
    /// unknown or disabled already.
    Delete {
        id: String,
        at_us: i64,
    },
    Open(NewReviewRound),
    /// Records the first decision on an item of an open round.
    Decide {
        round_id: String,
        assignment_id: String,
        decision: String,
        reason: String,
        decided_by: String,
        at_us: i64,
    },
    /// Records that an open round's reviewers were reminded; conflicts when it was already.
    Remind {
        round_id: String,
        at_us: i64,
    },
    Close(ReviewClose),
    /// Sets (or with `None` removes) a person's manager.
    SetManager {
        principal_id: String,
        manager_id: Option<String>,
        by: String,
        at_us: i64,
    },
}

pub(crate) async fn apply(c: &mut Conn<'_>, change: &ReviewChange) -> Result<()> {
    match change {
        ReviewChange::Create(r) => create(c, r).await,
        ReviewChange::Delete { id, at_us } => delete(c, id, *at_us).await,
        ReviewChange::Open(r) => open(c, r).await,
        ReviewChange::Decide {
            round_id,
            assignment_id,
            decision,
            reason,
            decided_by,
            at_us,
        } => {
            let n = c.execute("UPDATE access_review_items SET decision = $1, reason = $2, decided_by = $3, decided_at_us = $4 \
                 WHERE round_id = $5 AND assignment_id = $6 AND decision IS NULL \
                 AND EXISTS (SELECT 1 FROM access_review_rounds r WHERE r.id = $5 AND r.state = 'open')",
                args![decision, reason, decided_by, *at_us, round_id, assignment_id]).await?;
            if n == 0 {
                return Err(conflict(REVIEW_ITEM_MOVED));
            }
            Ok(())
        }
        ReviewChange::Remind { round_id, at_us } => {
            let n = c.execute("UPDATE access_review_rounds SET reminded_at_us = $1 WHERE id = $2 AND state = 'open' AND reminded_at_us IS NULL", args![*at_us, round_id]).await?;
            if n == 0 {
                return Err(conflict(REVIEW_ITEM_MOVED));
            }
            Ok(())
        }
        ReviewChange::Close(r) => close(c, r).await,
        ReviewChange::SetManager {
            principal_id,
            manager_id: Some(m),
            by,
            at_us,
        } => {
            c.execute("INSERT INTO principal_managers (principal_id, manager_id, set_by, set_at_us) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (principal_id) DO UPDATE SET manager_id = excluded.manager_id, set_by = excluded.set_by, set_at_us = excluded.set_at_us",
                args![principal_id, m, by, *at_us]).await?;
            Ok(())
        }
        ReviewChange::SetManager {
            principal_id,
            manager_id: None,
            ..
        } => {
            c.execute(
                "DELETE FROM principal_managers WHERE principal_id = $1",
                args![principal_id],
            )
            .await?;
            Ok(())
        }
    }
}

async fn create(c: &mut Conn<'_>, r: &NewAccessReview) -> Result<()> {
    c.execute("INSERT INTO access_reviews (id, role, scope, reviewers, fallback, every_seconds, duration_seconds, default_decision, created_by, created_at_us, enabled, next_round_at_us) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, TRUE, $11)",
        args![&r.id, &r.role, &r.scope, &r.reviewers, &r.fallback, r.every_seconds, r.duration_seconds, &r.default_decision, &r.created_by, r.created_at_us, r.next_round_at_us]).await?;
    Ok(())
}

async fn delete(c: &mut Conn<'_>, id: &str, at_us: i64) -> Result<()> {
    let n = c
        .execute(
            "UPDATE access_reviews SET enabled = FALSE, next_round_at_us = NULL WHERE id = $1 AND enabled",
            args![id],
        )
        .await?;
    if n == 0 {
        return Err(conflict("the review is unknown or deleted already"));
    }
    c.execute("UPDATE access_review_rounds SET state = 'cancelled', closed_at_us = $1 WHERE review_id = $2 AND state = 'open'", args![at_us, id]).await?;
    Ok(())
}

async fn open(c: &mut Conn<'_>, r: &NewReviewRound) -> Result<()> {
    let due: Option<i64> = c.optional_int("SELECT CAST(1 AS BIGINT) FROM access_reviews WHERE id = $1 AND enabled \
         AND (NOT $2 OR (next_round_at_us IS NOT NULL AND next_round_at_us <= $3)) \
         AND NOT EXISTS (SELECT 1 FROM access_review_rounds o WHERE o.review_id = $1 AND o.state = 'open')",
        args![&r.review_id, r.scheduled, r.opened_at_us]).await?;
    if due.is_none() {
        return Err(conflict(REVIEW_NOT_DUE));
    }
    c.execute("INSERT INTO access_review_rounds (id, review_id, state, opened_by, opened_at_us, closes_at_us, reminder_at_us) VALUES ($1, $2, 'open', $3, $4, $5, $6)",
        args![&r.id, &r.review_id, &r.opened_by, r.opened_at_us, r.closes_at_us, r.reminder_at_us]).await?;
    for i in &r.items {
        c.execute("INSERT INTO access_review_items (round_id, assignment_id, principal_id, role, scope, kind, reviewer) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            args![&r.id, &i.assignment_id, &i.principal_id, &i.role, &i.scope, i.kind, &i.reviewer]).await?;
    }
    c.execute(
        "UPDATE access_reviews SET next_round_at_us = $1 WHERE id = $2",
        args![r.next_round_at_us, &r.review_id],
    )
    .await?;
    Ok(())
}

async fn close(c: &mut Conn<'_>, r: &ReviewClose) -> Result<()> {
    let n = c
        .execute(
            "UPDATE access_review_rounds SET state = 'closed', closed_at_us = $1 WHERE id = $2 AND state = 'open'",
            args![r.at_us, &r.round_id],
        )
        .await?;
    if n == 0 {
        return Err(conflict(REVIEW_ROUND_NOT_OPEN));
    }
    let decided = c
        .count(
            "SELECT COUNT(*) FROM access_review_items WHERE round_id = $1 AND decision IS NOT NULL",
            args![&r.round_id],
        )
        .await?;
    if decided != r.decided_before {
        return Err(conflict(REVIEW_DECISIONS_MOVED));
    }
    for i in &r.items {
        let (decision, reason) = match &i.default {
            Some((d, why)) => (Some(d.as_str()), Some(why.as_str())),
            None => (None, None),
        };
        c.execute("UPDATE access_review_items SET decision = COALESCE(decision, $1), reason = COALESCE(reason, $2), \
             decided_by = COALESCE(decided_by, 'default'), decided_at_us = COALESCE(decided_at_us, $3), applied_at_us = $3, outcome = $4 \
             WHERE round_id = $5 AND assignment_id = $6",
            args![decision, reason, r.at_us, &i.outcome, &r.round_id, &i.assignment_id]).await?;
    }
    Ok(())
}
