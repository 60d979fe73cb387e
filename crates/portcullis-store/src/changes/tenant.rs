//! The tenant itself: its creation and bootstrap token, settings, signing-key rotation, and
//! the claim that lets one replica run a periodic job per period.

use super::conflicts::conflict;
use super::sql::{Conn, args};
use time::OffsetDateTime;

use crate::{Result, micros};

pub(crate) async fn set_setting(c: &mut Conn<'_>, key: &str, value: &str) -> Result<()> {
    c.execute("INSERT INTO settings (key, value, updated_at_us) VALUES ($1, $2, $3) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at_us = excluded.updated_at_us", args![key, value, micros(OffsetDateTime::now_utc())]).await?;

    Ok(())
}

/// The tenant as created on first start.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub created_at_us: i64,
    pub key_check: Vec<u8>,
    pub key_id: String,
    pub public_key: Vec<u8>,
    pub sealed_private_key: Vec<u8>,
    pub bootstrap_token_hash: Vec<u8>,
    pub bootstrap_expires_at_us: i64,
}

pub(crate) async fn initialise_tenant(c: &mut Conn<'_>, d: &NewTenant) -> Result<()> {
    let NewTenant {
        created_at_us,
        key_check,
        key_id,
        public_key,
        sealed_private_key,
        bootstrap_token_hash,
        bootstrap_expires_at_us,
    } = d;
    let created_at_us = *created_at_us;
    let bootstrap_expires_at_us = *bootstrap_expires_at_us;

    let n = c.execute("INSERT INTO tenant (id, created_at_us, key_check) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING", args![created_at_us, key_check]).await?;
    if n == 0 {
        return Err(conflict("tenant already initialised"));
    }
    c.execute("INSERT INTO signing_keys (key_id, public_key, sealed_private_key, created_at_us, active) VALUES ($1, $2, $3, $4, TRUE)", args![key_id, public_key, sealed_private_key, created_at_us]).await?;
    c.execute(
        "INSERT INTO bootstrap_tokens (id, token_hash, expires_at_us) VALUES ('bootstrap', $1, $2)",
        args![bootstrap_token_hash, bootstrap_expires_at_us],
    )
    .await?;

    Ok(())
}

pub(crate) async fn redeem_bootstrap_token(
    c: &mut Conn<'_>,
    token_hash: &[u8],
    at_us: i64,
) -> Result<()> {
    let n = c.execute("UPDATE bootstrap_tokens SET used_at_us = $1 WHERE token_hash = $2 AND used_at_us IS NULL AND expires_at_us > $1", args![at_us, token_hash]).await?;
    if n == 0 {
        return Err(conflict("bootstrap token already used or expired"));
    }

    Ok(())
}

pub(crate) async fn rotate_signing_key(
    c: &mut Conn<'_>,
    previous: &str,
    algorithm: &str,
    key_id: &str,
    public_key: &[u8],
    sealed_private_key: &[u8],
    at_us: i64,
) -> Result<()> {
    let n = c
        .execute(
            "UPDATE signing_keys SET active = FALSE WHERE key_id = $1 AND algorithm = $2 AND active",
            args![previous, algorithm],
        )
        .await?;
    if n == 0 {
        return Err(conflict("the signing key was rotated already"));
    }
    c.execute("INSERT INTO signing_keys (key_id, public_key, sealed_private_key, created_at_us, active, algorithm) VALUES ($1, $2, $3, $4, TRUE, $5)", args![key_id, public_key, sealed_private_key, at_us, algorithm]).await?;

    Ok(())
}

pub(crate) async fn create_signing_key(
    c: &mut Conn<'_>,
    algorithm: &str,
    key_id: &str,
    public_key: &[u8],
    sealed_private_key: &[u8],
    at_us: i64,
) -> Result<()> {
    let n = c.execute("INSERT INTO signing_keys (key_id, public_key, sealed_private_key, created_at_us, active, algorithm) SELECT $1, $2, $3, $4, TRUE, $5 WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE algorithm = $5 AND active)", args![key_id, public_key, sealed_private_key, at_us, algorithm]).await?;
    if n == 0 {
        return Err(conflict("this algorithm has an active signing key already"));
    }

    Ok(())
}

pub(crate) async fn claim_periodic(
    c: &mut Conn<'_>,
    name: &str,
    not_before_us: i64,
    at_us: i64,
) -> Result<()> {
    let n = c.execute("INSERT INTO periodic_jobs (name, last_run_us) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET last_run_us = excluded.last_run_us WHERE periodic_jobs.last_run_us <= $3", args![name, at_us, not_before_us]).await?;
    if n == 0 {
        return Err(conflict("this periodic job already ran in this period"));
    }

    Ok(())
}
