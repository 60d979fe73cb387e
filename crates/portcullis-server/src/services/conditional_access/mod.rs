//! Conditional access in the server: the stored policy set and named locations, their
//! management (import, state changes, deletion) behind the lockout guard, what-if, and the
//! enforcement at sign-in, at token issuance and at refresh.
//!
//! Invariants:
//! - Policies are validated by the domain core (`portcullis_core::conditional_access`) as a
//!   whole set against the directory, every problem reported at once; nothing is written
//!   unless all of it is valid.
//! - Every change (policies or locations) is checked by the lockout guard against the set it
//!   would produce: (a) some Global Administrator (active or eligible, not break-glass) must
//!   still be able to sign in from some network and application with the strongest factor
//!   they have registered — never forcible; (b) the caller must not lock themselves out —
//!   forcible with `force`, which is audited and alerts (every `ca.policy.*` event does).
//! - The change is written against the configuration version it was checked at; if another
//!   replica changed it meanwhile, the write conflicts and the whole check runs again.
//! - Break-glass accounts are excluded by construction: they are never evaluated (the core
//!   answers Allow before reading any condition), so nothing here can lock them out.
//! - Evaluation uses a compiled set cached per configuration version; each evaluation reads
//!   the version (one small query), so every replica enforces the latest set. A stored set
//!   that cannot be compiled fails closed (`unavailable`) for everyone but break-glass.
//! - Which application a sign-in is for follows from the protocol, not from anything the
//!   client says: `/api/v1/signin*` and the sign-in page (both open sessions, which are API
//!   credentials) are `api`, the device grant is `cli`, the authorization-code exchange and its
//!   refreshes are `client:ID`, client credentials are `api`. The lockout guard asks whether an
//!   administrator can still reach the API or the CLI (the CLI through the device flow).
//! - So does the flow: the device-code poll and every refresh of a family it started carry
//!   the `device_code` flow (recorded with the family), nothing else does.
//! - The address judged is the person's: the caller's for sign-ins, the device grant and
//!   client credentials (the caller is the person's device or the service account); for an
//!   OpenID Connect client, whose token requests come from the relying party, the browser's
//!   address at the authorize step (recorded with the code, then with the refresh family).
//!   Token events record both (`client_ip`, `person_ip`).
//! - Roles in the subject are those held at the tenant scope `/` (privilege rule 10), so a
//!   role at `/targets/x` matches no `role:` condition and the lockout guard counts only
//!   tenant-wide Global Administrators.
//! - An exclusion group must be role-assignable (privilege rule 4): an import naming an
//!   ordinary group in `principals.exclude` is refused; a stored policy that does (imported
//!   before the rule) keeps working with that exclusion ignored (fail closed), and the policy
//!   list and what-if say so.
//! - The decision (outcome, policies that applied, and what every report-only policy would have
//!   done) is recorded in the sign-in's audit event under `conditional_access`.

mod management;
mod whatif;

pub use management::*;
pub use whatif::*;

pub use crate::state::settings::{CaCache, Loaded};
use portcullis_core::roles::perm;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use portcullis_core::api::{
    CaImportRequest, CaImportResult, CaLocationRequest, CaLocationView, CaPolicyView,
    CaStateRequest, WhatIfRequest,
};
use portcullis_core::audit::{NewAuditEvent, Outcome as AuditOutcome};
use portcullis_core::conditional_access::{
    AccountProfile, Application, AuthenticationFlow, CompiledPolicies, Decision, KnownNames,
    LockoutError, NamedLocation, Outcome, Policy, PolicySpec, PolicyState, PrincipalRef,
    RoleHolding, SignInContext, Subject, SubjectKind, check_lockout, policies_referencing_location,
    validate_change,
};
use portcullis_core::error::ErrorCode;
use portcullis_core::principal::PrincipalKind;
use portcullis_core::session::AuthStrength;
use portcullis_store::accounts::Principal;
use portcullis_store::conditional_access::CaSnapshot;
use portcullis_store::{CA_CHANGED, CaChange, Change, StoreError};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::services::caller::Caller;
use crate::state::AppState;
use crate::time_us::{rfc3339, us};

