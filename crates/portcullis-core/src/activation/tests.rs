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
        completes_as: Completion::Activate,
    }
}

#[test]
fn transitions() {
    use RequestEvent as E;
    use RequestState as S;
    let approve = |n, r| E::Approve {
        approvals_now: n,
        required: r,
        completes_as: Completion::Activate,
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
    let complete = |completes_as| E::Approve {
        approvals_now: 1,
        required: 1,
        completes_as,
    };
    assert_eq!(
        transition(S::PendingApproval, &complete(Completion::Schedule)),
        Ok(S::Scheduled)
    );
    assert_eq!(
        transition(S::PendingApproval, &complete(Completion::Extend)),
        Ok(S::Applied)
    );
    assert_eq!(transition(S::Scheduled, &E::Start), Ok(S::Active));
    assert_eq!(transition(S::Scheduled, &E::Cancel), Ok(S::Cancelled));
    assert_eq!(transition(S::Scheduled, &E::Revoke), Ok(S::Revoked));
    assert!(transition(S::Scheduled, &E::Expire).is_err());
    assert!(transition(S::Scheduled, &E::Deactivate).is_err());
    assert!(transition(S::Active, &E::Start).is_err());
    assert!(transition(S::PendingApproval, &E::Start).is_err());
    assert!(transition(S::Applied, &E::Revoke).is_err());
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
        (
            0u32..4,
            1u32..4,
            prop_oneof![
                Just(Completion::Activate),
                Just(Completion::Schedule),
                Just(Completion::Extend)
            ]
        )
            .prop_map(|(n, r, completes_as)| RequestEvent::Approve {
                approvals_now: n,
                required: r,
                completes_as,
            }),
        Just(RequestEvent::Start),
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
    fn terminal_states_refuse_everything(ev in any_event(), i in 0usize..10) {
        let s = RequestState::ALL[i];
        prop_assume!(s.is_terminal());
        prop_assert!(transition(s, &ev).is_err());
    }

    #[test]
    fn sequences_stay_valid(events in proptest::collection::vec(any_event(), 0..20)) {
        let mut s = RequestState::PendingApproval;
        for ev in &events {
            if let Ok(next) = transition(s, ev) {
                prop_assert!(!s.is_terminal());
                // Leaving approval for anything that grants takes enough approvals.
                if s == RequestState::PendingApproval
                    && matches!(next, RequestState::Active | RequestState::Scheduled | RequestState::Applied)
                {
                    let enough = matches!(ev, RequestEvent::Approve { approvals_now, required, .. } if approvals_now >= required);
                    prop_assert!(enough);
                }
                // Only a start makes a scheduled request active.
                if s == RequestState::Scheduled && next == RequestState::Active {
                    prop_assert_eq!(ev, &RequestEvent::Start);
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

#[test]
fn a_role_without_approval_completes_as_asked() {
    let mut s = RoleSettings::defaults_for(None);
    s.require_approval = false;
    let now = t0();
    let mut i = input(600);
    i.completes_as = Completion::Schedule;
    assert_eq!(
        check_activation(&s, &strong(now), &i, now),
        Ok(RequestState::Scheduled)
    );
    i.completes_as = Completion::Extend;
    assert_eq!(
        check_activation(&s, &strong(now), &i, now),
        Ok(RequestState::Applied)
    );
    s.require_approval = true;
    assert_eq!(
        check_activation(&s, &strong(now), &i, now),
        Ok(RequestState::PendingApproval)
    );
}

mod scheduling {
    use super::*;
    use crate::activation::schedule::*;

    #[test]
    fn a_start_lies_ahead_within_thirty_days() {
        let now = t0();
        assert_eq!(
            check_start(now, now, None),
            Err(ScheduleError::StartNotInFuture)
        );
        assert_eq!(
            check_start(now - Duration::hours(1), now, None),
            Err(ScheduleError::StartNotInFuture)
        );
        assert_eq!(check_start(now + Duration::seconds(1), now, None), Ok(()));
        assert_eq!(check_start(now + MAX_SCHEDULE_AHEAD, now, None), Ok(()));
        assert_eq!(
            check_start(now + MAX_SCHEDULE_AHEAD + Duration::seconds(1), now, None),
            Err(ScheduleError::StartTooFar)
        );
    }

    #[test]
    fn an_eligibility_ending_before_the_start_refuses_it() {
        let now = t0();
        let start = now + Duration::days(2);
        assert_eq!(
            check_start(start, now, Some(start)),
            Err(ScheduleError::EligibilityEndsBeforeStart)
        );
        assert_eq!(
            check_start(start, now, Some(now + Duration::days(1))),
            Err(ScheduleError::EligibilityEndsBeforeStart)
        );
        assert_eq!(
            ScheduleError::EligibilityEndsBeforeStart.code(),
            ErrorCode::NotEligible
        );
        assert_eq!(
            check_start(start, now, Some(start + Duration::seconds(1))),
            Ok(())
        );
    }

    #[test]
    fn approval_of_a_scheduled_request_waits_for_its_start_but_not_past_its_window() {
        let now = t0();
        // Starting in two days: approvers have until the start.
        let start = now + Duration::days(2);
        assert_eq!(
            scheduled_approval_deadline(now, start, start + Duration::hours(1)),
            start
        );
        // Starting in ten minutes for an hour: the usual 24 h, cut at the window's end.
        let start = now + Duration::minutes(10);
        assert_eq!(
            scheduled_approval_deadline(now, start, start + Duration::hours(1)),
            start + Duration::hours(1)
        );
        let start = now + Duration::minutes(10);
        assert_eq!(
            scheduled_approval_deadline(now, start, start + Duration::days(2)),
            now + APPROVAL_TIMEOUT
        );
    }

    #[test]
    fn an_extension_times_out_with_its_activation() {
        let now = t0();
        assert_eq!(
            extension_approval_deadline(now, now + Duration::minutes(30)),
            now + Duration::minutes(30)
        );
        assert_eq!(
            extension_approval_deadline(now, now + Duration::days(3)),
            now + APPROVAL_TIMEOUT
        );
    }

    #[test]
    fn an_extension_stays_within_the_roles_maximum_from_now() {
        let now = t0();
        let max = Duration::hours(8);
        let end = now + Duration::hours(1);
        assert_eq!(
            extension_end(end, Duration::hours(7), None, now, max),
            Ok(now + Duration::hours(8))
        );
        let e = extension_end(
            end,
            Duration::hours(7) + Duration::seconds(1),
            None,
            now,
            max,
        )
        .expect_err("past the maximum");
        assert_eq!(e, ScheduleError::ExtensionTooLong { max });
        assert_eq!(e.code(), ErrorCode::DurationTooLong);
        assert_eq!(
            e.to_string(),
            "an extended activation may end at most 8 h from now, the role's maximum (28800 seconds)"
        );
    }

    #[test]
    fn an_extension_needs_a_live_activation_and_positive_time() {
        let now = t0();
        let max = Duration::hours(8);
        assert_eq!(
            extension_end(now, Duration::hours(1), None, now, max),
            Err(ScheduleError::NotExtendable)
        );
        assert_eq!(
            extension_end(now + Duration::hours(1), Duration::ZERO, None, now, max),
            Err(ScheduleError::ExtensionNotPositive)
        );
        assert_eq!(
            extension_end(
                now + Duration::hours(1),
                Duration::seconds(-5),
                None,
                now,
                max
            ),
            Err(ScheduleError::ExtensionNotPositive)
        );
    }

    #[test]
    fn an_extension_never_outlives_the_eligibility() {
        let now = t0();
        let max = Duration::hours(8);
        let end = now + Duration::hours(1);
        assert_eq!(
            extension_end(
                end,
                Duration::hours(2),
                Some(end + Duration::minutes(30)),
                now,
                max
            ),
            Ok(end + Duration::minutes(30))
        );
        assert_eq!(
            extension_end(end, Duration::hours(2), Some(end), now, max),
            Err(ScheduleError::EligibilityEnds)
        );
    }
}
