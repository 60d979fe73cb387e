//! MFA factors and WebAuthn ceremonies: a TOTP step and a WebAuthn counter only move forward,
//! and unauthenticated ceremonies (and decoys) are capped per client address.

use super::sql::{Conn, args};
use super::{TOO_MANY_PENDING, conflict};
use crate::Result;

/// At most `max` pending unauthenticated rows per client address created after `since_us`.
#[derive(Debug, Clone, Copy)]
pub struct PendingCap {
    pub max: i64,
    pub since_us: i64,
}

pub(crate) async fn add_totp_factor(
    c: &mut Conn<'_>,
    id: &str,
    principal_id: &str,
    name: &str,
    sealed_secret: &[u8],
    confirmed: bool,
    last_step: Option<i64>,
    at_us: i64,
) -> Result<()> {
    let n = c.execute("INSERT INTO mfa_factors (id, principal_id, kind, name, sealed_secret, confirmed, last_step, created_at_us) VALUES ($1, $2, 'totp', $3, $4, $5, $6, $7) ON CONFLICT (principal_id, name) DO NOTHING", args![id, principal_id, name, sealed_secret, confirmed, last_step, at_us]).await?;
    if n == 0 {
        return Err(conflict("a factor with that name exists"));
    }

    Ok(())
}

pub(crate) async fn accept_totp_step(
    c: &mut Conn<'_>,
    factor_id: &str,
    step: i64,
    confirm: bool,
    at_us: i64,
) -> Result<()> {
    let n = c.execute("UPDATE mfa_factors SET last_step = $1, last_used_us = $2, confirmed = (confirmed OR $3) WHERE id = $4 AND (last_step IS NULL OR last_step < $1)", args![step, at_us, confirm, factor_id]).await?;
    if n == 0 {
        return Err(conflict("totp step already used"));
    }

    Ok(())
}

pub(crate) async fn add_webauthn_factor(
    c: &mut Conn<'_>,
    id: &str,
    principal_id: &str,
    name: &str,
    credential_id: &[u8],
    sealed_credential: &[u8],
    counter: i64,
    at_us: i64,
) -> Result<()> {
    let n = c.execute("INSERT INTO mfa_factors (id, principal_id, kind, name, sealed_secret, confirmed, last_step, created_at_us, credential_id) VALUES ($1, $2, 'webauthn', $3, $4, TRUE, $5, $6, $7) ON CONFLICT DO NOTHING", args![id, principal_id, name, sealed_credential, counter, at_us, credential_id]).await?;
    if n == 0 {
        return Err(conflict("a factor with that name or credential exists"));
    }

    Ok(())
}

pub(crate) async fn update_webauthn_factor(
    c: &mut Conn<'_>,
    id: &str,
    sealed_credential: &[u8],
    counter: i64,
    at_us: i64,
) -> Result<()> {
    let n = c.execute("UPDATE mfa_factors SET sealed_secret = $1, last_step = $2, last_used_us = $3 WHERE id = $4 AND kind = 'webauthn' AND ($2 = 0 OR last_step IS NULL OR last_step < $2)", args![sealed_credential, counter, at_us, id]).await?;
    if n == 0 {
        return Err(conflict("signature counter did not advance"));
    }

    Ok(())
}

pub(crate) async fn create_ceremony(
    c: &mut Conn<'_>,
    id_hash: &[u8],
    principal_id: &str,
    kind: &str,
    state: &str,
    factor_name: Option<&str>,
    pending_signin_hash: Option<&[u8]>,
    at_us: i64,
    client_ip: &str,
    cap: Option<PendingCap>,
) -> Result<()> {
    if let Some(cap) = cap {
        let n: i64 = c.count("SELECT (SELECT COUNT(*) FROM webauthn_ceremonies WHERE client_ip = $1 AND created_at_us > $2) + (SELECT COUNT(*) FROM webauthn_decoys WHERE client_ip = $1 AND created_at_us > $2)", args![client_ip, cap.since_us]).await?;
        if n >= cap.max {
            return Err(conflict(TOO_MANY_PENDING));
        }
    }
    c.execute("INSERT INTO webauthn_ceremonies (id_hash, principal_id, kind, state, factor_name, pending_signin_hash, created_at_us, client_ip) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", args![id_hash, principal_id, kind, state, factor_name, pending_signin_hash, at_us, client_ip]).await?;

    Ok(())
}

pub(crate) async fn create_decoy(
    c: &mut Conn<'_>,
    id_hash: &[u8],
    name: &str,
    client_ip: &str,
    at_us: i64,
    cap: PendingCap,
) -> Result<()> {
    let n: i64 = c.count("SELECT (SELECT COUNT(*) FROM webauthn_ceremonies WHERE client_ip = $1 AND created_at_us > $2) + (SELECT COUNT(*) FROM webauthn_decoys WHERE client_ip = $1 AND created_at_us > $2)", args![client_ip, cap.since_us]).await?;
    if n >= cap.max {
        return Err(conflict(TOO_MANY_PENDING));
    }
    c.execute("INSERT INTO webauthn_decoys (id_hash, name, client_ip, created_at_us) VALUES ($1, $2, $3, $4)", args![id_hash, name, client_ip, at_us]).await?;

    Ok(())
}

pub(crate) async fn consume_decoy(c: &mut Conn<'_>, id_hash: &[u8]) -> Result<()> {
    let n = c
        .execute(
            "DELETE FROM webauthn_decoys WHERE id_hash = $1",
            args![id_hash],
        )
        .await?;
    if n == 0 {
        return Err(conflict("ceremony already finished or unknown"));
    }

    Ok(())
}

pub(crate) async fn consume_ceremony(c: &mut Conn<'_>, id_hash: &[u8]) -> Result<()> {
    let n = c
        .execute(
            "DELETE FROM webauthn_ceremonies WHERE id_hash = $1",
            args![id_hash],
        )
        .await?;
    if n == 0 {
        return Err(conflict("ceremony already finished or unknown"));
    }

    Ok(())
}

pub(crate) async fn remove_factor(c: &mut Conn<'_>, id: &str, principal_id: &str) -> Result<()> {
    let n = c
        .execute(
            "DELETE FROM mfa_factors WHERE id = $1 AND principal_id = $2",
            args![id, principal_id],
        )
        .await?;
    if n == 0 {
        return Err(conflict("no such factor"));
    }

    Ok(())
}
