//! Access reviews: every step is conditional, so the second of two racing writers conflicts
//! and writes nothing (not even its events): a round opens once, a decision lands once and only
//! on an open round, a close happens once and only on the decisions its writer read, a
//! reminder is recorded once.

use portcullis_core::principal::PrincipalKind;
use portcullis_core::roles::AssignmentKind;
use portcullis_store::{
    ClosedItem, NewAccessReview, NewAssignment, NewReviewItem, NewReviewRound,
    REVIEW_DECISIONS_MOVED, REVIEW_ITEM_MOVED, REVIEW_NOT_DUE, REVIEW_ROUND_NOT_OPEN, ReviewChange,
    ReviewClose,
};

use super::*;

fn conflict_of<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
    match r {
        Err(StoreError::Conflict(m)) => m,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn round(id: &str, now: i64, scheduled: bool) -> Change {
    Change::Review(ReviewChange::Open(NewReviewRound {
        id: id.into(),
        review_id: "rv_1".into(),
        opened_by: "tester".into(),
        opened_at_us: now,
        closes_at_us: now + 60_000_000,
        reminder_at_us: now + 45_000_000,
        scheduled,
        next_round_at_us: None,
        items: vec![NewReviewItem {
            assignment_id: "a_1".into(),
            principal_id: "p_1".into(),
            role: "audit-reader".into(),
            scope: "/".into(),
            kind: AssignmentKind::Eligible,
            reviewer: "user:bob".into(),
        }],
    }))
}

fn decide(round: &str, d: &str, now: i64) -> Change {
    Change::Review(ReviewChange::Decide {
        round_id: round.into(),
        assignment_id: "a_1".into(),
        decision: d.into(),
        reason: "because".into(),
        decided_by: "user:bob".into(),
        at_us: now,
    })
}

fn close(round: &str, decided_before: i64, now: i64) -> Change {
    Change::Review(ReviewChange::Close(ReviewClose {
        round_id: round.into(),
        decided_before,
        items: vec![ClosedItem {
            assignment_id: "a_1".into(),
            default: None,
            outcome: "kept".into(),
        }],
        at_us: now,
    }))
}

async fn each_review_step_happens_once(db: Db) {
    let store = initialised(&db).await;
    let now = OffsetDateTime::now_utc().unix_timestamp() * 1_000_000;
    store
        .write(
            Change::Many(vec![
                Change::CreatePrincipal(NewPrincipal {
                    id: "p_1".into(),
                    name: "alice".into(),
                    kind: PrincipalKind::User,
                    display_name: "Alice".into(),
                    email: None,
                    phone: None,
                    guest_organisation: None,
                    role_assignable: false,
                    emergency: false,
                    privileged: false,
                    first_admin: false,
                    created_at_us: now,
                }),
                Change::CreateAssignment(NewAssignment {
                    id: "a_1".into(),
                    principal_id: "p_1".into(),
                    role: "audit-reader".into(),
                    scope: "/".into(),
                    kind: AssignmentKind::Eligible,
                    starts_at_us: now,
                    ends_at_us: None,
                    created_by: "tester".into(),
                    created_at_us: now,
                }),
                Change::Review(ReviewChange::Create(NewAccessReview {
                    id: "rv_1".into(),
                    role: "audit-reader".into(),
                    scope: "/".into(),
                    reviewers: "user:bob".into(),
                    fallback: None,
                    every_seconds: Some(86_400),
                    duration_seconds: 60,
                    default_decision: "keep".into(),
                    created_by: "tester".into(),
                    created_at_us: now,
                    next_round_at_us: Some(now + 10_000_000),
                })),
            ]),
            vec![],
        )
        .await
        .expect("set up");
    let before = count(&store).await;
    // Not due yet by the schedule; on request it opens, once.
    let r = store.write(round("rr_1", now, true), vec![ev(1)]).await;
    assert_eq!(conflict_of(r), REVIEW_NOT_DUE);
    store
        .write(round("rr_1", now, false), vec![ev(2)])
        .await
        .expect("open");
    let r = store.write(round("rr_2", now, false), vec![ev(3)]).await;
    assert_eq!(conflict_of(r), REVIEW_NOT_DUE, "one open round per review");
    assert_eq!(store.review_items("rr_1").await.expect("items").len(), 1);
    // A close that read no decision loses to the decision that came first.
    store
        .write(decide("rr_1", "keep", now), vec![ev(4)])
        .await
        .expect("decide");
    let r = store
        .write(decide("rr_1", "remove", now), vec![ev(5)])
        .await;
    assert_eq!(
        conflict_of(r),
        REVIEW_ITEM_MOVED,
        "the first decision is final"
    );
    let r = store.write(close("rr_1", 0, now), vec![ev(6)]).await;
    assert_eq!(conflict_of(r), REVIEW_DECISIONS_MOVED);
    assert_eq!(
        store
            .review_round("rr_1")
            .await
            .expect("read")
            .map(|r| r.state),
        Some(portcullis_core::reviews::RoundState::Open),
        "a conflicting close changes nothing"
    );
    // Remind once, close once; nothing lands on a closed round.
    let remind = || {
        Change::Review(ReviewChange::Remind {
            round_id: "rr_1".into(),
            at_us: now,
        })
    };
    store.write(remind(), vec![ev(7)]).await.expect("remind");
    assert_eq!(
        conflict_of(store.write(remind(), vec![ev(8)]).await),
        REVIEW_ITEM_MOVED
    );
    store
        .write(close("rr_1", 1, now), vec![ev(9)])
        .await
        .expect("close");
    let r = store.write(close("rr_1", 1, now), vec![ev(10)]).await;
    assert_eq!(conflict_of(r), REVIEW_ROUND_NOT_OPEN, "closed once");
    let items = store.review_items("rr_1").await.expect("items");
    assert_eq!(items[0].decision.as_deref(), Some("keep"));
    assert_eq!(items[0].outcome.as_deref(), Some("kept"));
    // The successful writes appended their events, the conflicting ones nothing.
    assert_eq!(count(&store).await, before + 4);
    // A new round may open now that none is open.
    store
        .write(round("rr_2", now, false), vec![])
        .await
        .expect("a second round");
}

conformance!(each_review_step_happens_once,);
