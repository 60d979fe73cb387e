//! Reads for the device authorization grant and refresh tokens. (Writes are
//! [`crate::Change`]s through the writer; every state move there is conditional.)

use sqlx::Row;

use crate::{Result, Store, on_pool};

/// A device authorization as stored (the device code only as its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuthorization {
    pub id: String,
    pub user_code: String,
    pub client_id: String,
    pub state: String,
    pub created_at_us: i64,
    pub expires_at_us: i64,
    pub interval_s: i64,
    pub last_poll_at_us: Option<i64>,
    pub principal_id: Option<String>,
    pub strength: Option<portcullis_core::session::AuthStrength>,
    pub auth_time_us: Option<i64>,
    pub session_id: Option<String>,
    /// Where the device code was requested from (shown to the approving person).
    pub client_ip: String,
    pub user_agent: String,
}

/// A refresh token as stored (its hash only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub id: String,
    pub family_id: String,
    pub principal_id: String,
    pub client_id: String,
    pub strength: portcullis_core::session::AuthStrength,
    pub auth_time_us: i64,
    pub session_id: String,
    pub expires_at_us: i64,
    pub family_expires_at_us: i64,
    pub used_at_us: Option<i64>,
    pub revoked_at_us: Option<i64>,
    /// OAuth scopes of the family (empty for the CLI).
    pub scope: String,
    /// `device_code` for a family started by the device grant; `None` otherwise.
    pub flow: Option<String>,
    /// The person's address for conditional access when the caller is not the person (an OIDC
    /// client's family); `None` for the CLI's.
    pub person_ip: Option<String>,
}

const DEVICE_COLS: &str = "id, user_code, client_id, state, created_at_us, expires_at_us, interval_s, last_poll_at_us, principal_id, strength, auth_time_us, session_id, client_ip, user_agent";

macro_rules! device_row {
    ($r:expr) => {
        DeviceAuthorization {
            id: $r.try_get("id")?,
            user_code: $r.try_get("user_code")?,
            client_id: $r.try_get("client_id")?,
            state: $r.try_get("state")?,
            created_at_us: $r.try_get("created_at_us")?,
            expires_at_us: $r.try_get("expires_at_us")?,
            interval_s: $r.try_get("interval_s")?,
            last_poll_at_us: $r.try_get("last_poll_at_us")?,
            principal_id: $r.try_get("principal_id")?,
            strength: $r
                .try_get::<Option<String>, _>("strength")?
                .map(|s| {
                    crate::decoded(s, portcullis_core::session::AuthStrength::parse, "strength")
                })
                .transpose()?,
            auth_time_us: $r.try_get("auth_time_us")?,
            session_id: $r.try_get("session_id")?,
            client_ip: $r.try_get("client_ip")?,
            user_agent: $r.try_get("user_agent")?,
        }
    };
}

impl Store {
    /// The device authorization whose device code has this hash.
    pub async fn device_by_code_hash(&self, hash: &[u8]) -> Result<Option<DeviceAuthorization>> {
        let sql =
            format!("SELECT {DEVICE_COLS} FROM device_authorizations WHERE device_code_hash = $1");
        on_pool!(&self.backend, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql)).bind(hash).fetch_optional(pool).await? {
                Some(r) => Ok(Some(device_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// The device authorization with this (normalised) user code.
    pub async fn device_by_user_code(
        &self,
        user_code: &str,
    ) -> Result<Option<DeviceAuthorization>> {
        let sql = format!("SELECT {DEVICE_COLS} FROM device_authorizations WHERE user_code = $1");
        on_pool!(&self.backend, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user_code).fetch_optional(pool).await? {
                Some(r) => Ok(Some(device_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// The refresh token with this hash (used, revoked and expired ones included: the caller
    /// needs them to detect reuse).
    pub async fn refresh_token_by_hash(&self, hash: &[u8]) -> Result<Option<RefreshToken>> {
        on_pool!(&self.backend, pool => {
            match sqlx::query("SELECT id, family_id, principal_id, client_id, strength, auth_time_us, session_id, expires_at_us, family_expires_at_us, used_at_us, revoked_at_us, scope, flow, person_ip FROM refresh_tokens WHERE token_hash = $1")
                .bind(hash).fetch_optional(pool).await? {
                Some(r) => Ok(Some(RefreshToken {
                    id: r.try_get("id")?,
                    family_id: r.try_get("family_id")?,
                    principal_id: r.try_get("principal_id")?,
                    client_id: r.try_get("client_id")?,
                    strength: crate::decoded(r.try_get("strength")?, portcullis_core::session::AuthStrength::parse, "strength")?,
                    auth_time_us: r.try_get("auth_time_us")?,
                    session_id: r.try_get("session_id")?,
                    expires_at_us: r.try_get("expires_at_us")?,
                    family_expires_at_us: r.try_get("family_expires_at_us")?,
                    used_at_us: r.try_get("used_at_us")?,
                    revoked_at_us: r.try_get("revoked_at_us")?,
                    scope: r.try_get("scope")?,
                    flow: r.try_get("flow")?,
                    person_ip: r.try_get("person_ip")?,
                })),
                None => Ok(None),
            }
        })
    }
}
