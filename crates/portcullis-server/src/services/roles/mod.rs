//! Just-in-time roles: roles and their settings, assignments, activation requests, approvals.
//!
//! Invariants kept here (the rules themselves are pure code in `portcullis_core::roles` and
//! `portcullis_core::activation`):
//! - Nobody holds a role they were not given: grants are read from the store on every request
//!   and a grant past its end is never counted, whether or not the expiry worker has run.
//! - Activation needs a live eligible assignment, the strength the role requires (fresh within
//!   15 minutes, else `step_up_required`), and the justification/ticket the settings demand.
//! - Nobody approves their own request (also not through a group); N-of-M counts distinct
//!   people; each decision is a conditional change, so two approvers racing produce exactly one
//!   activation and exactly one audit trail.
//! - Every change is written with its audit event and its outbox notifications in one
//!   transaction; the expiry worker is woken when a nearer deadline appears.
//!
//! Here: role definitions, grants and settings; `assignments` who may hold what (privilege
//! model rule 2); `requests` activation (now or scheduled), approval and closing on core's
//! state machine; `extension` more time for an active activation.

mod assignments;
mod extension;
mod requests;

pub use assignments::*;
pub use extension::*;
pub use requests::*;

use crate::services::support::ConflictExt;
use portcullis_core::activation::{
    self, APPROVAL_TIMEOUT, ActivationError, ActivationInput, ApprovalError, Completion,
    RequestEvent, RequestState, SessionFacts, schedule,
};
use portcullis_core::api::{
    ActivationRequestView, ActiveRoleView, AssignmentView, CreateActivationRequest,
    CreateAssignmentRequest, CreateRoleRequest, DecisionRequest, ExtendActivationRequest,
    MakeEligibleRequest, RoleSettingsUpdate, RoleSettingsView, RoleView,
};
use portcullis_core::error::ErrorCode;
use portcullis_core::principal::PrincipalName;
use portcullis_core::privilege::{self, Assignee, AssignmentFacts, AssignmentRefusal};
use portcullis_core::roles::perm;
use portcullis_core::roles::{BuiltinRole, Permission, RoleName, RoleSettings, Scope};
use portcullis_core::session::AuthStrength;
use portcullis_store::accounts::Principal;
use portcullis_store::roles::{ActivationRequest, Assignment, AssignmentFilter, RequestFilter};
use portcullis_store::{Change, NewAssignment, NewOutboxMessage, NewRequest, StoreError};
use time::{Duration, OffsetDateTime};

use crate::error::ApiError;
use crate::services::caller::{Caller, SessionCaller, event, forbidden};
pub use crate::services::grants::{
    RoleDef, all_roles, grants, grants_and_assignments, role, role_at,
};
use crate::services::grants::{builtin_def, custom_def, unknown_role};
use crate::services::privilege::Guard;
use crate::services::support::{invalid, new_id};
use crate::state::AppState;
use crate::time_us::{from_us, rfc3339, us};

fn coded(code: ErrorCode, msg: impl Into<String>) -> ApiError {
    ApiError::new(code, msg)
}

/// The caller's active roles with the time left, for `whoami`.
pub async fn active_roles(
    state: &AppState,
    principal_id: &str,
    now: OffsetDateTime,
) -> Result<Vec<ActiveRoleView>, ApiError> {
    Ok(state
        .store
        .grants_of(principal_id, us(now))
        .await?
        .into_iter()
        .map(|g| ActiveRoleView {
            role: g.role,
            scope: g.scope,
            ends_at: g.ends_at_us.map(rfc3339),
            seconds_left: g.ends_at_us.map(|e| (e - us(now)).max(0) / 1_000_000),
            source: g.source,
        })
        .collect())
}

/// A role at `scope` and its settings, in one read for a role (an activation's hot path); the
/// membership pseudo-role's come from its group's roles ([`role_at`], [`settings`]).
async fn role_and_settings(
    state: &AppState,
    slug: &str,
    scope: &Scope,
) -> Result<(RoleDef, RoleSettings), ApiError> {
    if slug == portcullis_core::roles::GROUP_MEMBER || scope.group().is_some() {
        let def = role_at(state, slug, scope).await?;
        let s = settings(state, &def).await?;
        return Ok((def, s));
    }
    let (custom, stored) = state.store.role_with_settings(slug).await?;
    let def = match (BuiltinRole::from_slug(slug), custom) {
        (Some(b), _) => builtin_def(b),
        (None, Some(r)) => custom_def(r),
        (None, None) => return Err(unknown_role(slug)),
    };
    let settings = parse_settings(stored, &def)?;
    Ok((def, settings))
}

