//! Reads of break-glass accounts: their custody, drills and last use, and the count of usable
//! ones that the "at least two" rule guards. (Writes are [`crate::Change`]s.)

use sqlx::Row;

use crate::accounts::{PRINCIPAL_COLS, Principal, principal_row};
use crate::{Result, Store, on_pool};

/// A break-glass account as stored, with what `portcullis breakglass list` shows.
#[derive(Debug, Clone)]
pub struct BreakGlassAccount {
    pub principal: Principal,
    /// `password` (split among custodians) or `fido2` (a security key and its PIN).
    pub credential: String,
    /// Principal names, in share order (share i is custodians[i-1]).
    pub custodians: Vec<String>,
    /// Shares needed to rebuild the password (0 for FIDO2).
    pub threshold: i64,
    pub key_holder: Option<String>,
    pub pin_holder: Option<String>,
    pub created_by: String,
    pub created_at_us: i64,
    pub last_drill_us: Option<i64>,
    /// The start of the last session that was not a drill.
    pub last_use_us: Option<i64>,
    /// Holds a live, permanent, active Global Administrator assignment at `/`.
    pub global_admin: bool,
    /// Has its credential: a password hash, or a confirmed security key.
    pub has_credential: bool,
}

impl BreakGlassAccount {
    /// Enabled, with its credential and its Global Administrator assignment: what
    /// [`Store::usable_breakglass_count`] counts.
    pub fn usable(&self) -> bool {
        self.principal.enabled && self.global_admin && self.has_credential
    }
}

/// The predicate "principal `p` is a usable break-glass account": enabled, with its credential
/// and its permanent Global Administrator assignment. Shared by the list, the count and the
/// guard in [`crate::Change::RequireBreakGlassMinimum`].
pub(crate) const GLOBAL_ADMIN_SQL: &str = "EXISTS (SELECT 1 FROM role_assignments a WHERE a.principal_id = p.id AND a.role = 'global-administrator' AND a.scope = '/' AND a.kind = 'active' AND a.ended_at_us IS NULL AND a.ends_at_us IS NULL)";
pub(crate) const HAS_CREDENTIAL_SQL: &str = "(EXISTS (SELECT 1 FROM passwords w WHERE w.principal_id = p.id) OR EXISTS (SELECT 1 FROM mfa_factors f WHERE f.principal_id = p.id AND f.kind = 'webauthn' AND f.confirmed))";

pub(crate) static USABLE_COUNT_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT COUNT(*) FROM principals p JOIN breakglass_accounts b ON b.principal_id = p.id WHERE p.emergency AND p.enabled AND {GLOBAL_ADMIN_SQL} AND {HAS_CREDENTIAL_SQL}"
    )
});

fn list_sql(filter: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(format!(
        "SELECT {PRINCIPAL_COLS}, b.credential, b.custodians, b.threshold, b.key_holder, b.pin_holder, b.created_by, b.created_at_us AS b_created, \
         (SELECT MAX(d.at_us) FROM breakglass_drills d WHERE d.principal_id = p.id) AS last_drill_us, \
         (SELECT MAX(s.created_at_us) FROM sessions s WHERE s.principal_id = p.id AND NOT EXISTS (SELECT 1 FROM breakglass_drills d WHERE d.session_id = s.id)) AS last_use_us, \
         CASE WHEN {GLOBAL_ADMIN_SQL} THEN 1 ELSE 0 END AS global_admin, \
         CASE WHEN {HAS_CREDENTIAL_SQL} THEN 1 ELSE 0 END AS has_credential \
         FROM principals p JOIN breakglass_accounts b ON b.principal_id = p.id {filter} ORDER BY p.name"
    ))
}

macro_rules! account_row {
    ($r:expr) => {{
        let custodians: String = $r.try_get("custodians")?;
        let global_admin: i32 = $r.try_get("global_admin")?;
        let has_credential: i32 = $r.try_get("has_credential")?;
        BreakGlassAccount {
            principal: principal_row!($r),
            credential: $r.try_get("credential")?,
            custodians: serde_json::from_str(&custodians).map_err(|_| {
                crate::StoreError::Corrupt("a break-glass custodian list is not a JSON list".into())
            })?,
            threshold: $r.try_get("threshold")?,
            key_holder: $r.try_get("key_holder")?,
            pin_holder: $r.try_get("pin_holder")?,
            created_by: $r.try_get("created_by")?,
            created_at_us: $r.try_get("b_created")?,
            last_drill_us: $r.try_get("last_drill_us")?,
            last_use_us: $r.try_get("last_use_us")?,
            global_admin: global_admin != 0,
            has_credential: has_credential != 0,
        }
    }};
}

impl Store {
    /// Every break-glass account, by name.
    pub async fn breakglass_accounts(&self) -> Result<Vec<BreakGlassAccount>> {
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query(list_sql("")).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(account_row!(r));
            }
            Ok(out)
        })
    }

    /// One break-glass account by principal id.
    pub async fn breakglass_account(
        &self,
        principal_id: &str,
    ) -> Result<Option<BreakGlassAccount>> {
        on_pool!(&self.backend, pool => {
            match sqlx::query(list_sql("WHERE p.id = $1")).bind(principal_id).fetch_optional(pool).await? {
                Some(r) => Ok(Some(account_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// How many break-glass accounts could sign in and act now (see [`BreakGlassAccount`]).
    pub async fn usable_breakglass_count(&self) -> Result<i64> {
        let q = USABLE_COUNT_SQL.as_str();
        on_pool!(&self.backend, pool => {
            Ok(sqlx::query_scalar::<_, i64>(q).fetch_one(pool).await?)
        })
    }
}
