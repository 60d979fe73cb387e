//! Activation requests as a pure state machine, and the rules for asking and approving.
//!
//! States: `pending_approval → active | denied | cancelled | timed_out` and
//! `active → expired | deactivated | revoked`; the last six are terminal.
//!
//! Invariants:
//! - A role is activated only with the strength its settings require, proven within the last
//!   15 minutes; otherwise `step_up_required` names the strength needed.
//! - Nobody approves their own request, not even as a member of an approver group; the
//!   approver must be signed in with at least `mfa`; N-of-M counts distinct people.
//! - A grant never outlives the eligible assignment it came from.

use time::{Duration, OffsetDateTime};

use crate::error::ErrorCode;
use crate::roles::RoleSettings;
use crate::session::AuthStrength;

/// How recent the strong factor of the requesting session must be.
pub const STEP_UP_WINDOW: Duration = Duration::minutes(15);
/// A request not decided within this time times out.
pub const APPROVAL_TIMEOUT: Duration = Duration::hours(24);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestState {
    PendingApproval,
    Active,
    Denied,
    Cancelled,
    TimedOut,
    Expired,
    Deactivated,
    Revoked,
}

impl RequestState {
    pub const ALL: [RequestState; 8] = [
        Self::PendingApproval,
        Self::Active,
        Self::Denied,
        Self::Cancelled,
        Self::TimedOut,
        Self::Expired,
        Self::Deactivated,
        Self::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingApproval => "pending_approval",
            Self::Active => "active",
            Self::Denied => "denied",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
            Self::Expired => "expired",
            Self::Deactivated => "deactivated",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::PendingApproval | Self::Active)
    }
}

impl std::fmt::Display for RequestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What can happen to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestEvent {
    /// One more approval; `approvals_now` counts it.
    Approve {
        approvals_now: u32,
        required: u32,
    },
    Deny,
    Cancel,
    TimeOut,
    Expire,
    Deactivate,
    Revoke,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a request that is {from} cannot be {event}")]
pub struct TransitionError {
    pub from: &'static str,
    pub event: &'static str,
}

fn event_name(ev: &RequestEvent) -> &'static str {
    match ev {
        RequestEvent::Approve { .. } => "approved",
        RequestEvent::Deny => "denied",
        RequestEvent::Cancel => "cancelled",
        RequestEvent::TimeOut => "timed out",
        RequestEvent::Expire => "expired",
        RequestEvent::Deactivate => "deactivated",
        RequestEvent::Revoke => "revoked",
    }
}

/// The state after `ev`, or why it cannot happen.
pub fn transition(from: RequestState, ev: &RequestEvent) -> Result<RequestState, TransitionError> {
    use RequestEvent as E;
    use RequestState as S;
    let to = match (from, ev) {
        (
            S::PendingApproval,
            E::Approve {
                approvals_now,
                required,
            },
        ) => {
            if approvals_now >= required {
                S::Active
            } else {
                S::PendingApproval
            }
        }
        (S::PendingApproval, E::Deny) => S::Denied,
        (S::PendingApproval, E::Cancel) => S::Cancelled,
        (S::PendingApproval, E::TimeOut) => S::TimedOut,
        (S::Active, E::Expire) => S::Expired,
        (S::Active, E::Deactivate) => S::Deactivated,
        (S::Active, E::Revoke) => S::Revoked,
        _ => {
            return Err(TransitionError {
                from: from.as_str(),
                event: event_name(ev),
            });
        }
    };
    Ok(to)
}

/// The session asking for an activation.
#[derive(Debug, Clone, Copy)]
pub struct SessionFacts {
    pub strength: AuthStrength,
    /// When the second factor was last proven in this session.
    pub strong_auth_at: Option<OffsetDateTime>,
}

/// What the requester asks for.
#[derive(Debug, Clone, Copy)]
pub struct ActivationInput<'a> {
    pub duration: Duration,
    pub justification: Option<&'a str>,
    pub ticket: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivationError {
    #[error("this role needs a {} sign-in within the last 15 minutes; sign in again and retry", needed.as_str())]
    StepUpRequired { needed: AuthStrength },
    #[error("the duration must be positive")]
    DurationNotPositive,
    #[error("this role can be activated for at most {} seconds", max.whole_seconds())]
    DurationTooLong { max: Duration },
    #[error("this role needs a justification")]
    JustificationRequired,
    #[error("this role needs a ticket number")]
    TicketRequired,
    #[error(
        "the justification must be at most 500 characters without control, bidirectional or invisible characters"
    )]
    JustificationTooLong,
    #[error("a ticket number is 1 to 64 letters, digits or _ . # / -")]
    TicketMalformed,
}

