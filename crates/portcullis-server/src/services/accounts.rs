//! Account administration: users (members and guests), groups and service-account records.
//!
//! Every change is one `Store::write` with its audit event. Until role assignments exist,
//! administration needs the first administrator signed in with a second factor; membership of
//! role-assignable groups is changed by that administrator only (the roles issue narrows this
//! to Privileged Role / Global Administrators). Passwords follow the NIST policy in core.

use portcullis_core::api::{CreateGroupRequest, CreateUserRequest, GroupView, UserView};
use portcullis_core::error::ErrorCode;
use portcullis_core::principal::{self, PrincipalKind, PrincipalName};
use portcullis_core::roles::perm;
use portcullis_store::accounts::Principal;
use portcullis_store::{Change, NewPrincipal, StoreError};
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::services::caller::{Caller, event};
use crate::services::privilege::Guard;
use crate::state::AppState;
use crate::time_us::{rfc3339, us};

pub use crate::services::support::{conflict_to_exists, invalid, new_id};

/// Checks a password against the policy for this account.
pub fn check_password(
    pw: &str,
    name: &str,
    email: Option<&str>,
    privileged: bool,
) -> Result<(), ApiError> {
    portcullis_core::password::check(pw, name, email, privileged)
        .map_err(|e| ApiError::new(ErrorCode::PasswordPolicy, e.to_string()))
}

pub async fn user_view(state: &AppState, p: &Principal) -> Result<UserView, ApiError> {
    let factors = state.store.factors(&p.id).await?;
    let groups = state.store.groups_of(&p.id).await?;
    let mut mfa: Vec<String> = factors
        .iter()
        .filter(|f| f.confirmed)
        .map(|f| f.kind.as_str().to_owned())
        .collect();
    mfa.dedup();
    Ok(UserView {
        id: p.id.clone(),
        name: p.name.clone(),
        display_name: p.display_name.clone(),
        email: p.email.clone(),
        phone: p.phone.clone(),
        kind: if p.guest_organisation.is_some() {
            "guest"
        } else {
            "member"
        }
        .to_owned(),
        guest_organisation: p.guest_organisation.clone(),
        privileged: p.privileged,
        emergency: p.emergency,
        first_admin: p.first_admin,
        enabled: p.enabled,
        created_at: rfc3339(p.created_at_us),
        last_sign_in: p.last_sign_in_us.map(rfc3339),
        mfa,
        groups: groups.into_iter().map(|g| g.name).collect(),
        manager: state.store.manager_of(&p.id).await?.map(|m| m.name),
    })
}

/// Validated fields of a new user.
pub struct ValidUser {
    pub name: PrincipalName,
    pub display_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub guest_organisation: Option<String>,
}

pub fn validate_user(
    name: &str,
    display_name: &str,
    email: Option<&str>,
    phone: Option<&str>,
    guest_organisation: Option<&str>,
) -> Result<ValidUser, ApiError> {
    Ok(ValidUser {
        name: PrincipalName::parse("name", name).map_err(invalid)?,
        display_name: principal::parse_display_name(display_name).map_err(invalid)?,
        email: email
            .map(principal::parse_email)
            .transpose()
            .map_err(invalid)?,
        phone: phone
            .map(principal::parse_phone)
            .transpose()
            .map_err(invalid)?,
        guest_organisation: guest_organisation
            .map(principal::parse_organisation)
            .transpose()
            .map_err(invalid)?,
    })
}

pub async fn create_user(
    state: &AppState,
    caller: &Caller,
    req: CreateUserRequest,
) -> Result<UserView, ApiError> {
    caller.require(perm::USERS_CREATE)?;
    let v = validate_user(
        &req.name,
        &req.display_name,
        req.email.as_deref(),
        req.phone.as_deref(),
        req.guest_organisation.as_deref(),
    )?;
    check_password(
        &req.password,
        v.name.as_str(),
        v.email.as_deref(),
        req.privileged,
    )?;
    let phc = state
        .passwords
        .hash(&SecretString::from(req.password))
        .await?;
    let now = OffsetDateTime::now_utc();
    let id = new_id("u");
    let change = Change::Many(vec![
        Change::CreatePrincipal(NewPrincipal {
            id: id.clone(),
            name: v.name.to_string(),
            kind: PrincipalKind::User,
            display_name: v.display_name,
            email: v.email,
            phone: v.phone,
            guest_organisation: v.guest_organisation.clone(),
            role_assignable: false,
            emergency: false,
            privileged: req.privileged,
            first_admin: false,
            created_at_us: us(now),
        }),
        Change::SetPassword {
            principal_id: id.clone(),
            phc,
            at_us: us(now),
        },
    ]);
    let ev = event(caller, "user.created", format!("user:{}", v.name)).details(serde_json::json!({
        "kind": if v.guest_organisation.is_some() { "guest" } else { "member" },
        "guest_organisation": v.guest_organisation,
        "privileged": req.privileged,
    }));
    state.store.write(change, vec![ev]).await.map_err(|e| {
        conflict_to_exists(e, "a user, group or service account with that name exists")
    })?;
    let p = get_principal(state, v.name.as_str(), PrincipalKind::User).await?;
    user_view(state, &p).await
}

