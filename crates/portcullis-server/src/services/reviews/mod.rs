//! Access reviews (issue 22, item 3): a review of every eligible and active assignment of a role
//! in its reach, decided keep or remove by reviewers, with the undecided ones getting the
//! review's default when the round closes, and the removals applied through the normal path.
//!
//! Here: definitions (`create_review`, `start_review`, `delete_review`, the reads) and a
//! person's manager (`set_manager`); `rounds` opens, reminds and closes rounds (the review
//! worker calls [`run_due`]); `decisions` records a reviewer's decision and lists what a
//! reviewer has to decide. The rules are pure code in [`portcullis_core::reviews`].
//!
//! Invariants:
//! - Creating, starting, closing early and deleting reviews needs `reviews.manage` (Global and
//!   Privileged Role Administrators; privileged, since a removal ends an assignment); reading
//!   every review and decision needs `reviews.read` (also Security Administrator and Reader).
//!   A reviewer sees and decides only the items they review.
//! - Reviewers are a role-assignable group, a person, or each principal's manager with a
//!   fallback (a role-assignable group or a person): checked when the review is created, like
//!   approver groups (ordinary groups are Helpdesk's to change and never confer review power;
//!   a group that is not role-assignable confers nothing at decision time either). A manager
//!   is resolved when a round opens and written on the item: a later change of manager does
//!   not move an open round's items. Principals without a manager (groups, service accounts,
//!   people without one, or whose manager is disabled or a break-glass account) go to the
//!   fallback.
//! - A decision needs a signed-in person with at least `mfa` (never a service account or a
//!   break-glass account), on an item they review that is not their own access (their own
//!   assignment, or one of a group they belong to: `self_review`, 403, audited as a refused
//!   attempt like every 403). The first decision on an item is final; each is one conditional
//!   write with its `review.decided` event.
//! - A round opens once (creation opens the first one; then every `every`, or on `start`) and
//!   closes once: the close is one conditional transaction (round open → closed, the decided
//!   count as read) that records every item's outcome, ends every removed assignment with
//!   `Change::EndAssignment` (targets revoked) after closing the requests made through it
//!   (`roles::closing_requests_of`: pending ones cancelled, active grants revoked), and writes
//!   each `assignment.removed`, defaulted `review.decided` and `review.closed` event. A second
//!   replica's close conflicts and writes nothing. Decisions are applied at the close, never
//!   before (so a reviewer may not pull access early, and every removal of a round is judged
//!   by the same guards together).
//! - A default never removes a break-glass account's assignment (it is kept, the item says
//!   why, and `review.closed` lists it: no event of its own names the account, so the critical
//!   break-glass alert is not raised for a change that did not happen); an explicit removal of one, or of the last way to Global Administrator, meets the
//!   same guards as `DELETE /api/v1/assignments/{id}` (two usable break-glass accounts, the
//!   last Global Administrator) in the close's transaction; a refused removal is left in
//!   place, recorded on the item (`refused_breakglass_minimum`,
//!   `refused_last_global_administrator`) and audited as a failed `assignment.removed` that
//!   alerts, and the rest of the round is applied.
//! - Reviewers are told by notification (`review.opened`, email through the notifications
//!   channel) when a round opens, and once more (`review.reminder`) when a quarter of the
//!   round is left, if they still have undecided items.
//!
//! Choices written down: an item whose only reviewer is its own principal (a person named as
//! reviewer who holds the role) gets the default; deleting a review cancels its open round
//! without applying anything (its items stay for the record); there is no `closing` state, the
//! close being one transaction.

mod decisions;
mod rounds;

pub use decisions::*;
pub use rounds::*;

use portcullis_core::api::{
    CreateReviewRequest, ReviewRoundSummary, ReviewView, SetManagerRequest, UserView,
};
use portcullis_core::audit::NewAuditEvent;
use portcullis_core::error::ErrorCode;
use portcullis_core::principal::PrincipalKind;
use portcullis_core::reviews::{self, Decision, Reviewer, Reviewers};
use portcullis_core::roles::{Scope, format_duration, perm};
use portcullis_store::reviews::{AccessReview, ReviewRound};
use portcullis_store::{Change, NewAccessReview, ReviewChange, StoreError};
use time::{Duration, OffsetDateTime};

use crate::error::ApiError;
use crate::services::caller::{Caller, event};
use crate::services::support::{invalid, new_id};
use crate::state::AppState;
use crate::time_us::{rfc3339, us};

/// The actor of what the review worker does.
pub const SYSTEM: &str = "system:reviews";

fn summary(r: &ReviewRound) -> ReviewRoundSummary {
    ReviewRoundSummary {
        id: r.id.clone(),
        state: r.state.as_str().to_owned(),
        opened_at: rfc3339(r.opened_at_us),
        closes_at: rfc3339(r.closes_at_us),
        closed_at: r.closed_at_us.map(rfc3339),
        items: r.items,
        decided: r.decided,
    }
}

