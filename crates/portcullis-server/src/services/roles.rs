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

use portcullis_core::activation::{
    self, APPROVAL_TIMEOUT, ActivationError, ActivationInput, ApprovalError, RequestEvent,
    RequestState, SessionFacts,
};
use portcullis_core::api::{
    ActivationRequestView, ActiveRoleView, AssignmentView, CreateActivationRequest,
    CreateAssignmentRequest, CreateRoleRequest, DecisionRequest, MakeEligibleRequest,
    RoleSettingsUpdate, RoleSettingsView, RoleView,
};
use portcullis_core::error::ErrorCode;
use portcullis_core::principal::PrincipalName;
use portcullis_core::privilege::{self, Assignee, AssignmentFacts, AssignmentRefusal};
use portcullis_core::roles::perm;
use portcullis_core::roles::{BuiltinRole, Grant, Permission, RoleName, RoleSettings, Scope};
use portcullis_core::session::AuthStrength;
use portcullis_store::accounts::Principal;
use portcullis_store::roles::{ActivationRequest, Assignment, AssignmentFilter, RequestFilter};
use portcullis_store::{Change, NewAssignment, NewOutboxMessage, NewRequest, StoreError};
use time::{Duration, OffsetDateTime};

use crate::error::ApiError;
use crate::services::accounts::{invalid, new_id};
use crate::services::caller::{Caller, SessionCaller, event, forbidden};
use crate::services::privilege::Guard;
use crate::state::AppState;
use crate::time_us::{from_us, rfc3339, us};

/// A role as the server sees it: built-in (from code) or custom (from the store).
#[derive(Debug, Clone)]
pub struct RoleDef {
    pub slug: String,
    pub display_name: String,
    pub description: String,
    pub builtin: Option<BuiltinRole>,
    pub permissions: Vec<Permission>,
}

impl RoleDef {
    /// Its tier, from its permissions (privilege model rule 1).
    pub fn tier(&self) -> portcullis_core::privilege::Tier {
        portcullis_core::privilege::tier_of(
            &self.permissions,
            self.builtin.is_some_and(BuiltinRole::grants_everything),
        )
    }

    fn view(&self) -> RoleView {
        RoleView {
            slug: self.slug.clone(),
            display_name: self.display_name.clone(),
            description: self.description.clone(),
            builtin: self.builtin.is_some(),
            permissions: self
                .permissions
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
        }
    }
}

fn unknown_role(slug: &str) -> ApiError {
    ApiError::not_found(format!("no role named {slug} (portcullis roles list)"))
}

fn coded(code: ErrorCode, msg: impl Into<String>) -> ApiError {
    ApiError::new(code, msg)
}

/// A built-in role's definition (no read: built-in names are reserved, so no custom role
/// shadows one).
fn builtin_def(b: BuiltinRole) -> RoleDef {
    RoleDef {
        slug: b.slug().to_owned(),
        display_name: b.display_name().to_owned(),
        description: b.description().to_owned(),
        builtin: Some(b),
        permissions: b.permissions(),
    }
}

/// A custom role's definition; a stored permission this version does not know is dropped.
fn custom_def(r: portcullis_store::roles::CustomRole) -> RoleDef {
    RoleDef {
        slug: r.slug,
        display_name: r.display_name,
        description: r.description,
        builtin: None,
        permissions: r
            .permissions
            .iter()
            .filter_map(|p| Permission::parse(p).ok())
            .collect(),
    }
}

/// Every role: the built-in ones first, then custom ones by name.
pub async fn all_roles(state: &AppState) -> Result<Vec<RoleDef>, ApiError> {
    let mut out: Vec<RoleDef> = BuiltinRole::ALL.iter().map(|b| builtin_def(*b)).collect();
    for r in state.store.custom_roles().await? {
        out.push(custom_def(r));
    }
    Ok(out)
}

/// One role by name; a built-in role is answered without reading the store.
pub async fn role(state: &AppState, slug: &str) -> Result<RoleDef, ApiError> {
    if let Some(b) = BuiltinRole::from_slug(slug) {
        return Ok(builtin_def(b));
    }
    all_roles(state)
        .await?
        .into_iter()
        .find(|r| r.slug == slug)
        .ok_or_else(|| unknown_role(slug))
}