/// A principal of the given kind by name, or `not_found`.
pub async fn get_principal(
    state: &AppState,
    name: &str,
    kind: PrincipalKind,
) -> Result<Principal, ApiError> {
    let name = PrincipalName::parse("name", name).map_err(invalid)?;
    match state.store.principal_by_name(name.as_str()).await? {
        Some(p) if p.kind == kind => Ok(p),
        _ => Err(ApiError::not_found(format!(
            "no {} named {name}",
            kind.as_str().replace('_', " ")
        ))),
    }
}

pub async fn set_user_enabled(
    state: &AppState,
    caller: &Caller,
    name: &str,
    enabled: bool,
) -> Result<UserView, ApiError> {
    let admin = caller.require(perm::USERS_UPDATE)?;
    let p = get_principal(state, name, PrincipalKind::User).await?;
    if !enabled && p.id == admin.principal.id {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "you cannot disable your own account",
        ));
    }
    // Privileged people and break-glass accounts are the top tier's to disable (rule 5).
    crate::services::privilege::require_may_manage(state, caller, &p, "disable or re-enable them")
        .await?;
    let now = OffsetDateTime::now_utc();
    let action = if enabled {
        "user.enabled"
    } else {
        "user.disabled"
    };
    let change = Change::SetPrincipalEnabled {
        id: p.id.clone(),
        enabled,
        at_us: us(now),
    };
    let ev = event(caller, action, format!("user:{}", p.name));
    if enabled {
        state.store.write(change, vec![ev]).await?;
    } else {
        let guard = if p.emergency {
            Guard::BreakGlassMinimum
        } else {
            Guard::GlobalAdministrator
        };
        crate::services::privilege::write_guarded(state, change, ev, guard, |m| {
            StoreError::Conflict(m).into()
        })
        .await?;
    }
    let p = get_principal(state, name, PrincipalKind::User).await?;
    user_view(state, &p).await
}

pub async fn list_users(state: &AppState, caller: &Caller) -> Result<Vec<UserView>, ApiError> {
    caller.require(perm::USERS_READ)?;
    let mut out = Vec::new();
    for p in state.store.principals(PrincipalKind::User.as_str()).await? {
        out.push(user_view(state, &p).await?);
    }
    Ok(out)
}

async fn group_view(state: &AppState, g: &Principal) -> Result<GroupView, ApiError> {
    let members = state.store.group_members(&g.id).await?;
    Ok(GroupView {
        id: g.id.clone(),
        name: g.name.clone(),
        display_name: g.display_name.clone(),
        role_assignable: g.role_assignable,
        members: members.into_iter().map(|m| m.name).collect(),
    })
}

pub async fn create_group(
    state: &AppState,
    caller: &Caller,
    req: CreateGroupRequest,
) -> Result<GroupView, ApiError> {
    caller.require(perm::GROUPS_CREATE)?;
    if req.role_assignable {
        caller.require(perm::GROUPS_ROLE_ASSIGNABLE_UPDATE)?;
    }
    let name = PrincipalName::parse("name", &req.name).map_err(invalid)?;
    let display_name = match req.display_name.as_deref() {
        Some(d) => principal::parse_display_name(d).map_err(invalid)?,
        None => name.to_string(),
    };
    let now = OffsetDateTime::now_utc();
    let change = Change::CreatePrincipal(NewPrincipal {
        id: new_id("g"),
        name: name.to_string(),
        kind: PrincipalKind::Group,
        display_name,
        email: None,
        phone: None,
        guest_organisation: None,
        role_assignable: req.role_assignable,
        emergency: false,
        privileged: false,
        first_admin: false,
        created_at_us: us(now),
    });
    let ev = event(caller, "group.created", format!("group:{name}"))
        .details(serde_json::json!({ "role_assignable": req.role_assignable }));
    state.store.write(change, vec![ev]).await.map_err(|e| {
        conflict_to_exists(e, "a user, group or service account with that name exists")
    })?;
    let g = get_principal(state, name.as_str(), PrincipalKind::Group).await?;
    group_view(state, &g).await
}