impl ActivationError {
    /// The stable code the server answers with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::StepUpRequired { .. } => ErrorCode::StepUpRequired,
            Self::DurationTooLong { .. } => ErrorCode::DurationTooLong,
            Self::JustificationRequired => ErrorCode::JustificationRequired,
            Self::TicketRequired => ErrorCode::TicketRequired,
            Self::DurationNotPositive | Self::JustificationTooLong | Self::TicketMalformed => {
                ErrorCode::InvalidRequest
            }
        }
    }
}

fn ticket_ok(t: &str) -> bool {
    let b = t.as_bytes();
    (1..=64).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'#' | b'/' | b'-'))
}

/// Checks a request against the role's settings and the session; the state it starts in.
pub fn check_activation(
    settings: &RoleSettings,
    session: &SessionFacts,
    input: &ActivationInput,
    now: OffsetDateTime,
) -> Result<RequestState, ActivationError> {
    if input.duration <= Duration::ZERO {
        return Err(ActivationError::DurationNotPositive);
    }
    let max = Duration::seconds(settings.max_activation);
    if input.duration > max {
        return Err(ActivationError::DurationTooLong { max });
    }
    match input.justification.map(str::trim) {
        Some(j) if j.chars().count() > 500 || crate::text::has_invisible(j) => {
            return Err(ActivationError::JustificationTooLong);
        }
        Some("") | None if settings.require_justification => {
            return Err(ActivationError::JustificationRequired);
        }
        _ => {}
    }
    match input.ticket {
        Some(t) if !ticket_ok(t) => return Err(ActivationError::TicketMalformed),
        None if settings.require_ticket => return Err(ActivationError::TicketRequired),
        _ => {}
    }
    let fresh = session
        .strong_auth_at
        .is_some_and(|at| now - at <= STEP_UP_WINDOW && at <= now);
    if session.strength < settings.required_strength || !fresh {
        return Err(ActivationError::StepUpRequired {
            needed: settings.required_strength,
        });
    }
    Ok(if settings.require_approval {
        RequestState::PendingApproval
    } else {
        RequestState::Active
    })
}

/// When a grant starting at `start` for `duration` ends: never after its eligibility.
pub fn grant_end(
    start: OffsetDateTime,
    duration: Duration,
    eligibility_end: Option<OffsetDateTime>,
) -> OffsetDateTime {
    let end = start + duration;
    match eligibility_end {
        Some(e) if e < end => e,
        _ => end,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    #[error("nobody approves their own request")]
    SelfApproval,
    #[error("you are not an approver of this role")]
    NotAnApprover,
    #[error("approvers must be signed in with a second factor")]
    ApproverNeedsMfa,
    #[error("you have already decided on this request")]
    AlreadyApproved,
    #[error("approvers are people; a service account never approves")]
    NotAPerson,
}

impl ApprovalError {
    /// The stable code the server answers with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::SelfApproval => ErrorCode::SelfApproval,
            Self::NotAnApprover | Self::NotAPerson => ErrorCode::Forbidden,
            Self::ApproverNeedsMfa => ErrorCode::StepUpRequired,
            Self::AlreadyApproved => ErrorCode::AlreadyDecided,
        }
    }
}

/// Who is deciding on a request.
#[derive(Debug, Clone, Copy)]
pub struct Approver<'a> {
    pub id: &'a str,
    /// A person (member or guest); service accounts never approve.
    pub person: bool,
    pub strength: AuthStrength,
    /// Named by the role's approvers, directly or through a role-assignable group.
    pub listed: bool,
}

/// Whether `approver` may add an approval to a request by `requester`.
pub fn check_approval(
    requester_id: &str,
    approver: &Approver,
    already_approved_by: &[String],
) -> Result<(), ApprovalError> {
    // Checked first: being listed (directly or through a group) never makes it allowed.
    if requester_id == approver.id {
        return Err(ApprovalError::SelfApproval);
    }
    if !approver.person {
        return Err(ApprovalError::NotAPerson);
    }
    let (approver_id, approver_strength) = (approver.id, approver.strength);
    if !approver.listed {
        return Err(ApprovalError::NotAnApprover);
    }
    if approver_strength < AuthStrength::Mfa {
        return Err(ApprovalError::ApproverNeedsMfa);
    }
    if already_approved_by.iter().any(|a| a == approver_id) {
        return Err(ApprovalError::AlreadyApproved);
    }
    Ok(())
}

