//! Reads of accounts: principals, credentials, sessions, pending sign-ins, throttle counters.
//! (Writes are [`crate::Change`]s through the writer.)

use sqlx::Row;

use crate::{Result, Store, on_pool};

/// A principal as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub id: String,
    pub name: String,
    pub kind: portcullis_core::principal::PrincipalKind,
    pub display_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub guest_organisation: Option<String>,
    pub role_assignable: bool,
    pub emergency: bool,
    pub privileged: bool,
    pub first_admin: bool,
    pub enabled: bool,
    pub created_at_us: i64,
    pub last_sign_in_us: Option<i64>,
    /// When it was contained (`portcullis contain`), while it stays so.
    pub contained_at_us: Option<i64>,
    /// Access tokens issued at or before this are refused (set by containment).
    pub tokens_valid_after_us: Option<i64>,
}

/// A second factor as stored (the secret stays sealed).
#[derive(Debug, Clone)]
pub struct Factor {
    pub id: String,
    pub principal_id: String,
    pub kind: portcullis_core::factor::FactorKind,
    pub name: String,
    pub sealed_secret: Vec<u8>,
    pub confirmed: bool,
    pub last_step: Option<i64>,
    pub created_at_us: i64,
    pub last_used_us: Option<i64>,
}

/// A session as stored.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub principal_id: String,
    pub strength: portcullis_core::session::AuthStrength,
    pub scope: String,
    pub created_at_us: i64,
    pub last_seen_us: i64,
    pub strong_auth_at_us: Option<i64>,
    pub client_ip: String,
    pub user_agent: String,
    pub revoked_at_us: Option<i64>,
    /// An end earlier than the lifetimes (a conditional-access sign-in frequency).
    pub ends_at_us: Option<i64>,
}

pub(crate) const PRINCIPAL_COLS: &str = "p.id, p.name, p.kind, p.display_name, p.email, p.phone, p.guest_organisation, p.role_assignable, p.emergency, p.privileged, p.first_admin, p.enabled, p.created_at_us, p.last_sign_in_us, p.contained_at_us, p.tokens_valid_after_us";
const SESSION_COLS: &str = "s.id AS s_id, s.principal_id, s.strength, s.scope, s.created_at_us AS s_created, s.last_seen_us, s.strong_auth_at_us, s.client_ip, s.user_agent, s.revoked_at_us, s.ends_at_us";

macro_rules! principal_row {
    ($r:expr) => {
        Principal {
            id: $r.try_get("id")?,
            name: $r.try_get("name")?,
            kind: crate::decoded(
                $r.try_get::<String, _>("kind")?,
                portcullis_core::principal::PrincipalKind::parse,
                "principal kind",
            )?,
            display_name: $r.try_get("display_name")?,
            email: $r.try_get("email")?,
            phone: $r.try_get("phone")?,
            guest_organisation: $r.try_get("guest_organisation")?,
            role_assignable: $r.try_get("role_assignable")?,
            emergency: $r.try_get("emergency")?,
            privileged: $r.try_get("privileged")?,
            first_admin: $r.try_get("first_admin")?,
            enabled: $r.try_get("enabled")?,
            created_at_us: $r.try_get("created_at_us")?,
            last_sign_in_us: $r.try_get("last_sign_in_us")?,
            contained_at_us: $r.try_get("contained_at_us")?,
            tokens_valid_after_us: $r.try_get("tokens_valid_after_us")?,
        }
    };
}

pub(crate) use principal_row;

macro_rules! session_row {
    ($r:expr) => {
        Session {
            id: $r.try_get("s_id")?,
            principal_id: $r.try_get("principal_id")?,
            strength: crate::decoded(
                $r.try_get("strength")?,
                portcullis_core::session::AuthStrength::parse,
                "strength",
            )?,
            scope: $r.try_get("scope")?,
            created_at_us: $r.try_get("s_created")?,
            last_seen_us: $r.try_get("last_seen_us")?,
            strong_auth_at_us: $r.try_get("strong_auth_at_us")?,
            client_ip: $r.try_get("client_ip")?,
            user_agent: $r.try_get("user_agent")?,
            revoked_at_us: $r.try_get("revoked_at_us")?,
            ends_at_us: $r.try_get("ends_at_us")?,
        }
    };
}