/// The grants in effect for a principal at `now`, with the permissions of their roles. Custom
/// roles are read only when a grant names one.
pub async fn grants(
    state: &AppState,
    principal_id: &str,
    now: OffsetDateTime,
) -> Result<Vec<Grant>, ApiError> {
    Ok(grants_and_assignments(state, principal_id, now).await?.0)
}

/// The grants in effect for a principal at `now` and the assignments that apply to them
/// (eligible ones too): the same two reads as [`Store::grants_of`](portcullis_store::Store::grants_of).
pub async fn grants_and_assignments(
    state: &AppState,
    principal_id: &str,
    now: OffsetDateTime,
) -> Result<(Vec<Grant>, Vec<Assignment>), ApiError> {
    let assignments = state
        .store
        .assignments_applying_to(principal_id, us(now))
        .await?;
    let mut rows: Vec<portcullis_store::roles::GrantRow> = assignments
        .iter()
        .filter(|a| a.kind == "active")
        .map(|a| portcullis_store::roles::GrantRow {
            role: a.role.clone(),
            scope: a.scope.clone(),
            ends_at_us: a.ends_at_us,
            source: format!("assignment:{}", a.id),
        })
        .collect();
    rows.extend(
        state
            .store
            .active_requests_of(principal_id, us(now))
            .await?,
    );
    let mut custom: Option<Vec<RoleDef>> = None;
    let mut out = Vec::with_capacity(rows.len());
    for g in rows {
        let def = match BuiltinRole::from_slug(&g.role) {
            Some(b) => builtin_def(b),
            None => {
                if custom.is_none() {
                    custom = Some(all_roles(state).await?);
                }
                let Some(def) = custom
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .find(|r| r.slug == g.role)
                else {
                    continue;
                };
                def.clone()
            }
        };
        let Ok(scope) = Scope::parse(&g.scope) else {
            continue;
        };
        out.push(Grant {
            everything: def.builtin.is_some_and(|b| b.grants_everything()),
            role: def.slug,
            permissions: def.permissions,
            scope,
            ends_at: g.ends_at_us.map(from_us),
        });
    }
    Ok((out, assignments))
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

/// A role and its settings in one read (an activation's hot path).
async fn role_and_settings(
    state: &AppState,
    slug: &str,
) -> Result<(RoleDef, RoleSettings), ApiError> {
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

/// A role's settings: stored, or the defaults for the role.
pub async fn settings(state: &AppState, def: &RoleDef) -> Result<RoleSettings, ApiError> {
    parse_settings(state.store.role_settings(&def.slug).await?, def)
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
        .map_err(|e| match e {
            StoreError::Conflict(_) => coded(
                ErrorCode::Conflict,
                "the role was assigned meanwhile; list its assignments and try again",
            ),
            other => other.into(),
        })?;
    Ok(())
}

pub async fn get_settings(state: &AppState, slug: &str) -> Result<RoleSettingsView, ApiError> {
    let def = role(state, slug).await?;
    Ok(settings_view(&def.slug, &settings(state, &def).await?))
}

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
    let mut s = settings(state, &def).await?;
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
    if let Some(v) = u.approvers {
        s.approvers = v;
    }
    if let Some(v) = u.approvals_required {
        s.approvals_required = v;
    }
    if let Some(v) = u.notify {
        s.notify = v;
    }
    s.validate().map_err(invalid)?;
    // Approvers must exist (a typo would make the role impossible to activate), be people, and
    // an approver group must be role-assignable: Helpdesk changes ordinary groups, and whoever
    // can add members to an approver group can approve (privilege model rule 4).
    for a in &s.approvers {
        let (kind, name) = a.split_once(':').unwrap_or(("user", a));
        let problem = match state.store.principal_by_name(name).await? {
            Some(p) if p.kind == kind && kind == "group" && !p.role_assignable => Some(format!(
                "approver group {name} is not role-assignable; approvers must be a role-assignable group (only role administrators change its members)"
            )),
            Some(p) if p.kind == kind && p.emergency => Some(format!(
                "approver {a} is a break-glass account; approvers are people"
            )),
            Some(p) if p.kind == kind => None,
            _ => Some(format!(
                "approver {a} does not exist (approvers are user:NAME or group:NAME)"
            )),
        };
        if let Some(problem) = problem {
            return Err(ApiError::bad_request(problem));
        }
    }
    let json = serde_json::to_string(&s).map_err(ApiError::internal)?;
    let now = OffsetDateTime::now_utc();
    let ev = event(
        caller,
        "role.settings_changed",
        format!("role:{}", def.slug),
    )
    .details(serde_json::to_value(&s).map_err(ApiError::internal)?);
    state
        .store
        .write(
            Change::SetRoleSettings {
                role: def.slug.clone(),
                settings: json,
                at_us: us(now),
            },
            vec![ev],
        )
        .await?;
    Ok(settings_view(&def.slug, &s))
}

/// Refuses (403 `not_grantable`) when the caller does not hold, at the tenant, every permission
/// they would hand out by `what` (privilege model rule 2: nobody hands out more than they hold).
fn require_grantable(
    me: &SessionCaller,
    permissions: &[Permission],
    everything: bool,
    what: &str,
) -> Result<(), ApiError> {
    let missing = privilege::missing_to_grant(&me.grants, permissions, everything);
    if missing.is_empty() {
        return Ok(());
    }
    Err(coded(
        ErrorCode::NotGrantable,
        format!(
            "you cannot {what} permissions you do not hold at /: {}",
            missing.join(", ")
        ),
    ))
}

/// The role-assignable groups `principal_id` belongs to: the only groups that confer roles or
/// make anyone an approver (ordinary groups are Helpdesk's to change).
async fn role_assignable_groups(
    state: &AppState,
    principal_id: &str,
) -> Result<Vec<String>, ApiError> {
    Ok(state
        .store
        .groups_of(principal_id)
        .await?
        .into_iter()
        .filter(|g| g.role_assignable)
        .map(|g| g.name)
        .collect())
}

/// Privilege model rule 2 for a new assignment of `def` to `p` by `me`.
async fn check_assignment(
    state: &AppState,
    caller: &Caller,
    me: &SessionCaller,
    p: &Principal,
    def: &RoleDef,
    active: bool,
) -> Result<(), ApiError> {
    let assignee = match p.kind.as_str() {
        "group" => Assignee::Group,
        "service_account" => Assignee::ServiceAccount,
        _ if p.emergency => Assignee::BreakGlass,
        _ => Assignee::Person,
    };
    let to_own_group = assignee == Assignee::Group
        && state
            .store
            .groups_of(&me.principal.id)
            .await?
            .iter()
            .any(|g| g.id == p.id);
    let to_managed_service_account = assignee == Assignee::ServiceAccount
        && state
            .store
            .manages_credentials_of(&p.id, &caller.actor())
            .await?;
    let facts = AssignmentFacts {
        to_self: p.id == me.principal.id,
        to_own_group,
        to_managed_service_account,
        assignee,
        role: def.tier(),
        active,
        actor: crate::services::privilege::tier(me),
    };
    privilege::check_assignment(&facts).map_err(|e| {
        let code = match e {
            AssignmentRefusal::ToSelf
            | AssignmentRefusal::ToOwnGroup
            | AssignmentRefusal::ToManagedServiceAccount => ErrorCode::SelfAssignment,
            AssignmentRefusal::PrivilegedActiveForPeople => ErrorCode::EligibleOnly,
            AssignmentRefusal::PrivilegedActiveNeedsTopTier => ErrorCode::Forbidden,
        };
        coded(code, e.to_string())
    })
}

/// The end of an assignment lasting `seconds` from `now`: positive, and representable (a huge
/// number is a clear 400, never an overflow).
fn end_after(now: OffsetDateTime, seconds: i64) -> Result<OffsetDateTime, ApiError> {
    if seconds <= 0 {
        return Err(ApiError::bad_request("duration_seconds must be positive"));
    }
    now.checked_add(Duration::seconds(seconds))
        .filter(|e| e.year() <= 9999)
        .ok_or_else(|| ApiError::bad_request("duration_seconds is too large"))
}

fn assignment_view(a: &Assignment) -> AssignmentView {
    AssignmentView {
        id: a.id.clone(),
        principal: format!("{}:{}", a.principal_kind, a.principal_name),
        role: a.role.clone(),
        scope: a.scope.clone(),
        kind: a.kind.clone(),
        starts_at: rfc3339(a.starts_at_us),
        ends_at: a.ends_at_us.map(rfc3339),
        created_by: a.created_by.clone(),
        ended_at: a.ended_at_us.map(rfc3339),
        end_reason: a.end_reason.clone(),
    }
}

/// Resolves `NAME`, `user:NAME`, `group:NAME` or `service_account:NAME`.
async fn principal_ref(state: &AppState, r: &str) -> Result<Principal, ApiError> {
    let (kind, name) = match r.split_once(':') {
        Some((k, n)) if ["user", "group", "service_account"].contains(&k) => (k, n),
        Some(_) => {
            return Err(ApiError::bad_request(
                "principal must be NAME, user:NAME, group:NAME or service_account:NAME",
            ));
        }
        None => ("user", r),
    };
    let name = PrincipalName::parse("principal", name).map_err(invalid)?;
    match state.store.principal_by_name(name.as_str()).await? {
        Some(p) if p.kind == kind => Ok(p),
        _ => Err(ApiError::not_found(format!("no {kind} named {name}"))),
    }
}

pub async fn create_assignment(
    state: &AppState,
    caller: &Caller,
    req: CreateAssignmentRequest,
) -> Result<AssignmentView, ApiError> {
    let scope = match req.scope.as_deref() {
        Some(s) => Scope::parse(s).map_err(invalid)?,
        None => Scope::tenant(),
    };
    let me = caller.require_at(perm::ASSIGNMENTS_CREATE, &scope)?;
    let def = role(state, &req.role).await?;
    let p = principal_ref(state, &req.principal).await?;
    if p.kind == "group" && !p.role_assignable {
        return Err(ApiError::bad_request(format!(
            "group {} is not role-assignable; roles can only be assigned to role-assignable groups",
            p.name
        )));
    }
    let kind = match req.kind.as_deref().unwrap_or("eligible") {
        k @ ("eligible" | "active") => k,
        _ => return Err(ApiError::bad_request("kind must be eligible or active")),
    };
    let now = OffsetDateTime::now_utc();
    let ends = match (req.duration_seconds, req.ends_at.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give duration_seconds or ends_at, not both",
            ));
        }
        (Some(d), None) => Some(end_after(now, d)?),
        (None, Some(t)) => {
            let t = OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|_| ApiError::bad_request("ends_at must be an RFC 3339 time"))?;
            if t <= now {
                return Err(ApiError::bad_request("ends_at must be in the future"));
            }
            Some(t)
        }
        (None, None) => None,
    };
    let s = settings(state, &def).await?;
    let limit = if kind == "active" {
        s.max_active_seconds
    } else {
        s.max_eligible_seconds
    };
    match (ends, limit) {
        (None, _) if kind == "active" && !(s.allow_permanent_active || p.emergency) => {
            return Err(ApiError::bad_request(format!(
                "permanent active assignments of {} are not allowed; give a duration (at most {})",
                def.slug,
                portcullis_core::roles::format_duration(Duration::seconds(limit.unwrap_or(0)))
            )));
        }
        (None, Some(max)) if kind == "eligible" => {
            return Err(ApiError::bad_request(format!(
                "eligible assignments of {} may last at most {}",
                def.slug,
                portcullis_core::roles::format_duration(Duration::seconds(max))
            )));
        }
        (Some(e), Some(max)) if e - now > Duration::seconds(max) => {
            return Err(ApiError::bad_request(format!(
                "{kind} assignments of {} may last at most {}",
                def.slug,
                portcullis_core::roles::format_duration(Duration::seconds(max))
            )));
        }
        _ => {}
    }
    check_assignment(state, caller, me, &p, &def, kind == "active").await?;
    let id = new_id("a");
    let by = caller.actor();
    // Holding or being eligible for a privileged role makes an account privileged: from now on
    // it needs MFA before a full sign-in, and only the top tier manages it (rules 1 and 5).
    // Members of a group are marked with it; whoever joins later is marked on joining.
    let privileged_role = def.tier().is_privileged();
    let mut marks = Vec::new();
    if privileged_role {
        if p.kind == "group" {
            for m in state.store.group_members(&p.id).await? {
                if !m.privileged {
                    marks.push(Change::MarkPrivileged { principal_id: m.id });
                }
            }
        } else if !p.privileged {
            marks.push(Change::MarkPrivileged {
                principal_id: p.id.clone(),
            });
        }
    }
    let create = Change::CreateAssignment(NewAssignment {
        id: id.clone(),
        principal_id: p.id.clone(),
        role: def.slug.clone(),
        scope: scope.as_str().to_owned(),
        kind: kind.to_owned(),
        starts_at_us: us(now),
        ends_at_us: ends.map(us),
        created_by: by,
        created_at_us: us(now),
    });
    let change = Change::Many(std::iter::once(create).chain(marks).collect());
    let ev = event(
        caller,
        "assignment.created",
        format!("{}:{}", p.kind, p.name),
    )
    .details(serde_json::json!({
        "assignment_id": id, "role": def.slug, "scope": scope.as_str(), "kind": kind,
        "ends_at": ends.map(|e| rfc3339(us(e))),
        "principal_now_privileged": privileged_role && p.kind != "group",
        "role_tier": def.tier().as_str(),
    }));
    state.store.write(change, vec![ev]).await?;
    state.expiry_wake.notify_one();
    let a = state
        .store
        .assignment(&id)
        .await?
        .ok_or_else(|| ApiError::internal("assignment vanished"))?;
    Ok(assignment_view(&a))
}

