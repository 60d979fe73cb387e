//! Failed-attempt counters. A reservation is taken before a secret is checked, under a row lock
//! on PostgreSQL, so concurrent guesses across replicas cannot exceed the policy.

use super::conflicts::{THROTTLED, conflict};
use super::sql::{Conn, args};
use crate::Result;

pub(crate) async fn reserve_attempt(c: &mut Conn<'_>, keys: &[String], at_us: i64) -> Result<()> {
    let now = crate::from_micros(at_us);
    let mut counters = Vec::with_capacity(keys.len());
    for key in keys {
        let row: Option<(i64, i64)> = c
            .locked_ints(
                "SELECT failures, last_failure_us FROM throttle WHERE key = $1",
                args![key],
            )
            .await?;
        if let Some((n, last)) = row {
            counters.push((key.clone(), n, crate::from_micros(last)));
        }
    }
    if portcullis_core::throttle::admit(&counters, now).is_err() {
        return Err(conflict(THROTTLED));
    }
    for key in keys {
        // A counter past its forget period starts again from one.
        let forget = portcullis_core::throttle::ThrottlePolicy::for_key(key)
            .forget_after
            .whole_microseconds() as i64;
        c.execute("INSERT INTO throttle (key, failures, last_failure_us) VALUES ($1, 1, $2) ON CONFLICT (key) DO UPDATE SET failures = CASE WHEN throttle.last_failure_us <= $2 - $3 THEN 1 ELSE throttle.failures + 1 END, last_failure_us = excluded.last_failure_us", args![key, at_us, forget]).await?;
    }

    Ok(())
}

pub(crate) async fn release_attempt(c: &mut Conn<'_>, keys: &[String]) -> Result<()> {
    for key in keys {
        if portcullis_core::throttle::ThrottleKey::cleared_by_success(key) {
            c.execute("DELETE FROM throttle WHERE key = $1", args![key])
                .await?;
        } else {
            c.execute(
                "UPDATE throttle SET failures = failures - 1 WHERE key = $1 AND failures > 0",
                args![key],
            )
            .await?;
        }
    }

    Ok(())
}

pub(crate) async fn refund_attempt(c: &mut Conn<'_>, keys: &[String]) -> Result<()> {
    for key in keys {
        c.execute(
            "UPDATE throttle SET failures = failures - 1 WHERE key = $1 AND failures > 0",
            args![key],
        )
        .await?;
    }

    Ok(())
}

pub(crate) async fn record_failures(c: &mut Conn<'_>, keys: &[String], at_us: i64) -> Result<()> {
    for key in keys {
        c.execute("INSERT INTO throttle (key, failures, last_failure_us) VALUES ($1, 1, $2) ON CONFLICT (key) DO UPDATE SET failures = throttle.failures + 1, last_failure_us = excluded.last_failure_us", args![key, at_us]).await?;
    }

    Ok(())
}

pub(crate) async fn reset_throttle(c: &mut Conn<'_>, keys: &[String]) -> Result<()> {
    for key in keys {
        c.execute("DELETE FROM throttle WHERE key = $1", args![key])
            .await?;
    }

    Ok(())
}
