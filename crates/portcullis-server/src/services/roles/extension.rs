//! Extensions: more time for one's own active activation, asked before it ends.
//!
//! An extension is a request of its own (`extends` names the activation): it needs the same
//! fresh strength, justification and ticket as activating the role for the time from now to the
//! new end, and the same approval. Until it is decided the activation keeps running with its
//! old end; approved (or needing no approval), it is `applied` and the activation's end moves
//! in the same transaction, with a grant carrying the new end written for its targets.
//!
//! Invariants (core's [`schedule`] rules):
//! - Only the activation's own requester asks, while it is active and before its end.
//! - The new end is at most the role's maximum activation from the moment of asking, and
//!   never past the eligibility; a maximum cannot be stretched by extending repeatedly, since
//!   each extension is measured from now.
//! - At most one extension of an activation waits at a time (a unique index backs this).
//! - An extension not decided by the activation's end times out with it; one whose activation
//!   ended meanwhile is cancelled when someone tries to approve it.
//! - Moving the end is conditional on the activation still being active with the end that was
//!   read, so an expiry, a deactivation or a containment racing the extension wins cleanly.

use super::requests::{activation_error, find_request, notifications, schedule_error};
use super::*;

/// Asks for `req.duration_seconds` more on the caller's active activation `id`.
pub async fn extend(
    state: &AppState,
    caller: &Caller,
    id: &str,
    req: ExtendActivationRequest,
) -> Result<ActivationRequestView, ApiError> {
    let me = caller.require_full()?;
    let orig = find_request(state, id).await?;
    // Someone else's activation is not named to the caller.
    if orig.principal_id != me.principal.id {
        return Err(ApiError::not_found("no such request"));
    }
    if orig.state != RequestState::Active || orig.extends_id.is_some() {
        return Err(schedule_error(schedule::ScheduleError::NotExtendable));
    }
    let scope = Scope::parse(&orig.scope).map_err(ApiError::internal)?;
    let (def, s) = role_and_settings(state, &orig.role, &scope).await?;
    if s.require_approval && s.approvers.is_empty() {
        return Err(super::requests::no_approver(&def));
    }
    // The eligibility must still apply to the caller (a group membership may have ended).
    let Some(elig) = me.assignments.iter().find(|a| a.id == orig.eligibility_id) else {
        return Err(coded(
            ErrorCode::NotEligible,
            format!("you are no longer eligible for {}", def.slug),
        ));
    };
    let now = OffsetDateTime::now_utc();
    let current_end = orig
        .ends_at_us
        .map(from_us)
        .ok_or_else(|| ApiError::internal("an active request without an end"))?;
    let new_end = schedule::extension_end(
        current_end,
        Duration::seconds(req.duration_seconds),
        eligibility_end(state, elig, &me.principal.id, now).await?,
        now,
        Duration::seconds(s.max_activation),
    )
    .map_err(schedule_error)?;
    let facts = SessionFacts {
        strength: me.strength,
        strong_auth_at: me.session.strong_auth_at_us.map(from_us),
    };
    let input = ActivationInput {
        duration: new_end - now,
        justification: req.justification.as_deref(),
        ticket: req.ticket.as_deref(),
        completes_as: Completion::Extend,
    };
    let initial =
        activation::check_activation(&s, &facts, &input, now).map_err(activation_error)?;
    if state.store.pending_extension_of(&orig.id).await?.is_some() {
        return Err(pending_already());
    }
    let applied = initial == RequestState::Applied;
    let ext_id = new_id("r");
    let new_request = NewRequest {
        id: ext_id.clone(),
        principal_id: me.principal.id.clone(),
        role: orig.role.clone(),
        scope: orig.scope.clone(),
        eligibility_id: orig.eligibility_id.clone(),
        state: initial,
        duration_seconds: req.duration_seconds,
        justification: req.justification.clone(),
        ticket: req.ticket.clone(),
        approvals_required: i64::from(s.approvals_required),
        created_at_us: us(now),
        timeout_at_us: (!applied)
            .then(|| us(schedule::extension_approval_deadline(now, current_end))),
        activated_at_us: None,
        ends_at_us: applied.then(|| us(new_end)),
        starts_at_us: None,
        extends_id: Some(orig.id.clone()),
    };
    let payload = serde_json::json!({
        "request_id": ext_id, "extends": orig.id, "requester": me.principal.name, "role": orig.role,
        "scope": orig.scope, "duration_seconds": req.duration_seconds, "ends_at": rfc3339(us(current_end)),
        "extended_ends_at": rfc3339(us(new_end)), "justification": req.justification, "ticket": req.ticket,
    });
    let mut changes = vec![Change::CreateRequest(new_request)];
    let mut events = vec![
        event(
            caller,
            "request.extension_requested",
            format!("role:{}", orig.role),
        )
        .details(payload.clone()),
    ];
    if applied {
        let (change, ev) = extension_applied(caller, &orig, &ext_id, new_end, now);
        changes.push(change);
        events.push(ev);
        changes.extend(notifications(&s.notify, "request.extended", &payload, now));
    } else {
        let mut to_approvers = payload.clone();
        to_approvers["console"] = format!(
            "{}/console/requests/{ext_id}",
            state.tokens.issuer.trim_end_matches('/')
        )
        .into();
        changes.extend(notifications(
            &s.approvers,
            "request.approval_needed",
            &to_approvers,
            now,
        ));
        changes.extend(notifications(
            &s.notify,
            "request.extension_requested",
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
                ErrorCode::Conflict,
                "the activation ended, changed or got another extension meanwhile; look at it again",
            )
        })?;
    state.expiry_wake.notify_one();
    let r = find_request(state, &ext_id).await?;
    super::requests::request_view(state, &r).await
}