pub async fn list_assignments(
    state: &AppState,
    caller: &Caller,
    principal: Option<&str>,
    role_filter: Option<&str>,
) -> Result<Vec<AssignmentView>, ApiError> {
    let me = caller.require_session()?;
    let principal_id = match principal {
        Some(r) => Some(principal_ref(state, r).await?.id),
        None => None,
    };
    let mine_only = principal_id.as_deref() == Some(me.principal.id.as_str());
    if !mine_only {
        caller.require(perm::ASSIGNMENTS_READ)?;
    }
    let list = state
        .store
        .assignments(&AssignmentFilter {
            principal_id,
            role: role_filter.map(str::to_owned),
            include_ended: false,
        })
        .await?;
    Ok(list.iter().map(assignment_view).collect())
}

pub async fn delete_assignment(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(), ApiError> {
    let not_found = || ApiError::not_found("no such live assignment");
    if id.len() > 80 {
        return Err(not_found());
    }
    let a = state.store.assignment(id).await?.ok_or_else(not_found)?;
    if a.ended_at_us.is_some() {
        return Err(not_found());
    }
    let scope = Scope::parse(&a.scope).map_err(ApiError::internal)?;
    caller.require_at(perm::ASSIGNMENTS_DELETE, &scope)?;
    let now = OffsetDateTime::now_utc();
    let ev = event(caller, "assignment.removed", format!("{}:{}", a.principal_kind, a.principal_name))
        .details(serde_json::json!({ "assignment_id": a.id, "role": a.role, "scope": a.scope, "kind": a.kind }));
    let change = Change::EndAssignment {
        id: a.id.clone(),
        reason: "removed".into(),
        by: caller.actor(),
        at_us: us(now),
    };
    // A Global Administrator assignment: a break-glass account's not below the two-account
    // minimum; anyone else's not if it is the last way to Global Administrator at `/`.
    if a.role == portcullis_core::alerts::GLOBAL_ADMINISTRATOR {
        let emergency = a.principal_kind == "user"
            && state
                .store
                .principal_by_id(&a.principal_id)
                .await?
                .is_some_and(|p| p.emergency);
        let guard = if emergency {
            Guard::BreakGlassMinimum
        } else {
            Guard::GlobalAdministrator
        };
        return crate::services::privilege::write_guarded(state, change, ev, guard, |_| {
            not_found()
        })
        .await;
    }
    state
        .store
        .write(change, vec![ev])
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => not_found(),
            other => other.into(),
        })?;
    Ok(())
}

