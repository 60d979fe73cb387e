//! Refresh tokens (each used once; a family revoked together with the access tokens minted
//! from it) and revoked access-token ids.

use super::conflicts::conflict;
use super::sql::{Conn, args};
use crate::Result;

/// A refresh token as issued (its hash only).
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub id: String,
    pub token_hash: Vec<u8>,
    pub family_id: String,
    pub principal_id: String,
    pub client_id: String,
    pub strength: portcullis_core::session::AuthStrength,
    pub auth_time_us: i64,
    /// The session that approved the family's device code.
    pub session_id: String,
    pub created_at_us: i64,
    pub expires_at_us: i64,
    pub family_expires_at_us: i64,
    /// OAuth scopes the family was granted (empty for the CLI).
    pub scope: String,
    /// The access token issued with it (`jti`, expiry): revoked with the family.
    pub access: Option<(String, i64)>,
    /// `device_code` for a family started by the device grant (conditional access can name
    /// that flow); `None` otherwise.
    pub flow: Option<String>,
    /// The person's address conditional access judges the family's refreshes by, when the
    /// caller of the token endpoint is not the person (an OIDC client: the browser's address
    /// at the authorize step); `None`: the caller is the person's own device (the CLI).
    pub person_ip: Option<String>,
}

pub(crate) async fn issue_refresh_token(c: &mut Conn<'_>, t: &NewRefreshToken) -> Result<()> {
    c.execute("INSERT INTO refresh_tokens (id, token_hash, family_id, principal_id, client_id, strength, auth_time_us, created_at_us, expires_at_us, family_expires_at_us, session_id, scope, access_jti, access_expires_at_us, flow, person_ip) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)", args![&t.id, &t.token_hash, &t.family_id, &t.principal_id, &t.client_id, &t.strength, t.auth_time_us, t.created_at_us, t.expires_at_us, t.family_expires_at_us, &t.session_id, &t.scope, t.access.as_ref().map(|a| a.0.clone()), t.access.as_ref().map(|a| a.1), &t.flow, &t.person_ip]).await?;

    Ok(())
}

pub(crate) async fn use_refresh_token(c: &mut Conn<'_>, id: &str, at_us: i64) -> Result<()> {
    let n = c.execute("UPDATE refresh_tokens SET used_at_us = $1 WHERE id = $2 AND used_at_us IS NULL AND revoked_at_us IS NULL", args![at_us, id]).await?;
    if n == 0 {
        return Err(conflict("the refresh token was used already"));
    }

    Ok(())
}

pub(crate) async fn revoke_refresh_family(
    c: &mut Conn<'_>,
    family_id: &str,
    at_us: i64,
) -> Result<()> {
    c.execute("UPDATE refresh_tokens SET revoked_at_us = $1 WHERE family_id = $2 AND revoked_at_us IS NULL", args![at_us, family_id]).await?;
    // The access tokens minted from the family end with it.
    c.execute("INSERT INTO revoked_tokens (jti, expires_at_us, revoked_at_us) SELECT access_jti, access_expires_at_us, $1 FROM refresh_tokens WHERE family_id = $2 AND access_jti IS NOT NULL AND access_expires_at_us > $1 ON CONFLICT DO NOTHING", args![at_us, family_id]).await?;

    Ok(())
}

pub(crate) async fn revoke_token(
    c: &mut Conn<'_>,
    jti: &str,
    expires_at_us: i64,
    at_us: i64,
) -> Result<()> {
    c.execute("INSERT INTO revoked_tokens (jti, expires_at_us, revoked_at_us) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", args![jti, expires_at_us, at_us]).await?;

    Ok(())
}
