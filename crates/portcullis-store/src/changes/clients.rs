//! Service-account credentials: client secrets (two live at most), public keys (five live at
//! most), assertion ids (each used once), network restrictions and admin consents.

use super::conflicts::conflict;
use super::sql::{Conn, args};
use crate::Result;

pub(crate) async fn add_client_secret(
    c: &mut Conn<'_>,
    id: &str,
    principal_id: &str,
    secret_hash: &[u8],
    created_by: &str,
    at_us: i64,
) -> Result<()> {
    let live: i64 = c
        .count(
            "SELECT COUNT(*) FROM client_secrets WHERE principal_id = $1 AND revoked_at_us IS NULL",
            args![principal_id],
        )
        .await?;
    if live >= 2 {
        return Err(conflict("two client secrets are live already"));
    }
    c.execute("INSERT INTO client_secrets (id, principal_id, secret_hash, created_by, created_at_us) VALUES ($1, $2, $3, $4, $5)", args![id, principal_id, secret_hash, created_by, at_us]).await?;

    Ok(())
}

pub(crate) async fn revoke_client_secret(
    c: &mut Conn<'_>,
    id: &str,
    principal_id: &str,
    at_us: i64,
) -> Result<()> {
    let n = c.execute("UPDATE client_secrets SET revoked_at_us = $1 WHERE id = $2 AND principal_id = $3 AND revoked_at_us IS NULL", args![at_us, id, principal_id]).await?;
    if n == 0 {
        return Err(conflict("no such live client secret"));
    }

    Ok(())
}

pub(crate) async fn set_client_networks(
    c: &mut Conn<'_>,
    principal_id: &str,
    cidrs: Option<&str>,
    by: &str,
    at_us: i64,
) -> Result<()> {
    match cidrs {
        Some(cidrs) => {
            c.execute("INSERT INTO client_networks (principal_id, cidrs, updated_by, updated_at_us) VALUES ($1, $2, $3, $4) ON CONFLICT (principal_id) DO UPDATE SET cidrs = excluded.cidrs, updated_by = excluded.updated_by, updated_at_us = excluded.updated_at_us", args![principal_id, cidrs, by, at_us]).await?;
        }
        None => {
            c.execute(
                "DELETE FROM client_networks WHERE principal_id = $1",
                args![principal_id],
            )
            .await?;
        }
    }

    Ok(())
}

pub(crate) async fn add_client_key(
    c: &mut Conn<'_>,
    principal_id: &str,
    key_id: &str,
    algorithm: &str,
    public_key: &[u8],
    created_by: &str,
    at_us: i64,
) -> Result<()> {
    let live: i64 = c
        .count(
            "SELECT COUNT(*) FROM client_keys WHERE principal_id = $1 AND revoked_at_us IS NULL",
            args![principal_id],
        )
        .await?;
    if live >= 5 {
        return Err(conflict("five public keys are live already"));
    }
    let n = c.execute("INSERT INTO client_keys (principal_id, key_id, algorithm, public_key, created_by, created_at_us) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING", args![principal_id, key_id, algorithm, public_key, created_by, at_us]).await?;
    if n == 0 {
        return Err(conflict("this key id has been used"));
    }

    Ok(())
}

pub(crate) async fn remove_client_key(
    c: &mut Conn<'_>,
    principal_id: &str,
    key_id: &str,
    at_us: i64,
) -> Result<()> {
    let n = c.execute("UPDATE client_keys SET revoked_at_us = $1 WHERE principal_id = $2 AND key_id = $3 AND revoked_at_us IS NULL", args![at_us, principal_id, key_id]).await?;
    if n == 0 {
        return Err(conflict("no such live public key"));
    }

    Ok(())
}

pub(crate) async fn use_client_assertion(
    c: &mut Conn<'_>,
    principal_id: &str,
    jti: &str,
    expires_at_us: i64,
    at_us: i64,
) -> Result<()> {
    // Expired ids can go: an assertion that old fails its exp check.
    c.execute(
        "DELETE FROM client_assertion_jtis WHERE expires_at_us <= $1",
        args![at_us],
    )
    .await?;
    let n = c.execute("INSERT INTO client_assertion_jtis (principal_id, jti, expires_at_us) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", args![principal_id, jti, expires_at_us]).await?;
    if n == 0 {
        return Err(conflict("client assertion replayed"));
    }

    Ok(())
}

pub(crate) async fn grant_consent(
    c: &mut Conn<'_>,
    principal_id: &str,
    permissions: &[String],
    granted_by: &str,
    at_us: i64,
) -> Result<()> {
    for p in permissions {
        c.execute("INSERT INTO consents (principal_id, permission, granted_by, granted_at_us) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", args![principal_id, p, granted_by, at_us]).await?;
    }

    Ok(())
}

pub(crate) async fn revoke_consent(
    c: &mut Conn<'_>,
    principal_id: &str,
    permission: &str,
) -> Result<()> {
    let n = c
        .execute(
            "DELETE FROM consents WHERE principal_id = $1 AND permission = $2",
            args![principal_id, permission],
        )
        .await?;
    if n == 0 {
        return Err(conflict("no such consent"));
    }

    Ok(())
}
