//! Rounds of an access review: opened (at creation, by the schedule, or on `start`), reminded
//! once, and closed once with every decision applied (see the parent module's invariants).
//! [`run_due`] is what the review worker does at each wake-up, on every replica; each step is
//! a conditional change, so the replica that loses a race writes nothing.

use std::collections::BTreeSet;

use portcullis_core::alerts::GLOBAL_ADMINISTRATOR;
use portcullis_core::audit::Outcome;
use portcullis_core::reviews::RoundState;
use portcullis_store::roles::AssignmentFilter;
use portcullis_store::{
    BREAKGLASS_MINIMUM, ClosedItem, LAST_GLOBAL_ADMINISTRATOR, NewReviewItem, NewReviewRound,
    REVIEW_ROUND_NOT_OPEN, ReviewClose,
};

use super::*;

/// The changes and events that open a round of a review.
pub(super) struct Opening {
    pub change: Change,
    pub events: Vec<NewAuditEvent>,
}

/// What a round's close did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Closed {
    pub kept: usize,
    pub removed: usize,
    /// Items decided by the close (the default, or keep for a break-glass account).
    pub defaulted: usize,
    /// Removals a guard refused (two break-glass accounts, the last Global Administrator).
    pub refused: usize,
    /// Removals of assignments that had ended before the close.
    pub already_ended: usize,
}

