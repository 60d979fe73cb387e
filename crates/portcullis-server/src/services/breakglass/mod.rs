//! Break-glass (emergency access) accounts: creation, re-splitting, sign-in, drills, the
//! "at least two" rule and the tenant's setup state.
//!
//! Invariants:
//! - A break-glass account is a user with `emergency = true`, a custody record and a permanent
//!   active Global Administrator assignment at `/` (the one standing exception to "no standing
//!   admin"). Its credential is either a password of at least 100 characters that the CLI
//!   generated and split k-of-n among custodians (the server sees the password only to hash it
//!   with Argon2id, and never the shares), or a FIDO2 security key with user verification whose
//!   key and PIN are held by two different people.
//! - A split password is a multi-person credential: a sign-in with it gets a full session of
//!   strength `mfa` without a second factor (nobody could hold a TOTP seed for the group). A
//!   FIDO2 account signs in passwordless (`phishing_resistant`). Throttling is per IP only, and
//!   no conditional-access policy applies to these accounts.
//! - Every event naming a break-glass account is tagged `emergency` by the store's writer, so
//!   the critical built-in rule fires for every attempt and every change, whatever code wrote
//!   it. A failed recovery in the CLI (a corrupted, foreign or wrong share) is reported here so
//!   that it too alerts, though no password ever reached the server.
//! - At least [`REQUIRED`] usable accounts (enabled, with their credential and their Global
//!   Administrator assignment): until they exist the tenant is in the `setup` state (`/readyz`,
//!   and a `Portcullis-Setup` header on every API answer that the CLI prints). Disabling one,
//!   removing its role or its security key when that would leave fewer is refused, checked in
//!   the same transaction as the change (rows locked on PostgreSQL), so replicas cannot race
//!   below the minimum. The refused attempt is itself audited, and so alerted.
//! - Credentials change only by re-splitting (`rotate`), never through the account's own
//!   password change or factor enrolment: that would silently invalidate the custodians' shares.
//! - Drills: a drill is a real sign-in whose fresh session (at most [`DRILL_FRESH`] old) is
//!   handed in and ended at once. "Last use" counts only sessions that were not drills. An
//!   account whose last drill (or creation) is older than `breakglass_drill_max_age` is listed
//!   by `/readyz` and alerted once per `breakglass_drill_alert_every` across all replicas.

mod custody;
mod drills;
mod signin;

pub use custody::*;
pub use drills::*;
pub(crate) use signin::*;

pub use crate::state::settings::BreakGlassSettings;
use portcullis_core::roles::perm;

use std::time::Instant;

use portcullis_core::api::{
    BreakGlassCreated, BreakGlassEnrolment, BreakGlassFailedRecovery, BreakGlassView,
    CreateBreakGlassRequest, DrillRecorded, RotateBreakGlassRequest, SessionIssued,
    TenantReadiness,
};
use portcullis_core::audit::{NewAuditEvent, Outcome};
use portcullis_core::breakglass::{Custodians, PASSWORD_LEN, Threshold};
use portcullis_core::error::ErrorCode;
use portcullis_core::principal::{PrincipalKind, PrincipalName};
use portcullis_core::session::{AuthStrength, SessionScope};
use portcullis_store::accounts::Principal;
use portcullis_store::breakglass::BreakGlassAccount;
use portcullis_store::{Change, NewAssignment, NewBreakGlass, NewPrincipal, StoreError};
use secrecy::SecretString;
use time::{Duration, OffsetDateTime};

use crate::error::ApiError;
use crate::services::accounts::{check_password, invalid, new_id, validate_user};
use crate::services::caller::{Caller, ClientInfo, event};
use crate::services::identity::{check_password_input, new_session};
use crate::state::AppState;
use crate::time_us::{from_us, rfc3339, us};

pub use crate::services::privilege::{REQUIRED, minimum_error};

/// How old a session may be when it is handed in as a drill.
pub const DRILL_FRESH: Duration = Duration::minutes(10);

/// The periodic job that alerts on overdue drills.
pub(crate) const DRILL_JOB: &str = "breakglass.drill_overdue";

/// How long a setup state read is reused before asking the database again.
const SETUP_CACHE: std::time::Duration = std::time::Duration::from_secs(5);

fn credential_error(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::BreakGlassCredential, msg.into())
}

/// Writes `change` (which removes something from a break-glass account) with the minimum
/// guard after it: refused when it would leave fewer than [`REQUIRED`] usable accounts and
/// fewer than there were (so during setup an unusable account can still be disabled). When the guard refuses, the attempt is audited as a failure (so it alerts)
/// and the caller gets `breakglass_minimum`.
pub(crate) async fn write_guarded(
    state: &AppState,
    change: Change,
    ev: NewAuditEvent,
) -> Result<(), ApiError> {
    crate::services::privilege::write_guarded(
        state,
        change,
        ev,
        crate::services::privilege::Guard::BreakGlassMinimum,
        |m| StoreError::Conflict(m).into(),
    )
    .await
}

