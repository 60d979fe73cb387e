//! Access reviews (`/api/v1/reviews`, issue 22 item 3): a round lists every eligible and
//! active assignment of a role in its reach; reviewers keep or remove each with a reason,
//! never their own; at the close the undecided ones get the default and removals are applied
//! through the normal path (audited, requests closed, targets revoked), once even on two
//! replicas; reviewers are emailed and reminded; the console has their pages.
//!
//! - `decisions`: who may decide what (the abuse refusals), a decision made once, bad input
//! - `close`: what a close applies (removals, defaults, the break-glass and last-GA guards),
//!   the worker closing at the end, and two replicas closing once
//! - `managers`: `managers` reviews, their fallback, and who may set a manager
//! - `notifications`: the emails when a round opens and the one reminder
//! - `console`: the reviewer's console pages through HTTP and in a real browser

use portcullis_core::api::{
    CreateReviewRequest, ReviewDecisionRequest, ReviewItemView, ReviewView, SetManagerRequest,
};

use super::*;

mod close;
mod console;
mod decisions;
mod managers;
mod notifications;

/// The role reviewed in most tests: an ordinary one, so people may hold it active too.
pub(crate) const ROLE: &str = "audit-reader";

/// The password of the people these tests make.
pub(crate) const PW: &str = "harbor-quill-meadow-62";

/// A review of `role` at every scope, reviewed by `reviewers`, one round at a time.
pub(crate) fn review_of(role: &str, reviewers: &str, default: &str) -> CreateReviewRequest {
    CreateReviewRequest {
        role: role.into(),
        scope: None,
        reviewers: reviewers.into(),
        fallback: None,
        every: None,
        duration: None,
        default_decision: default.into(),
    }
}

pub(crate) fn decision(d: &str, why: &str) -> ReviewDecisionRequest {
    ReviewDecisionRequest {
        decision: d.into(),
        reason: why.into(),
    }
}

/// A group, role-assignable or not, with `members`.
pub(crate) async fn group_with(
    admin: &Client,
    name: &str,
    role_assignable: bool,
    members: &[&str],
) {
    admin
        .create_group(&CreateGroupRequest {
            name: name.into(),
            display_name: None,
            role_assignable,
        })
        .await
        .expect("group");
    for m in members {
        admin
            .add_group_member(
                name,
                &GroupMemberRequest {
                    member: (*m).into(),
                },
            )
            .await
            .expect("member");
    }
}

/// `name`, a person with TOTP signed in with MFA, eligible for [`ROLE`]; their client.
pub(crate) async fn eligible_person(app: &TestApp, admin: &Client, name: &str) -> Client {
    let (c, _) = mfa_user(app, admin, name, PW).await;
    admin
        .create_assignment(&eligible(name, ROLE, None))
        .await
        .expect("eligible");
    c
}

/// The open round of a review.
pub(crate) fn open_round(r: &ReviewView) -> String {
    r.rounds
        .iter()
        .find(|x| x.state == "open")
        .map(|x| x.id.clone())
        .expect("an open round")
}

/// The item of `principal` (`user:NAME`, …) in round `round`, as `c` sees it.
pub(crate) async fn item_of(c: &Client, round: &str, principal: &str) -> ReviewItemView {
    c.review_round(round)
        .await
        .expect("round")
        .items
        .into_iter()
        .find(|i| i.principal == principal)
        .unwrap_or_else(|| panic!("no item of {principal} in {round}"))
}

/// The live assignments of `role` held by `principal` (`user:NAME`, …).
pub(crate) async fn live_assignments(admin: &Client, principal: &str, role: &str) -> usize {
    admin
        .assignments()
        .await
        .expect("assignments")
        .iter()
        .filter(|a| a.principal == principal && a.role == role)
        .count()
}