/// Turns a live active assignment into an eligible one (same principal, role and scope), in one
/// transaction. It only lowers privilege, so the holder may do it for themselves (the way the
/// first administrator's standing Global Administrator becomes eligible); anyone else needs
/// `assignments.create` and `assignments.delete` at its scope. Break-glass accounts keep their
/// standing role.
pub async fn make_eligible(
    state: &AppState,
    caller: &Caller,
    id: &str,
    req: MakeEligibleRequest,
) -> Result<AssignmentView, ApiError> {
    let me = caller.require_full()?;
    let not_found = || ApiError::not_found("no such live active assignment");
    if id.len() > 80 {
        return Err(not_found());
    }
    let a = state.store.assignment(id).await?.ok_or_else(not_found)?;
    let now = OffsetDateTime::now_utc();
    if a.ended_at_us.is_some() || a.kind != "active" || a.ends_at_us.is_some_and(|e| e <= us(now)) {
        return Err(not_found());
    }
    let scope = Scope::parse(&a.scope).map_err(ApiError::internal)?;
    if a.principal_id != me.principal.id {
        caller.require_at(perm::ASSIGNMENTS_CREATE, &scope)?;
        caller.require_at(perm::ASSIGNMENTS_DELETE, &scope)?;
    }
    let p = state
        .store
        .principal_by_id(&a.principal_id)
        .await?
        .ok_or_else(not_found)?;
    if p.emergency {
        return Err(coded(
            ErrorCode::Conflict,
            "a break-glass account keeps its standing Global Administrator role",
        ));
    }
    let def = role(state, &a.role).await?;
    let s = settings(state, &def).await?;
    let ends = req
        .duration_seconds
        .map(|d| end_after(now, d))
        .transpose()?;
    if let Some(max) = s.max_eligible_seconds
        && ends.is_none_or(|e| e - now > Duration::seconds(max))
    {
        return Err(ApiError::bad_request(format!(
            "eligible assignments of {} may last at most {}",
            def.slug,
            portcullis_core::roles::format_duration(Duration::seconds(max))
        )));
    }
    let new_id = new_id("a");
    let change = Change::Many(vec![
        Change::CreateAssignment(NewAssignment {
            id: new_id.clone(),
            principal_id: p.id.clone(),
            role: a.role.clone(),
            scope: a.scope.clone(),
            kind: "eligible".into(),
            starts_at_us: us(now),
            ends_at_us: ends.map(us),
            created_by: caller.actor(),
            created_at_us: us(now),
        }),
        Change::EndAssignment {
            id: a.id.clone(),
            reason: "made_eligible".into(),
            by: caller.actor(),
            at_us: us(now),
        },
    ]);
    let ev = event(
        caller,
        "assignment.made_eligible",
        format!("{}:{}", p.kind, p.name),
    )
    .details(serde_json::json!({
        "ended_assignment_id": a.id, "assignment_id": new_id, "role": a.role, "scope": a.scope,
        "ends_at": ends.map(|e| rfc3339(us(e))),
    }));
    state
        .store
        .write(change, vec![ev])
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => not_found(),
            other => other.into(),
        })?;
    state.expiry_wake.notify_one();
    let made = state
        .store
        .assignment(&new_id)
        .await?
        .ok_or_else(|| ApiError::internal("assignment vanished"))?;
    Ok(assignment_view(&made))
}

