//! Tests of the request state machine, step-up, request shape, grant ends and approvals.

use super::*;
use crate::error::ErrorCode;
use crate::roles::RoleSettings;
use crate::session::AuthStrength;
use proptest::prelude::*;
use time::{Duration, OffsetDateTime};

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
    let s =
        RoleSettings::defaults_for(Some(crate::roles::BuiltinRole::PrivilegedRoleAdministrator));
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
        role_strength: AuthStrength::Mfa,
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
        role_strength: AuthStrength::Mfa,
    };
    assert_eq!(
        check_approval("u_alice", &sa, &[]),
        Err(ApprovalError::NotAPerson)
    );
}

#[test]
fn approving_needs_the_strength_activating_needs() {
    let carol = |strength| Approver {
        id: "u_carol",
        person: true,
        strength,
        listed: true,
        role_strength: AuthStrength::PhishingResistant,
    };
    assert_eq!(
        check_approval("u_alice", &carol(AuthStrength::Mfa), &[]),
        Err(ApprovalError::ApproverNeedsStrength(
            AuthStrength::PhishingResistant
        ))
    );
    assert_eq!(
        ApprovalError::ApproverNeedsStrength(AuthStrength::PhishingResistant).code(),
        crate::error::ErrorCode::StepUpRequired
    );
    assert_eq!(
        check_approval("u_alice", &carol(AuthStrength::PhishingResistant), &[]),
        Ok(())
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

#[test]
fn durations_are_said_in_words() {
    use super::request::in_words;
    use time::Duration;
    assert_eq!(in_words(Duration::hours(1)), "1 h");
    assert_eq!(in_words(Duration::minutes(45)), "45 min");
    assert_eq!(in_words(Duration::minutes(90)), "1 h 30 min");
    assert_eq!(in_words(Duration::seconds(90)), "90 s");
    assert_eq!(
        ActivationError::DurationTooLong {
            max: Duration::hours(1)
        }
        .to_string(),
        "this role can be activated for at most 1 h (3600 seconds)"
    );
}
