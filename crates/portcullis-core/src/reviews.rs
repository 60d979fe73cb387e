//! Access reviews: the pure rules. A *review* names a role (at a scope), who reviews, how often
//! a *round* opens and how long it stays open, and the decision an item gets when nobody made
//! one. A round lists every live eligible and active assignment of the role in its reach (one
//! *item* each); reviewers decide keep or remove with a reason; at the close the undecided
//! items get the default and every removal is applied.
//!
//! Invariants (each with a unit test below; the server runs exactly these functions):
//! - Nobody reviews their own access: an item whose principal is the reviewer, or a group the
//!   reviewer belongs to, is refused before anything else ([`check_decision`],
//!   `ReviewRefusal::SelfReview`), however the reviewer is named.
//! - Reviewers are people with at least `mfa`: never service accounts or break-glass accounts.
//!   A reviewer group must be role-assignable (checked by the server, like approver groups):
//!   ordinary groups are Helpdesk's to change and must never confer review power.
//! - A decision is made once, while the round is open (the first decision is final).
//! - A default never removes a break-glass account's assignment ([`final_decision`]); an
//!   explicit removal of one still meets the two-account minimum when it is applied.
//! - Rounds of one review never overlap: `every` is at least [`MIN_EVERY`] and at least the
//!   round's `duration`; the reminder goes out once, when a quarter of the round is left.

use thiserror::Error;
use time::{Duration, OffsetDateTime};

use crate::error::ErrorCode;
use crate::principal::PrincipalName;
use crate::session::AuthStrength;

/// How long a round stays open unless the review says otherwise.
pub const DEFAULT_DURATION: Duration = Duration::days(14);
/// The shortest time between two rounds of a recurring review.
pub const MIN_EVERY: Duration = Duration::hours(1);
/// The longest a round may stay open.
pub const MAX_DURATION: Duration = Duration::days(365);
/// Longest reason accepted with a decision.
pub const MAX_REASON: usize = 500;

/// Why a review's definition or a decision is refused (a `400`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReviewError {
    #[error("reviewers must be group:NAME (a role-assignable group), user:NAME or managers")]
    BadReviewers,
    #[error("fallback must be group:NAME (a role-assignable group) or user:NAME")]
    BadFallback,
    #[error(
        "a managers review needs a fallback (group:NAME or user:NAME) for principals without a manager"
    )]
    FallbackNeeded,
    #[error("a fallback is only for managers reviews")]
    FallbackUnexpected,
    #[error("default must be keep or remove")]
    BadDefault,
    #[error("decision must be keep or remove")]
    BadDecision,
    #[error("duration {0:?} must be a positive number with a unit: 90s, 15m, 8h or 30d")]
    BadDuration(String),
    #[error("every must be at least 1h")]
    EveryTooShort,
    #[error("a round may stay open at most 365d")]
    DurationTooLong,
    #[error("a round cannot stay open longer than the time between rounds (duration > every)")]
    DurationOverEvery,
    #[error(
        "reason is required: at most 500 characters without control, bidirectional or invisible characters"
    )]
    BadReason,
}

/// One reviewer: a role-assignable group or a person, written `group:NAME` / `user:NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reviewer {
    Group(String),
    User(String),
}

impl Reviewer {
    /// `group:NAME` or `user:NAME` (names validated like every principal name).
    pub fn parse(s: &str) -> Option<Self> {
        let (kind, name) = s.split_once(':')?;
        let name = PrincipalName::parse("reviewer", name).ok()?;
        match kind {
            "group" => Some(Self::Group(name.as_str().to_owned())),
            "user" => Some(Self::User(name.as_str().to_owned())),
            _ => None,
        }
    }

    /// The wire and storage form, also an outbox recipient (`user:NAME`, `group:NAME`).
    pub fn label(&self) -> String {
        match self {
            Self::Group(n) => format!("group:{n}"),
            Self::User(n) => format!("user:{n}"),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Group(n) | Self::User(n) => n,
        }
    }
}

/// Who reviews a review's items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reviewers {
    /// Everyone named (a person, or the members of a role-assignable group).
    One(Reviewer),
    /// Each principal's manager; `fallback` for principals without one (groups, people
    /// without a manager).
    Managers { fallback: Reviewer },
}

