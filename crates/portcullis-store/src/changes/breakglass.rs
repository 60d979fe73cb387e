//! Break-glass custody and drills, and the guard that keeps the usable break-glass accounts at
//! the required minimum.

use super::conflicts::{BREAKGLASS_MINIMUM, conflict};
use super::sql::{Conn, args};
use crate::Result;

/// A break-glass account's custody record (its principal is created in the same change).
#[derive(Debug, Clone)]
pub struct NewBreakGlass {
    pub principal_id: String,
    /// `password` or `fido2`.
    pub credential: String,
    /// JSON array of principal names in share order.
    pub custodians: String,
    pub threshold: i64,
    pub key_holder: Option<String>,
    pub pin_holder: Option<String>,
    pub created_by: String,
    pub created_at_us: i64,
}

pub(crate) async fn set_break_glass_verifier(
    c: &mut Conn<'_>,
    principal_id: &str,
    verifier: &[u8],
) -> Result<()> {
    c.execute(
        "UPDATE breakglass_accounts SET verifier = $1 WHERE principal_id = $2",
        args![verifier, principal_id],
    )
    .await?;

    Ok(())
}

pub(crate) async fn create_break_glass(c: &mut Conn<'_>, b: &NewBreakGlass) -> Result<()> {
    c.execute("INSERT INTO breakglass_accounts (principal_id, credential, custodians, threshold, key_holder, pin_holder, created_by, created_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", args![&b.principal_id, &b.credential, &b.custodians, b.threshold, &b.key_holder, &b.pin_holder, &b.created_by, b.created_at_us]).await?;

    Ok(())
}

pub(crate) async fn update_break_glass_custody(
    c: &mut Conn<'_>,
    principal_id: &str,
    custodians: &str,
    threshold: i64,
) -> Result<()> {
    c.execute(
        "UPDATE breakglass_accounts SET custodians = $1, threshold = $2 WHERE principal_id = $3",
        args![custodians, threshold, principal_id],
    )
    .await?;

    Ok(())
}

pub(crate) async fn record_drill(
    c: &mut Conn<'_>,
    id: &str,
    principal_id: &str,
    session_id: &str,
    at_us: i64,
) -> Result<()> {
    let n = c.execute("INSERT INTO breakglass_drills (id, principal_id, session_id, at_us) VALUES ($1, $2, $3, $4) ON CONFLICT (session_id) DO NOTHING", args![id, principal_id, session_id, at_us]).await?;
    if n == 0 {
        return Err(conflict("this session already recorded a drill"));
    }

    Ok(())
}

pub(crate) async fn require_break_glass_minimum(
    c: &mut Conn<'_>,
    min: i64,
    before: i64,
) -> Result<()> {
    c.lock_rows("SELECT p.id FROM principals p WHERE p.emergency ORDER BY p.id")
        .await?;
    let n = c
        .count(crate::breakglass::USABLE_COUNT_SQL.as_str(), args![])
        .await?;
    if n < min && n < before {
        return Err(conflict(BREAKGLASS_MINIMUM));
    }

    Ok(())
}