fn pending_already() -> ApiError {
    coded(
        ErrorCode::Conflict,
        "an extension of this activation is waiting for approval already",
    )
}

/// The activation extension `ext` extends and the end approving it now gives, or why it
/// cannot be applied any more.
pub(super) async fn extension_target(
    state: &AppState,
    ext: &ActivationRequest,
    eligibility_end: Option<OffsetDateTime>,
    s: &RoleSettings,
    now: OffsetDateTime,
) -> Result<(ActivationRequest, OffsetDateTime), ApiError> {
    let orig_id = ext
        .extends_id
        .as_deref()
        .ok_or_else(|| ApiError::internal("not an extension"))?;
    let orig = find_request(state, orig_id).await?;
    if orig.state != RequestState::Active {
        return Err(schedule_error(schedule::ScheduleError::NotExtendable));
    }
    let current_end = orig
        .ends_at_us
        .map(from_us)
        .ok_or_else(|| ApiError::internal("an active request without an end"))?;
    let new_end = schedule::extension_end(
        current_end,
        Duration::seconds(ext.duration_seconds),
        eligibility_end,
        now,
        Duration::seconds(s.max_activation),
    )
    .map_err(schedule_error)?;
    Ok((orig, new_end))
}

/// The change that moves `orig`'s end to `new_end`, and its `request.extended` event.
pub(super) fn extension_applied(
    caller: &Caller,
    orig: &ActivationRequest,
    ext_id: &str,
    new_end: OffsetDateTime,
    now: OffsetDateTime,
) -> (Change, portcullis_core::audit::NewAuditEvent) {
    let from = orig.ends_at_us.unwrap_or_default();
    let change = Change::ExtendRequest {
        id: orig.id.clone(),
        from_end_us: from,
        to_end_us: us(new_end),
        at_us: us(now),
    };
    let ev = event(
        caller,
        "request.extended",
        format!("user:{}", orig.principal_name),
    )
    .details(serde_json::json!({
        "request_id": orig.id, "extension_id": ext_id, "role": orig.role, "scope": orig.scope,
        "ends_at_before": rfc3339(from), "ends_at": rfc3339(us(new_end)),
    }));
    (change, ev)
}

/// Cancels extension `ext` whose activation can no longer be extended (ended meanwhile);
/// best effort: it times out otherwise.
pub(super) async fn cancel_stale_extension(
    state: &AppState,
    caller: &Caller,
    ext: &ActivationRequest,
    now: OffsetDateTime,
) {
    let (change, ev) = cancelling(ext, &caller.actor(), now);
    let _ = state.store.write(change, vec![ev]).await;
}

/// The close of `orig`'s pending extension, if any, to be written with `orig`'s own end
/// (deactivated or revoked): an extension of an ended activation has nothing left to extend.
pub(super) async fn closing_extension_of(
    state: &AppState,
    orig: &ActivationRequest,
    by: &str,
    now: OffsetDateTime,
) -> Result<Option<(Change, portcullis_core::audit::NewAuditEvent)>, ApiError> {
    Ok(state
        .store
        .pending_extension_of(&orig.id)
        .await?
        .map(|ext| cancelling(&ext, by, now)))
}

/// Extension `ext` cancelled by `by` because its activation ended, with its event.
fn cancelling(
    ext: &ActivationRequest,
    by: &str,
    now: OffsetDateTime,
) -> (Change, portcullis_core::audit::NewAuditEvent) {
    let change = Change::CloseRequest {
        id: ext.id.clone(),
        from: RequestState::PendingApproval,
        to: RequestState::Cancelled,
        by: by.to_owned(),
        reason: Some("activation_ended".into()),
        at_us: us(now),
    };
    let ev = portcullis_core::audit::NewAuditEvent::new(
        by,
        "request.cancelled",
        format!("user:{}", ext.principal_name),
    )
    .details(serde_json::json!({ "request_id": ext.id, "reason": "activation_ended", "extends": ext.extends_id }));
    (change, ev)
}
