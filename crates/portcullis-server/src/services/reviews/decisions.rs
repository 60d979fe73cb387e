//! Reviewers' side of an access review: the items a person reviews, a round as its reviewers
//! (or holders of `reviews.read`) see it, and a decision (see the parent module's invariants).

use std::collections::HashMap;

use portcullis_core::api::{ReviewDecisionRequest, ReviewItemView, ReviewRoundView};
use portcullis_core::reviews::{DecisionFacts, RoundState};
use portcullis_store::REVIEW_ITEM_MOVED;
use portcullis_store::reviews::ReviewItem;

use super::*;
use crate::services::caller::SessionCaller;

/// What decides whether the caller may decide an item: who they are and the groups they are in.
struct Reviewer<'a> {
    me: &'a SessionCaller,
    /// Every group they belong to (their own access through a group is theirs).
    group_ids: Vec<String>,
    /// The role-assignable ones by name: the only groups that make anyone a reviewer.
    role_assignable: Vec<String>,
}

impl<'a> Reviewer<'a> {
    async fn of(state: &AppState, me: &'a SessionCaller) -> Result<Self, ApiError> {
        let groups = state.store.groups_of(&me.principal.id).await?;
        Ok(Self {
            me,
            group_ids: groups.iter().map(|g| g.id.clone()).collect(),
            role_assignable: groups
                .into_iter()
                .filter(|g| g.role_assignable)
                .map(|g| g.name)
                .collect(),
        })
    }

    fn listed(&self, item: &ReviewItem) -> bool {
        reviews::Reviewer::parse(&item.reviewer).is_some_and(|r| {
            reviews::is_reviewer(&self.me.principal.name, &self.role_assignable, &r)
        })
    }

    fn facts(&self, item: &ReviewItem, open: bool) -> DecisionFacts {
        let p = &self.me.principal;
        DecisionFacts {
            own: item.principal_id == p.id || self.group_ids.contains(&item.principal_id),
            person: p.kind == PrincipalKind::User && !p.emergency,
            listed: self.listed(item),
            strength: self.me.strength,
            open,
            decided: item.decision.is_some(),
        }
    }
}

fn item_view(i: &ReviewItem, round: &ReviewRound, can_decide: bool) -> ReviewItemView {
    ReviewItemView {
        review_id: round.review_id.clone(),
        round_id: i.round_id.clone(),
        assignment_id: i.assignment_id.clone(),
        principal: format!("{}:{}", i.principal_kind, i.principal_name),
        role: i.role.clone(),
        scope: i.scope.clone(),
        kind: i.kind.as_str().to_owned(),
        reviewer: i.reviewer.clone(),
        decision: i.decision.clone(),
        reason: i.reason.clone(),
        decided_by: i.decided_by.clone(),
        decided_at: i.decided_at_us.map(rfc3339),
        applied_at: i.applied_at_us.map(rfc3339),
        outcome: i.outcome.clone(),
        closes_at: rfc3339(round.closes_at_us),
        can_decide,
    }
}

async fn find_round(state: &AppState, id: &str) -> Result<ReviewRound, ApiError> {
    let not_found = || ApiError::not_found("no such review round");
    if id.len() > 80 {
        return Err(not_found());
    }
    state.store.review_round(id).await?.ok_or_else(not_found)
}

/// The items of open rounds the caller reviews (decided ones too, until the round closes).
pub async fn my_items(state: &AppState, caller: &Caller) -> Result<Vec<ReviewItemView>, ApiError> {
    let me = caller.require_full()?;
    let who = Reviewer::of(state, me).await?;
    let rounds: HashMap<String, ReviewRound> = state
        .store
        .open_review_rounds()
        .await?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    let mut out = Vec::new();
    for i in state.store.open_review_items().await? {
        let Some(round) = rounds.get(&i.round_id) else {
            continue;
        };
        if !who.listed(&i) {
            continue;
        }
        let can = reviews::check_decision(&who.facts(&i, true)).is_ok();
        out.push(item_view(&i, round, can));
    }
    Ok(out)
}

