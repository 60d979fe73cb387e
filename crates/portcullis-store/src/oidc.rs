//! Reads for OpenID Connect: registered clients and their secrets, authorization codes, and
//! people's consent. (Writes are [`crate::Change`]s through the writer; redeeming a code is a
//! conditional update there, so a code is redeemed once across replicas.)

use sqlx::Row;

use crate::{Result, Store, on_pool};

/// A registered client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    pub client_id: String,
    pub name: String,
    /// `confidential` or `public`.
    pub kind: String,
    pub redirect_uris: Vec<String>,
    pub created_by: String,
    pub created_at_us: i64,
    /// The algorithm its ID tokens are signed with; `None` is EdDSA.
    pub id_token_alg: Option<String>,
}

/// A client secret as stored (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClientSecret {
    pub id: String,
    pub created_by: String,
    pub created_at_us: i64,
}

/// An authorization code as stored (its hash only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    pub id: String,
    pub client_id: String,
    pub principal_id: String,
    pub session_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub strength: portcullis_core::session::AuthStrength,
    pub auth_time_us: i64,
    pub expires_at_us: i64,
    pub used_at_us: Option<i64>,
    /// After redemption: the refresh family and the access token issued from it.
    pub family_id: Option<String>,
    pub access_jti: Option<String>,
    pub access_expires_at_us: Option<i64>,
    /// The person's (browser's) address at the authorize step; `None` only for a code issued
    /// before it was recorded whose session is gone.
    pub person_ip: Option<String>,
}

const CLIENT_COLS: &str =
    "client_id, name, kind, redirect_uris, created_by, created_at_us, id_token_alg";

macro_rules! client_row {
    ($r:expr) => {{
        let uris: String = $r.try_get("redirect_uris")?;
        OAuthClient {
            client_id: $r.try_get("client_id")?,
            name: $r.try_get("name")?,
            kind: $r.try_get("kind")?,
            // Written by the server from a validated list; an unreadable one is no URI at all.
            redirect_uris: serde_json::from_str(&uris).unwrap_or_default(),
            created_by: $r.try_get("created_by")?,
            created_at_us: $r.try_get("created_at_us")?,
            id_token_alg: $r.try_get("id_token_alg")?,
        }
    }};
}

impl Store {
    /// The client with this id.
    pub async fn oauth_client(&self, client_id: &str) -> Result<Option<OAuthClient>> {
        let sql = format!("SELECT {CLIENT_COLS} FROM oauth_clients WHERE client_id = $1");
        on_pool!(&self.backend, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql)).bind(client_id).fetch_optional(pool).await? {
                Some(r) => Ok(Some(client_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// The client with this name.
    pub async fn oauth_client_by_name(&self, name: &str) -> Result<Option<OAuthClient>> {
        let sql = format!("SELECT {CLIENT_COLS} FROM oauth_clients WHERE name = $1");
        on_pool!(&self.backend, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql)).bind(name).fetch_optional(pool).await? {
                Some(r) => Ok(Some(client_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// Every registered client, by name.
    pub async fn oauth_clients(&self) -> Result<Vec<OAuthClient>> {
        let sql = format!("SELECT {CLIENT_COLS} FROM oauth_clients ORDER BY name");
        on_pool!(&self.backend, pool => {
            let mut out = Vec::new();
            for r in sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await? {
                out.push(client_row!(r));
            }
            Ok(out)
        })
    }

    /// The live secrets of a client, oldest first.
    pub async fn oauth_client_secrets(&self, client_id: &str) -> Result<Vec<OAuthClientSecret>> {
        on_pool!(&self.backend, pool => {
            let mut out = Vec::new();
            for r in sqlx::query("SELECT id, created_by, created_at_us FROM oauth_client_secrets WHERE client_id = $1 AND revoked_at_us IS NULL ORDER BY created_at_us, id")
                .bind(client_id).fetch_all(pool).await? {
                out.push(OAuthClientSecret {
                    id: r.try_get("id")?,
                    created_by: r.try_get("created_by")?,
                    created_at_us: r.try_get("created_at_us")?,
                });
            }
            Ok(out)
        })
    }

    /// The client owning the live secret with this hash.
    pub async fn oauth_client_by_secret_hash(&self, hash: &[u8]) -> Result<Option<String>> {
        on_pool!(&self.backend, pool => {
            Ok(sqlx::query_scalar("SELECT client_id FROM oauth_client_secrets WHERE secret_hash = $1 AND revoked_at_us IS NULL")
                .bind(hash).fetch_optional(pool).await?)
        })
    }

    /// The authorization code with this hash (used ones included: a second presentation
    /// must be recognised).
    pub async fn authorization_code_by_hash(
        &self,
        hash: &[u8],
    ) -> Result<Option<AuthorizationCode>> {
        on_pool!(&self.backend, pool => {
            match sqlx::query("SELECT id, client_id, principal_id, session_id, redirect_uri, scope, nonce, code_challenge, strength, auth_time_us, expires_at_us, used_at_us, family_id, access_jti, access_expires_at_us, person_ip FROM authorization_codes WHERE code_hash = $1")
                .bind(hash).fetch_optional(pool).await? {
                Some(r) => Ok(Some(AuthorizationCode {
                    id: r.try_get("id")?,
                    client_id: r.try_get("client_id")?,
                    principal_id: r.try_get("principal_id")?,
                    session_id: r.try_get("session_id")?,
                    redirect_uri: r.try_get("redirect_uri")?,
                    scope: r.try_get("scope")?,
                    nonce: r.try_get("nonce")?,
                    code_challenge: r.try_get("code_challenge")?,
                    strength: crate::decoded(r.try_get("strength")?, portcullis_core::session::AuthStrength::parse, "strength")?,
                    auth_time_us: r.try_get("auth_time_us")?,
                    expires_at_us: r.try_get("expires_at_us")?,
                    used_at_us: r.try_get("used_at_us")?,
                    family_id: r.try_get("family_id")?,
                    access_jti: r.try_get("access_jti")?,
                    access_expires_at_us: r.try_get("access_expires_at_us")?,
                    person_ip: r.try_get("person_ip")?,
                })),
                None => Ok(None),
            }
        })
    }

    /// The scope a person has consented to for a client, if any.
    pub async fn oauth_consent(
        &self,
        principal_id: &str,
        client_id: &str,
    ) -> Result<Option<String>> {
        on_pool!(&self.backend, pool => {
            Ok(sqlx::query_scalar("SELECT scope FROM oauth_consents WHERE principal_id = $1 AND client_id = $2")
                .bind(principal_id).bind(client_id).fetch_optional(pool).await?)
        })
    }
}
