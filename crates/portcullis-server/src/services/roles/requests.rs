//! Activation requests: create (step-up, justification, ticket, eligibility; now or scheduled
//! to start later), list, approve or deny (N distinct people, never the requester), and close
//! on core's state machine. Extensions are requests too (`extension`): approving one moves the
//! end of the activation it extends.

use super::extension::{
    cancel_stale_extension, closing_extension_of, extension_applied, extension_target,
};
use super::*;
use crate::services::support::{ConflictExt, check_reason};

pub(super) async fn request_view(
    state: &AppState,
    r: &ActivationRequest,
) -> Result<ActivationRequestView, ApiError> {
    let approvals = state
        .store
        .decisions(&r.id)
        .await?
        .into_iter()
        .filter(|d| d.decision == "approve")
        .map(|d| d.approver_name)
        .collect();
    Ok(view_of(r, approvals))
}

/// A request as the API shows it, with the names of those who approved it.
fn view_of(r: &ActivationRequest, approvals: Vec<String>) -> ActivationRequestView {
    ActivationRequestView {
        id: r.id.clone(),
        requester: r.principal_name.clone(),
        role: r.role.clone(),
        scope: r.scope.clone(),
        state: r.state.as_str().to_owned(),
        duration_seconds: r.duration_seconds,
        justification: r.justification.clone(),
        ticket: r.ticket.clone(),
        approvals_required: r.approvals_required,
        approvals,
        created_at: rfc3339(r.created_at_us),
        times_out_at: r.timeout_at_us.map(rfc3339),
        activated_at: r.activated_at_us.map(rfc3339),
        ends_at: r.ends_at_us.map(rfc3339),
        closed_at: r.closed_at_us.map(rfc3339),
        closed_by: r.closed_by.clone(),
        close_reason: r.close_reason.clone(),
        starts_at: r.starts_at_us.map(rfc3339),
        extends: r.extends_id.clone(),
    }
}

/// Core's activation rules name the code; the server answers with it.
pub(super) fn activation_error(e: ActivationError) -> ApiError {
    coded(e.code(), e.to_string())
}

/// Core's scheduling and extension rules name the code; the server answers with it.
pub(super) fn schedule_error(e: schedule::ScheduleError) -> ApiError {
    coded(e.code(), e.to_string())
}

/// Core's approval rules name the code; the server answers with it.
pub(super) fn approval_error(e: ApprovalError) -> ApiError {
    coded(e.code(), e.to_string())
}