/// Changes that close `member`'s open requests resting on `group`'s assignments (for when
/// the member leaves the group), and their ids.
pub async fn close_requests_via_group(
    state: &AppState,
    group: &Principal,
    member: &Principal,
    caller: &Caller,
    now: OffsetDateTime,
) -> Result<(Vec<Change>, Vec<String>), ApiError> {
    if !group.role_assignable {
        return Ok((Vec::new(), Vec::new()));
    }
    let group_assignments: Vec<String> = state
        .store
        .assignments(&AssignmentFilter {
            principal_id: Some(group.id.clone()),
            ..Default::default()
        })
        .await?
        .into_iter()
        .map(|a| a.id)
        .collect();
    let mut changes = Vec::new();
    let mut ids = Vec::new();
    for r in state
        .store
        .requests(&RequestFilter {
            principal_id: Some(member.id.clone()),
            ..Default::default()
        })
        .await?
    {
        if !group_assignments.contains(&r.eligibility_id) {
            continue;
        }
        let to = match r.state.as_str() {
            "pending_approval" => "cancelled",
            "active" => "revoked",
            _ => continue,
        };
        changes.push(Change::CloseRequest {
            id: r.id.clone(),
            from: r.state.clone(),
            to: to.into(),
            by: caller.actor(),
            reason: Some("left_role_assignable_group".into()),
            at_us: us(now),
        });
        ids.push(r.id);
    }
    Ok((changes, ids))
}