async fn review_view(state: &AppState, r: &AccessReview) -> Result<ReviewView, ApiError> {
    let rounds = state.store.review_rounds(&r.id).await?;
    Ok(ReviewView {
        id: r.id.clone(),
        role: r.role.clone(),
        scope: r.scope.clone(),
        reviewers: r.reviewers.clone(),
        fallback: r.fallback.clone(),
        every: r
            .every_seconds
            .map(|s| format_duration(Duration::seconds(s))),
        duration: format_duration(Duration::seconds(r.duration_seconds)),
        default_decision: r.default_decision.clone(),
        created_by: r.created_by.clone(),
        created_at: rfc3339(r.created_at_us),
        enabled: r.enabled,
        next_round_at: r.next_round_at_us.map(rfc3339),
        rounds: rounds.iter().map(summary).collect(),
    })
}

/// A review by id, or `not_found` (ids are never longer than the store makes them).
async fn find_review(state: &AppState, id: &str) -> Result<AccessReview, ApiError> {
    let not_found = || ApiError::not_found("no such access review");
    if id.len() > 80 {
        return Err(not_found());
    }
    state.store.access_review(id).await?.ok_or_else(not_found)
}

/// A named reviewer that exists and may review: a role-assignable group, or an enabled person
/// who is not a break-glass account.
async fn check_reviewer(state: &AppState, r: &Reviewer) -> Result<(), ApiError> {
    let found = state.store.principal_by_name(r.name()).await?;
    let problem = match (r, found) {
        (Reviewer::Group(n), Some(p)) if p.kind == PrincipalKind::Group => (!p.role_assignable)
            .then(|| format!("reviewer group {n} is not role-assignable; reviewers must be a role-assignable group (only role administrators change its members)")),
        (Reviewer::User(n), Some(p)) if p.kind == PrincipalKind::User => {
            if p.emergency {
                Some(format!("reviewer {n} is a break-glass account; reviewers are people"))
            } else if !p.enabled {
                Some(format!("reviewer {n} is disabled"))
            } else {
                None
            }
        }
        _ => Some(format!("reviewer {} does not exist", r.label())),
    };
    match problem {
        Some(p) => Err(ApiError::bad_request(p)),
        None => Ok(()),
    }
}

/// Creates a review and opens its first round, in one transaction.
pub async fn create_review(
    state: &AppState,
    caller: &Caller,
    req: CreateReviewRequest,
) -> Result<ReviewView, ApiError> {
    caller.require(perm::REVIEWS_MANAGE)?;
    let scope = match req.scope.as_deref() {
        Some(s) => Scope::parse(s).map_err(invalid)?,
        None => Scope::tenant(),
    };
    // Just-in-time memberships are reviewed like a role: of one group (`/groups/NAME`, which
    // must be role-assignable) or, at `/`, of every group.
    let def = if req.role == portcullis_core::roles::GROUP_MEMBER && scope == Scope::tenant() {
        portcullis_core::roles::GROUP_MEMBER.to_owned()
    } else {
        crate::services::grants::role_at(state, &req.role, &scope)
            .await?
            .slug
    };
    let reviewers = Reviewers::parse(&req.reviewers, req.fallback.as_deref()).map_err(invalid)?;
    for r in reviewers.named() {
        check_reviewer(state, r).await?;
    }
    let default = Decision::parse(&req.default_decision)
        .ok_or_else(|| invalid(reviews::ReviewError::BadDefault))?;
    let every = req
        .every
        .as_deref()
        .map(reviews::parse_duration)
        .transpose()
        .map_err(invalid)?;
    let duration = match req.duration.as_deref() {
        Some(d) => reviews::parse_duration(d).map_err(invalid)?,
        None => reviews::DEFAULT_DURATION,
    };
    reviews::check_schedule(every, duration).map_err(invalid)?;
    let now = OffsetDateTime::now_utc();
    let review = AccessReview {
        id: new_id("rv"),
        role: def,
        scope: scope.as_str().to_owned(),
        reviewers: reviewers.label(),
        fallback: reviewers.fallback().map(Reviewer::label),
        every_seconds: every.map(|e| e.whole_seconds()),
        duration_seconds: duration.whole_seconds(),
        default_decision: default.as_str().to_owned(),
        created_by: caller.actor(),
        created_at_us: us(now),
        enabled: true,
        next_round_at_us: Some(us(now)),
    };
    let create = Change::Review(ReviewChange::Create(NewAccessReview {
        id: review.id.clone(),
        role: review.role.clone(),
        scope: review.scope.clone(),
        reviewers: review.reviewers.clone(),
        fallback: review.fallback.clone(),
        every_seconds: review.every_seconds,
        duration_seconds: review.duration_seconds,
        default_decision: review.default_decision.clone(),
        created_by: review.created_by.clone(),
        created_at_us: review.created_at_us,
        next_round_at_us: review.next_round_at_us,
    }));
    let ev = event(caller, "review.created", format!("review:{}", review.id)).details(
        serde_json::json!({
            "role": review.role, "scope": review.scope, "reviewers": review.reviewers,
            "fallback": review.fallback, "every": every.map(format_duration),
            "duration": format_duration(duration),
            "default": review.default_decision,
        }),
    );
    let opening = rounds::opening(state, &review, &caller.actor(), now, true).await?;
    state
        .store
        .write(
            Change::Many(vec![create, opening.change]),
            std::iter::once(ev).chain(opening.events).collect(),
        )
        .await?;
    state.reviews_wake.notify_one();
    review_view(state, &find_review(state, &review.id).await?).await
}

