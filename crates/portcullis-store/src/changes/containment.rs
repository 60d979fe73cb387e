//! Containment (`portcullis contain`): everything a principal holds is cut in one transaction,
//! and the undo gives back the account only.
//!
//! Invariants:
//! - After [`contain`] commits the principal is disabled; its sessions, refresh families (and
//!   the access tokens minted with them) are revoked, and a service account's client secrets
//!   and keys; access tokens issued until now are cut off
//!   by time (`tokens_valid_after_us`), since no store row names them; its pending requests are
//!   cancelled and its active ones revoked; its active assignments end; and a revoke is written
//!   for everything it holds at any target (SSH certificates included, so the next KRL lists
//!   them). Eligible assignments stay: they grant nothing, and a contained account activates
//!   nothing.
//! - [`uncontain`] only re-enables the account: nothing cut comes back, and the cut-off stays.

use super::conflicts::conflict;
use super::sql::{Conn, args};
use super::targets::{Scope, revoke_where};
use crate::Result;

/// The conflict [`super::Change::Contain`] reports for an unknown or already contained principal.
pub const ALREADY_CONTAINED: &str = "the principal is unknown or already contained";

pub(crate) async fn contain(
    c: &mut Conn<'_>,
    id: &str,
    by: &str,
    reason: &str,
    at_us: i64,
) -> Result<()> {
    let n = c.execute("UPDATE principals SET enabled = false, contained_at_us = $1, tokens_valid_after_us = $1 WHERE id = $2 AND contained_at_us IS NULL", args![at_us, id]).await?;
    if n == 0 {
        return Err(conflict(ALREADY_CONTAINED));
    }
    c.execute(
        "UPDATE sessions SET revoked_at_us = $1 WHERE principal_id = $2 AND revoked_at_us IS NULL",
        args![at_us, id],
    )
    .await?;
    // Access tokens minted with a refresh token are listed as revoked by jti as well (the
    // cut-off covers them too; the list is what introspection and the revocation cache read).
    c.execute("INSERT INTO revoked_tokens (jti, expires_at_us, revoked_at_us) SELECT access_jti, access_expires_at_us, $1 FROM refresh_tokens WHERE principal_id = $2 AND access_jti IS NOT NULL AND access_expires_at_us > $1 ON CONFLICT DO NOTHING", args![at_us, id]).await?;
    c.execute("UPDATE refresh_tokens SET revoked_at_us = $1 WHERE principal_id = $2 AND revoked_at_us IS NULL", args![at_us, id]).await?;
    // A service account's secrets and keys: a contained account's credential is presumed
    // stolen, so the release must not bring it back; new ones are issued after it.
    c.execute("UPDATE client_secrets SET revoked_at_us = $1 WHERE principal_id = $2 AND revoked_at_us IS NULL", args![at_us, id]).await?;
    c.execute("UPDATE client_keys SET revoked_at_us = $1 WHERE principal_id = $2 AND revoked_at_us IS NULL", args![at_us, id]).await?;
    let why = format!("contained: {reason}");
    c.execute("UPDATE activation_requests SET state = 'cancelled', closed_at_us = $1, closed_by = $2, close_reason = $3 WHERE principal_id = $4 AND state IN ('pending_approval', 'scheduled')", args![at_us, by, &why, id]).await?;
    c.execute("UPDATE activation_requests SET state = 'revoked', closed_at_us = $1, closed_by = $2, close_reason = $3 WHERE principal_id = $4 AND state = 'active'", args![at_us, by, &why, id]).await?;
    c.execute("UPDATE role_assignments SET ended_at_us = $1, end_reason = $2 WHERE principal_id = $3 AND kind = 'active' AND ended_at_us IS NULL", args![at_us, &why, id]).await?;
    revoke_where(c, Scope::Principal(id), "principal.contained", at_us).await?;
    Ok(())
}

pub(crate) async fn uncontain(c: &mut Conn<'_>, id: &str) -> Result<()> {
    let n = c.execute("UPDATE principals SET enabled = true, contained_at_us = NULL WHERE id = $1 AND contained_at_us IS NOT NULL", args![id]).await?;
    if n == 0 {
        return Err(conflict("the principal is not contained"));
    }
    Ok(())
}
