//! Target rules: how often a failed target operation is tried again, and how the state a
//! target holds compares with the state Portcullis wants (drift).
//!
//! Invariants:
//! - A revoke is retried without limit (a right left in a target is the worst failure of this
//!   product); a grant is dead-lettered after [`GRANT_ATTEMPTS`] attempts since its budget
//!   began. Retries back off from 1 s, doubling, to at most [`MAX_BACKOFF_SECONDS`], so a
//!   target that comes back is caught up within a minute.
//! - [`diff`] is exact: what is wanted and not held is missing, what is held and not wanted is
//!   extra (drift); duplicates count once.

use std::collections::BTreeSet;

use time::Duration;

/// Attempts a grant gets before it is dead-lettered (a revoke is never).
pub const GRANT_ATTEMPTS: i64 = 8;
/// The longest wait between two attempts.
pub const MAX_BACKOFF_SECONDS: i64 = 60;

/// The wait after failed attempt number `attempt` (1-based).
pub fn backoff(attempt: i64) -> Duration {
    let exp = attempt.saturating_sub(1).clamp(0, 6) as u32;
    Duration::seconds((1i64 << exp).min(MAX_BACKOFF_SECONDS))
}

/// Whether a failed operation is tried again: revokes always, grants within their budget
/// (`attempts_in_budget` counts the attempts since the budget began, this one included).
pub fn retries(op_is_revoke: bool, attempts_in_budget: i64) -> bool {
    op_is_revoke || attempts_in_budget < GRANT_ATTEMPTS
}

/// Wanted but not held (`missing`), and held but not wanted (`extra`, drift), each sorted.
pub fn diff<T: Ord + Clone>(wanted: &[T], held: &[T]) -> (Vec<T>, Vec<T>) {
    let wanted: BTreeSet<&T> = wanted.iter().collect();
    let held: BTreeSet<&T> = held.iter().collect();
    (
        wanted.difference(&held).map(|t| (*t).clone()).collect(),
        held.difference(&wanted).map(|t| (*t).clone()).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_a_minute() {
        let waits: Vec<i64> = (1..=9).map(|n| backoff(n).whole_seconds()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(0).whole_seconds(), 1);
        assert_eq!(backoff(i64::MAX).whole_seconds(), 60);
    }

    #[test]
    fn revokes_are_retried_forever_grants_within_their_budget() {
        assert!(retries(true, 1_000_000));
        assert!(retries(false, GRANT_ATTEMPTS - 1));
        assert!(!retries(false, GRANT_ATTEMPTS));
    }

    #[test]
    fn diff_names_missing_and_extra_exactly() {
        let wanted = ["a", "b", "b", "c"];
        let held = ["b", "c", "d", "d"];
        assert_eq!(diff(&wanted, &held), (vec!["a"], vec!["d"]));
        assert_eq!(diff::<&str>(&[], &[]), (vec![], vec![]));
    }
}