/// The round of `review` opening at `now` by `by`: its items (every live eligible and active
/// assignment of the role in the review's scope, each with its reviewer) and the notification
/// to each reviewer. With `due_only`, the write conflicts unless the review's next round is due.
pub(super) async fn opening(
    state: &AppState,
    review: &AccessReview,
    by: &str,
    now: OffsetDateTime,
    due_only: bool,
) -> Result<Opening, ApiError> {
    let reviewers = Reviewers::parse(&review.reviewers, review.fallback.as_deref())
        .map_err(ApiError::internal)?;
    let scope = Scope::parse(&review.scope).map_err(ApiError::internal)?;
    let live = state
        .store
        .assignments(&AssignmentFilter {
            role: Some(review.role.clone()),
            ..Default::default()
        })
        .await?;
    let mut items = Vec::new();
    for a in live {
        if a.starts_at_us > us(now) || a.ends_at_us.is_some_and(|e| e <= us(now)) {
            continue;
        }
        let Ok(at) = Scope::parse(&a.scope) else {
            continue;
        };
        if !scope.contains(&at) {
            continue;
        }
        let manager = match (&reviewers, a.principal_kind) {
            (Reviewers::Managers { .. }, PrincipalKind::User) => state
                .store
                .manager_of(&a.principal_id)
                .await?
                .filter(|m| {
                    m.kind == PrincipalKind::User
                        && m.enabled
                        && !m.emergency
                        && m.id != a.principal_id
                })
                .map(|m| m.name),
            _ => None,
        };
        items.push(NewReviewItem {
            reviewer: reviewers.reviewer_for(manager.as_deref()).label(),
            assignment_id: a.id,
            principal_id: a.principal_id,
            role: a.role,
            scope: a.scope,
            kind: a.kind,
        });
    }
    let id = new_id("rr");
    let closes = now + Duration::seconds(review.duration_seconds);
    let reminder = reviews::reminder_at(now, closes);
    let to: Vec<String> = items
        .iter()
        .map(|i| i.reviewer.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let payload = serde_json::json!({
        "review_id": review.id, "round_id": id, "role": review.role, "scope": review.scope,
        "items": items.len(), "closes_at": rfc3339(us(closes)), "console": console_link(state),
    });
    let ev = system_event(by, "review.round_opened", format!("review:{}", review.id)).details(
        serde_json::json!({
            "round_id": id, "role": review.role, "scope": review.scope, "items": items.len(),
            "reviewers": to, "closes_at": rfc3339(us(closes)),
        }),
    );
    let mut changes = vec![Change::Review(ReviewChange::Open(NewReviewRound {
        id,
        review_id: review.id.clone(),
        opened_by: by.to_owned(),
        opened_at_us: us(now),
        closes_at_us: us(closes),
        reminder_at_us: us(reminder),
        scheduled: due_only,
        next_round_at_us: review.every_seconds.map(|e| us(now + Duration::seconds(e))),
        items,
    }))];
    changes.extend(notifications(&to, "review.opened", &payload, now));
    Ok(Opening {
        change: Change::Many(changes),
        events: vec![ev],
    })
}

/// Reminds the reviewers of `round` who still have undecided items, once.
async fn remind(
    state: &AppState,
    round: &ReviewRound,
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    let Some(review) = state.store.access_review(&round.review_id).await? else {
        return Ok(());
    };
    let items = state.store.review_items(&round.id).await?;
    let undecided: Vec<_> = items.iter().filter(|i| i.decision.is_none()).collect();
    let to: Vec<String> = undecided
        .iter()
        .map(|i| i.reviewer.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let payload = serde_json::json!({
        "review_id": review.id, "round_id": round.id, "role": review.role, "scope": review.scope,
        "undecided": undecided.len(), "closes_at": rfc3339(round.closes_at_us), "console": console_link(state),
    });
    let mut changes = vec![Change::Review(ReviewChange::Remind {
        round_id: round.id.clone(),
        at_us: us(now),
    })];
    changes.extend(notifications(&to, "review.reminder", &payload, now));
    let ev = system_event(SYSTEM, "review.reminded", format!("review:{}", review.id)).details(
        serde_json::json!({ "round_id": round.id, "reviewers": to, "undecided": undecided.len() }),
    );
    match state.store.write(Change::Many(changes), vec![ev]).await {
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Which guard a removal meets when it is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// A break-glass account's Global Administrator assignment: two usable ones remain.
    BreakGlassMinimum,
    /// Anyone else's Global Administrator assignment: somebody can still reach it at `/`.
    GlobalAdministrator,
}

impl Guard {
    fn outcome(self) -> &'static str {
        match self {
            Self::BreakGlassMinimum => "refused_breakglass_minimum",
            Self::GlobalAdministrator => "refused_last_global_administrator",
        }
    }

    fn code(self) -> &'static str {
        match self {
            Self::BreakGlassMinimum => "breakglass_minimum",
            Self::GlobalAdministrator => "last_global_administrator",
        }
    }
}

/// Closes round `round_id` now, by `actor` (the worker, or whoever closed it early): the
/// undecided items get the default and every removal is applied, in one conditional
/// transaction. `None` when the round is not open any more (closed elsewhere, or cancelled).
pub async fn close_round(
    state: &AppState,
    round_id: &str,
    actor: &str,
) -> Result<Option<Closed>, ApiError> {
    // Guards that refused the removals of an earlier attempt: those removals are left out
    // (and recorded as refused) on the next one, so the rest of the round is still applied.
    let mut refused: Vec<Guard> = Vec::new();
    for _ in 0..6 {
        let now = OffsetDateTime::now_utc();
        let Some(round) = state.store.review_round(round_id).await? else {
            return Err(ApiError::not_found("no such review round"));
        };
        if round.state != RoundState::Open {
            return Ok(None);
        }
        let review = state
            .store
            .access_review(&round.review_id)
            .await?
            .ok_or_else(|| ApiError::internal("a review round without its review"))?;
        let default = Decision::parse(&review.default_decision)
            .ok_or_else(|| ApiError::internal("unreadable default decision"))?;
        let items = state.store.review_items(&round.id).await?;
        let decided_before = items.iter().filter(|i| i.decision.is_some()).count() as i64;
        let mut tally = Closed::default();
        let mut closed = Vec::with_capacity(items.len());
        let mut removals = Vec::new();
        let mut events = Vec::new();
        let mut guards: Vec<Guard> = Vec::new();
        let mut breakglass_kept: Vec<String> = Vec::new();
        for i in &items {
            let decided = i.decision.as_deref().and_then(Decision::parse);
            let (decision, defaulted) = reviews::final_decision(decided, default, i.emergency);
            let why_default = if i.emergency {
                "break-glass account: never removed by a default"
            } else {
                "undecided at the close: the review's default"
            };
            let label = format!("{}:{}", i.principal_kind, i.principal_name);
            let facts = serde_json::json!({
                "review_id": review.id, "round_id": round.id, "assignment_id": i.assignment_id,
                "role": i.role, "scope": i.scope, "kind": i.kind,
            });
            let with = |extra: serde_json::Value| {
                let mut d = facts.clone();
                if let (Some(d), Some(e)) = (d.as_object_mut(), extra.as_object()) {
                    d.extend(e.clone());
                }
                d
            };
            if defaulted && i.emergency {
                // Kept by the rule, not by a decision: listed in `review.closed` rather than
                // as an event of its own, which would name the break-glass account and raise
                // the critical break-glass alert for a change that did not happen.
                tally.defaulted += 1;
                breakglass_kept.push(i.principal_name.clone());
            } else if defaulted {
                tally.defaulted += 1;
                events.push(system_event(actor, "review.decided", label.clone()).details(with(
                    serde_json::json!({ "decision": decision.as_str(), "reason": why_default, "default": true }),
                )));
            }
            let decided_by = i.decided_by.clone().unwrap_or_else(|| "default".to_owned());
            let reason = i.reason.clone().unwrap_or_else(|| why_default.to_owned());
            let outcome = if decision == Decision::Keep {
                tally.kept += 1;
                "kept"
            } else {
                match state.store.assignment(&i.assignment_id).await? {
                    Some(a)
                        if a.ended_at_us.is_none() && a.ends_at_us.is_none_or(|e| e > us(now)) =>
                    {
                        // A just-in-time membership may be someone's way to Global
                        // Administrator: its removal is guarded like a Global Administrator's.
                        let guard = (a.role == GLOBAL_ADMINISTRATOR
                            || a.role == portcullis_core::roles::GROUP_MEMBER)
                            .then_some(if i.emergency {
                                Guard::BreakGlassMinimum
                            } else {
                                Guard::GlobalAdministrator
                            });
                        match guard {
                            Some(g) if refused.contains(&g) => {
                                tally.refused += 1;
                                events.push(
                                    system_event(actor, "assignment.removed", label.clone())
                                        .outcome(Outcome::Failure)
                                        .details(with(serde_json::json!({
                                            "decided_by": decided_by, "decision_reason": reason,
                                            "reason": g.code(), "alert": true,
                                        }))),
                                );
                                g.outcome()
                            }
                            _ => {
                                if let Some(g) = guard
                                    && !guards.contains(&g)
                                {
                                    guards.push(g);
                                }
                                let (changes, closed_requests) =
                                    crate::services::roles::closing_requests_of(
                                        &state.store,
                                        &a,
                                        actor,
                                        "review_removed",
                                        now,
                                    )
                                    .await?;
                                removals.extend(changes);
                                removals.push(Change::EndAssignment {
                                    id: a.id.clone(),
                                    reason: "review_removed".into(),
                                    by: actor.to_owned(),
                                    at_us: us(now),
                                });
                                events.push(
                                    system_event(actor, "assignment.removed", label.clone())
                                        .details(with(serde_json::json!({
                                            "decided_by": decided_by, "reason": reason,
                                        }))),
                                );
                                events.extend(closed_requests);
                                tally.removed += 1;
                                "removed"
                            }
                        }
                    }
                    _ => {
                        tally.already_ended += 1;
                        "already_ended"
                    }
                }
            };
            closed.push(ClosedItem {
                assignment_id: i.assignment_id.clone(),
                default: defaulted.then(|| (decision.as_str().to_owned(), why_default.to_owned())),
                outcome: outcome.to_owned(),
            });
        }
        let mut changes = vec![Change::Review(ReviewChange::Close(ReviewClose {
            round_id: round.id.clone(),
            decided_before,
            items: closed,
            at_us: us(now),
        }))];
        changes.extend(removals);
        for g in &guards {
            changes.push(match g {
                Guard::BreakGlassMinimum => Change::RequireBreakGlassMinimum {
                    min: crate::services::privilege::REQUIRED,
                    before: state.store.usable_breakglass_count().await?,
                },
                Guard::GlobalAdministrator => Change::RequireGlobalAdministrator {
                    before: state.store.global_administrator_count(us(now)).await?,
                    at_us: us(now),
                },
            });
        }
        events.push(
            system_event(actor, "review.closed", format!("review:{}", review.id)).details(
                serde_json::json!({
                    "round_id": round.id, "role": review.role, "scope": review.scope,
                    "items": items.len(), "kept": tally.kept, "removed": tally.removed,
                    "defaulted": tally.defaulted, "refused": tally.refused,
                    "already_ended": tally.already_ended, "default": review.default_decision,
                    "breakglass_kept": breakglass_kept,
                }),
            ),
        );
        match state.store.write(Change::Many(changes), events).await {
            Ok(_) => {
                if guards.contains(&Guard::BreakGlassMinimum) {
                    state.breakglass.forget();
                }
                return Ok(Some(tally));
            }
            Err(StoreError::Conflict(m)) if m == REVIEW_ROUND_NOT_OPEN => return Ok(None),
            Err(StoreError::Conflict(m)) if m == BREAKGLASS_MINIMUM => {
                refused.push(Guard::BreakGlassMinimum);
            }
            Err(StoreError::Conflict(m)) if m == LAST_GLOBAL_ADMINISTRATOR => {
                refused.push(Guard::GlobalAdministrator);
            }
            // A decision arrived, a request moved on or an assignment ended meanwhile: read
            // again and plan the close again.
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        ErrorCode::Conflict,
        "the round kept changing while it was closing; it will be closed again shortly",
    ))
}

/// Closes round `id` now (`reviews.manage`), before its time.
pub async fn close_round_now(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Closed, ApiError> {
    caller.require(perm::REVIEWS_MANAGE)?;
    if id.len() > 80 {
        return Err(ApiError::not_found("no such review round"));
    }
    close_round(state, id, &caller.actor())
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::Conflict, "this review round is not open"))
}

/// Everything due at `now` on this replica's watch: rounds to close, reviewers to remind,
/// rounds to open by the schedule. Each is conditional, so replicas doing the same at once
/// act once. One failing round does not hold up the others (the first error is returned).
pub async fn run_due(state: &AppState) -> Result<(), ApiError> {
    let now = OffsetDateTime::now_utc();
    let mut first_error = None;
    for round in state.store.open_review_rounds().await? {
        let done = if round.closes_at_us <= us(now) {
            close_round(state, &round.id, SYSTEM).await.map(|_| ())
        } else if round.reminded_at_us.is_none() && round.reminder_at_us <= us(now) {
            remind(state, &round, now).await
        } else {
            Ok(())
        };
        if let Err(e) = done {
            first_error.get_or_insert(e);
        }
    }
    for review in state.store.reviews_due(us(now)).await? {
        let opened = match opening(state, &review, SYSTEM, now, true).await {
            Ok(o) => match state.store.write(o.change, o.events).await {
                Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = opened {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// When the review worker next has something to do.
pub async fn next_deadline(state: &AppState) -> Result<Option<OffsetDateTime>, ApiError> {
    Ok(state
        .store
        .next_review_deadline()
        .await?
        .map(crate::time_us::from_us))
}