fn parse_settings(stored: Option<String>, def: &RoleDef) -> Result<RoleSettings, ApiError> {
    match stored {
        Some(json) => serde_json::from_str(&json)
            .map_err(|_| ApiError::internal("stored role settings unreadable")),
        None => Ok(RoleSettings::defaults_for(def.builtin)),
    }
}

/// A role's settings: stored, or the defaults for the role. Just-in-time membership of a group
/// has the strictest settings of the roles the group holds (core's `RoleSettings::strictest`),
/// so that joining is never an easier way to a role than activating it; they follow the
/// group's roles and are not set on their own.
pub async fn settings(state: &AppState, def: &RoleDef) -> Result<RoleSettings, ApiError> {
    let Some(group) = &def.group else {
        return parse_settings(state.store.role_settings(&def.slug).await?, def);
    };
    let g = state
        .store
        .principal_by_name(group)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no group named {group}")))?;
    let held = state
        .store
        .assignments(&AssignmentFilter {
            principal_id: Some(g.id),
            ..Default::default()
        })
        .await?;
    let defs = all_roles(state).await?;
    let mut roles: Vec<(portcullis_core::privilege::Tier, RoleSettings)> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for a in &held {
        if seen.contains(&a.role.as_str()) {
            continue;
        }
        seen.push(&a.role);
        let Some(def) = defs.iter().find(|r| r.slug == a.role) else {
            continue;
        };
        let s = parse_settings(state.store.role_settings(&def.slug).await?, def)?;
        roles.push((def.tier(), s));
    }
    Ok(RoleSettings::strictest(roles.iter().map(|(t, s)| (*t, s))))
}

/// The role of request or assignment `slug` at its stored `scope`.
pub(super) async fn role_of(
    state: &AppState,
    slug: &str,
    scope: &str,
) -> Result<RoleDef, ApiError> {
    role_at(
        state,
        slug,
        &Scope::parse(scope).map_err(ApiError::internal)?,
    )
    .await
}

/// When eligibility `elig` stops letting `principal_id` hold its role: its own end and, for a
/// group's eligibility held through a just-in-time membership, the membership's end (an
/// activation through the group never outlasts the membership).
pub(super) async fn eligibility_end(
    state: &AppState,
    elig: &Assignment,
    principal_id: &str,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, ApiError> {
    let membership = if elig.principal_kind == portcullis_core::principal::PrincipalKind::Group {
        state
            .store
            .membership_end(&elig.principal_id, principal_id, us(now))
            .await?
    } else {
        None
    };
    Ok(match (elig.ends_at_us, membership) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
    .map(from_us))
}

fn settings_view(role: &str, s: &RoleSettings) -> RoleSettingsView {
    RoleSettingsView {
        role: role.to_owned(),
        max_activation_seconds: s.max_activation,
        required_strength: s.required_strength.as_str().to_owned(),
        require_justification: s.require_justification,
        require_ticket: s.require_ticket,
        require_approval: s.require_approval,
        approvers: s.approvers.clone(),
        approvals_required: s.approvals_required,
        max_eligible_seconds: s.max_eligible_seconds,
        max_active_seconds: s.max_active_seconds,
        allow_permanent_active: s.allow_permanent_active,
        notify: s.notify.clone(),
    }
}

pub async fn list_roles(state: &AppState) -> Result<Vec<RoleView>, ApiError> {
    Ok(all_roles(state).await?.iter().map(RoleDef::view).collect())
}

pub async fn get_role(state: &AppState, slug: &str) -> Result<RoleView, ApiError> {
    Ok(role(state, slug).await?.view())
}

pub async fn create_role(
    state: &AppState,
    caller: &Caller,
    req: CreateRoleRequest,
) -> Result<RoleView, ApiError> {
    let me = caller.require(perm::ROLES_CREATE)?;
    let slug = RoleName::parse(&req.slug).map_err(invalid)?;
    if req.permissions.is_empty() {
        return Err(ApiError::bad_request(
            "a role needs at least one permission",
        ));
    }
    let mut perms = Vec::new();
    for p in &req.permissions {
        let p = Permission::parse(p).map_err(invalid)?;
        if !perms.contains(&p) {
            perms.push(p);
        }
    }
    // Nobody hands out more than they hold (privilege model rule 2).
    require_grantable(me, &perms, false, "create a role with")?;
    let display_name = match req.display_name.as_deref() {
        Some(d) => portcullis_core::principal::parse_display_name(d).map_err(invalid)?,
        None => slug.as_str().to_owned(),
    };
    if req.description.chars().count() > 500
        || portcullis_core::text::has_invisible(&req.description)
    {
        return Err(ApiError::bad_request(
            "description must be at most 500 characters without control, bidirectional or invisible characters",
        ));
    }
    let names: Vec<&str> = perms.iter().map(Permission::as_str).collect();
    let now = OffsetDateTime::now_utc();
    let change = Change::CreateCustomRole {
        slug: slug.as_str().to_owned(),
        display_name,
        description: req.description.clone(),
        permissions: serde_json::to_string(&names).map_err(ApiError::internal)?,
        at_us: us(now),
    };
    let ev = event(caller, "role.created", format!("role:{}", slug.as_str()))
        .details(serde_json::json!({ "permissions": names }));
    state
        .store
        .write(change, vec![ev])
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => {
                coded(ErrorCode::AlreadyExists, "a role with that name exists")
            }
            other => other.into(),
        })?;
    get_role(state, slug.as_str()).await
}

