//! The conditional-access configuration: applied only at the version it was validated against,
//! so two concurrent edits cannot both pass the lock-out guard.

use super::conflicts::{CA_CHANGED, conflict};
use super::sql::{Conn, args};
use crate::Result;

/// A conditional-access change, checked against the version it was validated at.
#[derive(Debug, Clone, Default)]
pub struct CaChange {
    /// The version the change was checked against (lockout guard); conflicts if it moved.
    pub expected_version: i64,
    /// Policies to create or replace: (name, state, spec JSON).
    pub put_policies: Vec<(String, String, String)>,
    pub delete_policies: Vec<String>,
    /// Locations to create or replace: (name, cidrs JSON, trusted).
    pub put_locations: Vec<(String, String, bool)>,
    pub delete_locations: Vec<String>,
    pub by: String,
    pub at_us: i64,
}

pub(crate) async fn conditional_access(c: &mut Conn<'_>, ca: &CaChange) -> Result<()> {
    let n = c
        .execute(
            "UPDATE ca_version SET version = version + 1 WHERE id = 1 AND version = $1",
            args![ca.expected_version],
        )
        .await?;
    if n == 0 {
        return Err(conflict(CA_CHANGED));
    }
    for (name, state, spec) in &ca.put_policies {
        c.execute("INSERT INTO ca_policies (name, state, spec, created_by, created_at_us, updated_by, updated_at_us) VALUES ($1, $2, $3, $4, $5, $4, $5) ON CONFLICT (name) DO UPDATE SET state = excluded.state, spec = excluded.spec, updated_by = excluded.updated_by, updated_at_us = excluded.updated_at_us", args![name, state, spec, &ca.by, ca.at_us]).await?;
    }
    for name in &ca.delete_policies {
        c.execute("DELETE FROM ca_policies WHERE name = $1", args![name])
            .await?;
    }
    for (name, cidrs, trusted) in &ca.put_locations {
        c.execute("INSERT INTO ca_locations (name, cidrs, trusted, updated_by, updated_at_us) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET cidrs = excluded.cidrs, trusted = excluded.trusted, updated_by = excluded.updated_by, updated_at_us = excluded.updated_at_us", args![name, cidrs, *trusted, &ca.by, ca.at_us]).await?;
    }
    for name in &ca.delete_locations {
        c.execute("DELETE FROM ca_locations WHERE name = $1", args![name])
            .await?;
    }

    Ok(())
}
