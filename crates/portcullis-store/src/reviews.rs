//! Reads of access reviews: definitions, rounds with their counts, items with their principals,
//! the work the review worker has at a moment, and people's managers. (Writes are
//! [`crate::ReviewChange`]s through the writer.)

use portcullis_core::reviews::RoundState;
use sqlx::Row;

use crate::accounts::Principal;
use crate::{Result, Store, on_pool};

/// A review definition as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessReview {
    pub id: String,
    pub role: String,
    pub scope: String,
    pub reviewers: String,
    pub fallback: Option<String>,
    pub every_seconds: Option<i64>,
    pub duration_seconds: i64,
    pub default_decision: String,
    pub created_by: String,
    pub created_at_us: i64,
    pub enabled: bool,
    pub next_round_at_us: Option<i64>,
}

/// A round, with how many items it has and how many are decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRound {
    pub id: String,
    pub review_id: String,
    pub state: RoundState,
    pub opened_by: String,
    pub opened_at_us: i64,
    pub closes_at_us: i64,
    pub reminder_at_us: i64,
    pub reminded_at_us: Option<i64>,
    pub closed_at_us: Option<i64>,
    pub items: i64,
    pub decided: i64,
}

/// An item, with its principal's name and kind and whether it is a break-glass account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewItem {
    pub round_id: String,
    pub assignment_id: String,
    pub principal_id: String,
    pub principal_name: String,
    pub principal_kind: portcullis_core::principal::PrincipalKind,
    pub emergency: bool,
    pub role: String,
    pub scope: String,
    pub kind: portcullis_core::roles::AssignmentKind,
    pub reviewer: String,
    pub decision: Option<String>,
    pub reason: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at_us: Option<i64>,
    pub applied_at_us: Option<i64>,
    pub outcome: Option<String>,
}

const REVIEW_COLS: &str = "id, role, scope, reviewers, fallback, every_seconds, duration_seconds, default_decision, created_by, created_at_us, enabled, next_round_at_us";
const ROUND_COLS: &str = "r.id, r.review_id, r.state, r.opened_by, r.opened_at_us, r.closes_at_us, r.reminder_at_us, r.reminded_at_us, r.closed_at_us, \
     (SELECT COUNT(*) FROM access_review_items i WHERE i.round_id = r.id) AS items, \
     (SELECT COUNT(*) FROM access_review_items i WHERE i.round_id = r.id AND i.decision IS NOT NULL) AS decided";
const ITEM_COLS: &str = "i.round_id, i.assignment_id, i.principal_id, p.name AS principal_name, p.kind AS principal_kind, p.emergency, i.role, i.scope, i.kind, i.reviewer, \
     i.decision, i.reason, i.decided_by, i.decided_at_us, i.applied_at_us, i.outcome";

macro_rules! review_row {
    ($r:expr) => {
        AccessReview {
            id: $r.try_get("id")?,
            role: $r.try_get("role")?,
            scope: $r.try_get("scope")?,
            reviewers: $r.try_get("reviewers")?,
            fallback: $r.try_get("fallback")?,
            every_seconds: $r.try_get("every_seconds")?,
            duration_seconds: $r.try_get("duration_seconds")?,
            default_decision: $r.try_get("default_decision")?,
            created_by: $r.try_get("created_by")?,
            created_at_us: $r.try_get("created_at_us")?,
            enabled: $r.try_get("enabled")?,
            next_round_at_us: $r.try_get("next_round_at_us")?,
        }
    };
}

macro_rules! round_row {
    ($r:expr) => {
        ReviewRound {
            id: $r.try_get("id")?,
            review_id: $r.try_get("review_id")?,
            state: crate::decoded(
                $r.try_get::<String, _>("state")?,
                RoundState::parse,
                "review round state",
            )?,
            opened_by: $r.try_get("opened_by")?,
            opened_at_us: $r.try_get("opened_at_us")?,
            closes_at_us: $r.try_get("closes_at_us")?,
            reminder_at_us: $r.try_get("reminder_at_us")?,
            reminded_at_us: $r.try_get("reminded_at_us")?,
            closed_at_us: $r.try_get("closed_at_us")?,
            items: $r.try_get("items")?,
            decided: $r.try_get("decided")?,
        }
    };
}

macro_rules! item_row {
    ($r:expr) => {
        ReviewItem {
            round_id: $r.try_get("round_id")?,
            assignment_id: $r.try_get("assignment_id")?,
            principal_id: $r.try_get("principal_id")?,
            principal_name: $r.try_get("principal_name")?,
            principal_kind: crate::decoded(
                $r.try_get::<String, _>("principal_kind")?,
                portcullis_core::principal::PrincipalKind::parse,
                "principal kind",
            )?,
            emergency: $r.try_get("emergency")?,
            role: $r.try_get("role")?,
            scope: $r.try_get("scope")?,
            kind: crate::decoded(
                $r.try_get::<String, _>("kind")?,
                portcullis_core::roles::AssignmentKind::parse,
                "assignment kind",
            )?,
            reviewer: $r.try_get("reviewer")?,
            decision: $r.try_get("decision")?,
            reason: $r.try_get("reason")?,
            decided_by: $r.try_get("decided_by")?,
            decided_at_us: $r.try_get("decided_at_us")?,
            applied_at_us: $r.try_get("applied_at_us")?,
            outcome: $r.try_get("outcome")?,
        }
    };
}