/// A round with its items: every item for holders of `reviews.read`, else the items the caller
/// reviews (none: `not_found`).
pub async fn get_round(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<ReviewRoundView, ApiError> {
    let me = caller.require_full()?;
    let round = find_round(state, id).await?;
    let review = find_review(state, &round.review_id).await?;
    let who = Reviewer::of(state, me).await?;
    let all = caller.holds(perm::REVIEWS_READ);
    let open = round.state == RoundState::Open;
    let items: Vec<ReviewItemView> = state
        .store
        .review_items(&round.id)
        .await?
        .iter()
        .filter(|i| all || who.listed(i))
        .map(|i| {
            let can = who.listed(i) && reviews::check_decision(&who.facts(i, open)).is_ok();
            item_view(i, &round, can)
        })
        .collect();
    if !all && items.is_empty() {
        return Err(ApiError::not_found("no such review round"));
    }
    Ok(ReviewRoundView {
        id: round.id.clone(),
        review_id: review.id,
        role: review.role,
        scope: review.scope,
        state: round.state.as_str().to_owned(),
        default_decision: review.default_decision,
        opened_at: rfc3339(round.opened_at_us),
        closes_at: rfc3339(round.closes_at_us),
        reminder_at: rfc3339(round.reminder_at_us),
        reminded_at: round.reminded_at_us.map(rfc3339),
        closed_at: round.closed_at_us.map(rfc3339),
        items,
    })
}

/// One item of a round, as the caller may see it (`not_found` for anyone who neither reviews
/// it nor holds `reviews.read`).
pub async fn get_item(
    state: &AppState,
    caller: &Caller,
    round_id: &str,
    assignment_id: &str,
) -> Result<ReviewItemView, ApiError> {
    get_round(state, caller, round_id)
        .await?
        .items
        .into_iter()
        .find(|i| i.assignment_id == assignment_id)
        .ok_or_else(|| ApiError::not_found("no such review item"))
}

/// Records the caller's decision on an item of an open round they review (never their own).
pub async fn decide(
    state: &AppState,
    caller: &Caller,
    round_id: &str,
    assignment_id: &str,
    req: ReviewDecisionRequest,
) -> Result<ReviewItemView, ApiError> {
    let me = caller.require_full()?;
    let decision =
        Decision::parse(&req.decision).ok_or_else(|| invalid(reviews::ReviewError::BadDecision))?;
    let reason = reviews::check_reason(&req.reason).map_err(invalid)?;
    let round = find_round(state, round_id).await?;
    let not_found = || ApiError::not_found("no such review item");
    let item = state
        .store
        .review_items(&round.id)
        .await?
        .into_iter()
        .find(|i| i.assignment_id == assignment_id)
        .ok_or_else(not_found)?;
    let who = Reviewer::of(state, me).await?;
    reviews::check_decision(&who.facts(&item, round.state == RoundState::Open))
        .map_err(|e| ApiError::new(e.code(), e.to_string()))?;
    let now = OffsetDateTime::now_utc();
    let ev = event(
        caller,
        "review.decided",
        format!("{}:{}", item.principal_kind, item.principal_name),
    )
    .details(serde_json::json!({
        "review_id": round.review_id, "round_id": round.id, "assignment_id": item.assignment_id,
        "role": item.role, "scope": item.scope, "kind": item.kind,
        "decision": decision.as_str(), "reason": reason,
    }));
    match state
        .store
        .write(
            Change::Review(ReviewChange::Decide {
                round_id: round.id.clone(),
                assignment_id: item.assignment_id.clone(),
                decision: decision.as_str().to_owned(),
                reason,
                decided_by: caller.actor(),
                at_us: us(now),
            }),
            vec![ev],
        )
        .await
    {
        Ok(_) => {}
        Err(StoreError::Conflict(m)) if m == REVIEW_ITEM_MOVED => {
            // Closed or decided meanwhile: say which.
            let round = find_round(state, round_id).await?;
            let refusal = if round.state == RoundState::Open {
                reviews::ReviewRefusal::AlreadyDecided
            } else {
                reviews::ReviewRefusal::Closed
            };
            return Err(ApiError::new(refusal.code(), refusal.to_string()));
        }
        Err(e) => return Err(e.into()),
    }
    get_item(state, caller, round_id, assignment_id).await
}
