//! Device authorizations (RFC 8628): capped per address while pending, decided once, consumed
//! once.

use super::conflicts::{TOO_MANY_PENDING, conflict};
use super::sql::{Conn, args};
use crate::Result;

/// A device authorization as created.
#[derive(Debug, Clone)]
pub struct NewDeviceAuthorization {
    pub id: String,
    pub device_code_hash: Vec<u8>,
    pub user_code: String,
    pub client_id: String,
    pub created_at_us: i64,
    pub expires_at_us: i64,
    pub interval_s: i64,
    /// Where it was requested from (shown to the person asked to approve it).
    pub client_ip: String,
    pub user_agent: String,
    /// At most this many pending, unexpired device codes from one address.
    pub max_pending_per_address: i64,
}

pub(crate) async fn create_device_authorization(
    c: &mut Conn<'_>,
    d: &NewDeviceAuthorization,
) -> Result<()> {
    let n: i64 = c.count("SELECT COUNT(*) FROM device_authorizations WHERE client_ip = $1 AND state = 'pending' AND expires_at_us > $2", args![&d.client_ip, d.created_at_us]).await?;
    if n >= d.max_pending_per_address {
        return Err(conflict(TOO_MANY_PENDING));
    }
    c.execute("INSERT INTO device_authorizations (id, device_code_hash, user_code, client_id, state, created_at_us, expires_at_us, interval_s, client_ip, user_agent) VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9)", args![&d.id, &d.device_code_hash, &d.user_code, &d.client_id, d.created_at_us, d.expires_at_us, d.interval_s, &d.client_ip, &d.user_agent]).await?;

    Ok(())
}

pub(crate) async fn poll_device(
    c: &mut Conn<'_>,
    id: &str,
    slow_down: bool,
    at_us: i64,
) -> Result<()> {
    let bump: i64 = if slow_down { 5 } else { 0 };
    c.execute("UPDATE device_authorizations SET last_poll_at_us = $1, interval_s = interval_s + $2 WHERE id = $3", args![at_us, bump, id]).await?;

    Ok(())
}

/// A person's decision on a device authorization.
#[derive(Debug, Clone)]
pub struct DeviceDecision {
    pub id: String,
    pub approve: bool,
    pub principal_id: String,
    pub strength: portcullis_core::session::AuthStrength,
    pub auth_time_us: i64,
    /// The approving session; revoking it ends the tokens that follow.
    pub session_id: String,
    pub at_us: i64,
}

pub(crate) async fn decide_device(c: &mut Conn<'_>, d: &DeviceDecision) -> Result<()> {
    let DeviceDecision {
        id,
        approve,
        principal_id,
        strength,
        auth_time_us,
        session_id,
        at_us,
    } = d;
    let approve = *approve;
    let strength = *strength;
    let auth_time_us = *auth_time_us;
    let at_us = *at_us;

    let to = if approve { "approved" } else { "denied" };
    let n = c.execute("UPDATE device_authorizations SET state = $1, principal_id = $2, strength = $3, auth_time_us = $4, decided_at_us = $5, session_id = $7 WHERE id = $6 AND state = 'pending' AND expires_at_us > $5", args![to, principal_id, strength, auth_time_us, at_us, id, session_id]).await?;
    if n == 0 {
        return Err(conflict("the device code is no longer pending"));
    }

    Ok(())
}

pub(crate) async fn consume_device(c: &mut Conn<'_>, id: &str) -> Result<()> {
    let n = c.execute("UPDATE device_authorizations SET state = 'consumed' WHERE id = $1 AND state = 'approved'", args![id]).await?;
    if n == 0 {
        return Err(conflict("the device code was used already"));
    }

    Ok(())
}