impl Reviewers {
    /// `group:NAME`, `user:NAME` or `managers` (which needs `fallback`).
    pub fn parse(reviewers: &str, fallback: Option<&str>) -> Result<Self, ReviewError> {
        let fallback = fallback
            .map(|f| Reviewer::parse(f).ok_or(ReviewError::BadFallback))
            .transpose()?;
        match (reviewers, fallback) {
            ("managers", Some(fallback)) => Ok(Self::Managers { fallback }),
            ("managers", None) => Err(ReviewError::FallbackNeeded),
            (_, Some(_)) if Reviewer::parse(reviewers).is_some() => {
                Err(ReviewError::FallbackUnexpected)
            }
            (other, None) => Reviewer::parse(other)
                .map(Self::One)
                .ok_or(ReviewError::BadReviewers),
            (_, Some(_)) => Err(ReviewError::BadReviewers),
        }
    }

    /// The stored form: `group:NAME`, `user:NAME` or `managers`.
    pub fn label(&self) -> String {
        match self {
            Self::One(r) => r.label(),
            Self::Managers { .. } => "managers".to_owned(),
        }
    }

    pub fn fallback(&self) -> Option<&Reviewer> {
        match self {
            Self::One(_) => None,
            Self::Managers { fallback } => Some(fallback),
        }
    }

    /// Every reviewer the definition names (the fallback included), to check they exist.
    pub fn named(&self) -> Vec<&Reviewer> {
        match self {
            Self::One(r) => vec![r],
            Self::Managers { fallback } => vec![fallback],
        }
    }

    /// The reviewer of an item whose principal has `manager` (an enabled person other than
    /// the principal, or `None`).
    pub fn reviewer_for(&self, manager: Option<&str>) -> Reviewer {
        match (self, manager) {
            (Self::One(r), _) => r.clone(),
            (Self::Managers { .. }, Some(m)) => Reviewer::User(m.to_owned()),
            (Self::Managers { fallback }, None) => fallback.clone(),
        }
    }
}

/// A reviewer's decision on an item (and a review's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    Keep,
    Remove,
}

impl Decision {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "keep" => Some(Self::Keep),
            "remove" => Some(Self::Remove),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keep => "keep",
            Self::Remove => "remove",
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A round's state: open until it closes (its decisions applied) or is cancelled (its review
/// deleted while it was open: nothing applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoundState {
    Open,
    Closed,
    Cancelled,
}

impl RoundState {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(Self::Open),
            "closed" => Some(Self::Closed),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// A duration of a review (`90d`, `14d`, `8h`), as role settings write them.
pub fn parse_duration(s: &str) -> Result<Duration, ReviewError> {
    crate::roles::parse_duration(s)
        .map_err(|_| ReviewError::BadDuration(s.chars().take(40).collect()))
}

/// A review's schedule: rounds every `every` (`None`: one round at a time, opened on request)
/// staying open `duration`.
pub fn check_schedule(every: Option<Duration>, duration: Duration) -> Result<(), ReviewError> {
    if duration > MAX_DURATION {
        return Err(ReviewError::DurationTooLong);
    }
    if let Some(every) = every {
        if every < MIN_EVERY {
            return Err(ReviewError::EveryTooShort);
        }
        if duration > every {
            return Err(ReviewError::DurationOverEvery);
        }
    }
    Ok(())
}

/// When a round opened at `opened` and closing at `closes` reminds its reviewers: when a
/// quarter of it is left.
pub fn reminder_at(opened: OffsetDateTime, closes: OffsetDateTime) -> OffsetDateTime {
    closes - (closes - opened) / 4
}

/// A decision's reason: trimmed, required, one line of at most [`MAX_REASON`] characters.
pub fn check_reason(raw: &str) -> Result<String, ReviewError> {
    let r = raw.trim();
    if r.is_empty() || r.chars().count() > MAX_REASON || crate::text::has_invisible(r) {
        return Err(ReviewError::BadReason);
    }
    Ok(r.to_owned())
}

/// The decision an item ends its round with, and whether it was the default: a reviewer's if
/// there is one; otherwise the review's default, except that a default never removes a
/// break-glass account's assignment (`emergency`): that one is kept.
pub fn final_decision(
    decided: Option<Decision>,
    default: Decision,
    emergency: bool,
) -> (Decision, bool) {
    match decided {
        Some(d) => (d, false),
        None if emergency => (Decision::Keep, true),
        None => (default, true),
    }
}

/// What [`check_decision`] needs to know about a decision.
#[derive(Debug, Clone, Copy)]
pub struct DecisionFacts {
    /// The item's principal is the reviewer, or a group the reviewer belongs to.
    pub own: bool,
    /// The reviewer is a person (a user, not a break-glass account).
    pub person: bool,
    /// The reviewer is the item's reviewer (by name, or through a role-assignable group).
    pub listed: bool,
    /// The reviewer's sign-in strength.
    pub strength: AuthStrength,
    /// The round is open.
    pub open: bool,
    /// The item was decided already.
    pub decided: bool,
}

/// Why a decision is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ReviewRefusal {
    #[error("nobody reviews their own access; another reviewer decides this item")]
    SelfReview,
    #[error("service accounts and break-glass accounts review nothing; only people do")]
    NotAPerson,
    #[error("you are not a reviewer of this item")]
    NotAReviewer,
    #[error("deciding a review item needs a sign-in with a second factor")]
    NeedsMfa,
    #[error("this review round is closed")]
    Closed,
    #[error("this item was decided already")]
    AlreadyDecided,
}

