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
use crate::services::signin::{check_password_input, new_session};
use crate::state::AppState;
use crate::time_us::{from_us, rfc3339, us};

/// Usable break-glass accounts a tenant must keep.
pub const REQUIRED: i64 = 2;

/// How old a session may be when it is handed in as a drill.
pub const DRILL_FRESH: Duration = Duration::minutes(10);

/// The periodic job that alerts on overdue drills.
pub(crate) const DRILL_JOB: &str = "breakglass.drill_overdue";

/// How long a setup state read is reused before asking the database again.
const SETUP_CACHE: std::time::Duration = std::time::Duration::from_secs(5);

pub(crate) fn minimum_error() -> ApiError {
    ApiError::new(
        ErrorCode::BreakGlassMinimum,
        format!(
            "at least {REQUIRED} usable break-glass accounts must remain; create another first (portcullis breakglass create)"
        ),
    )
}

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
            Some(p) if p.kind != PrincipalKind::User.as_str() => problems.push(format!(
                "{n} is a {}, not a person",
                p.kind.replace('_', " ")
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

/// The password custody of a request: custodians (domain rules, then the directory) and the
/// threshold; the password long enough and within the policy.
async fn password_custody(
    state: &AppState,
    name: &PrincipalName,
    password: &str,
    custodians: &[String],
    threshold: Option<u32>,
    force: bool,
) -> Result<(Custodians, Threshold), ApiError> {
    let c = Custodians::parse(custodians.iter()).map_err(invalid)?;
    let t = threshold.ok_or_else(|| ApiError::bad_request("threshold is required"))?;
    let t = Threshold::new(t as usize, &c, force).map_err(invalid)?;
    let names: Vec<String> = c.as_slice().iter().map(|n| n.to_string()).collect();
    if names.iter().any(|n| n == name.as_str()) {
        return Err(ApiError::bad_request(
            "a break-glass account cannot be its own custodian",
        ));
    }
    directory_people(state, &names).await?;
    check_password_input(password)?;
    if password.chars().count() < PASSWORD_LEN {
        return Err(ApiError::new(
            ErrorCode::PasswordPolicy,
            format!(
                "a break-glass password has at least {PASSWORD_LEN} random characters (portcullis breakglass create generates one)"
            ),
        ));
    }
    check_password(password, name.as_str(), None, true)?;
    Ok((c, t))
}

pub async fn create(
    state: &AppState,
    caller: &Caller,
    req: CreateBreakGlassRequest,
) -> Result<BreakGlassCreated, ApiError> {
    caller.require(perm::BREAKGLASS_MANAGE)?;
    let display = req
        .display_name
        .clone()
        .unwrap_or_else(|| format!("Emergency access {}", req.name));
    let v = validate_user(&req.name, &display, None, None, None)?;
    let now = OffsetDateTime::now_utc();
    let id = new_id("u");
    let mut changes = Vec::new();
    // Written after the custody row the verifier column lives on.
    let mut verifier_after = Vec::new();
    let (custody, details) = match req.credential.as_str() {
        "password" => {
            if req.key_holder.is_some() || req.pin_holder.is_some() {
                return Err(ApiError::bad_request(
                    "key_holder and pin_holder are for fido2 accounts",
                ));
            }
            let pw = req
                .password
                .as_deref()
                .ok_or_else(|| ApiError::bad_request("password is required"))?;
            let (c, t) = password_custody(
                state,
                &v.name,
                pw,
                &req.custodians,
                req.threshold,
                req.force,
            )
            .await?;
            let phc = state
                .passwords
                .hash(&SecretString::from(pw.to_owned()))
                .await?;
            changes.push(Change::SetPassword {
                principal_id: id.clone(),
                phc,
                at_us: us(now),
            });
            verifier_after.push(Change::SetBreakGlassVerifier {
                principal_id: id.clone(),
                verifier: verifier(state, &id, pw),
            });
            let names: Vec<String> = c.as_slice().iter().map(|n| n.to_string()).collect();
            let details = serde_json::json!({
                "credential": "password", "custodians": names, "threshold": t.get(),
                "forced": req.force && t.get() == 1,
            });
            (
                NewBreakGlass {
                    principal_id: id.clone(),
                    credential: "password".into(),
                    custodians: serde_json::to_string(&names).map_err(ApiError::internal)?,
                    threshold: t.get() as i64,
                    key_holder: None,
                    pin_holder: None,
                    created_by: caller.actor(),
                    created_at_us: us(now),
                },
                details,
            )
        }
        "fido2" => {
            if req.password.is_some() || !req.custodians.is_empty() || req.threshold.is_some() {
                return Err(ApiError::bad_request(
                    "a fido2 account has a key holder and a PIN holder, not a password, custodians or threshold",
                ));
            }
            let (Some(key), Some(pin)) = (req.key_holder.as_deref(), req.pin_holder.as_deref())
            else {
                return Err(ApiError::bad_request(
                    "key_holder and pin_holder are required for a fido2 account",
                ));
            };
            let key = PrincipalName::parse("key_holder", key).map_err(invalid)?;
            let pin = PrincipalName::parse("pin_holder", pin).map_err(invalid)?;
            if key == pin {
                return Err(ApiError::bad_request(
                    "the key holder and the PIN holder must be two different people",
                ));
            }
            let names = vec![key.to_string(), pin.to_string()];
            directory_people(state, &names).await?;
            (
                NewBreakGlass {
                    principal_id: id.clone(),
                    credential: "fido2".into(),
                    custodians: serde_json::to_string(&names).map_err(ApiError::internal)?,
                    threshold: 0,
                    key_holder: Some(key.to_string()),
                    pin_holder: Some(pin.to_string()),
                    created_by: caller.actor(),
                    created_at_us: us(now),
                },
                serde_json::json!({ "credential": "fido2", "key_holder": key.as_str(), "pin_holder": pin.as_str() }),
            )
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "credential {other:?} must be password or fido2"
            )));
        }
    };
    let principal = NewPrincipal {
        id: id.clone(),
        name: v.name.to_string(),
        kind: PrincipalKind::User.as_str().to_owned(),
        display_name: v.display_name.clone(),
        email: None,
        phone: None,
        guest_organisation: None,
        role_assignable: false,
        emergency: true,
        privileged: true,
        first_admin: false,
        created_at_us: us(now),
    };
    let fido2 = custody.credential == "fido2";
    let mut all = vec![Change::CreatePrincipal(principal.clone())];
    all.append(&mut changes);
    all.push(Change::CreateBreakGlass(custody));
    all.extend(verifier_after);
    all.push(Change::CreateAssignment(NewAssignment {
        id: format!("a_breakglass_{id}"),
        principal_id: id.clone(),
        role: "global-administrator".into(),
        scope: "/".into(),
        kind: "active".into(),
        starts_at_us: us(now),
        ends_at_us: None,
        created_by: caller.actor(),
        created_at_us: us(now),
    }));
    // A FIDO2 account starts with a registration-only session for the key holder.
    let mut enrolment: Option<SessionIssued> = None;
    if fido2 {
        let (issued, session) = enrolment_session(state, &id, caller, now);
        all.push(session);
        enrolment = Some(issued);
    }
    let mut details = details;
    if let Some(d) = details.as_object_mut() {
        d.insert(
            "roles".into(),
            serde_json::json!(["global-administrator (permanent, active)"]),
        );
    }
    let ev = event(caller, "breakglass.created", format!("user:{}", v.name)).details(details);
    state
        .store
        .write(Change::Many(all), vec![ev])
        .await
        .map_err(|e| {
            crate::services::accounts::conflict_to_exists(
                e,
                "a user, group or service account with that name exists",
            )
        })?;
    state.breakglass.forget();
    let account = view_of(state, &id).await?;
    Ok(BreakGlassCreated {
        account,
        enrolment_token: enrolment.map(|s| s.token),
        tenant: readiness(state).await?,
    })
}

