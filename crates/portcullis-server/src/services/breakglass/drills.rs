//! Drills and failed recoveries: a fresh session handed in as a drill, and shares that did not rebuild the password (audited, so they alert).

use super::*;

/// Records a drill with the caller's own fresh session, and ends that session.
pub async fn record_drill(state: &AppState, caller: &Caller) -> Result<DrillRecorded, ApiError> {
    let me = caller.require_session()?;
    if !me.principal.emergency {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "only a break-glass account records its own drill, with the session it just signed in with",
        ));
    }
    let now = OffsetDateTime::now_utc();
    if me.scope != SessionScope::Full || now - from_us(me.session.created_at_us) > DRILL_FRESH {
        return Err(ApiError::new(
            ErrorCode::StepUpRequired,
            format!(
                "a drill needs a full session started in the last {} minutes; sign in again",
                DRILL_FRESH.whole_minutes()
            ),
        ));
    }
    let id = new_id("d");
    let change = Change::Many(vec![
        Change::RecordDrill {
            id: id.clone(),
            principal_id: me.principal.id.clone(),
            session_id: me.session.id.clone(),
            at_us: us(now),
        },
        Change::RevokeSession {
            id: me.session.id.clone(),
            at_us: us(now),
        },
    ]);
    let ev = event(
        caller,
        "breakglass.drill",
        format!("user:{}", me.principal.name),
    )
    .details(serde_json::json!({ "session_id": me.session.id, "strength": me.strength.as_str() }));
    state
        .store
        .write(change, vec![ev])
        .await
        .map_err(|e| match e {
            StoreError::Conflict(m) => ApiError::new(ErrorCode::Conflict, m),
            other => other.into(),
        })?;
    Ok(DrillRecorded {
        account: me.principal.name.clone(),
        drill_id: id,
        at: rfc3339(us(now)),
    })
}

pub(super) const RECOVERY_REASONS: &[&str] = &[
    "corrupted_share",
    "foreign_share",
    "wrong_shares",
    "too_few_shares",
    "inconsistent_shares",
];

/// A failed recovery reported by the CLI: audited as a failed sign-in attempt on the account
/// (so it alerts like one), throttled per IP like sign-in. The answer is the same whether or
/// not the account exists.
pub async fn failed_recovery(
    state: &AppState,
    client: &ClientInfo,
    name: &str,
    req: BreakGlassFailedRecovery,
) -> Result<(), ApiError> {
    let name = PrincipalName::parse("name", name).map_err(invalid)?;
    if !RECOVERY_REASONS.contains(&req.reason.as_str()) {
        return Err(ApiError::bad_request(format!(
            "reason must be one of {}",
            RECOVERY_REASONS.join(", ")
        )));
    }
    let now = OffsetDateTime::now_utc();
    // Its own counter (same backoff as an address): custodians who mistype shares must not
    // delay the sign-in that follows from the same address.
    let keys = vec![format!(
        "ip:recovery:{}",
        portcullis_core::throttle::address_key(&client.ip)
    )];
    let action = "signin.breakglass_recovery";
    let attempt = crate::services::identity::Attempt::reserve_keys(
        state,
        keys,
        name.as_str(),
        action,
        client,
        now,
    )
    .await?;
    let ev = crate::services::support::signin_event(
        name.as_str(),
        action,
        Outcome::Failure,
        &req.reason,
        client,
        serde_json::json!({ "where": "cli" }),
    );
    attempt.failed(state, ev).await
}
