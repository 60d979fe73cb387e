//! Reads of conditional access: the policy set, the named locations and the version that
//! every change bumps (see migration 0013). Writes are [`crate::Change::ConditionalAccess`].

use sqlx::Row;

use crate::{Result, Store, on_pool};

/// A policy as stored: its file-format JSON (`PolicySpec`) and who changed it last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCaPolicy {
    pub name: String,
    pub state: String,
    pub spec: String,
    pub created_by: String,
    pub created_at_us: i64,
    pub updated_by: String,
    pub updated_at_us: i64,
}

/// A named location as stored; `cidrs` is a JSON array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCaLocation {
    pub name: String,
    pub cidrs: Vec<String>,
    pub trusted: bool,
    pub updated_by: String,
    pub updated_at_us: i64,
}

/// The whole conditional-access configuration at one version.
#[derive(Debug, Clone, Default)]
pub struct CaSnapshot {
    pub version: i64,
    pub policies: Vec<StoredCaPolicy>,
    pub locations: Vec<StoredCaLocation>,
}

impl Store {
    /// The version of the conditional-access configuration (bumped by every change).
    pub async fn ca_version(&self) -> Result<i64> {
        on_pool!(&self.backend, pool => {
            Ok(sqlx::query_scalar::<_, i64>("SELECT version FROM ca_version WHERE id = 1").fetch_one(pool).await?)
        })
    }

    /// Policies and locations read in one transaction, with their version.
    pub async fn ca_snapshot(&self) -> Result<CaSnapshot> {
        on_pool!(&self.backend, pool => {
            let mut tx = pool.begin().await?;
            let version: i64 = sqlx::query_scalar("SELECT version FROM ca_version WHERE id = 1").fetch_one(&mut *tx).await?;
            let mut policies = Vec::new();
            for r in sqlx::query("SELECT name, state, spec, created_by, created_at_us, updated_by, updated_at_us FROM ca_policies ORDER BY name")
                .fetch_all(&mut *tx).await? {
                policies.push(StoredCaPolicy {
                    name: r.try_get("name")?,
                    state: r.try_get("state")?,
                    spec: r.try_get("spec")?,
                    created_by: r.try_get("created_by")?,
                    created_at_us: r.try_get("created_at_us")?,
                    updated_by: r.try_get("updated_by")?,
                    updated_at_us: r.try_get("updated_at_us")?,
                });
            }
            let mut locations = Vec::new();
            for r in sqlx::query("SELECT name, cidrs, trusted, updated_by, updated_at_us FROM ca_locations ORDER BY name")
                .fetch_all(&mut *tx).await? {
                let cidrs: String = r.try_get("cidrs")?;
                locations.push(StoredCaLocation {
                    name: r.try_get("name")?,
                    cidrs: serde_json::from_str(&cidrs).unwrap_or_default(),
                    trusted: r.try_get("trusted")?,
                    updated_by: r.try_get("updated_by")?,
                    updated_at_us: r.try_get("updated_at_us")?,
                });
            }
            tx.commit().await?;
            Ok(CaSnapshot { version, policies, locations })
        })
    }
}