/// A registration-only session of a FIDO2 account, for its key holder to register the key.
fn enrolment_session(
    state: &AppState,
    principal_id: &str,
    caller: &Caller,
    now: OffsetDateTime,
) -> (SessionIssued, Change) {
    let client = ClientInfo {
        ip: "enrolment".into(),
        user_agent: format!("enrolment issued by {}", caller.actor()),
    };
    new_session(
        state,
        principal_id,
        AuthStrength::Password,
        SessionScope::RegistrationOnly,
        &client,
        now,
    )
}

/// A new enrolment token for a FIDO2 account that has no security key yet (the first one
/// expired unused); earlier tokens end.
pub async fn reissue_enrolment(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<BreakGlassEnrolment, ApiError> {
    caller.require(perm::BREAKGLASS_MANAGE)?;
    let a = account_named(state, name).await?;
    if a.credential != "fido2" || a.has_credential {
        return Err(credential_error(
            "only a FIDO2 account without a registered security key gets a new enrolment token",
        ));
    }
    let now = OffsetDateTime::now_utc();
    let (issued, session) = enrolment_session(state, &a.principal.id, caller, now);
    let change = Change::Many(vec![
        Change::RevokeSessionsOf {
            principal_id: a.principal.id.clone(),
            except: None,
            at_us: us(now),
        },
        session,
    ]);
    let ev = event(
        caller,
        "breakglass.enrolment_issued",
        format!("user:{}", a.principal.name),
    )
    .details(serde_json::json!({ "session_id": issued.session_id }));
    state.store.write(change, vec![ev]).await?;
    Ok(BreakGlassEnrolment {
        account: a.principal.name,
        enrolment_token: issued.token,
        expires_at: issued.expires_at,
    })
}

/// A break-glass account by name, or `not_found`.
async fn account_named(state: &AppState, name: &str) -> Result<BreakGlassAccount, ApiError> {
    let name = PrincipalName::parse("name", name).map_err(invalid)?;
    let not_found = || ApiError::not_found(format!("no break-glass account named {name}"));
    let p = state
        .store
        .principal_by_name(name.as_str())
        .await?
        .filter(|p| p.emergency)
        .ok_or_else(not_found)?;
    state
        .store
        .breakglass_account(&p.id)
        .await?
        .ok_or_else(not_found)
}

/// A new split for a password account: new hash and custody; its sessions end.
pub async fn rotate(
    state: &AppState,
    caller: &Caller,
    name: &str,
    req: RotateBreakGlassRequest,
) -> Result<BreakGlassView, ApiError> {
    caller.require(perm::BREAKGLASS_MANAGE)?;
    let a = account_named(state, name).await?;
    if a.credential != "password" {
        return Err(credential_error(
            "only a password account is re-split; a fido2 account changes its key by registering a new one",
        ));
    }
    let pname = PrincipalName::parse("name", &a.principal.name).map_err(invalid)?;
    let (c, t) = password_custody(
        state,
        &pname,
        &req.password,
        &req.custodians,
        Some(req.threshold),
        req.force,
    )
    .await?;
    let phc = state
        .passwords
        .hash(&SecretString::from(req.password.clone()))
        .await?;
    let now = OffsetDateTime::now_utc();
    let names: Vec<String> = c.as_slice().iter().map(|n| n.to_string()).collect();
    let change = Change::Many(vec![
        Change::SetPassword {
            principal_id: a.principal.id.clone(),
            phc,
            at_us: us(now),
        },
        Change::SetBreakGlassVerifier {
            principal_id: a.principal.id.clone(),
            verifier: verifier(state, &a.principal.id, &req.password),
        },
        Change::UpdateBreakGlassCustody {
            principal_id: a.principal.id.clone(),
            custodians: serde_json::to_string(&names).map_err(ApiError::internal)?,
            threshold: t.get() as i64,
        },
        Change::RevokeSessionsOf {
            principal_id: a.principal.id.clone(),
            except: None,
            at_us: us(now),
        },
    ]);
    let ev = event(caller, "breakglass.rotated", format!("user:{}", a.principal.name)).details(
        serde_json::json!({ "custodians": names, "threshold": t.get(), "forced": req.force && t.get() == 1 }),
    );
    state.store.write(change, vec![ev]).await?;
    view_of(state, &a.principal.id).await
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

/// The session of a break-glass account that signed in with its split password: full scope,
/// strength `mfa` (see the module header); takes the changes the password step gathered.
/// `None` (nothing taken) when `p` has no split password.
pub(crate) async fn password_signin(
    state: &AppState,
    client: &ClientInfo,
    p: &Principal,
    pending: &mut Vec<Change>,
    now: OffsetDateTime,
) -> Result<Option<SessionIssued>, ApiError> {
    let Some(a) = state.store.breakglass_account(&p.id).await? else {
        return Ok(None);
    };
    if a.credential != "password" {
        return Ok(None);
    }
    let completion = crate::services::signin::Completion {
        principal: p,
        client,
        strength: AuthStrength::Mfa,
        scope: SessionScope::Full,
        // Never subject to conditional access (invariant 4), so never bounded by it either.
        frequency: None,
        reason: "breakglass_split_password",
        details: serde_json::json!({ "strength": "mfa", "scope": "full", "credential": "split_password" }),
        changes: std::mem::take(pending),
        succeeded: None,
    };
    Ok(Some(
        crate::services::signin::complete_signin(state, completion, now).await?,
    ))
}

/// The fast verifier of a break-glass password: HMAC-SHA256 under the master key, bound to the
/// account. Slow hashing is for human-chosen passwords (invariant 7); a split password is 100
/// random characters, so this is as safe as Argon2 for it, and costs microseconds, which is
/// what keeps a break-glass sign-in out of the Argon2 queue a flood fills (invariant 4).
pub(crate) fn verifier(state: &AppState, principal_id: &str, password: &str) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(state.master.as_bytes()) else {
        return Vec::new();
    };
    mac.update(b"portcullis-breakglass-verifier\0");
    mac.update(principal_id.as_bytes());
    mac.update(b"\0");
    mac.update(password.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Checks a break-glass account's password: against its fast verifier when it has one
/// (constant time), else with Argon2 in the break-glass lane, in which case the verifier is
/// returned to be stored with the sign-in.
pub(crate) async fn verify_password(
    state: &AppState,
    p: &Principal,
    password: &SecretString,
    phc: Option<&str>,
) -> Result<(crate::services::passwords::Verified, Option<Change>), ApiError> {
    use secrecy::ExposeSecret;
    use subtle::ConstantTimeEq;
    let presented = verifier(state, &p.id, password.expose_secret());
    if let Some(stored) = state.store.breakglass_verifier(&p.id).await?
        && !stored.is_empty()
    {
        let ok = phc.is_some() && bool::from(stored.ct_eq(&presented));
        return Ok((
            crate::services::passwords::Verified {
                ok,
                needs_rehash: false,
            },
            None,
        ));
    }
    let v = state.passwords.verify_emergency(password, phc).await?;
    let upgrade = v.ok.then(|| Change::SetBreakGlassVerifier {
        principal_id: p.id.clone(),
        verifier: presented,
    });
    Ok((v, upgrade))
}

/// Refuses credential changes on a break-glass account made through the account's own
/// password or factor endpoints (see the module header); a FIDO2 account may register its
/// first security key.
pub(crate) async fn guard_own_credential(
    state: &AppState,
    p: &Principal,
    registering_webauthn: bool,
) -> Result<(), ApiError> {
    if !p.emergency {
        return Ok(());
    }
    let a = state.store.breakglass_account(&p.id).await?;
    let first_key = registering_webauthn
        && a.as_ref()
            .is_some_and(|a| a.credential == "fido2" && !a.has_credential);
    if first_key {
        return Ok(());
    }
    Err(credential_error(
        "a break-glass account's credential changes only by re-splitting it (portcullis breakglass rotate NAME) or by creating a new account",
    ))
}

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

const RECOVERY_REASONS: &[&str] = &[
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
    let attempt = crate::services::signin::Attempt::reserve_keys(
        state,
        keys,
        name.as_str(),
        action,
        client,
        now,
    )
    .await?;
    let ev = crate::services::signin::signin_event(
        name.as_str(),
        action,
        Outcome::Failure,
        &req.reason,
        client,
        serde_json::json!({ "where": "cli" }),
    );
    attempt.failed(state, ev).await
}
