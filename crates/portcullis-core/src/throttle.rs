//! Throttling of failed sign-ins: exponential backoff with a cap, never a permanent lockout.
//!
//! A permanent lockout would let anyone who knows a user name deny that person (or a
//! break-glass account) access, so failures only ever buy a bounded wait. Pure: the store keeps
//! the counters, this decides the keys and the waits.
//!
//! Keys ([`ThrottleKey`]), so that nobody can turn the throttle against someone else:
//! - per address (`ip:`; an IPv6 address counts by its /64, the block one host gets), generous,
//!   against one source guessing many accounts;
//! - per account *and* address (`acct_ip:`), the tight one: guessing one account from one place;
//! - per account (`account:`), checked only from addresses where the account has not signed in
//!   successfully in the last [`FAMILIAR_FOR`] (what Entra calls smart lockout): failures
//!   elsewhere never keep a person out of the network they work from;
//! - per client and address (`client_ip:`) for OAuth clients.
//!
//! An attempt is *reserved* before its credential is checked ([`admit`]): the counters move
//! first, in one serialised write, so concurrent guesses cannot all pass one check. A success
//! gives the address's reservation back and clears the account's counters.

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
    /// One account from one address: the tight limit.
    pub const ACCOUNT_ADDRESS: ThrottlePolicy = ThrottlePolicy {
        free_failures: 5,
        base: Duration::seconds(1),
        cap: Duration::minutes(15),
        forget_after: Duration::hours(24),
    };
    /// One client from one address.
    pub const CLIENT_ADDRESS: ThrottlePolicy = ThrottlePolicy {
        free_failures: 10,
        base: Duration::seconds(1),
        cap: Duration::minutes(15),
        forget_after: Duration::hours(24),
    };

    /// The policy of a key by its kind (an unknown kind gets the tight account policy).
    pub fn for_key(key: &str) -> ThrottlePolicy {
        match key.split_once(':').map(|(k, _)| k) {
            Some("ip") => Self::IP,
            Some("acct_ip") => Self::ACCOUNT_ADDRESS,
            Some("client_ip") => Self::CLIENT_ADDRESS,
            _ => Self::ACCOUNT,
        }
    }

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

/// How long a successful sign-in makes an address familiar to an account.
pub const FAMILIAR_FOR: Duration = Duration::days(30);

/// The form of a client address that throttling and familiarity count by: an IPv4 address
/// (also when IPv4-mapped) as itself, an IPv6 address by its /64.
pub fn address_key(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        },
        // Not an address (a test's "unknown"): counted as itself.
        Err(_) => ip.to_owned(),
    }
}

/// A throttle counter (see the module header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThrottleKey {
    Address(String),
    AccountAddress(String, String),
    Account(String),
    ClientAddress(String, String),
}

impl ThrottleKey {
    /// The stored form, e.g. `acct_ip:alice|2001:db8::/64`.
    pub fn render(&self) -> String {
        match self {
            Self::Address(ip) => format!("ip:{}", address_key(ip)),
            Self::AccountAddress(a, ip) => format!("acct_ip:{a}|{}", address_key(ip)),
            Self::Account(a) => format!("account:{a}"),
            Self::ClientAddress(c, ip) => format!("client_ip:{c}|{}", address_key(ip)),
        }
    }

    /// Whether a success clears this counter (account counters) rather than giving one
    /// reservation back (an address's counter: one good account must not wipe the failures of
    /// others guessed from the same place).
    pub fn cleared_by_success(key: &str) -> bool {
        !key.starts_with("ip:")
    }
}

/// The counters a person's sign-in attempt from `ip` reserves: address, account and address,
/// and the account alone unless the address is familiar to it.
pub fn signin_keys(account: &str, ip: &str, familiar: bool) -> Vec<String> {
    let mut keys = vec![
        ThrottleKey::Address(ip.to_owned()).render(),
        ThrottleKey::AccountAddress(account.to_owned(), ip.to_owned()).render(),
    ];
    if !familiar {
        keys.push(ThrottleKey::Account(account.to_owned()).render());
    }
    keys
}

/// Whether an attempt may go ahead given the counters of its keys (`(key, failures, last
/// failure)`): `Ok` to reserve it, or the wait until one may.
pub fn admit(
    counters: &[(String, i64, OffsetDateTime)],
    now: OffsetDateTime,
) -> Result<(), Duration> {
    let mut wait = Duration::ZERO;
    for (key, failures, last) in counters {
        let policy = ThrottlePolicy::for_key(key);
        let n = u32::try_from(*failures).unwrap_or(u32::MAX);
        if let Some(at) = policy.retry_at(n, *last, now) {
            wait = wait.max(at - now);
        }
    }
    if wait > Duration::ZERO {
        Err(wait)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_count_by_host_or_ipv6_block() {
        assert_eq!(address_key("192.0.2.7"), "192.0.2.7");
        assert_eq!(address_key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(address_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(
            address_key("2001:db8:1:2:ffff::9"),
            address_key("2001:db8:1:2::1"),
            "one /64 is one host"
        );
        assert_ne!(
            address_key("2001:db8:1:3::1"),
            address_key("2001:db8:1:2::1")
        );
    }

    #[test]
    fn familiar_addresses_skip_the_account_wide_counter() {
        assert_eq!(signin_keys("ada", "192.0.2.7", true).len(), 2);
        let k = signin_keys("ada", "192.0.2.7", false);
        assert_eq!(
            k,
            vec!["ip:192.0.2.7", "acct_ip:ada|192.0.2.7", "account:ada"]
        );
        assert!(ThrottleKey::cleared_by_success("account:ada"));
        assert!(!ThrottleKey::cleared_by_success("ip:192.0.2.7"));
    }

    #[test]
    fn admission_follows_the_tightest_counter() {
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let c = |k: &str, n: i64| (k.to_owned(), n, t0);
        assert_eq!(admit(&[c("ip:x", 20), c("acct_ip:a|x", 5)], t0), Ok(()));
        assert_eq!(admit(&[c("acct_ip:a|x", 6)], t0), Err(Duration::seconds(1)));
        assert_eq!(
            admit(&[c("ip:x", 21), c("acct_ip:a|x", 7)], t0),
            Err(Duration::seconds(2))
        );
        assert_eq!(
            admit(&[c("acct_ip:a|x", 7)], t0 + Duration::seconds(3)),
            Ok(())
        );
        assert_eq!(admit(&[], t0), Ok(()));
    }

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