async fn request_view(
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
    Ok(ActivationRequestView {
        id: r.id.clone(),
        requester: r.principal_name.clone(),
        role: r.role.clone(),
        scope: r.scope.clone(),
        state: r.state.clone(),
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
    })
}

/// Core's activation rules name the code; the server answers with it.
fn activation_error(e: ActivationError) -> ApiError {
    coded(e.code(), e.to_string())
}

/// Core's approval rules name the code; the server answers with it.
fn approval_error(e: ApprovalError) -> ApiError {
    coded(e.code(), e.to_string())
}

/// Outbox messages for `recipients` (`user:NAME`, `group:NAME`, an email address).
fn notifications(
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

/// The eligible assignment that lets `me` activate `role` at `scope` (direct or through a
/// role-assignable group; the one reaching furthest in time wins).
/// The eligible assignment that lets `principal` activate `role` at `scope`: of those that
/// apply (read with the caller), the one that lasts longest.
fn eligibility<'a>(
    applying: &'a [Assignment],
    role: &str,
    scope: &Scope,
) -> Option<&'a Assignment> {
    let mut best: Option<&Assignment> = None;
    for a in applying {
        if a.kind != "eligible" || a.role != role {
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
    let (def, s) = role_and_settings(state, &req.role).await?;
    // A configuration gap, said before anything about the session or the request.
    if s.require_approval && s.approvers.is_empty() {
        return Err(coded(
            ErrorCode::Conflict,
            format!(
                "{} requires approval but names no approver; a Privileged Role Administrator must set approvers (portcullis roles settings set {} --approvers NAME,…)",
                def.slug, def.slug
            ),
        ));
    }
    let now = OffsetDateTime::now_utc();
    let duration = Duration::seconds(req.duration_seconds);
    let facts = SessionFacts {
        strength: me.strength,
        strong_auth_at: me.session.strong_auth_at_us.map(from_us),
    };
    let input = ActivationInput {
        duration,
        justification: req.justification.as_deref(),
        ticket: req.ticket.as_deref(),
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
    let id = new_id("r");
    let active = initial == RequestState::Active;
    let ends = active.then(|| activation::grant_end(now, duration, elig.ends_at_us.map(from_us)));
    let payload = serde_json::json!({
        "request_id": id, "requester": me.principal.name, "role": def.slug, "scope": scope.as_str(),
        "duration_seconds": req.duration_seconds, "justification": req.justification, "ticket": req.ticket,
    });
    let new_request = NewRequest {
        id: id.clone(),
        principal_id: me.principal.id.clone(),
        role: def.slug.clone(),
        scope: scope.as_str().to_owned(),
        eligibility_id: elig.id.clone(),
        state: initial.as_str().to_owned(),
        duration_seconds: req.duration_seconds,
        justification: req.justification.clone(),
        ticket: req.ticket.clone(),
        approvals_required: i64::from(s.approvals_required),
        created_at_us: us(now),
        timeout_at_us: (!active).then(|| us(now + APPROVAL_TIMEOUT)),
        activated_at_us: active.then(|| us(now)),
        ends_at_us: ends.map(us),
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
    } else {
        changes.extend(notifications(
            &s.approvers,
            "request.approval_needed",
            &payload,
            now,
        ));
        changes.extend(notifications(&s.notify, "request.created", &payload, now));
    }
    state
        .store
        .write(Change::Many(changes), events)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => coded(
                ErrorCode::NotEligible,
                "your eligible assignment ended meanwhile",
            ),
            other => other.into(),
        })?;
    state.expiry_wake.notify_one();
    // What was just written, without reading it back: a new request has no decisions.
    let NewRequest {
        id,
        role,
        scope,
        state: request_state,
        duration_seconds,
        justification,
        ticket,
        approvals_required,
        created_at_us,
        timeout_at_us,
        activated_at_us,
        ends_at_us,
        ..
    } = new_request;
    Ok(ActivationRequestView {
        id,
        requester: me.principal.name.clone(),
        role,
        scope,
        state: request_state,
        duration_seconds,
        justification,
        ticket,
        approvals_required,
        approvals: Vec::new(),
        created_at: rfc3339(created_at_us),
        times_out_at: timeout_at_us.map(rfc3339),
        activated_at: activated_at_us.map(rfc3339),
        ends_at: ends_at_us.map(rfc3339),
        closed_at: None,
        closed_by: None,
        close_reason: None,
    })
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
            let def = match role(state, &r.role).await {
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
        let def = role(state, &r.role).await?;
        let s = settings(state, &def).await?;
        if !activation::is_listed_approver(&me.principal.name, &groups, &s.approvers) {
            return Err(ApiError::not_found("no such request"));
        }
    }
    request_view(state, &r).await
}