impl ReviewRefusal {
    /// The stable code the API answers with.
    pub fn code(self) -> ErrorCode {
        match self {
            Self::SelfReview => ErrorCode::SelfReview,
            Self::NotAPerson | Self::NotAReviewer | Self::NeedsMfa => ErrorCode::Forbidden,
            Self::Closed => ErrorCode::Conflict,
            Self::AlreadyDecided => ErrorCode::AlreadyDecided,
        }
    }
}

/// Whether a decision may be recorded (see the module's invariants; self-review first, so that
/// being listed never makes it allowed).
pub fn check_decision(f: &DecisionFacts) -> Result<(), ReviewRefusal> {
    if f.own {
        return Err(ReviewRefusal::SelfReview);
    }
    if !f.person {
        return Err(ReviewRefusal::NotAPerson);
    }
    if !f.listed {
        return Err(ReviewRefusal::NotAReviewer);
    }
    if f.strength < AuthStrength::Mfa {
        return Err(ReviewRefusal::NeedsMfa);
    }
    if !f.open {
        return Err(ReviewRefusal::Closed);
    }
    if f.decided {
        return Err(ReviewRefusal::AlreadyDecided);
    }
    Ok(())
}

/// Whether a person named `name`, member of the role-assignable `groups`, is `reviewer`.
pub fn is_reviewer(name: &str, groups: &[String], reviewer: &Reviewer) -> bool {
    match reviewer {
        Reviewer::User(n) => n == name,
        Reviewer::Group(g) => groups.iter().any(|x| x == g),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> DecisionFacts {
        DecisionFacts {
            own: false,
            person: true,
            listed: true,
            strength: AuthStrength::Mfa,
            open: true,
            decided: false,
        }
    }

    #[test]
    fn reviewers_are_a_group_a_person_or_managers_with_a_fallback() {
        assert_eq!(
            Reviewers::parse("group:ga-reviewers", None),
            Ok(Reviewers::One(Reviewer::Group("ga-reviewers".into())))
        );
        assert_eq!(
            Reviewers::parse("user:bob", None),
            Ok(Reviewers::One(Reviewer::User("bob".into())))
        );
        assert_eq!(
            Reviewers::parse("managers", Some("group:audit")),
            Ok(Reviewers::Managers {
                fallback: Reviewer::Group("audit".into())
            })
        );
        assert_eq!(
            Reviewers::parse("managers", None),
            Err(ReviewError::FallbackNeeded)
        );
        assert_eq!(
            Reviewers::parse("user:bob", Some("user:carol")),
            Err(ReviewError::FallbackUnexpected)
        );
        for bad in [
            "bob",
            "role:x",
            "group:",
            "group:Bad Name",
            "service_account:x",
            "",
            "managers:x",
        ] {
            assert_eq!(
                Reviewers::parse(bad, None),
                Err(ReviewError::BadReviewers),
                "{bad}"
            );
        }
        assert_eq!(
            Reviewers::parse("managers", Some("managers")),
            Err(ReviewError::BadFallback)
        );
        let m = Reviewers::parse("managers", Some("user:carol")).expect("managers");
        assert_eq!(m.label(), "managers");
        assert_eq!(m.reviewer_for(Some("dan")), Reviewer::User("dan".into()));
        assert_eq!(m.reviewer_for(None), Reviewer::User("carol".into()));
        let g = Reviewers::parse("group:g", None).expect("group");
        assert_eq!(g.reviewer_for(Some("dan")).label(), "group:g");
    }

    #[test]
    fn nobody_reviews_their_own_access_even_when_listed() {
        let own = DecisionFacts {
            own: true,
            ..facts()
        };
        assert_eq!(check_decision(&own), Err(ReviewRefusal::SelfReview));
        assert_eq!(ReviewRefusal::SelfReview.code(), ErrorCode::SelfReview);
        // Self-review is named first, whatever else is wrong.
        let own_closed = DecisionFacts {
            own: true,
            open: false,
            decided: true,
            ..facts()
        };
        assert_eq!(check_decision(&own_closed), Err(ReviewRefusal::SelfReview));
        assert_eq!(check_decision(&facts()), Ok(()));
    }

    #[test]
    fn reviewers_are_listed_people_with_mfa_on_open_undecided_items() {
        let cases = [
            (
                DecisionFacts {
                    person: false,
                    ..facts()
                },
                ReviewRefusal::NotAPerson,
            ),
            (
                DecisionFacts {
                    listed: false,
                    ..facts()
                },
                ReviewRefusal::NotAReviewer,
            ),
            (
                DecisionFacts {
                    strength: AuthStrength::Password,
                    ..facts()
                },
                ReviewRefusal::NeedsMfa,
            ),
            (
                DecisionFacts {
                    open: false,
                    ..facts()
                },
                ReviewRefusal::Closed,
            ),
            (
                DecisionFacts {
                    decided: true,
                    ..facts()
                },
                ReviewRefusal::AlreadyDecided,
            ),
        ];
        for (f, refusal) in cases {
            assert_eq!(check_decision(&f), Err(refusal), "{f:?}");
        }
        let strong = DecisionFacts {
            strength: AuthStrength::PhishingResistant,
            ..facts()
        };
        assert_eq!(check_decision(&strong), Ok(()));
    }

    #[test]
    fn only_role_assignable_groups_passed_in_make_a_reviewer() {
        let g = Reviewer::Group("reviewers".into());
        assert!(is_reviewer("ann", &["reviewers".into()], &g));
        assert!(!is_reviewer("ann", &["others".into()], &g));
        assert!(is_reviewer("ann", &[], &Reviewer::User("ann".into())));
        assert!(!is_reviewer("bob", &[], &Reviewer::User("ann".into())));
    }

    #[test]
    fn a_default_never_removes_a_breakglass_account() {
        assert_eq!(
            final_decision(None, Decision::Remove, false),
            (Decision::Remove, true)
        );
        assert_eq!(
            final_decision(None, Decision::Remove, true),
            (Decision::Keep, true)
        );
        assert_eq!(
            final_decision(None, Decision::Keep, false),
            (Decision::Keep, true)
        );
        // An explicit decision stands (its application meets the two-account minimum).
        assert_eq!(
            final_decision(Some(Decision::Remove), Decision::Keep, true),
            (Decision::Remove, false)
        );
        assert_eq!(
            final_decision(Some(Decision::Keep), Decision::Remove, false),
            (Decision::Keep, false)
        );
    }

    #[test]
    fn rounds_never_overlap_and_remind_with_a_quarter_left() {
        let d = |s: &str| parse_duration(s).expect("duration");
        assert_eq!(check_schedule(Some(d("90d")), d("14d")), Ok(()));
        assert_eq!(check_schedule(None, d("2s")), Ok(()));
        assert_eq!(
            check_schedule(Some(d("30m")), d("1m")),
            Err(ReviewError::EveryTooShort)
        );
        assert_eq!(
            check_schedule(Some(d("7d")), d("14d")),
            Err(ReviewError::DurationOverEvery)
        );
        assert_eq!(
            check_schedule(None, d("400d")),
            Err(ReviewError::DurationTooLong)
        );
        for bad in [
            "",
            "90",
            "d",
            "0d",
            "-1d",
            "1w",
            "9999999999999999999d",
            "1\u{200b}d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        let opened = OffsetDateTime::UNIX_EPOCH;
        let closes = opened + Duration::days(14);
        assert_eq!(reminder_at(opened, closes), opened + Duration::hours(252));
    }

    #[test]
    fn decisions_and_reasons_are_checked() {
        assert_eq!(Decision::parse("keep"), Some(Decision::Keep));
        assert_eq!(Decision::parse("remove"), Some(Decision::Remove));
        assert_eq!(Decision::parse("Remove"), None);
        assert_eq!(
            check_reason("  still on call  "),
            Ok("still on call".into())
        );
        for bad in ["", "   ", "a\u{202e}b", "line\nbreak"] {
            assert_eq!(check_reason(bad), Err(ReviewError::BadReason), "{bad:?}");
        }
        assert_eq!(check_reason(&"x".repeat(501)), Err(ReviewError::BadReason));
        assert!(check_reason(&"x".repeat(500)).is_ok());
        for s in [RoundState::Open, RoundState::Closed, RoundState::Cancelled] {
            assert_eq!(RoundState::parse(s.as_str()), Some(s));
        }
    }
}