/// Whether a person (by name, with the role-assignable groups they belong to) is among
/// `approvers`. Callers pass only role-assignable groups: membership of an ordinary group is
/// changed by Helpdesk, so it must never make anyone an approver (rule 4).
pub fn is_listed_approver(
    approver_name: &str,
    approver_groups: &[String],
    approvers: &[String],
) -> bool {
    approvers.iter().any(|a| match a.split_once(':') {
        Some(("user", n)) => n == approver_name,
        Some(("group", g)) => approver_groups.iter().any(|x| x == g),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time")
    }

    fn strong(at: OffsetDateTime) -> SessionFacts {
        SessionFacts {
            strength: AuthStrength::PhishingResistant,
            strong_auth_at: Some(at),
        }
    }

    fn input(secs: i64) -> ActivationInput<'static> {
        ActivationInput {
            duration: Duration::seconds(secs),
            justification: Some("incident 42"),
            ticket: None,
        }
    }

    #[test]
    fn transitions() {
        use RequestEvent as E;
        use RequestState as S;
        let approve = |n, r| E::Approve {
            approvals_now: n,
            required: r,
        };
        assert_eq!(
            transition(S::PendingApproval, &approve(1, 2)),
            Ok(S::PendingApproval)
        );
        assert_eq!(
            transition(S::PendingApproval, &approve(2, 2)),
            Ok(S::Active)
        );
        assert_eq!(transition(S::PendingApproval, &E::Deny), Ok(S::Denied));
        assert_eq!(transition(S::PendingApproval, &E::Cancel), Ok(S::Cancelled));
        assert_eq!(transition(S::PendingApproval, &E::TimeOut), Ok(S::TimedOut));
        assert_eq!(transition(S::Active, &E::Expire), Ok(S::Expired));
        assert_eq!(transition(S::Active, &E::Deactivate), Ok(S::Deactivated));
        assert_eq!(transition(S::Active, &E::Revoke), Ok(S::Revoked));
        assert!(transition(S::Cancelled, &approve(1, 1)).is_err());
        assert!(transition(S::Active, &approve(3, 1)).is_err());
        assert!(transition(S::PendingApproval, &E::Expire).is_err());
        let e = transition(S::Denied, &E::Cancel).expect_err("terminal");
        assert_eq!(
            e.to_string(),
            "a request that is denied cannot be cancelled"
        );
    }

    #[test]
    fn step_up_by_strength_and_age() {
        let s = RoleSettings::defaults_for(Some(
            crate::roles::BuiltinRole::PrivilegedRoleAdministrator,
        ));
        let now = t0();
        let mfa = SessionFacts {
            strength: AuthStrength::Mfa,
            strong_auth_at: Some(now),
        };
        assert_eq!(
            check_activation(&s, &mfa, &input(3600), now),
            Err(ActivationError::StepUpRequired {
                needed: AuthStrength::PhishingResistant
            })
        );
        let stale = strong(now - STEP_UP_WINDOW - Duration::seconds(1));
        assert!(matches!(
            check_activation(&s, &stale, &input(3600), now),
            Err(ActivationError::StepUpRequired { .. })
        ));
        let fresh = strong(now - Duration::minutes(14));
        assert_eq!(
            check_activation(&s, &fresh, &input(3600), now),
            Ok(RequestState::Active)
        );
        let none = SessionFacts {
            strength: AuthStrength::PhishingResistant,
            strong_auth_at: None,
        };
        assert!(check_activation(&s, &none, &input(3600), now).is_err());
    }

    #[test]
    fn request_shape_errors() {
        let mut s = RoleSettings::defaults_for(None);
        let now = t0();
        let ok = strong(now);
        assert_eq!(
            check_activation(&s, &ok, &input(0), now),
            Err(ActivationError::DurationNotPositive)
        );
        assert_eq!(
            check_activation(&s, &ok, &input(-5), now),
            Err(ActivationError::DurationNotPositive)
        );
        assert!(matches!(
            check_activation(&s, &ok, &input(8 * 3600 + 1), now),
            Err(ActivationError::DurationTooLong { .. })
        ));
        let mut i = input(60);
        i.justification = Some("   ");
        assert_eq!(
            check_activation(&s, &ok, &i, now),
            Err(ActivationError::JustificationRequired)
        );
        i.justification = None;
        assert_eq!(
            check_activation(&s, &ok, &i, now),
            Err(ActivationError::JustificationRequired)
        );
        let long = "x".repeat(501);
        i.justification = Some(&long);
        assert_eq!(
            check_activation(&s, &ok, &i, now),
            Err(ActivationError::JustificationTooLong)
        );
        s.require_ticket = true;
        let i = input(60);
        assert_eq!(
            check_activation(&s, &ok, &i, now),
            Err(ActivationError::TicketRequired)
        );
        let mut i = input(60);
        i.ticket = Some("bad ticket");
        assert_eq!(
            check_activation(&s, &ok, &i, now),
            Err(ActivationError::TicketMalformed)
        );
        i.ticket = Some("INC-1234");
        assert_eq!(check_activation(&s, &ok, &i, now), Ok(RequestState::Active));
        s.require_approval = true;
        assert_eq!(
            check_activation(&s, &ok, &i, now),
            Ok(RequestState::PendingApproval)
        );
        assert_eq!(
            ActivationError::TicketRequired.code().as_str(),
            "ticket_required"
        );
        assert_eq!(
            ActivationError::DurationNotPositive.code(),
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn grants_end_with_their_eligibility() {
        let now = t0();
        assert_eq!(
            grant_end(now, Duration::hours(1), None),
            now + Duration::hours(1)
        );
        assert_eq!(
            grant_end(now, Duration::hours(1), Some(now + Duration::minutes(5))),
            now + Duration::minutes(5)
        );
        assert_eq!(
            grant_end(now, Duration::hours(1), Some(now + Duration::hours(2))),
            now + Duration::hours(1)
        );
    }

    #[test]
    fn approvals() {
        let groups = vec!["approvers".to_owned()];
        let approvers = vec!["group:approvers".to_owned(), "user:carol".to_owned()];
        assert!(is_listed_approver("alice", &groups, &approvers));
        assert!(is_listed_approver("carol", &[], &approvers));
        assert!(!is_listed_approver("dave", &[], &approvers));
        let who = |id, strength, listed| Approver {
            id,
            person: true,
            strength,
            listed,
        };
        // Alice is in the approver group, but it is her own request.
        assert_eq!(
            check_approval("u_alice", &who("u_alice", AuthStrength::Mfa, true), &[]),
            Err(ApprovalError::SelfApproval)
        );
        assert_eq!(
            check_approval("u_alice", &who("u_dave", AuthStrength::Mfa, false), &[]),
            Err(ApprovalError::NotAnApprover)
        );
        assert_eq!(
            check_approval(
                "u_alice",
                &who("u_carol", AuthStrength::Password, true),
                &[]
            ),
            Err(ApprovalError::ApproverNeedsMfa)
        );
        assert_eq!(
            check_approval(
                "u_alice",
                &who("u_carol", AuthStrength::Mfa, true),
                &["u_carol".to_owned()]
            ),
            Err(ApprovalError::AlreadyApproved)
        );
        assert_eq!(
            check_approval(
                "u_alice",
                &who("u_carol", AuthStrength::Mfa, true),
                &["u_bob".to_owned()]
            ),
            Ok(())
        );
    }

    #[test]
    fn service_accounts_never_approve() {
        let sa = Approver {
            id: "sa_sync",
            person: false,
            strength: AuthStrength::PhishingResistant,
            listed: true,
        };
        assert_eq!(
            check_approval("u_alice", &sa, &[]),
            Err(ApprovalError::NotAPerson)
        );
    }

    fn any_event() -> impl Strategy<Value = RequestEvent> {
        prop_oneof![
            (0u32..4, 1u32..4).prop_map(|(n, r)| RequestEvent::Approve {
                approvals_now: n,
                required: r
            }),
            Just(RequestEvent::Deny),
            Just(RequestEvent::Cancel),
            Just(RequestEvent::TimeOut),
            Just(RequestEvent::Expire),
            Just(RequestEvent::Deactivate),
            Just(RequestEvent::Revoke),
        ]
    }

    proptest! {
        #[test]
        fn terminal_states_refuse_everything(ev in any_event(), i in 2usize..8) {
            let s = RequestState::ALL[i];
            prop_assert!(s.is_terminal());
            prop_assert!(transition(s, &ev).is_err());
        }

        #[test]
        fn sequences_stay_valid(events in proptest::collection::vec(any_event(), 0..20)) {
            let mut s = RequestState::PendingApproval;
            for ev in &events {
                if let Ok(next) = transition(s, ev) {
                    prop_assert!(!s.is_terminal());
                    if next == RequestState::Active && s == RequestState::PendingApproval {
                        let enough = matches!(ev, RequestEvent::Approve { approvals_now, required } if approvals_now >= required);
                        prop_assert!(enough);
                    }
                    s = next;
                }
            }
        }
    }
}