macro_rules! factor_row {
    ($r:expr) => {
        Factor {
            id: $r.try_get("id")?,
            principal_id: $r.try_get("principal_id")?,
            kind: crate::decoded(
                $r.try_get("kind")?,
                portcullis_core::factor::FactorKind::parse,
                "factor kind",
            )?,
            name: $r.try_get("name")?,
            sealed_secret: $r.try_get("sealed_secret")?,
            confirmed: $r.try_get("confirmed")?,
            last_step: $r.try_get("last_step")?,
            created_at_us: $r.try_get("created_at_us")?,
            last_used_us: $r.try_get("last_used_us")?,
        }
    };
}

fn sql(s: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(s)
}

impl Store {
    pub async fn principal_by_name(&self, name: &str) -> Result<Option<Principal>> {
        let q = sql(format!(
            "SELECT {PRINCIPAL_COLS} FROM principals p WHERE p.name = $1"
        ));
        on_pool!(&self.backend, pool => {
            match sqlx::query(q).bind(name).fetch_optional(pool).await? {
                Some(r) => Ok(Some(principal_row!(r))),
                None => Ok(None),
            }
        })
    }

    pub async fn principal_by_id(&self, id: &str) -> Result<Option<Principal>> {
        let q = sql(format!(
            "SELECT {PRINCIPAL_COLS} FROM principals p WHERE p.id = $1"
        ));
        on_pool!(&self.backend, pool => {
            match sqlx::query(q).bind(id).fetch_optional(pool).await? {
                Some(r) => Ok(Some(principal_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// Principals of one kind (`user`, `group`, `service_account`), by name.
    pub async fn principals(&self, kind: &str) -> Result<Vec<Principal>> {
        let q = sql(format!(
            "SELECT {PRINCIPAL_COLS} FROM principals p WHERE p.kind = $1 ORDER BY p.name"
        ));
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query(q).bind(kind).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(principal_row!(r)); }
            Ok(out)
        })
    }

    /// Members of a group, by name.
    pub async fn group_members(&self, group_id: &str) -> Result<Vec<Principal>> {
        let q = sql(format!(
            "SELECT {PRINCIPAL_COLS} FROM principals p WHERE p.id IN (SELECT m.member_id FROM group_memberships m WHERE m.group_id = $1) ORDER BY p.name"
        ));
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query(q).bind(group_id).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(principal_row!(r)); }
            Ok(out)
        })
    }