/// How many times a change is re-checked when another replica changed the set meanwhile.
const RETRIES: usize = 3;

fn unavailable() -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        "conditional access cannot be evaluated now; try again",
    )
}

fn parse_snapshot(snapshot: CaSnapshot) -> Result<Loaded, String> {
    let mut policies = Vec::with_capacity(snapshot.policies.len());
    for p in &snapshot.policies {
        let spec: PolicySpec = serde_json::from_str(&p.spec)
            .map_err(|e| format!("stored policy {} unreadable: {e}", p.name))?;
        policies
            .push(Policy::from_spec(&spec).map_err(|e| format!("stored policy {}: {e}", p.name))?);
    }
    let mut locations = Vec::with_capacity(snapshot.locations.len());
    for l in &snapshot.locations {
        locations.push(
            NamedLocation::parse(&l.name, &l.cidrs, l.trusted)
                .map_err(|e| format!("stored location {}: {e}", l.name))?,
        );
    }
    let compiled = CompiledPolicies::compile(&policies, &locations).map_err(|e| e.to_string())?;
    Ok(Loaded {
        version: snapshot.version,
        snapshot,
        policies,
        locations,
        compiled,
    })
}

/// The compiled configuration at the latest version.
pub async fn load(state: &AppState) -> Result<Arc<Loaded>, ApiError> {
    // The version read is cached like the hot paths' other reads: a change to the policies
    // moves the store's epoch, so this replica sees it at once, another within a second.
    let version = state
        .caches
        .ca_version
        .get_or_load(&(), state.store.ca_version())
        .await?;
    if let Ok(c) = state.ca.current.read()
        && let Some(l) = c.as_ref()
        && l.version == version
    {
        return Ok(l.clone());
    }
    let snapshot = state.store.ca_snapshot().await?;
    let loaded = Arc::new(parse_snapshot(snapshot).map_err(|e| {
        tracing::error!(error = %e, "conditional access: the stored configuration does not compile");
        unavailable()
    })?);
    if let Ok(mut c) = state.ca.current.write()
        && c.as_ref().is_none_or(|old| old.version < loaded.version)
    {
        *c = Some(loaded.clone());
    }
    Ok(loaded)
}

/// The subject of a sign-in: kind, groups (and which of them are role-assignable), and the
/// roles held active and eligible now **at the tenant scope `/`** (privilege rule 10: the
/// core keeps only those, see `Subject::with_roles`).
pub async fn subject(
    state: &AppState,
    p: &Principal,
    now: OffsetDateTime,
) -> Result<Subject, ApiError> {
    let kind = if p.kind == PrincipalKind::ServiceAccount {
        SubjectKind::ServiceAccount
    } else if p.guest_organisation.is_some() {
        SubjectKind::Guest
    } else {
        SubjectKind::Member
    };
    let mut groups = Vec::new();
    let mut role_assignable_groups = Vec::new();
    for g in state.store.groups_of(&p.id).await? {
        if g.role_assignable {
            role_assignable_groups.push(g.name.clone());
        }
        groups.push(g.name);
    }
    // One read of the assignments that apply (directly or through groups) gives both the
    // eligible roles and the active ones; activations add to the active ones.
    let applying = state.store.assignments_applying_to(&p.id, us(now)).await?;
    let activations = state.store.active_requests_of(&p.id, us(now)).await?;
    let holdings = applying
        .iter()
        .map(|a| RoleHolding {
            role: &a.role,
            scope: &a.scope,
            active: a.kind == portcullis_core::roles::AssignmentKind::Active,
        })
        .chain(activations.iter().map(|g| RoleHolding {
            role: &g.role,
            scope: &g.scope,
            active: true,
        }));
    Ok(Subject {
        kind,
        name: p.name.clone(),
        groups,
        role_assignable_groups,
        active_roles: Vec::new(),
        eligible_roles: Vec::new(),
        emergency: p.emergency,
    }
    .with_roles(holdings))
}

