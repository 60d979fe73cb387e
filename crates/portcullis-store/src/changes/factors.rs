//! MFA factors and WebAuthn ceremonies: a TOTP step and a WebAuthn counter only move forward,
//! and unauthenticated ceremonies (and decoys) are capped per client address.

use super::conflicts::{TOO_MANY_PENDING, conflict};
use super::sql::{Conn, args};
use crate::Result;

/// At most `max` pending unauthenticated rows per client address created after `since_us`.
#[derive(Debug, Clone, Copy)]
pub struct PendingCap {
    pub max: i64,
    pub since_us: i64,
}

/// A TOTP factor as enrolled.
#[derive(Debug, Clone)]
pub struct NewTotpFactor {
    pub id: String,
    pub principal_id: String,
    pub name: String,
    pub sealed_secret: Vec<u8>,
    pub confirmed: bool,
    pub last_step: Option<i64>,
    pub at_us: i64,
}

pub(crate) async fn add_totp_factor(c: &mut Conn<'_>, d: &NewTotpFactor) -> Result<()> {
    let NewTotpFactor {
        id,
        principal_id,
        name,
        sealed_secret,
        confirmed,
        last_step,
        at_us,
    } = d;
    let confirmed = *confirmed;
    let last_step = *last_step;
    let at_us = *at_us;

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

/// A WebAuthn credential as registered.
#[derive(Debug, Clone)]
pub struct NewWebauthnFactor {
    pub id: String,
    pub principal_id: String,
    pub name: String,
    pub credential_id: Vec<u8>,
    pub sealed_credential: Vec<u8>,
    pub counter: i64,
    pub at_us: i64,
}

pub(crate) async fn add_webauthn_factor(c: &mut Conn<'_>, d: &NewWebauthnFactor) -> Result<()> {
    let NewWebauthnFactor {
        id,
        principal_id,
        name,
        credential_id,
        sealed_credential,
        counter,
        at_us,
    } = d;
    let counter = *counter;
    let at_us = *at_us;

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

/// A WebAuthn ceremony's server-side state.
#[derive(Debug, Clone)]
pub struct NewCeremony {
    pub id_hash: Vec<u8>,
    pub principal_id: String,
    pub kind: String,
    pub state: String,
    pub factor_name: Option<String>,
    pub pending_signin_hash: Option<Vec<u8>>,
    pub at_us: i64,
    pub client_ip: String,
    pub cap: Option<PendingCap>,
}

pub(crate) async fn create_ceremony(c: &mut Conn<'_>, d: &NewCeremony) -> Result<()> {
    let NewCeremony {
        id_hash,
        principal_id,
        kind,
        state,
        factor_name,
        pending_signin_hash,
        at_us,
        client_ip,
        cap,
    } = d;
    let at_us = *at_us;
    let cap = *cap;

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
