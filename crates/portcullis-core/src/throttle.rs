//! Throttling of failed sign-ins: exponential backoff with a cap, never a permanent lockout.
//!
//! A permanent lockout would let anyone who knows a user name deny that person (or a
//! break-glass account) access, so failures only ever buy a bounded wait. Counters are kept per
//! account and per client IP; emergency (break-glass) accounts are throttled per IP only.
//! Pure: the store keeps the counters, this decides the waits.

use time::{Duration, OffsetDateTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures allowed before any wait.
    pub free_failures: u32,
    /// The first wait; each further failure doubles it.
    pub base: Duration,
    /// The longest wait.
    pub cap: Duration,
    /// A counter with no failure for this long starts again from zero.
    pub forget_after: Duration,
}

impl ThrottlePolicy {
    pub const ACCOUNT: ThrottlePolicy = ThrottlePolicy {
        free_failures: 5,
        base: Duration::seconds(1),
        cap: Duration::minutes(15),
        forget_after: Duration::hours(24),
    };
    pub const IP: ThrottlePolicy = ThrottlePolicy {
        free_failures: 20,
        base: Duration::seconds(1),
        cap: Duration::minutes(15),
        forget_after: Duration::hours(24),
    };

    /// The wait imposed after `failures` consecutive failures.
    pub fn delay(&self, failures: u32) -> Duration {
        if failures <= self.free_failures {
            return Duration::ZERO;
        }
        let exp = (failures - self.free_failures - 1).min(30);
        let d = self.base * (1i64 << exp) as f64;
        if d > self.cap { self.cap } else { d }
    }

    /// The failure count to use now (old counters are forgotten).
    pub fn current_failures(
        &self,
        failures: u32,
        last_failure: OffsetDateTime,
        now: OffsetDateTime,
    ) -> u32 {
        if now - last_failure >= self.forget_after {
            0
        } else {
            failures
        }
    }

    /// When the next attempt is allowed, if it is not allowed now.
    pub fn retry_at(
        &self,
        failures: u32,
        last_failure: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        let failures = self.current_failures(failures, last_failure, now);
        let at = last_failure + self.delay(failures);
        (at > now).then_some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = ThrottlePolicy::ACCOUNT;
        assert_eq!(p.delay(0), Duration::ZERO);
        assert_eq!(p.delay(5), Duration::ZERO);
        assert_eq!(p.delay(6), Duration::seconds(1));
        assert_eq!(p.delay(7), Duration::seconds(2));
        assert_eq!(p.delay(10), Duration::seconds(16));
        assert_eq!(p.delay(20), Duration::minutes(15));
        assert_eq!(
            p.delay(u32::MAX),
            Duration::minutes(15),
            "never more than the cap"
        );
    }

    #[test]
    fn never_locked_for_good() {
        let p = ThrottlePolicy::ACCOUNT;
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        assert!(p.retry_at(1_000_000, t0, t0).is_some());
        assert_eq!(p.retry_at(1_000_000, t0, t0 + Duration::minutes(15)), None);
        assert_eq!(p.current_failures(50, t0, t0 + Duration::hours(24)), 0);
    }
}
