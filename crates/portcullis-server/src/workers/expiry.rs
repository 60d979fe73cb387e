//! The expiry worker (invariant 3: no grant outlives its expiry).
//!
//! It sleeps until the next deadline in the store (an active request's end, a pending
//! request's approval timeout, a scheduled request's start, an assignment's end), not on a
//! coarse poll, and is woken early
//! when a nearer deadline is created in this process. Deadlines survive restarts because they
//! are rows. Across several replicas on one PostgreSQL each deadline is acted on exactly once:
//! every action is a conditional change (`state = 'active'`, `ended_at_us IS NULL`), so the
//! replica that loses the race writes nothing, not even an audit event. A replica that did not
//! create a deadline still wakes for it at most a minute late if its creator died.
//! Reads never count a grant past its end, so access ends on time even before the worker runs.
//! A scheduled request starts only if, at its start, its principal is enabled and its
//! eligibility lives and still applies (the store checks this in the same statement);
//! otherwise it is cancelled (`no_longer_eligible`). An active request whose end an extension
//! moved is left alone: the store expires a request only once its end has come.

use std::sync::Arc;

use portcullis_core::activation::{RequestEvent, RequestState, transition};
use portcullis_core::audit::NewAuditEvent;
use portcullis_store::roles::Deadline;
use portcullis_store::{Change, Store, StoreError};
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::time_us::{from_us, rfc3339, us};

/// The longest the worker sleeps without looking at the store (other replicas' deadlines).
const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(60);
/// Deadlines handled per round; a round's changes are written concurrently (group commit).
const BATCH: i64 = 1000;

/// Runs until `shutdown` resolves.
pub async fn run(store: Store, wake: Arc<Notify>, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        if let Err(e) = expire_due(&store).await {
            tracing::warn!(error = %e, "expiry round failed; retrying shortly");
        }
        let now = OffsetDateTime::now_utc();
        let sleep = match store.next_deadline().await {
            Ok(Some(at)) => (from_us(at) - now)
                .try_into()
                .unwrap_or(std::time::Duration::ZERO)
                .min(MAX_SLEEP),
            Ok(None) => MAX_SLEEP,
            Err(_) => std::time::Duration::from_secs(1),
        };
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = wake.notified() => {}
            _ = &mut shutdown => return,
        }
    }
}

/// Acts on every deadline reached now; the number of changes written.
pub async fn expire_due(store: &Store) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let now = OffsetDateTime::now_utc();
        let due = store.due(us(now), BATCH).await?;
        if due.is_empty() {
            return Ok(total);
        }
        let n = due.len();
        // Requests first: a grant that ends with its eligibility is recorded as expired (with
        // its own event), not as revoked by the assignment's end.
        let (requests, assignments): (Vec<_>, Vec<_>) = due
            .into_iter()
            .partition(|d| !matches!(d, Deadline::AssignmentEnds { .. }));
        for phase in [requests, assignments] {
            let mut tasks = tokio::task::JoinSet::new();
            for d in phase {
                let store = store.clone();
                tasks.spawn(async move { act(&store, d).await });
            }
            while let Some(r) = tasks.join_next().await {
                match r {
                    Ok(Ok(true)) => total += 1,
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {}
                }
            }
        }
        if (n as i64) < BATCH {
            return Ok(total);
        }
    }
}

