//! Sessions and pending sign-ins: a session's strength only rises; revoked and consumed rows
//! conflict instead of being reused.

use super::conflicts::conflict;
use super::sql::{Conn, args};
use crate::Result;

/// A new session row (the token itself is never stored, only its hash).
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub token_hash: Vec<u8>,
    pub principal_id: String,
    pub strength: portcullis_core::session::AuthStrength,
    pub scope: String,
    pub created_at_us: i64,
    pub strong_auth_at_us: Option<i64>,
    pub client_ip: String,
    pub user_agent: String,
    /// An end earlier than the lifetimes (a conditional-access sign-in frequency).
    pub ends_at_us: Option<i64>,
}

pub(crate) async fn create_session(c: &mut Conn<'_>, s: &NewSession) -> Result<()> {
    c.execute("INSERT INTO sessions (id, token_hash, principal_id, strength, scope, created_at_us, last_seen_us, strong_auth_at_us, client_ip, user_agent, ends_at_us) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9, $10)", args![&s.id, &s.token_hash, &s.principal_id, &s.strength, &s.scope, s.created_at_us, s.strong_auth_at_us, &s.client_ip, &s.user_agent, s.ends_at_us]).await?;

    Ok(())
}

pub(crate) async fn revoke_session(c: &mut Conn<'_>, id: &str, at_us: i64) -> Result<()> {
    let n = c
        .execute(
            "UPDATE sessions SET revoked_at_us = $1 WHERE id = $2 AND revoked_at_us IS NULL",
            args![at_us, id],
        )
        .await?;
    if n == 0 {
        return Err(conflict("no such live session"));
    }

    Ok(())
}

pub(crate) async fn revoke_sessions_of(
    c: &mut Conn<'_>,
    principal_id: &str,
    except: Option<&str>,
    at_us: i64,
) -> Result<()> {
    c.execute("UPDATE sessions SET revoked_at_us = $1 WHERE principal_id = $2 AND revoked_at_us IS NULL AND id <> $3", args![at_us, principal_id, except.unwrap_or("")]).await?;

    Ok(())
}

pub(crate) async fn touch_session(c: &mut Conn<'_>, id: &str, at_us: i64) -> Result<()> {
    c.execute(
        "UPDATE sessions SET last_seen_us = $1 WHERE id = $2 AND last_seen_us < $1",
        args![at_us, id],
    )
    .await?;

    Ok(())
}

pub(crate) async fn stamp_session(
    c: &mut Conn<'_>,
    id: &str,
    strength: portcullis_core::session::AuthStrength,
    at_us: i64,
) -> Result<()> {
    // The strength only rises: a TOTP re-authentication of a passkey
    // session keeps it phishing-resistant.
    let n = c.execute("UPDATE sessions SET strength = CASE WHEN strength = 'phishing_resistant' OR $1 = 'password' OR (strength = 'mfa' AND $1 = 'mfa') THEN strength ELSE $1 END, strong_auth_at_us = $2 WHERE id = $3 AND revoked_at_us IS NULL", args![strength, at_us, id]).await?;
    if n == 0 {
        return Err(conflict("no such live session"));
    }

    Ok(())
}

pub(crate) async fn create_pending_sign_in(
    c: &mut Conn<'_>,
    id_hash: &[u8],
    principal_id: &str,
    at_us: i64,
) -> Result<()> {
    c.execute(
        "INSERT INTO pending_signins (id_hash, principal_id, created_at_us) VALUES ($1, $2, $3)",
        args![id_hash, principal_id, at_us],
    )
    .await?;

    Ok(())
}

pub(crate) async fn consume_pending_sign_in(c: &mut Conn<'_>, id_hash: &[u8]) -> Result<()> {
    let n = c
        .execute(
            "DELETE FROM pending_signins WHERE id_hash = $1",
            args![id_hash],
        )
        .await?;
    if n == 0 {
        return Err(conflict("sign-in already completed or unknown"));
    }

    Ok(())
}