fn sql(s: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(s)
}

impl Store {
    /// Every review, newest first (deleted ones too, for the record).
    pub async fn access_reviews(&self) -> Result<Vec<AccessReview>> {
        let q = sql(format!(
            "SELECT {REVIEW_COLS} FROM access_reviews ORDER BY created_at_us DESC, id"
        ));
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query(q).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(review_row!(r)); }
            Ok(out)
        })
    }

    pub async fn access_review(&self, id: &str) -> Result<Option<AccessReview>> {
        let q = sql(format!(
            "SELECT {REVIEW_COLS} FROM access_reviews WHERE id = $1"
        ));
        on_pool!(&self.backend, pool => {
            match sqlx::query(q).bind(id).fetch_optional(pool).await? {
                Some(r) => Ok(Some(review_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// A review's rounds, newest first.
    pub async fn review_rounds(&self, review_id: &str) -> Result<Vec<ReviewRound>> {
        let q = sql(format!(
            "SELECT {ROUND_COLS} FROM access_review_rounds r WHERE r.review_id = $1 ORDER BY r.opened_at_us DESC, r.id"
        ));
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query(q).bind(review_id).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(round_row!(r)); }
            Ok(out)
        })
    }

    pub async fn review_round(&self, id: &str) -> Result<Option<ReviewRound>> {
        let q = sql(format!(
            "SELECT {ROUND_COLS} FROM access_review_rounds r WHERE r.id = $1"
        ));
        on_pool!(&self.backend, pool => {
            match sqlx::query(q).bind(id).fetch_optional(pool).await? {
                Some(r) => Ok(Some(round_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// The open rounds of every review, oldest first.
    pub async fn open_review_rounds(&self) -> Result<Vec<ReviewRound>> {
        let q = sql(format!(
            "SELECT {ROUND_COLS} FROM access_review_rounds r WHERE r.state = 'open' ORDER BY r.opened_at_us, r.id"
        ));
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query(q).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(round_row!(r)); }
            Ok(out)
        })
    }

    /// A round's items, by principal name.
    pub async fn review_items(&self, round_id: &str) -> Result<Vec<ReviewItem>> {
        let q = sql(format!(
            "SELECT {ITEM_COLS} FROM access_review_items i JOIN principals p ON p.id = i.principal_id WHERE i.round_id = $1 ORDER BY p.name, i.assignment_id"
        ));
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query(q).bind(round_id).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(item_row!(r)); }
            Ok(out)
        })
    }

    /// The items of every open round (what reviewers have to decide), oldest round first.
    pub async fn open_review_items(&self) -> Result<Vec<ReviewItem>> {
        let q = sql(format!(
            "SELECT {ITEM_COLS} FROM access_review_items i JOIN principals p ON p.id = i.principal_id \
             JOIN access_review_rounds r ON r.id = i.round_id WHERE r.state = 'open' ORDER BY r.opened_at_us, r.id, p.name, i.assignment_id"
        ));
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query(q).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(item_row!(r)); }
            Ok(out)
        })
    }

    /// Enabled reviews whose next round is due at `now_us` and that have no open round.
    pub async fn reviews_due(&self, now_us: i64) -> Result<Vec<AccessReview>> {
        let q = sql(format!(
            "SELECT {REVIEW_COLS} FROM access_reviews a WHERE enabled AND next_round_at_us IS NOT NULL AND next_round_at_us <= $1 \
             AND NOT EXISTS (SELECT 1 FROM access_review_rounds o WHERE o.review_id = a.id AND o.state = 'open') ORDER BY next_round_at_us, id"
        ));
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query(q).bind(now_us).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(review_row!(r)); }
            Ok(out)
        })
    }

    /// The earliest moment the review worker has something to do: a round to close or to
    /// remind, or a review's next round.
    pub async fn next_review_deadline(&self) -> Result<Option<i64>> {
        on_pool!(&self.backend, pool => {
            let r = sqlx::query(
                "SELECT MIN(t) AS t FROM ( \
                   SELECT MIN(closes_at_us) AS t FROM access_review_rounds WHERE state = 'open' \
                   UNION ALL SELECT MIN(reminder_at_us) FROM access_review_rounds WHERE state = 'open' AND reminded_at_us IS NULL \
                   UNION ALL SELECT MIN(a.next_round_at_us) FROM access_reviews a WHERE a.enabled \
                     AND NOT EXISTS (SELECT 1 FROM access_review_rounds o WHERE o.review_id = a.id AND o.state = 'open') \
                 ) d",
            )
            .fetch_one(pool).await?;
            Ok(r.try_get::<Option<i64>, _>("t")?)
        })
    }

    /// A person's manager, if one is set.
    pub async fn manager_of(&self, principal_id: &str) -> Result<Option<Principal>> {
        let id: Option<String> = on_pool!(&self.backend, pool => {
            sqlx::query_scalar("SELECT manager_id FROM principal_managers WHERE principal_id = $1")
                .bind(principal_id)
                .fetch_optional(pool)
                .await?
        });
        match id {
            Some(id) => self.principal_by_id(&id).await,
            None => Ok(None),
        }
    }
}