pub async fn list_groups(state: &AppState, caller: &Caller) -> Result<Vec<GroupView>, ApiError> {
    caller.require(perm::GROUPS_READ)?;
    let mut out = Vec::new();
    for g in state
        .store
        .principals(PrincipalKind::Group.as_str())
        .await?
    {
        out.push(group_view(state, &g).await?);
    }
    Ok(out)
}

pub async fn change_membership(
    state: &AppState,
    caller: &Caller,
    group: &str,
    member: &str,
    add: bool,
) -> Result<GroupView, ApiError> {
    let g = get_principal(state, group, PrincipalKind::Group).await?;
    // Membership of a role-assignable group confers roles: only holders of an active
    // Privileged Role Administrator or Global Administrator role change it.
    let me = caller.require(if g.role_assignable {
        perm::GROUPS_ROLE_ASSIGNABLE_UPDATE
    } else {
        perm::GROUPS_MEMBERS_UPDATE
    })?;
    let member_name = PrincipalName::parse("member", member).map_err(invalid)?;
    let m = match state.store.principal_by_name(member_name.as_str()).await? {
        Some(m) if m.kind != PrincipalKind::Group => m,
        Some(_) => return Err(ApiError::bad_request("groups cannot be nested")),
        None => {
            return Err(ApiError::not_found(format!(
                "no user or service account named {member_name}"
            )));
        }
    };
    // Joining a role-assignable group is being assigned its roles: nobody adds themselves, or a
    // service account whose credentials they manage (privilege model rule 2).
    if add
        && g.role_assignable
        && (m.id == me.principal.id
            || state
                .store
                .manages_credentials_of(&m.id, &caller.actor())
                .await?)
    {
        return Err(ApiError::new(
            ErrorCode::SelfAssignment,
            "nobody adds themselves (or a service account whose credentials they manage) to a role-assignable group; ask another administrator",
        ));
    }
    let now = OffsetDateTime::now_utc();
    let (change, action, closed) = if add {
        // Whoever joins a group holding a privileged role becomes privileged (rule 5).
        let mut all = vec![Change::AddGroupMember {
            group_id: g.id.clone(),
            member_id: m.id.clone(),
            at_us: us(now),
        }];
        if g.role_assignable
            && !m.privileged
            && crate::services::privilege::is_privileged(state, &g, now).await?
        {
            all.push(Change::MarkPrivileged {
                principal_id: m.id.clone(),
            });
        }
        (Change::Many(all), "group.member_added", Vec::new())
    } else {
        // Leaving a role-assignable group ends what rested on it: pending requests are
        // cancelled and active grants revoked, in the same transaction.
        let (closes, closed) =
            crate::services::roles::close_requests_via_group(state, &g, &m, caller, now).await?;
        let mut all = vec![Change::RemoveGroupMember {
            group_id: g.id.clone(),
            member_id: m.id.clone(),
        }];
        all.extend(closes);
        (Change::Many(all), "group.member_removed", closed)
    };
    let ev = event(caller, action, format!("group:{}", g.name))
        .details(serde_json::json!({ "member": format!("{}:{}", m.kind, m.name), "role_assignable": g.role_assignable, "requests_closed": closed }));
    let conflict = |_| {
        if add {
            ApiError::new(ErrorCode::AlreadyExists, "already a member")
        } else {
            ApiError::not_found(format!("{member_name} is not a member of {}", g.name))
        }
    };
    // Leaving a role-assignable group may take away the last way to Global Administrator.
    if !add && g.role_assignable {
        crate::services::privilege::write_guarded(
            state,
            change,
            ev,
            Guard::GlobalAdministrator,
            conflict,
        )
        .await?;
    } else {
        state
            .store
            .write(change, vec![ev])
            .await
            .map_err(|e| match e {
                StoreError::Conflict(m) => conflict(m),
                other => other.into(),
            })?;
    }
    group_view(state, &g).await
}
