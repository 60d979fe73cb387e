//! Grants: what a principal holds now, and the roles behind them (built-in from code, custom
//! from the store). The bottom of the services: the caller is built from these, so this
//! module imports no other service.
//!
//! Nobody holds a role they were not given: grants are read from the store on every request,
//! and a grant past its end is never counted, whether or not the expiry worker has run.

use portcullis_core::api::RoleView;
use portcullis_core::roles::{BuiltinRole, Grant, Permission, Scope};
use portcullis_store::roles::{Assignment, GrantRow};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::state::AppState;
use crate::time_us::{from_us, us};

/// A role as the server sees it: built-in (from code) or custom (from the store).
#[derive(Debug, Clone)]
pub struct RoleDef {
    pub slug: String,
    pub display_name: String,
    pub description: String,
    pub builtin: Option<BuiltinRole>,
    pub permissions: Vec<Permission>,
    /// For just-in-time membership (`group-member` at `/groups/NAME`): the group. Its
    /// permissions are then those of every role the group holds (what membership confers).
    pub group: Option<String>,
}

impl RoleDef {
    /// Its tier, from its permissions (privilege model rule 1).
    pub fn tier(&self) -> portcullis_core::privilege::Tier {
        portcullis_core::privilege::tier_of(
            &self.permissions,
            self.builtin.is_some_and(BuiltinRole::grants_everything),
        )
    }

    pub(crate) fn view(&self) -> RoleView {
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

pub(crate) fn unknown_role(slug: &str) -> ApiError {
    ApiError::not_found(format!("no role named {slug} (portcullis roles list)"))
}

/// A built-in role's definition (no read: built-in names are reserved, so no custom role
/// shadows one).
pub(crate) fn builtin_def(b: BuiltinRole) -> RoleDef {
    RoleDef {
        slug: b.slug().to_owned(),
        display_name: b.display_name().to_owned(),
        description: b.description().to_owned(),
        builtin: Some(b),
        permissions: b.permissions(),
        group: None,
    }
}

/// A custom role's definition; a stored permission this version does not know is dropped.
pub(crate) fn custom_def(r: portcullis_store::roles::CustomRole) -> RoleDef {
    RoleDef {
        permissions: known_permissions(&r.permissions),
        slug: r.slug,
        display_name: r.display_name,
        description: r.description,
        builtin: None,
        group: None,
    }
}

/// A custom role's stored permissions that this version knows (an unknown one grants nothing).
fn known_permissions(stored: &[String]) -> Vec<Permission> {
    stored
        .iter()
        .filter_map(|p| Permission::parse(p).ok())
        .collect()
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

/// A role as assigned or activated at `scope`: [`role`], except for the membership pseudo-role
/// (`group-member`), which only exists at `/groups/NAME` of a role-assignable group and stands
/// for everything the group holds (every permission of every role assigned to it, eligible or
/// active, at any scope), so that its tier is the tier membership confers.
pub async fn role_at(state: &AppState, slug: &str, scope: &Scope) -> Result<RoleDef, ApiError> {
    let group = scope.group();
    if slug != portcullis_core::roles::GROUP_MEMBER {
        if group.is_some() {
            return Err(ApiError::bad_request(format!(
                "{slug} cannot be assigned at {}: a /groups/NAME scope takes only group-member (just-in-time membership)",
                scope.as_str()
            )));
        }
        return role(state, slug).await;
    }
    let Some(name) = group else {
        return Err(ApiError::bad_request(
            "group-member is assigned at /groups/NAME (the group whose membership it activates)",
        ));
    };
    let g = match state.store.principal_by_name(name).await? {
        Some(g) if g.kind == portcullis_core::principal::PrincipalKind::Group => g,
        _ => return Err(ApiError::not_found(format!("no group named {name}"))),
    };
    if !g.role_assignable {
        return Err(ApiError::bad_request(format!(
            "group {name} is not role-assignable; just-in-time membership is for role-assignable groups (an ordinary group confers no role)"
        )));
    }
    let held = state
        .store
        .assignments(&portcullis_store::roles::AssignmentFilter {
            principal_id: Some(g.id.clone()),
            role: None,
            include_ended: false,
        })
        .await?;
    let roles = all_roles(state).await?;
    let mut permissions: Vec<Permission> = Vec::new();
    for a in &held {
        let Some(def) = roles.iter().find(|r| r.slug == a.role).cloned() else {
            continue;
        };
        let all = if def.builtin.is_some_and(BuiltinRole::grants_everything) {
            portcullis_core::roles::CATALOGUE
                .iter()
                .filter_map(|(p, _)| Permission::parse(p).ok())
                .collect()
        } else {
            def.permissions
        };
        for p in all {
            if !permissions.contains(&p) {
                permissions.push(p);
            }
        }
    }
    Ok(RoleDef {
        slug: portcullis_core::roles::GROUP_MEMBER.to_owned(),
        display_name: format!("Member of {name}"),
        description: format!("just-in-time membership of {name}: everything the group holds"),
        builtin: None,
        permissions,
        group: Some(name.to_owned()),
    })
}

/// The grants in effect for a principal at `now`, with the permissions of their roles (a
/// custom role's come in the same read as its grant).
pub async fn grants(
    state: &AppState,
    principal_id: &str,
    now: OffsetDateTime,
) -> Result<Vec<Grant>, ApiError> {
    Ok(grants_and_assignments(state, principal_id, now).await?.0)
}

/// The grants in effect for a principal at `now` and the assignments that apply to them
/// (eligible ones too), in the store's two reads.
pub async fn grants_and_assignments(
    state: &AppState,
    principal_id: &str,
    now: OffsetDateTime,
) -> Result<(Vec<Grant>, Vec<Assignment>), ApiError> {
    let (rows, assignments) = grant_rows(state, principal_id, now).await?;
    let mut out = Vec::with_capacity(rows.len());
    for g in rows {
        let def = match (BuiltinRole::from_slug(&g.role), g.custom_permissions) {
            (Some(b), _) => builtin_def(b),
            // A custom role's permissions come with the grant (no second read).
            (None, Some(permissions)) => RoleDef {
                permissions: known_permissions(&permissions),
                slug: g.role,
                display_name: String::new(),
                description: String::new(),
                builtin: None,
                group: None,
            },
            // A grant naming no role any more grants nothing.
            (None, None) => continue,
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

/// The grant rows and applying assignments of a principal at `now`: read through the grants
/// cache (`crate::state::caches`), then filtered by `now` again, so a grant or assignment that
/// has ended is never used even when the read that found it is a moment old.
pub async fn grant_rows(
    state: &AppState,
    principal_id: &str,
    now: OffsetDateTime,
) -> Result<(Vec<GrantRow>, Vec<Assignment>), ApiError> {
    let now_us = us(now);
    let read = state
        .caches
        .grants
        .get_or_load(&principal_id.to_owned(), async {
            state
                .store
                .grants_and_assignments_of(principal_id, now_us)
                .await
                .map(std::sync::Arc::new)
        })
        .await?;
    let live = |ends: Option<i64>| ends.is_none_or(|e| e > now_us);
    let rows = read
        .0
        .iter()
        .filter(|g| live(g.ends_at_us))
        .cloned()
        .collect();
    let assignments = read
        .1
        .iter()
        .filter(|a| a.starts_at_us <= now_us && live(a.ends_at_us))
        .cloned()
        .collect();
    Ok((rows, assignments))
}
