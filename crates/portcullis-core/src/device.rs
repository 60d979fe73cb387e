//! The device authorization grant (RFC 8628) and refresh tokens: the rules, without I/O.
//!
//! Invariants:
//! - A user code is 8 letters from an alphabet without vowels or look-alikes (RFC 8628 §6.1:
//!   20^8 ≈ 2^34.6 codes; guessing is further bounded by the device code's lifetime and the
//!   approval endpoint's authentication), shown as `XXXX-XXXX`; input is normalised
//!   (case, dashes, spaces) before comparison.
//! - Polling faster than the interval answers `slow_down` and raises the interval by 5 s
//!   (RFC 8628 §3.5); an expired code answers `expired_token` whatever its state; an approved
//!   code yields tokens once.
//! - A refresh token ends at the earlier of its idle deadline (renewed at each rotation) and the
//!   absolute deadline of its family (fixed at sign-in).

use time::{Duration, OffsetDateTime};

/// The CLI's client id: a public client (no secret), allowed the device grant only.
pub const CLI_CLIENT_ID: &str = "portcullis-cli";

/// Letters that cannot form words or be mistaken for digits (RFC 8628 §6.1).
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// RFC 8628 §3.2's default interval.
pub const DEFAULT_INTERVAL_SECONDS: i64 = 5;

/// A user code from 8 random bytes, `XXXX-XXXX`. The modulo bias of 256 % 20 is 16/256 per
/// letter, which keeps about 34 of the 34.6 bits.
pub fn user_code_from_bytes(bytes: [u8; 8]) -> String {
    let letters: String = bytes
        .iter()
        .map(|b| USER_CODE_ALPHABET[usize::from(*b) % USER_CODE_ALPHABET.len()] as char)
        .collect();
    format!("{}-{}", &letters[..4], &letters[4..])
}

/// The canonical form of what a person typed, or `None` if it cannot be a user code.
pub fn normalize_user_code(input: &str) -> Option<String> {
    if input.len() > 32 {
        return None;
    }
    let letters: String = input
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if letters.len() != 8 || !letters.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)) {
        return None;
    }
    Some(format!("{}-{}", &letters[..4], &letters[4..]))
}

/// Where a device authorization stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    Pending,
    Approved,
    Denied,
    /// Its tokens were issued.
    Consumed,
}

impl DeviceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Consumed => "consumed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "approved" => Some(Self::Approved),
            "denied" => Some(Self::Denied),
            "consumed" => Some(Self::Consumed),
            _ => None,
        }
    }
}

/// The answer to one poll of the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollAnswer {
    /// `expired_token`.
    Expired,
    /// `slow_down`: the interval grows by 5 s.
    SlowDown,
    /// `authorization_pending`.
    Pending,
    /// `access_denied`.
    Denied,
    /// Issue the tokens (once).
    Issue,
    /// `invalid_grant`: the code was used already.
    Used,
}

impl PollAnswer {
    /// The RFC 8628 / RFC 6749 error code, for every answer but `Issue`.
    pub fn error(self) -> Option<&'static str> {
        match self {
            Self::Expired => Some("expired_token"),
            Self::SlowDown => Some("slow_down"),
            Self::Pending => Some("authorization_pending"),
            Self::Denied => Some("access_denied"),
            Self::Used => Some("invalid_grant"),
            Self::Issue => None,
        }
    }
}

/// What a poll at `now` gets.
pub fn poll(
    state: DeviceState,
    expires_at: OffsetDateTime,
    last_poll: Option<OffsetDateTime>,
    interval: Duration,
    now: OffsetDateTime,
) -> PollAnswer {
    if state == DeviceState::Consumed {
        return PollAnswer::Used;
    }
    if now >= expires_at {
        return PollAnswer::Expired;
    }
    if last_poll.is_some_and(|last| now - last < interval) {
        return PollAnswer::SlowDown;
    }
    match state {
        DeviceState::Pending => PollAnswer::Pending,
        DeviceState::Denied => PollAnswer::Denied,
        DeviceState::Approved => PollAnswer::Issue,
        DeviceState::Consumed => PollAnswer::Used,
    }
}

/// Lifetimes of refresh tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshLifetimes {
    /// A token unused this long ends (each rotation starts a new idle period).
    pub idle: Duration,
    /// A family (everything since one sign-in) ends this long after the sign-in.
    pub absolute: Duration,
}

impl Default for RefreshLifetimes {
    fn default() -> Self {
        Self {
            idle: Duration::hours(12),
            absolute: Duration::days(7),
        }
    }
}

impl RefreshLifetimes {
    /// The idle deadline of a token issued at `now` in a family that ends at `family_end`.
    pub fn token_expiry(&self, now: OffsetDateTime, family_end: OffsetDateTime) -> OffsetDateTime {
        (now + self.idle).min(family_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).expect("time")
    }

    #[test]
    fn user_codes_are_readable_and_normalised() {
        let c = user_code_from_bytes([0, 1, 2, 3, 19, 20, 255, 7]);
        assert_eq!(c, "BCDF-ZBTK");
        assert_eq!(normalize_user_code("bcdf zbtk"), Some(c.clone()));
        assert_eq!(normalize_user_code("bcdfzbtk"), Some(c.clone()));
        assert_eq!(normalize_user_code(" BCDF-ZBTK "), Some(c));
        for bad in [
            "",
            "BCDF-ZBX",
            "BCDF-ZBXJK",
            "ABCD-EFGH",
            "BCDF-ZBX1",
            "ééééééé",
            &"B".repeat(40),
        ] {
            assert_eq!(normalize_user_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn polling_follows_rfc_8628() {
        let five = Duration::seconds(5);
        let exp = t(600);
        assert_eq!(
            poll(DeviceState::Pending, exp, None, five, t(0)),
            PollAnswer::Pending
        );
        assert_eq!(
            poll(DeviceState::Pending, exp, Some(t(0)), five, t(4)),
            PollAnswer::SlowDown
        );
        assert_eq!(
            poll(DeviceState::Pending, exp, Some(t(0)), five, t(5)),
            PollAnswer::Pending
        );
        assert_eq!(
            poll(DeviceState::Approved, exp, Some(t(0)), five, t(6)),
            PollAnswer::Issue
        );
        assert_eq!(
            poll(DeviceState::Denied, exp, None, five, t(6)),
            PollAnswer::Denied
        );
        assert_eq!(
            poll(DeviceState::Approved, exp, None, five, t(600)),
            PollAnswer::Expired
        );
        assert_eq!(
            poll(DeviceState::Consumed, exp, None, five, t(10)),
            PollAnswer::Used
        );
        assert_eq!(
            poll(DeviceState::Consumed, exp, None, five, t(700)),
            PollAnswer::Used
        );
        assert_eq!(PollAnswer::SlowDown.error(), Some("slow_down"));
        assert_eq!(PollAnswer::Issue.error(), None);
    }

    #[test]
    fn refresh_tokens_never_outlive_their_family() {
        let l = RefreshLifetimes::default();
        assert_eq!(l.token_expiry(t(0), t(7 * 86_400)), t(12 * 3600));
        assert_eq!(
            l.token_expiry(t(7 * 86_400 - 60), t(7 * 86_400)),
            t(7 * 86_400)
        );
    }
}