pub async fn delete_role(state: &AppState, caller: &Caller, slug: &str) -> Result<(), ApiError> {
    caller.require(perm::ROLES_DELETE)?;
    let def = role(state, slug).await?;
    if def.builtin.is_some() {
        return Err(coded(
            ErrorCode::Conflict,
            "built-in roles cannot be edited or deleted",
        ));
    }
    let live = state
        .store
        .assignments(&AssignmentFilter {
            role: Some(def.slug.clone()),
            ..Default::default()
        })
        .await?;
    if !live.is_empty() {
        let list: Vec<String> = live
            .iter()
            .map(|a| {
                format!(
                    "{} ({} {}:{} at {})",
                    a.id, a.kind, a.principal_kind, a.principal_name, a.scope
                )
            })
            .collect();
        return Err(coded(
            ErrorCode::Conflict,
            format!(
                "the role is still assigned; remove these assignments first: {}",
                list.join(", ")
            ),
        ));
    }
    let ev = event(caller, "role.deleted", format!("role:{slug}"));
    state
        .store
        .write(Change::DeleteCustomRole { slug: def.slug }, vec![ev])
        .await
        .on_conflict(|| {
            coded(
                ErrorCode::Conflict,
                "the role was assigned meanwhile; list its assignments and try again",
            )
        })?;
    Ok(())
}

pub async fn get_settings(state: &AppState, slug: &str) -> Result<RoleSettingsView, ApiError> {
    let def = role(state, slug).await?;
    Ok(settings_view(&def.slug, &settings(state, &def).await?))
}

/// Changes a role's settings. A change that weakens a privileged role's protection (less
/// approval, fewer approvers, a weaker strength, a longer maximum, …) is not applied but
/// recorded as a change request for a second top-tier person (four eyes; `change_pending`).
pub async fn update_settings(
    state: &AppState,
    caller: &Caller,
    slug: &str,
    u: RoleSettingsUpdate,
) -> Result<RoleSettingsView, ApiError> {
    let me = caller.require(perm::ROLES_SETTINGS_UPDATE)?;
    let def = role(state, slug).await?;
    // Loosening a role's approval or duration is handing it out: only someone who holds every
    // permission of the role may (so Global Administrator's settings need a Global Administrator).
    require_grantable(
        me,
        &def.permissions,
        def.builtin.is_some_and(BuiltinRole::grants_everything),
        &format!("change the settings of {}, which grants", def.slug),
    )?;
    let old = settings(state, &def).await?;
    let s = planned_settings(state, &old, &u).await?;
    if def.tier().is_privileged() {
        let weakenings = portcullis_core::governance::settings_weakenings(&old, &s);
        if !weakenings.is_empty() {
            let change = serde_json::to_value(&u).map_err(ApiError::internal)?;
            let subject = format!("role:{}", def.slug);
            return Err(crate::services::changes::propose(
                state,
                caller,
                "role_settings",
                &subject,
                change,
                weakenings,
            )
            .await);
        }
    }
    write_settings(state, &caller.actor(), &def, &s, Vec::new(), Vec::new()).await
}