async fn find_request(state: &AppState, id: &str) -> Result<ActivationRequest, ApiError> {
    if id.len() > 80 {
        return Err(ApiError::not_found("no such request"));
    }
    state
        .store
        .request(id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such request"))
}

fn check_reason(reason: &Option<String>, required: bool) -> Result<(), ApiError> {
    match reason.as_deref().map(str::trim) {
        Some(r) if r.chars().count() > 500 || portcullis_core::text::has_invisible(r) => {
            Err(ApiError::bad_request(
                "reason must be at most 500 characters without control, bidirectional or invisible characters",
            ))
        }
        Some("") | None if required => Err(ApiError::bad_request("a reason is required")),
        _ => Ok(()),
    }
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
        if r.state != RequestState::PendingApproval.as_str() {
            return Err(coded(
                ErrorCode::AlreadyDecided,
                format!("this request is {}, not pending approval", r.state),
            ));
        }
        let def = role(state, &r.role).await?;
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
            person: me.principal.kind == "user" && !me.principal.emergency,
            strength: me.strength,
            listed,
        };
        activation::check_approval(&r.principal_id, &approver, &approved_by)
            .map_err(approval_error)?;
        let now = OffsetDateTime::now_utc();
        let approvals_before = approved_by.len() as i64;
        let decision = if approve {
            RequestEvent::Approve {
                approvals_now: u32::try_from(approvals_before + 1).unwrap_or(u32::MAX),
                required: u32::try_from(r.approvals_required.max(1)).unwrap_or(u32::MAX),
            }
        } else {
            RequestEvent::Deny
        };
        // Core's state machine says where this decision leads.
        let completes = activation::transition(RequestState::PendingApproval, &decision)
            .map_err(|e| coded(ErrorCode::AlreadyDecided, e.to_string()))?
            == RequestState::Active;
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
                        from: "pending_approval".into(),
                        to: "cancelled".into(),
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
        let ends = completes.then(|| {
            activation::grant_end(
                now,
                Duration::seconds(r.duration_seconds),
                elig.as_ref().and_then(|a| a.ends_at_us).map(from_us),
            )
        });
        let target = format!("user:{}", r.principal_name);
        let mut events = vec![event(caller, if approve { "request.approved" } else { "request.denied" }, target.clone())
            .details(serde_json::json!({ "request_id": r.id, "role": r.role, "scope": r.scope, "reason": d.reason,
                "approvals": approvals_before + i64::from(approve), "approvals_required": r.approvals_required }))];
        let payload = serde_json::json!({ "request_id": r.id, "role": r.role, "scope": r.scope, "decided_by": me.principal.name,
            "approved": approve, "ends_at": ends.map(|e| rfc3339(us(e))) });
        let mut changes = vec![Change::DecideRequest {
            request_id: r.id.clone(),
            approver_id: me.principal.id.clone(),
            approve,
            reason: d.reason.clone(),
            approvals_before,
            activate: ends.map(|e| (us(now), us(e))),
            at_us: us(now),
        }];
        if completes {
            events.push(event(caller, "request.activated", target.clone()).details(serde_json::json!({
                "request_id": r.id, "role": r.role, "scope": r.scope, "ends_at": ends.map(|e| rfc3339(us(e))), "approval": "complete",
            })));
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
    let from = RequestState::parse(&r.state)
        .ok_or_else(|| ApiError::internal(format!("request {} has state {:?}", r.id, r.state)))?;
    let to = activation::transition(from, &action.event())
        .map_err(|e| coded(ErrorCode::AlreadyDecided, e.to_string()))?;
    let (from, to) = (from.as_str(), to.as_str());
    let now = OffsetDateTime::now_utc();
    let ev = event(caller, &format!("request.{to}"), format!("user:{}", r.principal_name))
        .details(serde_json::json!({ "request_id": r.id, "role": r.role, "scope": r.scope, "reason": d.reason }));
    let mut changes = vec![Change::CloseRequest {
        id: r.id.clone(),
        from: from.into(),
        to: to.into(),
        by: caller.actor(),
        reason: d.reason.clone(),
        at_us: us(now),
    }];
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
        .write(Change::Many(changes), vec![ev])
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => coded(
                ErrorCode::AlreadyDecided,
                "the request changed meanwhile; look at it again",
            ),
            other => other.into(),
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
    let def = role(state, role_slug).await?;
    let active = state
        .store
        .requests(&RequestFilter {
            principal_id: Some(me.principal.id.clone()),
            state: Some("active".into()),
            limit: Some(500),
        })
        .await?;
    let mut out = Vec::new();
    for r in active.iter().filter(|r| r.role == def.slug) {
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
            "you have no active activation of {}",
            def.slug
        )));
    }
    Ok(out)
}