    /// Groups a principal belongs to directly, by name.
    pub async fn groups_of(&self, member_id: &str) -> Result<Vec<Principal>> {
        let q = sql(format!(
            "SELECT {PRINCIPAL_COLS} FROM principals p WHERE p.id IN (SELECT m.group_id FROM group_memberships m WHERE m.member_id = $1) ORDER BY p.name"
        ));
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query(q).bind(member_id).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(principal_row!(r)); }
            Ok(out)
        })
    }

    pub async fn password_phc(&self, principal_id: &str) -> Result<Option<String>> {
        on_pool!(&self.backend, pool => {
            Ok(sqlx::query("SELECT phc FROM passwords WHERE principal_id = $1").bind(principal_id)
                .fetch_optional(pool).await?.map(|r| r.try_get::<String, _>("phc")).transpose()?)
        })
    }

    /// All factors of a principal (confirmed or not), oldest first.
    pub async fn factors(&self, principal_id: &str) -> Result<Vec<Factor>> {
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query("SELECT id, principal_id, kind, name, sealed_secret, confirmed, last_step, created_at_us, last_used_us FROM mfa_factors WHERE principal_id = $1 ORDER BY created_at_us, id")
                .bind(principal_id).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(factor_row!(r)); }
            Ok(out)
        })
    }

    /// The session holding this token hash, with its principal, if it exists (alive or not).
    pub async fn session_by_token_hash(&self, hash: &[u8]) -> Result<Option<(Session, Principal)>> {
        let q = sql(format!(
            "SELECT {SESSION_COLS}, {PRINCIPAL_COLS} FROM sessions s JOIN principals p ON p.id = s.principal_id WHERE s.token_hash = $1"
        ));
        on_pool!(&self.backend, pool => {
            match sqlx::query(q).bind(hash).fetch_optional(pool).await? {
                Some(r) => Ok(Some((session_row!(r), principal_row!(r)))),
                None => Ok(None),
            }
        })
    }

    pub async fn session_by_id(&self, id: &str) -> Result<Option<Session>> {
        let q = sql(format!(
            "SELECT {SESSION_COLS} FROM sessions s WHERE s.id = $1"
        ));
        on_pool!(&self.backend, pool => {
            match sqlx::query(q).bind(id).fetch_optional(pool).await? {
                Some(r) => Ok(Some(session_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// Unrevoked sessions of a principal, newest first (the caller filters expired ones).
    pub async fn sessions_of(&self, principal_id: &str) -> Result<Vec<Session>> {
        let q = sql(format!(
            "SELECT {SESSION_COLS} FROM sessions s WHERE s.principal_id = $1 AND s.revoked_at_us IS NULL ORDER BY s.created_at_us DESC"
        ));
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query(q).bind(principal_id).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(session_row!(r)); }
            Ok(out)
        })
    }

    /// The principal and creation time of a pending sign-in.
    pub async fn pending_signin(&self, id_hash: &[u8]) -> Result<Option<(String, i64)>> {
        on_pool!(&self.backend, pool => {
            match sqlx::query("SELECT principal_id, created_at_us FROM pending_signins WHERE id_hash = $1")
                .bind(id_hash).fetch_optional(pool).await? {
                Some(r) => Ok(Some((r.try_get("principal_id")?, r.try_get("created_at_us")?))),
                None => Ok(None),
            }
        })
    }

    /// A WebAuthn ceremony: `(principal_id, kind, state, factor_name, pending_signin_hash,
    /// created_at_us)`.
    #[allow(clippy::type_complexity)]
    pub async fn ceremony(
        &self,
        id_hash: &[u8],
    ) -> Result<Option<(String, String, String, Option<String>, Option<Vec<u8>>, i64)>> {
        on_pool!(&self.backend, pool => {
            match sqlx::query("SELECT principal_id, kind, state, factor_name, pending_signin_hash, created_at_us FROM webauthn_ceremonies WHERE id_hash = $1")
                .bind(id_hash).fetch_optional(pool).await? {
                Some(r) => Ok(Some((
                    r.try_get("principal_id")?, r.try_get("kind")?, r.try_get("state")?,
                    r.try_get("factor_name")?, r.try_get("pending_signin_hash")?, r.try_get("created_at_us")?,
                ))),
                None => Ok(None),
            }
        })
    }

    /// Throttle counters `(failures, last_failure_us)` for each key that has one.
    /// Whether `principal_id` signed in successfully from `address` (its throttling form) at or
    /// after `since_us`: a familiar address (smart lockout).
    pub async fn familiar_address(
        &self,
        principal_id: &str,
        address: &str,
        since_us: i64,
    ) -> Result<bool> {
        on_pool!(&self.backend, pool => {
            Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM signin_addresses WHERE principal_id = $1 AND address = $2 AND last_success_us >= $3")
                .bind(principal_id).bind(address).bind(since_us).fetch_one(pool).await? > 0)
        })
    }

    /// Whether a decoy passwordless challenge with this id hash is waiting, and for which name.
    pub async fn decoy(&self, id_hash: &[u8]) -> Result<Option<(String, i64)>> {
        on_pool!(&self.backend, pool => {
            Ok(sqlx::query_as::<_, (String, i64)>("SELECT name, created_at_us FROM webauthn_decoys WHERE id_hash = $1")
                .bind(id_hash).fetch_optional(pool).await?)
        })
    }

    /// A break-glass account's fast verifier, when it has one.
    pub async fn breakglass_verifier(&self, principal_id: &str) -> Result<Option<Vec<u8>>> {
        on_pool!(&self.backend, pool => {
            Ok(sqlx::query_scalar::<_, Option<Vec<u8>>>("SELECT verifier FROM breakglass_accounts WHERE principal_id = $1")
                .bind(principal_id).fetch_optional(pool).await?.flatten())
        })
    }

    pub async fn throttle_counters(&self, keys: &[String]) -> Result<Vec<(String, i64, i64)>> {
        let mut out = Vec::new();
        for key in keys {
            on_pool!(&self.backend, pool => {
                if let Some(r) = sqlx::query("SELECT failures, last_failure_us FROM throttle WHERE key = $1")
                    .bind(key).fetch_optional(pool).await? {
                    out.push((key.clone(), r.try_get("failures")?, r.try_get("last_failure_us")?));
                }
            });
        }
        Ok(out)
    }
}