/// The audit form of a decision: the outcome, the policies that applied and what each
/// report-only policy would have done (evaluation leaves out the per-policy explanation).
pub fn audit_details(d: &Decision) -> serde_json::Value {
    serde_json::to_value(d).unwrap_or_default()
}

/// The result of enforcing the policies on one sign-in or token.
pub struct Enforced {
    /// For the audit event (`conditional_access`).
    pub details: serde_json::Value,
    /// Why it is refused, if it is.
    pub refusal: Option<ApiError>,
    /// The decision's sign-in frequency (hours), to bound what is issued.
    pub sign_in_frequency_hours: Option<u32>,
}

/// Evaluates the policies for `p` signing in to `application` from `ip` with `strength`
/// (`authenticated_at`: when they last authenticated, for token refresh; `None` = now), by no
/// flow a policy can name (sign-ins, client credentials).
pub async fn enforce(
    state: &AppState,
    p: &Principal,
    application: Application,
    ip: &str,
    strength: AuthStrength,
    authenticated_at: Option<OffsetDateTime>,
) -> Result<Enforced, ApiError> {
    enforce_flow(
        state,
        p,
        (application, None),
        ip,
        strength,
        authenticated_at,
    )
    .await
}

/// [`enforce`] for tokens issued by `route`: the application and the flow they come from.
async fn enforce_flow(
    state: &AppState,
    p: &Principal,
    route: (Application, Option<AuthenticationFlow>),
    ip: &str,
    strength: AuthStrength,
    authenticated_at: Option<OffsetDateTime>,
) -> Result<Enforced, ApiError> {
    let (application, flow) = route;
    if p.emergency {
        return Ok(Enforced {
            details: serde_json::json!({ "outcome": "allow", "break_glass": true }),
            refusal: None,
            sign_in_frequency_hours: None,
        });
    }
    let now = OffsetDateTime::now_utc();
    let loaded = load(state).await?;
    if loaded.compiled.is_empty() {
        return Ok(Enforced {
            details: serde_json::json!({ "outcome": "allow", "policies": 0 }),
            refusal: None,
            sign_in_frequency_hours: None,
        });
    }
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| ApiError::internal("client address unreadable"))?;
    let ctx = SignInContext {
        subject: subject(state, p, now).await?,
        application,
        ip,
        strength,
        authenticated_at,
        flow,
    };
    let d = loaded.compiled.evaluate(&ctx, now);
    let refusal = match &d.outcome {
        Outcome::Allow => None,
        Outcome::Block { policies } => Some(ApiError::new(
            ErrorCode::CaBlocked,
            format!(
                "conditional access blocks this sign-in (policy: {})",
                join(policies)
            ),
        )),
        Outcome::Require {
            strength: need,
            policies,
        } => Some(ApiError::new(
            ErrorCode::CaRequirement,
            format!(
                "conditional access requires {} for this sign-in (policy: {}); sign in with a stronger factor",
                need.as_str(),
                join(policies)
            ),
        )),
        Outcome::ReauthRequired {
            max_age_hours,
            policies,
            ..
        } => Some(ApiError::new(
            ErrorCode::Unauthenticated,
            format!(
                "conditional access requires signing in again every {max_age_hours} hours (policy: {}); sign in again",
                join(policies)
            ),
        )),
    };
    Ok(Enforced {
        details: audit_details(&d),
        refusal,
        sign_in_frequency_hours: d.sign_in_frequency_hours,
    })
}

fn join(p: &[Arc<str>]) -> String {
    p.iter().map(|s| s.as_ref()).collect::<Vec<_>>().join(", ")
}

/// The failure event of a sign-in or token refused by conditional access.
pub fn refused_event(base: NewAuditEvent, details: &serde_json::Value) -> NewAuditEvent {
    let mut ev = base.outcome(AuditOutcome::Failure);
    if let Some(d) = ev.details.as_object_mut() {
        d.insert("reason".into(), "conditional_access".into());
        d.insert("conditional_access".into(), details.clone());
    }
    ev
}

