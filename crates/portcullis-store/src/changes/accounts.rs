//! Principals and groups: creation (a taken name conflicts), enabling (disabling revokes the
//! sessions in the same change), passwords, sign-in records, group membership.

use super::conflicts::conflict;
use super::sql::{Conn, args};
use crate::Result;

/// A new principal row.
#[derive(Debug, Clone)]
pub struct NewPrincipal {
    pub id: String,
    pub name: String,
    /// `user`, `group` or `service_account`.
    pub kind: portcullis_core::principal::PrincipalKind,
    pub display_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Set for guests: their home organisation.
    pub guest_organisation: Option<String>,
    pub role_assignable: bool,
    pub emergency: bool,
    pub privileged: bool,
    pub first_admin: bool,
    pub created_at_us: i64,
}

pub(crate) async fn create_principal(c: &mut Conn<'_>, p: &NewPrincipal) -> Result<()> {
    let n = c.execute("INSERT INTO principals (id, name, kind, display_name, email, phone, guest_organisation, role_assignable, emergency, privileged, first_admin, enabled, created_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, TRUE, $12) ON CONFLICT (name) DO NOTHING", args![&p.id, &p.name, &p.kind, &p.display_name, &p.email, &p.phone, &p.guest_organisation, p.role_assignable, p.emergency, p.privileged, p.first_admin, p.created_at_us]).await?;
    if n == 0 {
        return Err(conflict("name already taken"));
    }

    Ok(())
}

pub(crate) async fn set_principal_enabled(
    c: &mut Conn<'_>,
    id: &str,
    enabled: bool,
    at_us: i64,
) -> Result<()> {
    let changed = c
        .execute(
            "UPDATE principals SET enabled = $1 WHERE id = $2 AND enabled <> $1",
            args![enabled, id],
        )
        .await?;
    if !enabled {
        c.execute("UPDATE sessions SET revoked_at_us = $1 WHERE principal_id = $2 AND revoked_at_us IS NULL", args![at_us, id]).await?;
        // What the principal holds in targets goes with it (grants stay in the store, and
        // come back in the targets if the principal is enabled again while they live).
        super::targets::revoke_where(
            c,
            super::targets::Scope::Principal(id),
            "principal.disabled",
            at_us,
        )
        .await?;
    } else if changed > 0 {
        super::targets::grant_principal(c, id, at_us).await?;
    }

    Ok(())
}

pub(crate) async fn record_sign_in(
    c: &mut Conn<'_>,
    principal_id: &str,
    at_us: i64,
    address: Option<&str>,
) -> Result<()> {
    c.execute(
        "UPDATE principals SET last_sign_in_us = $1 WHERE id = $2",
        args![at_us, principal_id],
    )
    .await?;
    if let Some(a) = address {
        c.execute("INSERT INTO signin_addresses (principal_id, address, last_success_us) VALUES ($1, $2, $3) ON CONFLICT (principal_id, address) DO UPDATE SET last_success_us = excluded.last_success_us", args![principal_id, a, at_us]).await?;
    }

    Ok(())
}

pub(crate) async fn add_group_member(
    c: &mut Conn<'_>,
    group_id: &str,
    member_id: &str,
    at_us: i64,
) -> Result<()> {
    let n = c.execute("INSERT INTO group_members (group_id, member_id, added_at_us) VALUES ($1, $2, $3) ON CONFLICT (group_id, member_id) DO NOTHING", args![group_id, member_id, at_us]).await?;
    if n == 0 {
        return Err(conflict("already a member"));
    }

    Ok(())
}

pub(crate) async fn remove_group_member(
    c: &mut Conn<'_>,
    group_id: &str,
    member_id: &str,
) -> Result<()> {
    let n = c
        .execute(
            "DELETE FROM group_members WHERE group_id = $1 AND member_id = $2",
            args![group_id, member_id],
        )
        .await?;
    if n == 0 {
        return Err(conflict("not a member"));
    }

    Ok(())
}

pub(crate) async fn set_password(
    c: &mut Conn<'_>,
    principal_id: &str,
    phc: &str,
    at_us: i64,
) -> Result<()> {
    c.execute("INSERT INTO passwords (principal_id, phc, updated_at_us) VALUES ($1, $2, $3) ON CONFLICT (principal_id) DO UPDATE SET phc = excluded.phc, updated_at_us = excluded.updated_at_us", args![principal_id, phc, at_us]).await?;

    Ok(())
}

pub(crate) async fn mark_privileged(c: &mut Conn<'_>, principal_id: &str) -> Result<()> {
    c.execute(
        "UPDATE principals SET privileged = TRUE WHERE id = $1",
        args![principal_id],
    )
    .await?;

    Ok(())
}
