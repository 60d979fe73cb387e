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
use crate::services::caller::{Caller, SessionCaller, event};
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
    let version = state.store.ca_version().await?;
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
    let kind = if p.kind == PrincipalKind::ServiceAccount.as_str() {
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
            active: a.kind == "active",
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

// ---- management ----

/// The names of the role-assignable groups (the only ones that can exclude).
async fn role_assignable_groups(state: &AppState) -> Result<HashSet<String>, ApiError> {
    Ok(state
        .store
        .principals(PrincipalKind::Group.as_str())
        .await?
        .into_iter()
        .filter(|g| g.role_assignable)
        .map(|g| g.name)
        .collect())
}

/// Why parts of a stored policy do not apply as written: each `principals.exclude` group that
/// is not role-assignable (stored before privilege rule 4) is ignored at evaluation.
fn policy_warnings(spec: &serde_json::Value, role_assignable: &HashSet<String>) -> Vec<String> {
    let Ok(policy) = serde_json::from_value::<Policy>(spec.clone()) else {
        return Vec::new();
    };
    policy
        .conditions()
        .principals
        .exclude
        .iter()
        .filter_map(|r| match r {
            PrincipalRef::Group(g) if !role_assignable.contains(g.as_str()) => Some(format!(
                "principals.exclude group:{g} is ignored: it is not a role-assignable group, and \
                 membership of an exclusion group lifts the policy, so only role administrators \
                 may manage it; re-import the policy with a role-assignable group"
            )),
            _ => None,
        })
        .collect()
}

fn policy_view(
    p: &portcullis_store::conditional_access::StoredCaPolicy,
    role_assignable: &HashSet<String>,
) -> CaPolicyView {
    let policy: serde_json::Value = serde_json::from_str(&p.spec).unwrap_or_default();
    CaPolicyView {
        name: p.name.clone(),
        state: p.state.clone(),
        warnings: policy_warnings(&policy, role_assignable),
        policy,
        updated_by: p.updated_by.clone(),
        updated_at: rfc3339(p.updated_at_us),
    }
}

pub async fn list_policies(
    state: &AppState,
    caller: &Caller,
) -> Result<Vec<CaPolicyView>, ApiError> {
    caller.require(perm::CA_READ)?;
    let s = state.store.ca_snapshot().await?;
    let assignable = role_assignable_groups(state).await?;
    Ok(s.policies
        .iter()
        .map(|p| policy_view(p, &assignable))
        .collect())
}

pub async fn show_policy(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<CaPolicyView, ApiError> {
    caller.require(perm::CA_READ)?;
    let s = state.store.ca_snapshot().await?;
    let assignable = role_assignable_groups(state).await?;
    s.policies
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .map(|p| policy_view(p, &assignable))
        .ok_or_else(|| ApiError::not_found(format!("no conditional-access policy named {name}")))
}

pub async fn list_locations(
    state: &AppState,
    caller: &Caller,
) -> Result<Vec<CaLocationView>, ApiError> {
    caller.require(perm::CA_READ)?;
    let loaded = load(state).await?;
    Ok(loaded
        .snapshot
        .locations
        .iter()
        .map(|l| CaLocationView {
            name: l.name.clone(),
            cidrs: l.cidrs.clone(),
            trusted: l.trusted,
            used_by: policies_referencing_location(&loaded.policies, &l.name)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            updated_by: l.updated_by.clone(),
            updated_at: rfc3339(l.updated_at_us),
        })
        .collect())
}

/// The names a policy may refer to.
async fn known_names(
    state: &AppState,
    locations: &[NamedLocation],
) -> Result<KnownNames, ApiError> {
    let names = |v: &[Principal]| v.iter().map(|p| p.name.clone()).collect::<HashSet<_>>();
    let groups = state
        .store
        .principals(PrincipalKind::Group.as_str())
        .await?;
    Ok(KnownNames {
        users: names(&state.store.principals(PrincipalKind::User.as_str()).await?),
        service_accounts: names(
            &state
                .store
                .principals(PrincipalKind::ServiceAccount.as_str())
                .await?,
        ),
        role_assignable_groups: groups
            .iter()
            .filter(|g| g.role_assignable)
            .map(|g| g.name.clone())
            .collect(),
        groups: names(&groups),
        roles: state
            .store
            .custom_roles()
            .await?
            .into_iter()
            .map(|r| r.slug)
            .collect(),
        clients: state
            .store
            .oauth_clients()
            .await?
            .into_iter()
            .map(|c| c.client_id)
            .collect(),
        locations: locations.iter().map(|l| l.name().to_owned()).collect(),
    })
}

/// A policy that *includes* a break-glass account by name would read as if it applied to it;
/// it never can (they are excluded by construction), so it is refused as misleading. Naming
/// one in `exclude` is harmless (and a common habit from other products), so it is accepted.
async fn refuse_breakglass_includes(state: &AppState, policies: &[Policy]) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    for p in policies {
        for r in &p.conditions().principals.include {
            if let PrincipalRef::User(name) = r
                && state
                    .store
                    .principal_by_name(name.as_str())
                    .await?
                    .is_some_and(|u| u.emergency)
            {
                problems.push(format!(
                    "policy {}: {name} is a break-glass account; no policy applies to break-glass accounts (they are excluded by construction)",
                    p.name()
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(problems.join("; ")))
    }
}

/// The strongest factor a principal has registered.
async fn strongest(state: &AppState, p: &Principal) -> Result<AuthStrength, ApiError> {
    // A service account's client credentials count as mfa (crate::services::tokens).
    if p.kind == PrincipalKind::ServiceAccount.as_str() {
        return Ok(AuthStrength::Mfa);
    }
    let factors = state.store.factors(&p.id).await?;
    let confirmed = |k: &str| factors.iter().any(|f| f.confirmed && f.kind == k);
    Ok(if confirmed("webauthn") {
        AuthStrength::PhishingResistant
    } else if confirmed("totp") {
        AuthStrength::Mfa
    } else {
        AuthStrength::Password
    })
}

/// Global Administrators of the tenant (active or eligible at `/`, directly or through a
/// group; not break-glass) with their strongest factor. Only the holders of a Global
/// Administrator assignment at `/` (and the members of groups that hold one) are looked at,
/// not every user; one at `/targets/x` is not a Global Administrator of the tenant (privilege
/// rule 10), and the core's guard checks that again on each subject.
async fn global_admins(
    state: &AppState,
    now: OffsetDateTime,
) -> Result<Vec<AccountProfile>, ApiError> {
    let ga = portcullis_core::alerts::GLOBAL_ADMINISTRATOR;
    let mut candidates: Vec<Principal> = Vec::new();
    let assignments = state
        .store
        .assignments(&portcullis_store::roles::AssignmentFilter {
            principal_id: None,
            role: Some(ga.to_owned()),
            include_ended: false,
        })
        .await?;
    let tenant = portcullis_core::roles::Scope::tenant();
    for a in assignments.iter().filter(|a| a.scope == tenant.as_str()) {
        if a.principal_kind == PrincipalKind::Group.as_str() {
            candidates.extend(state.store.group_members(&a.principal_id).await?);
        } else if let Some(p) = state.store.principal_by_id(&a.principal_id).await? {
            candidates.push(p);
        }
    }
    candidates.sort_by(|a, b| a.id.cmp(&b.id));
    candidates.dedup_by(|a, b| a.id == b.id);
    let mut out = Vec::new();
    for p in candidates {
        if p.emergency || !p.enabled || p.kind != PrincipalKind::User.as_str() {
            continue;
        }
        let s = subject(state, &p, now).await?;
        if s.holds(ga) {
            out.push(AccountProfile {
                strongest: strongest(state, &p).await?,
                subject: s,
            });
        }
    }
    Ok(out)
}

fn lockout_error(e: &LockoutError) -> ApiError {
    let hint = if e.forcible() {
        " (to do it anyway, repeat with force; it is audited and alerts)"
    } else {
        ""
    };
    ApiError::new(ErrorCode::CaLockout, format!("{e}{hint}"))
}

/// What a management call wants to change, applied to the current configuration.
enum Edit {
    Import(Vec<PolicySpec>),
    State(String, PolicyState),
    Delete(String),
    PutLocation(NamedLocation),
    DeleteLocation(String),
}

struct Planned {
    change: CaChange,
    events: Vec<NewAuditEvent>,
    result: CaImportResult,
}

fn spec_json(p: &Policy) -> Result<String, ApiError> {
    serde_json::to_string(&p.to_spec()).map_err(ApiError::internal)
}

/// Applies `edit` to `loaded`, validates the result, runs the lockout guard and says what to
/// write. Errors are the caller's to see: validation, unknown names, lockout.
async fn plan(
    state: &AppState,
    caller: &Caller,
    me: &SessionCaller,
    loaded: &Loaded,
    edit: &Edit,
    force: bool,
) -> Result<Planned, ApiError> {
    let now = OffsetDateTime::now_utc();
    let mut policies: Vec<Policy> = loaded.policies.clone();
    let mut locations: Vec<NamedLocation> = loaded.locations.clone();
    let mut change = CaChange {
        expected_version: loaded.version,
        by: caller.actor(),
        at_us: us(now),
        ..Default::default()
    };
    let mut result = CaImportResult {
        created: vec![],
        updated: vec![],
        unchanged: vec![],
    };
    let mut events = Vec::new();
    let find =
        |ps: &[Policy], name: &str| ps.iter().position(|p| p.name().eq_ignore_ascii_case(name));
    match edit {
        Edit::Import(specs) => {
            // The whole resulting set is validated: names in the file and those kept.
            // Kept (stored) policies are not held to the exclusion-group rule they may predate
            // (see the module header); the new ones are.
            let kept: Vec<PolicySpec> = policies
                .iter()
                .filter(|p| !specs.iter().any(|s| s.name.eq_ignore_ascii_case(p.name())))
                .map(Policy::to_spec)
                .collect();
            let known = known_names(state, &locations).await?;
            let valid = validate_change(specs, &kept, &known)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            refuse_breakglass_includes(state, &valid[..specs.len()]).await?;
            for new in valid.into_iter().take(specs.len()) {
                let spec = spec_json(&new)?;
                match find(&policies, new.name()) {
                    Some(i) if spec_json(&policies[i])? == spec => {
                        result.unchanged.push(new.name().to_owned());
                        continue;
                    }
                    Some(i) => {
                        result.updated.push(new.name().to_owned());
                        events.push(
                            event(caller, "ca.policy.updated", format!("ca_policy:{}", new.name()))
                                .details(serde_json::json!({ "policy": new.to_spec(), "before": policies[i].to_spec() })),
                        );
                        // Renamed only in letter case: the stored row goes, so one policy
                        // remains (names are unique ignoring case).
                        if policies[i].name() != new.name() {
                            change.delete_policies.push(policies[i].name().to_owned());
                        }
                        policies[i] = new.clone();
                    }
                    None => {
                        result.created.push(new.name().to_owned());
                        events.push(
                            event(
                                caller,
                                "ca.policy.created",
                                format!("ca_policy:{}", new.name()),
                            )
                            .details(serde_json::json!({ "policy": new.to_spec() })),
                        );
                        policies.push(new.clone());
                    }
                }
                change.put_policies.push((
                    new.name().to_owned(),
                    new.state().as_str().to_owned(),
                    spec,
                ));
            }
        }
        Edit::State(name, to) => {
            let i = find(&policies, name).ok_or_else(|| {
                ApiError::not_found(format!("no conditional-access policy named {name}"))
            })?;
            let before = policies[i].state();
            let p = policies[i].clone().with_state(*to);
            if before == *to {
                result.unchanged.push(p.name().to_owned());
            } else {
                result.updated.push(p.name().to_owned());
                events.push(
                    event(
                        caller,
                        "ca.policy.state_changed",
                        format!("ca_policy:{}", p.name()),
                    )
                    .details(serde_json::json!({ "from": before.as_str(), "to": to.as_str() })),
                );
                change.put_policies.push((
                    p.name().to_owned(),
                    to.as_str().to_owned(),
                    spec_json(&p)?,
                ));
            }
            policies[i] = p;
        }
        Edit::Delete(name) => {
            let i = find(&policies, name).ok_or_else(|| {
                ApiError::not_found(format!("no conditional-access policy named {name}"))
            })?;
            let p = policies.remove(i);
            result.updated.push(p.name().to_owned());
            events.push(
                event(
                    caller,
                    "ca.policy.deleted",
                    format!("ca_policy:{}", p.name()),
                )
                .details(serde_json::json!({ "policy": p.to_spec() })),
            );
            change.delete_policies.push(p.name().to_owned());
        }
        Edit::PutLocation(l) => {
            let cidrs = l.networks().to_strings();
            match locations.iter().position(|x| x.name() == l.name()) {
                Some(i) if locations[i] == *l => {
                    result.unchanged.push(l.name().to_owned());
                    return Ok(Planned {
                        change,
                        events,
                        result,
                    });
                }
                Some(i) => {
                    result.updated.push(l.name().to_owned());
                    locations[i] = l.clone();
                }
                None => {
                    result.created.push(l.name().to_owned());
                    locations.push(l.clone());
                }
            }
            events.push(
                event(
                    caller,
                    "ca.location.set",
                    format!("ca_location:{}", l.name()),
                )
                .details(
                    serde_json::json!({ "cidrs": cidrs, "trusted": l.trusted(), "alert": true }),
                ),
            );
            change.put_locations.push((
                l.name().to_owned(),
                serde_json::to_string(&cidrs).map_err(ApiError::internal)?,
                l.trusted(),
            ));
        }
        Edit::DeleteLocation(name) => {
            let i = locations
                .iter()
                .position(|x| x.name() == name.as_str())
                .ok_or_else(|| ApiError::not_found(format!("no named location {name}")))?;
            let users = policies_referencing_location(&policies, name);
            if !users.is_empty() {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!(
                        "named location {name} is used by {}; change or delete those policies first",
                        users.join(", ")
                    ),
                ));
            }
            locations.remove(i);
            result.updated.push(name.clone());
            events.push(
                event(caller, "ca.location.removed", format!("ca_location:{name}"))
                    .details(serde_json::json!({ "alert": true })),
            );
            change.delete_locations.push(name.clone());
        }
    }
    if change.put_policies.is_empty()
        && change.delete_policies.is_empty()
        && change.put_locations.is_empty()
        && change.delete_locations.is_empty()
    {
        return Ok(Planned {
            change,
            events,
            result,
        });
    }
    // Deleting a policy only relaxes the set: nothing to guard (and a tenant already past a
    // forced lock-out must be able to undo it).
    if matches!(edit, Edit::Delete(_)) {
        return Ok(Planned {
            change,
            events,
            result,
        });
    }
    // The lockout guard, on the set as it would be.
    let compiled = CompiledPolicies::compile(&policies, &locations)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // Administering Portcullis takes the API or the CLI; an administrator who could reach
    // only some relying party is locked out of Portcullis all the same.
    let clients: Vec<String> = Vec::new();
    let admins = global_admins(state, now).await?;
    let me_profile = AccountProfile {
        subject: subject(state, &me.principal, now).await?,
        strongest: strongest(state, &me.principal).await?,
    };
    if let Err(e) = check_lockout(&compiled, &clients, &admins, &me_profile) {
        if !(e.forcible() && force) {
            return Err(lockout_error(&e));
        }
        // Forced past (b): said in every event of the change (they alert as ca.policy.*).
        for ev in events.iter_mut() {
            if let Some(d) = ev.details.as_object_mut() {
                d.insert("forced".into(), true.into());
                d.insert(
                    "lockout".into(),
                    serde_json::to_value(&e).unwrap_or_default(),
                );
                d.insert("alert".into(), true.into());
            }
        }
        events.push(event(caller, "ca.policy.lockout_forced", "tenant").details(
            serde_json::json!({
                "lockout": e, "reason": e.to_string(),
            }),
        ));
    }
    Ok(Planned {
        change,
        events,
        result,
    })
}

/// Plans and writes `edit`, again from the top when another replica changed the set first.
async fn apply(
    state: &AppState,
    caller: &Caller,
    edit: Edit,
    force: bool,
) -> Result<CaImportResult, ApiError> {
    let me = caller.require(perm::CA_MANAGE)?;
    for _ in 0..RETRIES {
        let loaded = load(state).await?;
        let planned = plan(state, caller, me, &loaded, &edit, force).await?;
        if planned.events.is_empty() {
            return Ok(planned.result);
        }
        match state
            .store
            .write(Change::ConditionalAccess(planned.change), planned.events)
            .await
        {
            Ok(_) => return Ok(planned.result),
            Err(StoreError::Conflict(m)) if m == CA_CHANGED => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        ErrorCode::Conflict,
        "conditional access is being changed by someone else right now; try again",
    ))
}

pub async fn import(
    state: &AppState,
    caller: &Caller,
    req: CaImportRequest,
) -> Result<CaImportResult, ApiError> {
    caller.require(perm::CA_MANAGE)?;
    if req.policies.is_empty() {
        return Err(ApiError::bad_request("no policies given"));
    }
    let mut specs = Vec::with_capacity(req.policies.len());
    let mut problems = Vec::new();
    for (i, v) in req.policies.into_iter().enumerate() {
        match serde_json::from_value::<PolicySpec>(v) {
            Ok(s) => specs.push(s),
            Err(e) => problems.push(format!("policy #{}: {e}", i + 1)),
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::bad_request(problems.join("; ")));
    }
    apply(state, caller, Edit::Import(specs), req.force).await
}

pub async fn set_state(
    state: &AppState,
    caller: &Caller,
    name: &str,
    req: CaStateRequest,
) -> Result<CaPolicyView, ApiError> {
    let to = PolicyState::parse(&req.state)
        .ok_or_else(|| ApiError::bad_request("state must be enabled, report_only or disabled"))?;
    apply(state, caller, Edit::State(name.to_owned(), to), req.force).await?;
    show_policy(state, caller, name).await
}

pub async fn delete_policy(state: &AppState, caller: &Caller, name: &str) -> Result<(), ApiError> {
    apply(state, caller, Edit::Delete(name.to_owned()), false).await?;
    Ok(())
}

pub async fn set_location(
    state: &AppState,
    caller: &Caller,
    req: CaLocationRequest,
) -> Result<CaLocationView, ApiError> {
    let l = NamedLocation::parse(&req.name, &req.cidrs, req.trusted)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let name = l.name().to_owned();
    apply(state, caller, Edit::PutLocation(l), req.force).await?;
    list_locations(state, caller)
        .await?
        .into_iter()
        .find(|x| x.name == name)
        .ok_or_else(|| ApiError::internal("location vanished"))
}

pub async fn remove_location(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<(), ApiError> {
    apply(state, caller, Edit::DeleteLocation(name.to_owned()), false).await?;
    Ok(())
}

/// The application and flow of a what-if: the flow defaults to the one the application is
/// reached by (the CLI: the device flow; everything else: none); `device_code` alone means
/// the CLI. The API is never reached through the device flow, so that pair is refused.
fn whatif_route(
    app: Option<&str>,
    flow: Option<&str>,
) -> Result<(Application, Option<AuthenticationFlow>), ApiError> {
    let flow = flow
        .map(|f| {
            AuthenticationFlow::parse(f).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "flow {f:?} is not an authentication flow (use device_code)"
                ))
            })
        })
        .transpose()?;
    let default_app = if flow.is_some() { "cli" } else { "api" };
    let application =
        Application::parse(app.unwrap_or(default_app)).map_err(ApiError::bad_request)?;
    match (&application, flow) {
        (Application::Api, Some(f)) => Err(ApiError::bad_request(format!(
            "the {} flow never signs in to the API: it issues tokens to the CLI (app cli)",
            f.as_str()
        ))),
        (Application::Cli, None) => Ok((application, Some(AuthenticationFlow::DeviceCode))),
        _ => Ok((application, flow)),
    }
}