/// Enforces the policies when a sign-in completes with `strength`: the details for the
/// success event, or the refusal (audited as a failed `action` first).
pub async fn at_signin(
    state: &AppState,
    p: &Principal,
    application: &Application,
    client: &crate::services::caller::ClientInfo,
    strength: AuthStrength,
    action: &str,
) -> Result<(serde_json::Value, Option<u32>), ApiError> {
    let e = enforce(state, p, application.clone(), &client.ip, strength, None).await?;
    if let Some(r) = e.refusal {
        let base = crate::services::support::signin_event(
            &p.name,
            action,
            AuditOutcome::Failure,
            "conditional_access",
            client,
            serde_json::json!({ "application": application.to_string(), "strength": strength.as_str() }),
        );
        state.store.append(refused_event(base, &e.details)).await?;
        return Err(r);
    }
    Ok((e.details, e.sign_in_frequency_hours))
}

/// Ends a new session no later than a sign-in frequency that applied (`hours` after `now`).
pub fn bound_session(
    issued: &mut portcullis_core::api::SessionIssued,
    change: &mut Change,
    hours: Option<u32>,
    now: OffsetDateTime,
) {
    let (Some(h), Change::CreateSession(s)) = (hours, change) else {
        return;
    };
    let end = us(now + time::Duration::hours(i64::from(h)));
    if let Ok(t) = time::OffsetDateTime::parse(
        &issued.expires_at,
        &time::format_description::well_known::Rfc3339,
    ) && us(t) > end
    {
        issued.expires_at = rfc3339(end);
    }
    s.ends_at_us = Some(end);
}

/// The application of tokens issued to `client_id`: the CLI, or a registered client.
pub fn application_of_client(client_id: &str) -> Application {
    if client_id == portcullis_core::device::CLI_CLIENT_ID {
        Application::Cli
    } else {
        Application::Client(client_id.to_owned())
    }
}

/// Where tokens for a person come from, as conditional access judges them.
pub struct TokenOrigin<'a> {
    /// The client the tokens are for (the CLI or a registered client).
    pub client_id: &'a str,
    /// The strength and time (µs) of the sign-in the tokens come from.
    pub strength: AuthStrength,
    pub auth_time_us: i64,
    /// The device flow for a device-code poll and every refresh of the family it started;
    /// `None` for an authorization code and its family.
    pub flow: Option<AuthenticationFlow>,
    /// The person's address when the caller of the token endpoint is not the person: for an
    /// OpenID Connect client, the browser's address at the authorize step. `None`: the
    /// caller's address is the person's (the CLI on their machine).
    pub person_ip: Option<&'a str>,
}

/// The flow a stored refresh family records.
pub fn flow_of_family(flow: Option<&str>) -> Option<AuthenticationFlow> {
    flow.and_then(AuthenticationFlow::parse)
}

/// Enforces the policies when tokens are issued or refreshed for a person (`action` names the
/// grant for the audit event): the details for the success event, or `invalid_grant` with
/// the reason (audited first, with the caller's address and the person's).
pub async fn at_token(
    state: &AppState,
    p: &Principal,
    origin: &TokenOrigin<'_>,
    client: &crate::services::caller::ClientInfo,
    action: &str,
) -> Result<serde_json::Value, crate::services::oauth::OAuthError> {
    let application = application_of_client(origin.client_id);
    let strength = origin.strength;
    let person_ip = origin.person_ip.unwrap_or(&client.ip);
    let e = enforce_flow(
        state,
        p,
        (application, origin.flow),
        person_ip,
        strength,
        Some(crate::time_us::from_us(origin.auth_time_us)),
    )
    .await?;
    if let Some(r) = e.refusal {
        let who = format!("user:{}", p.name);
        let mut details = serde_json::json!({
            "client_id": origin.client_id, "client_ip": client.ip, "person_ip": person_ip,
        });
        if let (Some(d), Some(f)) = (details.as_object_mut(), origin.flow) {
            d.insert("flow".into(), f.as_str().into());
        }
        let base = NewAuditEvent::new(who.clone(), action, who).details(details);
        state.store.append(refused_event(base, &e.details)).await?;
        return Err(crate::services::oauth::OAuthError::new(
            "invalid_grant",
            r.message,
        ));
    }
    Ok(e.details)
}