/// Applies a role-settings change that was recorded as a change request (approved, or its
/// cooling-off over), as it reads against the settings now, with `close` (the request's
/// conditional close) and its event in the same write.
pub async fn apply_settings_change(
    state: &AppState,
    actor: &str,
    slug: &str,
    u: RoleSettingsUpdate,
    close: Change,
    close_event: portcullis_core::audit::NewAuditEvent,
) -> Result<RoleSettingsView, ApiError> {
    let def = role(state, slug).await?;
    let old = settings(state, &def).await?;
    let s = planned_settings(state, &old, &u).await?;
    write_settings(state, actor, &def, &s, vec![close], vec![close_event]).await
}

/// `old` with `u` applied, validated, its approvers checked.
async fn planned_settings(
    state: &AppState,
    old: &RoleSettings,
    u: &RoleSettingsUpdate,
) -> Result<RoleSettings, ApiError> {
    let mut s = old.clone();
    if let Some(v) = u.max_activation_seconds {
        s.max_activation = v;
    }
    if let Some(v) = u.required_strength.as_deref() {
        s.required_strength = AuthStrength::parse(v).ok_or_else(|| {
            ApiError::bad_request("required_strength must be mfa or phishing_resistant")
        })?;
    }
    if let Some(v) = u.require_justification {
        s.require_justification = v;
    }
    if let Some(v) = u.require_ticket {
        s.require_ticket = v;
    }
    if let Some(v) = u.require_approval {
        s.require_approval = v;
    }
    if let Some(v) = &u.approvers {
        s.approvers = v.clone();
    }
    if let Some(v) = u.approvals_required {
        s.approvals_required = v;
    }
    if let Some(v) = &u.notify {
        s.notify = v.clone();
    }
    s.validate().map_err(invalid)?;
    // Approvers must exist (a typo would make the role impossible to activate), be people, and
    // an approver group must be role-assignable: Helpdesk changes ordinary groups, and whoever
    // can add members to an approver group can approve (privilege model rule 4).
    for a in &s.approvers {
        let (kind, name) = a.split_once(':').unwrap_or(("user", a));
        let problem = match state.store.principal_by_name(name).await? {
            Some(p) if p.kind.as_str() == kind && kind == "group" && !p.role_assignable => {
                Some(format!(
                    "approver group {name} is not role-assignable; approvers must be a role-assignable group (only role administrators change its members)"
                ))
            }
            Some(p) if p.kind.as_str() == kind && p.emergency => Some(format!(
                "approver {a} is a break-glass account; approvers are people"
            )),
            Some(p) if p.kind.as_str() == kind => None,
            _ => Some(format!(
                "approver {a} does not exist (approvers are user:NAME or group:NAME)"
            )),
        };
        if let Some(problem) = problem {
            return Err(ApiError::bad_request(problem));
        }
    }
    Ok(s)
}

/// Writes `s` as `def`'s settings by `actor`, with `extra` changes and events in the same write.
async fn write_settings(
    state: &AppState,
    actor: &str,
    def: &RoleDef,
    s: &RoleSettings,
    extra: Vec<Change>,
    extra_events: Vec<portcullis_core::audit::NewAuditEvent>,
) -> Result<RoleSettingsView, ApiError> {
    let json = serde_json::to_string(s).map_err(ApiError::internal)?;
    let now = OffsetDateTime::now_utc();
    let ev = portcullis_core::audit::NewAuditEvent::new(
        actor,
        "role.settings_changed",
        format!("role:{}", def.slug),
    )
    .details(serde_json::to_value(s).map_err(ApiError::internal)?);
    let mut changes = extra;
    changes.push(Change::SetRoleSettings {
        role: def.slug.clone(),
        settings: json,
        at_us: us(now),
    });
    let mut events = vec![ev];
    events.extend(extra_events);
    state
        .store
        .write(Change::Many(changes), events)
        .await
        .on_conflict(crate::services::support::change_moved)?;
    Ok(settings_view(&def.slug, s))
}
