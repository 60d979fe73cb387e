//! The sweeper: once per period, across all replicas, deletes what has expired
//! ([`portcullis_store::sweep`]) and records what it deleted.
//!
//! Invariants: one replica sweeps per period (a periodic-job claim, like the drill watch), and
//! what it deleted is recorded as `store.swept` (counts per table) when anything was. Retention is derived from the lifetimes it must
//! outlast (README, "Retention"), so nothing is deleted while it can still change an answer.

use portcullis_core::audit::NewAuditEvent;
use portcullis_store::sweep::Retention;
use portcullis_store::{Change, Store, StoreError};
use time::{Duration, OffsetDateTime};

use crate::time_us::us;

/// The periodic job's name.
const JOB: &str = "store.sweep";

/// How often the store is swept (one replica per period).
pub const EVERY: Duration = Duration::minutes(10);

/// Retention for the configured lifetimes: a day past a device code's expiry; an hour past a
/// ceremony's or half sign-in's creation (they live minutes); a throttle counter's forget
/// period; an authorization code and a refresh token for a day past the longest family; a
/// session for thirty days, or longer while a refresh family it approved can still be used
/// (a family starts within the session's absolute lifetime and lasts `refresh_absolute`; the
/// refresh path treats a missing session as revoked); a familiar address for its smart-lockout
/// period; an SSH certificate a day past its expiry.
pub fn retention(refresh_absolute: Duration, session_absolute: Duration) -> Retention {
    let day = Duration::days(1).whole_microseconds() as i64;
    Retention {
        device_codes_us: day,
        ceremonies_us: Duration::hours(1).whole_microseconds() as i64,
        throttle_us: portcullis_core::throttle::ThrottlePolicy::ACCOUNT
            .forget_after
            .whole_microseconds() as i64,
        authorization_codes_us: (refresh_absolute + Duration::days(1)).whole_microseconds() as i64,
        refresh_tokens_us: day,
        sessions_us: Duration::days(30)
            .max(session_absolute + refresh_absolute + Duration::days(1))
            .whole_microseconds() as i64,
        signin_addresses_us: portcullis_core::throttle::FAMILIAR_FOR.whole_microseconds() as i64,
        ssh_certificates_us: day,
    }
}

/// One sweep if this replica wins the period's claim: the counts deleted, or `None` when
/// another replica swept this period.
pub async fn sweep_once(
    store: &Store,
    retention: &Retention,
    now: OffsetDateTime,
) -> Result<Option<Vec<(String, u64)>>, StoreError> {
    let claim = Change::ClaimPeriodic {
        name: JOB.into(),
        not_before_us: us(now - EVERY + Duration::seconds(5)),
        at_us: us(now),
    };
    match store.write(claim, vec![]).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e),
    }
    let deleted = store.sweep(us(now), retention).await?;
    if !deleted.is_empty() {
        let counts: serde_json::Map<String, serde_json::Value> = deleted
            .iter()
            .map(|(t, n)| (t.clone(), (*n).into()))
            .collect();
        store
            .append(
                NewAuditEvent::new("system", "store.swept", "store")
                    .details(serde_json::json!({ "deleted": counts })),
            )
            .await?;
    }
    Ok(Some(deleted))
}

/// Sweeps every [`EVERY`] until `stop` resolves.
pub async fn run(store: Store, retention: Retention, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        if let Err(e) = sweep_once(&store, &retention, OffsetDateTime::now_utc()).await {
            tracing::warn!(error = %e, "sweeping expired rows failed; next period tries again");
        }
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(std::time::Duration::from_secs(EVERY.whole_seconds() as u64)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session outlives every refresh family it can have approved: a family made at the end
    /// of the session's absolute lifetime, used on its last day, still finds the session.
    #[test]
    fn sessions_outlive_the_longest_refresh_family() {
        let day = Duration::days(1).whole_microseconds() as i64;
        let defaults = retention(Duration::hours(168), Duration::hours(12));
        assert_eq!(
            defaults.sessions_us,
            30 * day,
            "the default stays thirty days"
        );
        let long = retention(Duration::hours(2160), Duration::hours(12));
        let needed = (Duration::hours(12) + Duration::hours(2160)).whole_microseconds() as i64;
        assert!(
            long.sessions_us > needed,
            "{} <= {needed}",
            long.sessions_us
        );
        assert!(long.sessions_us > long.authorization_codes_us - day);
    }
}
