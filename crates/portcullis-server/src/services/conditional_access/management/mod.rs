//! Managing policies and named locations behind the lockout guard (break-glass never included, never the last way in for the tenant-wide Global Administrators), with warnings and version retries.

mod plan;

use super::*;
use plan::{Edit, Then, apply, plan_and_write};

// ---- management ----

/// The names of the role-assignable groups (the only ones that can exclude).
pub(super) async fn role_assignable_groups(state: &AppState) -> Result<HashSet<String>, ApiError> {
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
pub(super) fn policy_warnings(
    spec: &serde_json::Value,
    role_assignable: &HashSet<String>,
) -> Vec<String> {
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

pub(super) fn policy_view(
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
pub(super) async fn known_names(
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
pub(super) async fn refuse_breakglass_includes(
    state: &AppState,
    policies: &[Policy],
) -> Result<(), ApiError> {
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
pub(super) async fn strongest(state: &AppState, p: &Principal) -> Result<AuthStrength, ApiError> {
    // A service account's client credentials count as mfa (crate::services::tokens).
    if p.kind == PrincipalKind::ServiceAccount {
        return Ok(AuthStrength::Mfa);
    }
    let factors = state.store.factors(&p.id).await?;
    let confirmed =
        |k: portcullis_core::factor::FactorKind| factors.iter().any(|f| f.confirmed && f.kind == k);
    Ok(
        if confirmed(portcullis_core::factor::FactorKind::Webauthn) {
            AuthStrength::PhishingResistant
        } else if confirmed(portcullis_core::factor::FactorKind::Totp) {
            AuthStrength::Mfa
        } else {
            AuthStrength::Password
        },
    )
}

/// Global Administrators of the tenant (active or eligible at `/`, directly or through a
/// group; not break-glass) with their strongest factor. Only the holders of a Global
/// Administrator assignment at `/` (and the members of groups that hold one) are looked at,
/// not every user; one at `/targets/x` is not a Global Administrator of the tenant (privilege
/// rule 10), and the core's guard checks that again on each subject.
pub(super) async fn global_admins(
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
        if a.principal_kind == PrincipalKind::Group {
            candidates.extend(state.store.group_members(&a.principal_id).await?);
        } else if let Some(p) = state.store.principal_by_id(&a.principal_id).await? {
            candidates.push(p);
        }
    }
    candidates.sort_by(|a, b| a.id.cmp(&b.id));
    candidates.dedup_by(|a, b| a.id == b.id);
    let mut out = Vec::new();
    for p in candidates {
        if p.emergency || !p.enabled || p.kind != PrincipalKind::User {
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

pub(super) fn lockout_error(e: &LockoutError) -> ApiError {
    let hint = if e.forcible() {
        " (to do it anyway, repeat with force; it is audited and alerts)"
    } else {
        ""
    };
    ApiError::new(ErrorCode::CaLockout, format!("{e}{hint}"))
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

/// Applies a conditional-access change request (approved, or its cooling-off over) as it reads
/// now: planned again from the current set, its requester (`requester_id`) looked after by the
/// lockout guard, and written with `close` and its event. An edit that no longer applies (its
/// policy gone, a lockout now) is an error for the governance service to cancel it with.
pub async fn apply_change(
    state: &AppState,
    actor: &str,
    requester_id: &str,
    payload: &str,
    close: Change,
    close_event: NewAuditEvent,
) -> Result<(), ApiError> {
    let mut v: serde_json::Value = serde_json::from_str(payload)
        .map_err(|_| ApiError::internal("a stored change that does not parse"))?;
    let force = v
        .as_object_mut()
        .and_then(|o| o.remove("force"))
        .and_then(|f| f.as_bool())
        .unwrap_or(false);
    let edit: Edit = serde_json::from_value(v)
        .map_err(|_| ApiError::internal("a stored change that does not parse"))?;
    let me = state
        .store
        .principal_by_id(requester_id)
        .await?
        .ok_or_else(|| ApiError::not_found("its requester no longer exists"))?;
    plan_and_write(
        state,
        actor,
        &me,
        &edit,
        force,
        Then::Close(Box::new((close, close_event))),
    )
    .await
    .map(|_| ())
}

/// Whether policy `p` applies to a privileged role, so that weakening it needs four eyes: it
/// names a privileged role, or it includes someone who reaches one now (eligible or active, at
/// any scope, directly or through a group; break-glass accounts aside, as no policy applies to
/// them): through `all`, `members`, `guests`, `service_accounts`, their name or a group of
/// theirs. Exclusions are not subtracted (the safe side: a second person looks).
pub(super) async fn applies_to_privileged(state: &AppState, p: &Policy) -> Result<bool, ApiError> {
    let privileged: HashSet<String> = crate::services::grants::all_roles(state)
        .await?
        .into_iter()
        .filter(|r| r.tier().is_privileged())
        .map(|r| r.slug)
        .collect();
    let include = &p.conditions().principals.include;
    if include.iter().any(|r| {
        matches!(r, PrincipalRef::Role(s) | PrincipalRef::ActiveRole(s) if privileged.contains(s))
    }) {
        return Ok(true);
    }
    let mut holders: Vec<Principal> = Vec::new();
    for role in &privileged {
        let filter = portcullis_store::roles::AssignmentFilter {
            principal_id: None,
            role: Some(role.clone()),
            include_ended: false,
        };
        for a in state.store.assignments(&filter).await? {
            if a.principal_kind == PrincipalKind::Group {
                holders.extend(state.store.group_members(&a.principal_id).await?);
            } else if let Some(x) = state.store.principal_by_id(&a.principal_id).await? {
                holders.push(x);
            }
        }
    }
    holders.retain(|h| !h.emergency);
    let person = |h: &Principal| h.kind == PrincipalKind::User;
    for r in include {
        let hit = match r {
            PrincipalRef::All => holders.iter().any(person),
            PrincipalRef::Members => holders
                .iter()
                .any(|h| person(h) && h.guest_organisation.is_none()),
            PrincipalRef::Guests => holders
                .iter()
                .any(|h| person(h) && h.guest_organisation.is_some()),
            PrincipalRef::ServiceAccounts => holders
                .iter()
                .any(|h| h.kind == PrincipalKind::ServiceAccount),
            PrincipalRef::User(n) | PrincipalRef::ServiceAccount(n) => {
                holders.iter().any(|h| h.name == n.as_str())
            }
            PrincipalRef::Group(g) => {
                let mut any = false;
                for h in &holders {
                    if state
                        .store
                        .groups_of(&h.id)
                        .await?
                        .iter()
                        .any(|x| x.name == g.as_str())
                    {
                        any = true;
                        break;
                    }
                }
                any
            }
            PrincipalRef::Role(_) | PrincipalRef::ActiveRole(_) => false,
        };
        if hit {
            return Ok(true);
        }
    }
    Ok(false)
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
pub(super) fn whatif_route(
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