/// Acts on one deadline; false when another replica (or a person) got there first.
async fn act(store: &Store, d: Deadline) -> Result<bool, StoreError> {
    let now = OffsetDateTime::now_utc();
    let (change, events) = match &d {
        Deadline::RequestStarts { id, at_us } => return start(store, id, *at_us, now).await,
        Deadline::RequestExpires { id, at_us } | Deadline::RequestTimesOut { id, at_us } => {
            let Some(r) = store.request(id).await? else {
                return Ok(false);
            };
            let (from, event) = match d {
                Deadline::RequestExpires { .. } => (RequestState::Active, RequestEvent::Expire),
                _ => (RequestState::PendingApproval, RequestEvent::TimeOut),
            };
            // Core's state machine names the end state; the change is conditional on `from`,
            // so a request that moved on meanwhile is left alone.
            let Ok(to) = transition(from, &event) else {
                return Ok(false);
            };
            let action = format!("request.{}", to.as_str());
            let action = action.as_str();
            let payload = serde_json::json!({ "request_id": r.id, "role": r.role, "scope": r.scope, "state": to.as_str() });
            let change = Change::Many(vec![
                Change::CloseRequest {
                    id: r.id.clone(),
                    from,
                    to,
                    by: "system:expiry".into(),
                    reason: None,
                    at_us: us(now),
                },
                notification(&r.principal_name, action, &payload, now),
            ]);
            let ev = NewAuditEvent::new(
                "system:expiry",
                action,
                format!("user:{}", r.principal_name),
            )
            .details(serde_json::json!({
                "request_id": r.id, "role": r.role, "scope": r.scope,
                "deadline": rfc3339(*at_us), "late_ms": (us(now) - at_us) / 1000,
            }));
            (change, vec![ev])
        }
        Deadline::AssignmentEnds { id, at_us } => {
            let Some(a) = store.assignment(id).await? else {
                return Ok(false);
            };
            // The requests made through it close first, each with its own event.
            let (mut changes, closed) = crate::services::roles::closing_requests_of(
                store,
                &a,
                "system:expiry",
                "eligibility_expired",
                now,
            )
            .await?;
            changes.push(Change::EndAssignment {
                id: a.id.clone(),
                reason: "expired".into(),
                by: "system:expiry".into(),
                at_us: us(now),
            });
            let change = Change::Many(changes);
            let ev = NewAuditEvent::new(
                "system:expiry",
                "assignment.expired",
                format!("{}:{}", a.principal_kind, a.principal_name),
            )
            .details(serde_json::json!({
                "assignment_id": a.id, "role": a.role, "scope": a.scope, "kind": a.kind,
                "deadline": rfc3339(*at_us), "late_ms": (us(now) - at_us) / 1000,
            }));
            (change, std::iter::once(ev).chain(closed).collect())
        }
    };
    match store.write(change, events).await {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Starts scheduled request `id` (its start was `at_us`), or cancels it when it can no longer
/// start; false when another replica (or a person) got there first.
async fn start(
    store: &Store,
    id: &str,
    at_us: i64,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let Some(r) = store.request(id).await? else {
        return Ok(false);
    };
    let Ok(to) = transition(RequestState::Scheduled, &RequestEvent::Start) else {
        return Ok(false);
    };
    let payload = serde_json::json!({ "request_id": r.id, "role": r.role, "scope": r.scope, "state": to.as_str(),
        "ends_at": r.ends_at_us.map(rfc3339) });
    let change = Change::Many(vec![
        Change::StartRequest {
            id: r.id.clone(),
            at_us: us(now),
        },
        notification(&r.principal_name, "request.activated", &payload, now),
    ]);
    let ev = NewAuditEvent::new(
        "system:expiry",
        "request.activated",
        format!("user:{}", r.principal_name),
    )
    .details(serde_json::json!({
        "request_id": r.id, "role": r.role, "scope": r.scope, "ends_at": r.ends_at_us.map(rfc3339),
        "approval": "scheduled", "starts_at": rfc3339(at_us), "late_ms": (us(now) - at_us) / 1000,
    }));
    match store.write(change, vec![ev]).await {
        Ok(_) => return Ok(true),
        Err(StoreError::Conflict(_)) => {}
        Err(e) => return Err(e),
    }
    // Still scheduled, yet it could not start: its principal or eligibility is gone.
    let Some(r) = store.request(id).await? else {
        return Ok(false);
    };
    if r.state != RequestState::Scheduled {
        return Ok(false);
    }
    let Ok(to) = transition(RequestState::Scheduled, &RequestEvent::Cancel) else {
        return Ok(false);
    };
    let payload = serde_json::json!({ "request_id": r.id, "role": r.role, "scope": r.scope, "state": to.as_str(),
        "reason": "no_longer_eligible" });
    let change = Change::Many(vec![
        Change::CloseRequest {
            id: r.id.clone(),
            from: RequestState::Scheduled,
            to,
            by: "system:expiry".into(),
            reason: Some("no_longer_eligible".into()),
            at_us: us(now),
        },
        notification(&r.principal_name, "request.cancelled", &payload, now),
    ]);
    let ev = NewAuditEvent::new(
        "system:expiry",
        "request.cancelled",
        format!("user:{}", r.principal_name),
    )
    .details(serde_json::json!({
        "request_id": r.id, "role": r.role, "scope": r.scope, "reason": "no_longer_eligible",
        "starts_at": rfc3339(at_us),
    }));
    match store.write(change, vec![ev]).await {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The notification to person `name` about one of their requests.
fn notification(
    name: &str,
    topic: &str,
    payload: &serde_json::Value,
    now: OffsetDateTime,
) -> Change {
    Change::Many(crate::services::roles::notifications(
        &[format!("user:{name}")],
        topic,
        payload,
        now,
    ))
}
