//! Relying parties, their secrets, authorization codes (each redeemed once, before expiry) and
//! the consents people gave them.

use super::conflicts::conflict;
use super::sql::{Conn, args};
use crate::Result;

/// A registered OpenID Connect client.
#[derive(Debug, Clone)]
pub struct NewOAuthClient {
    pub client_id: String,
    pub name: String,
    /// `confidential` or `public`.
    pub kind: String,
    /// A JSON array of validated redirect URIs.
    pub redirect_uris: String,
    pub created_by: String,
    pub created_at_us: i64,
    /// The algorithm its ID tokens are signed with (`ES256`, `RS256`); `None` is EdDSA.
    pub id_token_alg: Option<String>,
}

/// An authorization code as issued (its hash only).
#[derive(Debug, Clone)]
pub struct NewAuthorizationCode {
    pub id: String,
    pub code_hash: Vec<u8>,
    pub client_id: String,
    pub principal_id: String,
    /// The session the person signed in with; revoking it ends the tokens that follow.
    pub session_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub strength: portcullis_core::session::AuthStrength,
    pub auth_time_us: i64,
    pub created_at_us: i64,
    pub expires_at_us: i64,
    /// The person's (browser's) address at the authorize step: conditional access judges the
    /// code exchange by it, not by the relying party's address.
    pub person_ip: String,
}

pub(crate) async fn create_o_auth_client(c: &mut Conn<'_>, k: &NewOAuthClient) -> Result<()> {
    let n = c.execute("INSERT INTO oauth_clients (client_id, name, kind, redirect_uris, created_by, created_at_us, id_token_alg) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING", args![&k.client_id, &k.name, &k.kind, &k.redirect_uris, &k.created_by, k.created_at_us, &k.id_token_alg]).await?;
    if n == 0 {
        return Err(conflict("a client with that name exists"));
    }

    Ok(())
}

pub(crate) async fn delete_o_auth_client(
    c: &mut Conn<'_>,
    client_id: &str,
    at_us: i64,
) -> Result<()> {
    c.execute("UPDATE refresh_tokens SET revoked_at_us = $1 WHERE client_id = $2 AND revoked_at_us IS NULL", args![at_us, client_id]).await?;
    c.execute(
        "DELETE FROM oauth_client_secrets WHERE client_id = $1",
        args![client_id],
    )
    .await?;
    c.execute(
        "DELETE FROM oauth_consents WHERE client_id = $1",
        args![client_id],
    )
    .await?;
    let n = c
        .execute(
            "DELETE FROM oauth_clients WHERE client_id = $1",
            args![client_id],
        )
        .await?;
    if n == 0 {
        return Err(conflict("no such client"));
    }

    Ok(())
}

pub(crate) async fn add_o_auth_client_secret(
    c: &mut Conn<'_>,
    id: &str,
    client_id: &str,
    secret_hash: &[u8],
    created_by: &str,
    at_us: i64,
) -> Result<()> {
    let live: i64 = c.count("SELECT COUNT(*) FROM oauth_client_secrets WHERE client_id = $1 AND revoked_at_us IS NULL", args![client_id]).await?;
    if live >= 2 {
        return Err(conflict("two client secrets are live already"));
    }
    c.execute("INSERT INTO oauth_client_secrets (id, client_id, secret_hash, created_by, created_at_us) VALUES ($1, $2, $3, $4, $5)", args![id, client_id, secret_hash, created_by, at_us]).await?;

    Ok(())
}

pub(crate) async fn revoke_o_auth_client_secret(
    c: &mut Conn<'_>,
    id: &str,
    client_id: &str,
    at_us: i64,
) -> Result<()> {
    let n = c.execute("UPDATE oauth_client_secrets SET revoked_at_us = $1 WHERE id = $2 AND client_id = $3 AND revoked_at_us IS NULL", args![at_us, id, client_id]).await?;
    if n == 0 {
        return Err(conflict("no such live client secret"));
    }

    Ok(())
}

pub(crate) async fn create_authorization_code(
    c: &mut Conn<'_>,
    a: &NewAuthorizationCode,
) -> Result<()> {
    c.execute("INSERT INTO authorization_codes (id, code_hash, client_id, principal_id, session_id, redirect_uri, scope, nonce, code_challenge, strength, auth_time_us, created_at_us, expires_at_us, person_ip) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)", args![&a.id, &a.code_hash, &a.client_id, &a.principal_id, &a.session_id, &a.redirect_uri, &a.scope, &a.nonce, &a.code_challenge, &a.strength, a.auth_time_us, a.created_at_us, a.expires_at_us, &a.person_ip]).await?;

    Ok(())
}

pub(crate) async fn redeem_authorization_code(
    c: &mut Conn<'_>,
    id: &str,
    family_id: Option<&str>,
    access_jti: &str,
    access_expires_at_us: i64,
    at_us: i64,
) -> Result<()> {
    let n = c.execute("UPDATE authorization_codes SET used_at_us = $1, family_id = $2, access_jti = $3, access_expires_at_us = $4 WHERE id = $5 AND used_at_us IS NULL AND expires_at_us > $1", args![at_us, family_id, access_jti, access_expires_at_us, id]).await?;
    if n == 0 {
        return Err(conflict("the authorization code was used already"));
    }

    Ok(())
}

pub(crate) async fn record_o_auth_consent(
    c: &mut Conn<'_>,
    principal_id: &str,
    client_id: &str,
    scope: &str,
    at_us: i64,
) -> Result<()> {
    c.execute("INSERT INTO oauth_consents (principal_id, client_id, scope, granted_at_us) VALUES ($1, $2, $3, $4) ON CONFLICT (principal_id, client_id) DO UPDATE SET scope = excluded.scope, granted_at_us = excluded.granted_at_us", args![principal_id, client_id, scope, at_us]).await?;

    Ok(())
}