/// How the current policies would decide a hypothetical sign-in, with every policy explained.
pub async fn what_if(
    state: &AppState,
    caller: &Caller,
    req: WhatIfRequest,
) -> Result<serde_json::Value, ApiError> {
    caller.require(perm::CA_READ)?;
    let user = portcullis_core::principal::PrincipalName::parse("user", &req.user)
        .map_err(crate::services::accounts::invalid)?;
    let hours = req.hours_since_sign_in.unwrap_or(0);
    if hours > portcullis_core::conditional_access::MAX_SIGN_IN_FREQUENCY_HOURS + 1 {
        return Err(ApiError::bad_request(format!(
            "hours_since_sign_in is at most {}",
            portcullis_core::conditional_access::MAX_SIGN_IN_FREQUENCY_HOURS + 1
        )));
    }
    let p = state
        .store
        .principal_by_name(user.as_str())
        .await?
        .filter(|p| p.kind != PrincipalKind::Group.as_str())
        .ok_or_else(|| {
            ApiError::not_found(format!("no user or service account named {}", req.user))
        })?;
    let ip: IpAddr = req
        .ip
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{:?} is not an IP address", req.ip)))?;
    let (application, flow) = whatif_route(req.app.as_deref(), req.flow.as_deref())?;
    let strength = match req.strength.as_deref() {
        None => strongest(state, &p).await?,
        Some(s) => AuthStrength::parse(s).ok_or_else(|| {
            ApiError::bad_request("strength must be password, mfa or phishing_resistant")
        })?,
    };
    let now = OffsetDateTime::now_utc();
    let hours = i64::from(hours);
    let loaded = load(state).await?;
    let ctx = SignInContext {
        subject: subject(state, &p, now).await?,
        application,
        ip,
        strength,
        authenticated_at: (hours > 0).then(|| now - time::Duration::hours(hours)),
        flow,
    };
    let d = loaded.compiled.what_if(&ctx, now);
    serde_json::to_value(&d).map_err(ApiError::internal)
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
        let base = crate::services::signin::signin_event(
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
    if client_id == crate::services::device::CLI_CLIENT_ID {
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
    pub strength: &'a str,
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
    let strength = AuthStrength::parse(origin.strength)
        .ok_or_else(crate::services::oauth::OAuthError::server_error)?;
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