/// The custodians, checked by the domain rules and against the directory: each an enabled
/// person (member or guest), not a break-glass account. Every problem is named at once.
async fn directory_people(state: &AppState, names: &[String]) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    for n in names {
        match state.store.principal_by_name(n).await? {
            None => problems.push(format!("{n} is not a user")),
            Some(p) if p.kind != PrincipalKind::User => problems.push(format!(
                "{n} is a {}, not a person",
                p.kind.as_str().replace('_', " ")
            )),
            Some(p) if p.emergency => {
                problems.push(format!("{n} is a break-glass account, not a person"))
            }
            Some(p) if !p.enabled => problems.push(format!("{n} is disabled")),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "custodians: {}",
            problems.join("; ")
        )))
    }
}

pub(crate) fn drill_overdue(a: &BreakGlassAccount, now: OffsetDateTime, max_age: Duration) -> bool {
    let since = a.last_drill_us.unwrap_or(a.created_at_us);
    a.principal.enabled && now - from_us(since) > max_age
}

fn view(a: &BreakGlassAccount, now: OffsetDateTime, max_age: Duration) -> BreakGlassView {
    BreakGlassView {
        name: a.principal.name.clone(),
        display_name: a.principal.display_name.clone(),
        credential: a.credential.clone(),
        custodians: a.custodians.clone(),
        threshold: u32::try_from(a.threshold).unwrap_or(0),
        key_holder: a.key_holder.clone(),
        pin_holder: a.pin_holder.clone(),
        enabled: a.principal.enabled,
        usable: a.usable(),
        created_by: a.created_by.clone(),
        created_at: rfc3339(a.created_at_us),
        last_drill: a.last_drill_us.map(rfc3339),
        last_use: a.last_use_us.map(rfc3339),
        drill_overdue: drill_overdue(a, now, max_age),
    }
}

async fn view_of(state: &AppState, principal_id: &str) -> Result<BreakGlassView, ApiError> {
    let a = state
        .store
        .breakglass_account(principal_id)
        .await?
        .ok_or_else(|| ApiError::internal("break-glass account vanished"))?;
    Ok(view(
        &a,
        OffsetDateTime::now_utc(),
        state.breakglass.drill_max_age,
    ))
}

pub async fn list(state: &AppState, caller: &Caller) -> Result<Vec<BreakGlassView>, ApiError> {
    caller.require(perm::BREAKGLASS_READ)?;
    let now = OffsetDateTime::now_utc();
    Ok(state
        .store
        .breakglass_accounts()
        .await?
        .iter()
        .map(|a| view(a, now, state.breakglass.drill_max_age))
        .collect())
}

/// The tenant's setup state.
pub async fn readiness(state: &AppState) -> Result<TenantReadiness, ApiError> {
    let now = OffsetDateTime::now_utc();
    let accounts = state.store.breakglass_accounts().await?;
    let usable = accounts.iter().filter(|a| a.usable()).count() as i64;
    // Counts only: /readyz answers anyone, and the names of break-glass accounts are for
    // holders of breakglass.read (portcullis breakglass list).
    let overdue = accounts
        .iter()
        .filter(|a| drill_overdue(a, now, state.breakglass.drill_max_age))
        .count() as i64;
    let ready = usable >= REQUIRED;
    let mut notes = Vec::new();
    if !ready {
        notes.push(setup_notice(usable));
    }
    if overdue > 0 {
        notes.push(format!(
            "the break-glass drill of {overdue} account(s) is overdue (portcullis breakglass list; portcullis breakglass drill NAME)"
        ));
    }
    Ok(TenantReadiness {
        state: if ready { "ready" } else { "setup" }.into(),
        breakglass_accounts: usable,
        breakglass_required: REQUIRED,
        drills_overdue: overdue,
        notice: (!notes.is_empty()).then(|| notes.join("; ")),
    })
}

fn setup_notice(usable: i64) -> String {
    format!(
        "the tenant is in setup: {usable} of {REQUIRED} break-glass accounts are usable; create them with portcullis breakglass create"
    )
}

/// The setup notice for the `Portcullis-Setup` header, or `None` when the tenant is ready
/// (read at most every few seconds; a failed read says nothing rather than guess).
pub async fn setup_header(state: &AppState) -> Option<String> {
    if let Ok(c) = state.breakglass.cached.lock()
        && let Some((at, notice)) = c.as_ref()
        && at.elapsed() < SETUP_CACHE
    {
        return notice.clone();
    }
    let usable = state.store.usable_breakglass_count().await.ok()?;
    let notice = (usable < REQUIRED).then(|| setup_notice(usable));
    if let Ok(mut c) = state.breakglass.cached.lock() {
        *c = Some((Instant::now(), notice.clone()));
    }
    notice
}