/// Opens a round of review `id` now (none may be open).
pub async fn start_review(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<ReviewView, ApiError> {
    caller.require(perm::REVIEWS_MANAGE)?;
    let review = find_review(state, id).await?;
    if !review.enabled {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "this review was deleted; create a new one",
        ));
    }
    let now = OffsetDateTime::now_utc();
    let opening = rounds::opening(state, &review, &caller.actor(), now, false).await?;
    match state.store.write(opening.change, opening.events).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "a round of this review is open already (or the review was deleted meanwhile)",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    state.reviews_wake.notify_one();
    review_view(state, &find_review(state, id).await?).await
}

/// Deletes (disables) a review; an open round is cancelled without applying anything.
pub async fn delete_review(state: &AppState, caller: &Caller, id: &str) -> Result<(), ApiError> {
    caller.require(perm::REVIEWS_MANAGE)?;
    let review = find_review(state, id).await?;
    let open: Vec<String> = state
        .store
        .review_rounds(&review.id)
        .await?
        .into_iter()
        .filter(|r| r.state == reviews::RoundState::Open)
        .map(|r| r.id)
        .collect();
    let now = OffsetDateTime::now_utc();
    let ev = event(caller, "review.deleted", format!("review:{}", review.id)).details(
        serde_json::json!({ "role": review.role, "scope": review.scope, "cancelled_rounds": open }),
    );
    state
        .store
        .write(
            Change::Review(ReviewChange::Delete {
                id: review.id.clone(),
                at_us: us(now),
            }),
            vec![ev],
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => {
                ApiError::not_found("no such access review (or deleted already)")
            }
            other => other.into(),
        })?;
    Ok(())
}

/// Every review (deleted ones too), newest first.
pub async fn list_reviews(state: &AppState, caller: &Caller) -> Result<Vec<ReviewView>, ApiError> {
    caller.require(perm::REVIEWS_READ)?;
    let mut out = Vec::new();
    for r in state.store.access_reviews().await? {
        out.push(review_view(state, &r).await?);
    }
    Ok(out)
}

pub async fn get_review(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<ReviewView, ApiError> {
    caller.require(perm::REVIEWS_READ)?;
    review_view(state, &find_review(state, id).await?).await
}

/// Sets or removes a person's manager (`users.update`; a privileged person's is the top
/// tier's to change, like everything else about them). The manager is an enabled person other
/// than them, never a break-glass account.
pub async fn set_manager(
    state: &AppState,
    caller: &Caller,
    name: &str,
    req: SetManagerRequest,
) -> Result<UserView, ApiError> {
    use crate::services::accounts::{get_principal, user_view};
    caller.require(perm::USERS_UPDATE)?;
    let p = get_principal(state, name, PrincipalKind::User).await?;
    crate::services::privilege::require_may_manage(state, caller, &p, "change their manager")
        .await?;
    let manager = match req.manager.as_deref() {
        Some(m) => {
            let m = get_principal(state, m, PrincipalKind::User).await?;
            let problem = if m.id == p.id {
                Some("nobody is their own manager")
            } else if m.emergency {
                Some("a break-glass account manages nobody")
            } else if !m.enabled {
                Some("the manager's account is disabled")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(ApiError::bad_request(problem));
            }
            Some(m)
        }
        None => None,
    };
    let now = OffsetDateTime::now_utc();
    let ev = event(caller, "user.manager_set", format!("user:{}", p.name))
        .details(serde_json::json!({ "manager": manager.as_ref().map(|m| m.name.clone()) }));
    state
        .store
        .write(
            Change::Review(ReviewChange::SetManager {
                principal_id: p.id.clone(),
                manager_id: manager.map(|m| m.id),
                by: caller.actor(),
                at_us: us(now),
            }),
            vec![ev],
        )
        .await?;
    user_view(state, &p).await
}

/// A notification to each of `recipients` (`user:NAME`, `group:NAME`) through the outbox.
fn notifications(
    recipients: &[String],
    topic: &str,
    payload: &serde_json::Value,
    now: OffsetDateTime,
) -> Vec<Change> {
    recipients
        .iter()
        .map(|r| {
            Change::Enqueue(portcullis_store::NewOutboxMessage {
                id: new_id("m"),
                kind: "notification".into(),
                topic: topic.into(),
                recipient: r.clone(),
                payload: payload.to_string(),
                at_us: us(now),
                channel: None,
                severity: None,
            })
        })
        .collect()
}

/// The console page of a reviewer's items, at the server's public address.
fn console_link(state: &AppState) -> String {
    format!(
        "{}/console/reviews",
        state.tokens.issuer.trim_end_matches('/')
    )
}

/// An audit event of the review worker (or of whoever closed a round early).
fn system_event(actor: &str, action: &str, target: impl Into<String>) -> NewAuditEvent {
    NewAuditEvent::new(actor, action, target)
}