/// Outbox messages for `recipients` (`user:NAME`, `group:NAME`, an email address).
pub fn notifications(
    recipients: &[String],
    topic: &str,
    payload: &serde_json::Value,
    now: OffsetDateTime,
) -> Vec<Change> {
    recipients
        .iter()
        .map(|r| {
            Change::Enqueue(NewOutboxMessage {
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

/// The eligible assignment that lets `principal` activate `role` at `scope`: of those that
/// apply (read with the caller), the one that lasts longest.
pub(super) fn eligibility<'a>(
    applying: &'a [Assignment],
    role: &str,
    scope: &Scope,
) -> Option<&'a Assignment> {
    let mut best: Option<&Assignment> = None;
    for a in applying {
        if a.kind != portcullis_core::roles::AssignmentKind::Eligible || a.role != role {
            continue;
        }
        let Ok(s) = Scope::parse(&a.scope) else {
            continue;
        };
        if !s.contains(scope) {
            continue;
        }
        let better = match (best, a.ends_at_us) {
            (None, _) => true,
            (Some(b), None) => b.ends_at_us.is_some(),
            (Some(b), Some(e)) => b.ends_at_us.is_some_and(|be| e > be),
        };
        if better {
            best = Some(a);
        }
    }
    best
}

/// A role asking for approval with nobody to give it: a configuration gap, said plainly (for a
/// membership, on the group's roles, whose settings it follows).
pub(super) fn no_approver(def: &RoleDef) -> ApiError {
    let msg = match &def.group {
        Some(g) => format!(
            "joining {g} requires approval (as the strictest of its roles does) but the highest-tier role asking for it names no approver; a Privileged Role Administrator must set that role's approvers"
        ),
        None => format!(
            "{} requires approval but names no approver; a Privileged Role Administrator must set approvers (portcullis roles settings set {} --approvers NAME,…)",
            def.slug, def.slug
        ),
    };
    coded(ErrorCode::Conflict, msg)
}

pub async fn create_request(
    state: &AppState,
    caller: &Caller,
    req: CreateActivationRequest,
) -> Result<ActivationRequestView, ApiError> {
    let me = caller.require_full()?;
    let scope = match req.scope.as_deref() {
        Some(s) => Scope::parse(s).map_err(invalid)?,
        None => Scope::tenant(),
    };
    let (def, s) = role_and_settings(state, &req.role, &scope).await?;
    // A configuration gap, said before anything about the session or the request.
    if s.require_approval && s.approvers.is_empty() {
        return Err(no_approver(&def));
    }
    let now = OffsetDateTime::now_utc();
    let starts = match req.starts_at.as_deref() {
        Some(t) => Some(
            OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|_| ApiError::bad_request("starts_at must be an RFC 3339 time"))?,
        ),
        None => None,
    };
    let duration = Duration::seconds(req.duration_seconds);
    let facts = SessionFacts {
        strength: me.strength,
        strong_auth_at: me.session.strong_auth_at_us.map(from_us),
    };
    let input = ActivationInput {
        duration,
        justification: req.justification.as_deref(),
        ticket: req.ticket.as_deref(),
        completes_as: if starts.is_some() {
            Completion::Schedule
        } else {
            Completion::Activate
        },
    };
    let initial =
        activation::check_activation(&s, &facts, &input, now).map_err(activation_error)?;
    let Some(elig) = eligibility(&me.assignments, &def.slug, &scope) else {
        return Err(coded(
            ErrorCode::NotEligible,
            format!(
                "you are not eligible for {} at {}",
                def.slug,
                scope.as_str()
            ),
        ));
    };
    let elig_end = eligibility_end(state, elig, &me.principal.id, now).await?;
    if let Some(start) = starts {
        schedule::check_start(start, now, elig_end).map_err(schedule_error)?;
    }
    let id = new_id("r");
    let active = initial == RequestState::Active;
    let scheduled = initial == RequestState::Scheduled;
    // A scheduled request's window is fixed now: from its start for its duration.
    let window_end = starts.map(|start| activation::grant_end(start, duration, elig_end));
    let ends = if active {
        Some(activation::grant_end(now, duration, elig_end))
    } else if scheduled {
        window_end
    } else {
        None
    };
    let timeout = match (starts, window_end) {
        (Some(start), Some(end)) => schedule::scheduled_approval_deadline(now, start, end),
        _ => now + APPROVAL_TIMEOUT,
    };
    let payload = serde_json::json!({
        "request_id": id, "requester": me.principal.name, "role": def.slug, "scope": scope.as_str(),
        "duration_seconds": req.duration_seconds, "justification": req.justification, "ticket": req.ticket,
        "starts_at": starts.map(|t| rfc3339(us(t))),
    });
    let new_request = NewRequest {
        id: id.clone(),
        principal_id: me.principal.id.clone(),
        role: def.slug.clone(),
        scope: scope.as_str().to_owned(),
        eligibility_id: elig.id.clone(),
        state: initial,
        duration_seconds: req.duration_seconds,
        justification: req.justification.clone(),
        ticket: req.ticket.clone(),
        approvals_required: i64::from(s.approvals_required),
        created_at_us: us(now),
        timeout_at_us: (initial == RequestState::PendingApproval).then(|| us(timeout)),
        activated_at_us: active.then(|| us(now)),
        ends_at_us: ends.map(us),
        starts_at_us: starts.map(us),
        extends_id: None,
    };
    let mut changes = vec![Change::CreateRequest(new_request.clone())];
    let mut events = vec![
        event(caller, "request.created", format!("role:{}", def.slug)).details(payload.clone()),
    ];
    if active {
        changes.extend(notifications(&s.notify, "request.activated", &payload, now));
        events.push(event(caller, "request.activated", format!("role:{}", def.slug)).details(serde_json::json!({
            "request_id": id, "role": def.slug, "scope": scope.as_str(), "ends_at": ends.map(|e| rfc3339(us(e))), "approval": "not_required",
        })));
    } else if scheduled {
        changes.extend(notifications(&s.notify, "request.scheduled", &payload, now));
        events.push(event(caller, "request.scheduled", format!("role:{}", def.slug)).details(serde_json::json!({
            "request_id": id, "role": def.slug, "scope": scope.as_str(), "starts_at": starts.map(|t| rfc3339(us(t))),
            "ends_at": ends.map(|e| rfc3339(us(e))), "approval": "not_required",
        })));
    } else {
        // Approvers get the request's console page as well as the command.
        let mut to_approvers = payload.clone();
        to_approvers["console"] = format!(
            "{}/console/requests/{id}",
            state.tokens.issuer.trim_end_matches('/')
        )
        .into();
        changes.extend(notifications(
            &s.approvers,
            "request.approval_needed",
            &to_approvers,
            now,
        ));
        changes.extend(notifications(&s.notify, "request.created", &payload, now));
    }
    state
        .store
        .write(Change::Many(changes), events)
        .await
        .on_conflict(|| {
            coded(
                ErrorCode::NotEligible,
                "your eligible assignment ended meanwhile",
            )
        })?;
    state.expiry_wake.notify_one();
    // What was just written, without reading it back: a new request has no decisions.
    let written = ActivationRequest {
        id: new_request.id,
        principal_id: new_request.principal_id,
        principal_name: me.principal.name.clone(),
        role: new_request.role,
        scope: new_request.scope,
        eligibility_id: new_request.eligibility_id,
        state: initial,
        duration_seconds: new_request.duration_seconds,
        justification: new_request.justification,
        ticket: new_request.ticket,
        approvals_required: new_request.approvals_required,
        created_at_us: new_request.created_at_us,
        timeout_at_us: new_request.timeout_at_us,
        activated_at_us: new_request.activated_at_us,
        ends_at_us: new_request.ends_at_us,
        closed_at_us: None,
        closed_by: None,
        close_reason: None,
        starts_at_us: new_request.starts_at_us,
        extends_id: None,
    };
    Ok(view_of(&written, Vec::new()))
}

/// Requests: `mine`, those `to_approve` by the caller, or all (needs `requests.read`).
pub async fn list_requests(
    state: &AppState,
    caller: &Caller,
    view: &str,
    state_filter: Option<&str>,
) -> Result<Vec<ActivationRequestView>, ApiError> {
    let me = caller.require_session()?;
    if let Some(st) = state_filter
        && RequestState::parse(st).is_none()
    {
        return Err(ApiError::bad_request(format!("unknown request state {st}")));
    }
    let filter = RequestFilter {
        principal_id: (view == "mine").then(|| me.principal.id.clone()),
        state: match view {
            "to_approve" => Some("pending_approval".into()),
            _ => state_filter.map(str::to_owned),
        },
        limit: Some(500),
    };
    match view {
        "mine" | "to_approve" => {}
        "all" => {
            caller.require(perm::REQUESTS_READ)?;
        }
        _ => {
            return Err(ApiError::bad_request(
                "view must be mine, to_approve or all",
            ));
        }
    }
    let groups = role_assignable_groups(state, &me.principal.id).await?;
    let mut out = Vec::new();
    for r in state.store.requests(&filter).await? {
        if view == "to_approve" {
            if r.principal_id == me.principal.id {
                continue;
            }
            let def = match role_of(state, &r.role, &r.scope).await {
                Ok(d) => d,
                Err(_) => continue,
            };
            let s = settings(state, &def).await?;
            if !activation::is_listed_approver(&me.principal.name, &groups, &s.approvers) {
                continue;
            }
        }
        out.push(request_view(state, &r).await?);
    }
    Ok(out)
}

pub async fn get_request(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<ActivationRequestView, ApiError> {
    let me = caller.require_session()?;
    let r = find_request(state, id).await?;
    if r.principal_id != me.principal.id && !caller.holds(perm::REQUESTS_READ) {
        let groups = role_assignable_groups(state, &me.principal.id).await?;
        let def = role_of(state, &r.role, &r.scope).await?;
        let s = settings(state, &def).await?;
        if !activation::is_listed_approver(&me.principal.name, &groups, &s.approvers) {
            return Err(ApiError::not_found("no such request"));
        }
    }
    request_view(state, &r).await
}

pub(super) async fn find_request(
    state: &AppState,
    id: &str,
) -> Result<ActivationRequest, ApiError> {
    if id.len() > 80 {
        return Err(ApiError::not_found("no such request"));
    }
    state
        .store
        .request(id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such request"))
}

/// Approves or denies a pending request.
pub async fn decide(
    state: &AppState,
    caller: &Caller,
    id: &str,
    approve: bool,
    d: DecisionRequest,
) -> Result<ActivationRequestView, ApiError> {
    let me: &SessionCaller = caller.require_full()?;
    check_reason(&d.reason, !approve)?;
    // A concurrent approval changes the count this decision's audit trail depends on: retry
    // with the fresh state a few times (each attempt is a conditional change).
    for _ in 0..5 {
        let r = find_request(state, id).await?;
        if r.state != RequestState::PendingApproval {
            return Err(coded(
                ErrorCode::AlreadyDecided,
                format!("this request is {}, not pending approval", r.state),
            ));
        }
        let def = role_of(state, &r.role, &r.scope).await?;
        let s = settings(state, &def).await?;
        let groups = role_assignable_groups(state, &me.principal.id).await?;
        let listed = activation::is_listed_approver(&me.principal.name, &groups, &s.approvers);
        let decisions = state.store.decisions(&r.id).await?;
        let approved_by: Vec<String> = decisions
            .iter()
            .filter(|x| x.decision == "approve")
            .map(|x| x.approver_id.clone())
            .collect();
        if decisions.iter().any(|x| x.approver_id == me.principal.id) {
            return Err(approval_error(ApprovalError::AlreadyApproved));
        }
        let approver = activation::Approver {
            id: &me.principal.id,
            person: me.principal.kind == portcullis_core::principal::PrincipalKind::User
                && !me.principal.emergency,
            strength: me.strength,
            listed,
            role_strength: s.required_strength,
        };
        activation::check_approval(&r.principal_id, &approver, &approved_by)
            .map_err(approval_error)?;
        let now = OffsetDateTime::now_utc();
        let approvals_before = approved_by.len() as i64;
        let completes_as = completion_of(&r, now);
        let decision = if approve {
            RequestEvent::Approve {
                approvals_now: u32::try_from(approvals_before + 1).unwrap_or(u32::MAX),
                required: u32::try_from(r.approvals_required.max(1)).unwrap_or(u32::MAX),
                completes_as,
            }
        } else {
            RequestEvent::Deny
        };
        // Core's state machine says where this decision leads.
        let next = activation::transition(RequestState::PendingApproval, &decision)
            .map_err(|e| coded(ErrorCode::AlreadyDecided, e.to_string()))?;
        let completes = approve && next != RequestState::PendingApproval;
        // Still eligible? If the eligibility ended meanwhile the request fails cleanly.
        let elig = state.store.assignment(&r.eligibility_id).await?;
        let elig_live = elig
            .as_ref()
            .is_some_and(|a| a.ended_at_us.is_none() && a.ends_at_us.is_none_or(|e| e > us(now)));
        if approve && !elig_live {
            let ev = event(
                caller,
                "request.cancelled",
                format!("user:{}", r.principal_name),
            )
            .details(serde_json::json!({ "request_id": r.id, "reason": "no_longer_eligible" }));
            let _ = state
                .store
                .write(
                    Change::CloseRequest {
                        id: r.id.clone(),
                        from: RequestState::PendingApproval,
                        to: RequestState::Cancelled,
                        by: "system".into(),
                        reason: Some("no_longer_eligible".into()),
                        at_us: us(now),
                    },
                    vec![ev],
                )
                .await;
            return Err(coded(
                ErrorCode::NotEligible,
                "the requester is no longer eligible for this role; the request was cancelled",
            ));
        }
        let elig_end = elig.as_ref().and_then(|a| a.ends_at_us).map(from_us);
        let target = format!("user:{}", r.principal_name);
        // What completing it writes besides the decision: an extension moves its activation.
        let mut completion_changes = Vec::new();
        let mut completion_event = None;
        let completed = if !completes {
            None
        } else if next == RequestState::Applied {
            let (orig, new_end) = match extension_target(state, &r, elig_end, &s, now).await {
                Ok(x) => x,
                Err(e) => {
                    cancel_stale_extension(state, caller, &r, now).await;
                    return Err(e);
                }
            };
            let (change, ev) = extension_applied(caller, &orig, &r.id, new_end, now);
            completion_changes.push(change);
            completion_event = Some(ev);
            Some(portcullis_store::Completed::Apply {
                ends_at_us: us(new_end),
            })
        } else {
            // A scheduled request's window runs from its start, whenever it is approved.
            let start = r.starts_at_us.map(from_us).unwrap_or(now);
            let ends =
                activation::grant_end(start, Duration::seconds(r.duration_seconds), elig_end);
            Some(if next == RequestState::Scheduled {
                portcullis_store::Completed::Schedule {
                    ends_at_us: us(ends),
                }
            } else {
                portcullis_store::Completed::Activate {
                    at_us: us(now),
                    ends_at_us: us(ends),
                }
            })
        };
        let ends = completed.map(|c| match c {
            portcullis_store::Completed::Activate { ends_at_us, .. }
            | portcullis_store::Completed::Schedule { ends_at_us }
            | portcullis_store::Completed::Apply { ends_at_us } => from_us(ends_at_us),
        });
        let mut events = vec![event(caller, if approve { "request.approved" } else { "request.denied" }, target.clone())
            .details(serde_json::json!({ "request_id": r.id, "role": r.role, "scope": r.scope, "reason": d.reason,
                "approvals": approvals_before + i64::from(approve), "approvals_required": r.approvals_required }))];
        let payload = serde_json::json!({ "request_id": r.id, "role": r.role, "scope": r.scope, "decided_by": me.principal.name,
            "approved": approve, "ends_at": ends.map(|e| rfc3339(us(e))) });
        let mut changes = vec![Change::DecideRequest(portcullis_store::RequestDecision {
            request_id: r.id.clone(),
            approver_id: me.principal.id.clone(),
            approve,
            reason: d.reason.clone(),
            approvals_before,
            completes: completed,
            at_us: us(now),
        })];
        changes.extend(completion_changes);
        match next {
            _ if !completes => {}
            RequestState::Applied => events.extend(completion_event),
            RequestState::Scheduled => {
                events.push(event(caller, "request.scheduled", target.clone()).details(serde_json::json!({
                    "request_id": r.id, "role": r.role, "scope": r.scope, "starts_at": r.starts_at_us.map(rfc3339),
                    "ends_at": ends.map(|e| rfc3339(us(e))), "approval": "complete",
                })));
            }
            _ => {
                events.push(event(caller, "request.activated", target.clone()).details(serde_json::json!({
                    "request_id": r.id, "role": r.role, "scope": r.scope, "ends_at": ends.map(|e| rfc3339(us(e))), "approval": "complete",
                })));
            }
        }
        if completes || !approve {
            changes.extend(notifications(
                &[format!("user:{}", r.principal_name)],
                "request.decided",
                &payload,
                now,
            ));
        }
        match state.store.write(Change::Many(changes), events).await {
            Ok(_) => {
                state.expiry_wake.notify_one();
                let r = find_request(state, id).await?;
                return request_view(state, &r).await;
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(coded(
        ErrorCode::AlreadyDecided,
        "the request changed while deciding; look at it again",
    ))
}

/// What `r` becomes once approved at `now`: an extension is applied, a request whose start
/// lies ahead is scheduled, anything else is active at once.
fn completion_of(r: &ActivationRequest, now: OffsetDateTime) -> Completion {
    if r.extends_id.is_some() {
        Completion::Extend
    } else if r.starts_at_us.is_some_and(|s| s > us(now)) {
        Completion::Schedule
    } else {
        Completion::Activate
    }
}

/// How a request is ended, chosen by the route: there is no other action, so nothing unknown
/// can fall through to a revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseAction {
    /// The requester withdraws a pending request.
    Cancel,
    /// The requester ends an active grant early.
    Deactivate,
    /// Someone with `requests.revoke` ends another's active grant.
    Revoke,
}

impl CloseAction {
    /// The event of core's state machine this action is.
    pub fn event(self) -> RequestEvent {
        match self {
            Self::Cancel => RequestEvent::Cancel,
            Self::Deactivate => RequestEvent::Deactivate,
            Self::Revoke => RequestEvent::Revoke,
        }
    }
}

/// Ends a request by its requester (cancel a pending one, deactivate an active one) or,
/// with `requests.revoke`, revokes someone's active grant.
pub async fn close(
    state: &AppState,
    caller: &Caller,
    id: &str,
    action: CloseAction,
    d: DecisionRequest,
) -> Result<ActivationRequestView, ApiError> {
    let me = caller.require_session()?;
    check_reason(&d.reason, action == CloseAction::Revoke)?;
    let r = find_request(state, id).await?;
    if action == CloseAction::Revoke {
        let scope = Scope::parse(&r.scope).map_err(ApiError::internal)?;
        let s = caller.require_full()?;
        if !portcullis_core::roles::permits(&s.grants, perm::REQUESTS_REVOKE, &scope) {
            return Err(forbidden(perm::REQUESTS_REVOKE, &scope));
        }
    } else if r.principal_id != me.principal.id {
        return Err(ApiError::not_found("no such request"));
    }
    // Core's state machine decides what the action leads to, and whether it can happen.
    let from = r.state;
    let to = activation::transition(from, &action.event())
        .map_err(|e| coded(ErrorCode::AlreadyDecided, e.to_string()))?;
    let now = OffsetDateTime::now_utc();
    let ev = event(caller, &format!("request.{}", to.as_str()), format!("user:{}", r.principal_name))
        .details(serde_json::json!({ "request_id": r.id, "role": r.role, "scope": r.scope, "reason": d.reason }));
    let mut changes = vec![Change::CloseRequest {
        id: r.id.clone(),
        from,
        to,
        by: caller.actor(),
        reason: d.reason.clone(),
        at_us: us(now),
    }];
    let mut events = vec![ev];
    if from == RequestState::Active
        && let Some((change, ev)) = closing_extension_of(state, &r, &caller.actor(), now).await?
    {
        changes.push(change);
        events.push(ev);
    }
    if action == CloseAction::Revoke {
        let payload = serde_json::json!({ "request_id": r.id, "role": r.role, "revoked_by": me.principal.name });
        changes.extend(notifications(
            &[format!("user:{}", r.principal_name)],
            "request.revoked",
            &payload,
            now,
        ));
    }
    state
        .store
        .write(Change::Many(changes), events)
        .await
        .on_conflict(|| {
            coded(
                ErrorCode::AlreadyDecided,
                "the request changed meanwhile; look at it again",
            )
        })?;
    let r = find_request(state, id).await?;
    request_view(state, &r).await
}

/// Deactivates the caller's active grants of `role` (at `scope`, or everywhere).
pub async fn deactivate_role(
    state: &AppState,
    caller: &Caller,
    role_slug: &str,
) -> Result<Vec<ActivationRequestView>, ApiError> {
    let me = caller.require_session()?;
    // Just-in-time memberships (every group's) deactivate by their pseudo-role's name too.
    let slug = if role_slug == portcullis_core::roles::GROUP_MEMBER {
        role_slug.to_owned()
    } else {
        role(state, role_slug).await?.slug
    };
    let active = state
        .store
        .requests(&RequestFilter {
            principal_id: Some(me.principal.id.clone()),
            state: Some("active".into()),
            limit: Some(500),
        })
        .await?;
    let mut out = Vec::new();
    for r in active.iter().filter(|r| r.role == slug) {
        out.push(
            close(
                state,
                caller,
                &r.id,
                CloseAction::Deactivate,
                DecisionRequest::default(),
            )
            .await?,
        );
    }
    if out.is_empty() {
        return Err(ApiError::not_found(format!(
            "you have no active activation of {slug}"
        )));
    }
    Ok(out)
}

/// What ending eligible assignment `assignment_id` does to the requests made through it, as
/// core's state machine says (a pending request is cancelled, an active grant revoked): one
/// conditional close and one audit event (`request.cancelled` / `request.revoked`, naming
/// `reason`) per request, to be written with the assignment's end. The assignment's end also
/// closes, without events, any request that appears between this read and that write (the
/// store's backstop), so no grant outlives its eligibility.
pub async fn closing_requests_of(
    store: &portcullis_store::Store,
    a: &Assignment,
    by: &str,
    reason: &str,
    now: OffsetDateTime,
) -> Result<(Vec<Change>, Vec<portcullis_core::audit::NewAuditEvent>), StoreError> {
    let mut changes = Vec::new();
    let mut events = Vec::new();
    // Requests are made through eligible assignments only: an active one closes nothing.
    if a.kind != portcullis_core::roles::AssignmentKind::Eligible {
        return Ok((changes, events));
    }
    for r in store.open_requests_of_eligibility(&a.id).await? {
        let ev = if r.state == RequestState::Active {
            activation::RequestEvent::Revoke
        } else {
            activation::RequestEvent::Cancel
        };
        let Ok(to) = activation::transition(r.state, &ev) else {
            continue;
        };
        changes.push(Change::CloseRequest {
            id: r.id.clone(),
            from: r.state,
            to,
            by: by.to_owned(),
            reason: Some(reason.to_owned()),
            at_us: us(now),
        });
        events.push(
            portcullis_core::audit::NewAuditEvent::new(
                by,
                format!("request.{}", to.as_str()),
                format!("user:{}", r.principal_name),
            )
            .details(serde_json::json!({
                "request_id": r.id, "role": r.role, "scope": r.scope,
                "reason": reason, "assignment_id": a.id,
            })),
        );
    }
    Ok((changes, events))
}
