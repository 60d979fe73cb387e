//! Activations that start later and extensions of active ones (issue 22, item 4), with their
//! abuse cases: a start past the eligibility, a start after the eligibility stopped applying,
//! extending past the role's maximum, approving one's own extension, extending someone else's
//! or an ended activation, and an extension racing its activation's end.

use super::*;
use portcullis_core::api::{AuditEventView, ContainRequest, ExtendActivationRequest};

fn at(secs: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::seconds(secs))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("rfc 3339")
}

fn later(role: &str, secs: i64, start_in: i64) -> CreateActivationRequest {
    CreateActivationRequest {
        starts_at: Some(at(start_in)),
        ..ask(role, secs, Some("maintenance window"))
    }
}

fn more(secs: i64) -> ExtendActivationRequest {
    ExtendActivationRequest {
        duration_seconds: secs,
        justification: Some("the migration runs long".into()),
        ticket: None,
    }
}

fn parse(t: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).expect("time")
}

/// The audit events of `action` naming request `id`.
async fn events_of(admin: &Client, action: &str, id: &str) -> Vec<AuditEventView> {
    admin
        .audit_events(&EventFilter {
            action: Some(action.into()),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("events")
        .events
        .into_iter()
        .filter(|e| e.details["request_id"] == id)
        .collect()
}

async fn state_of(c: &Client, id: &str) -> String {
    c.activation_request(id).await.expect("request").state
}

async fn a_scheduled_activation_grants_nothing_until_its_start(app: TestApp) {
    let admin = admin(&app).await;
    let ivy = eligible_mfa_user(&app, &admin, "ivy", "audit-reader", None).await;
    let r = ivy
        .request_activation(&later("audit-reader", 600, 3))
        .await
        .expect("scheduled");
    assert_eq!(r.state, "scheduled");
    assert!(r.activated_at.is_none());
    let start = parse(r.starts_at.as_deref().expect("start"));
    assert_eq!(
        parse(r.ends_at.as_deref().expect("window end")),
        start + time::Duration::seconds(600),
        "the window runs from the start for the duration"
    );
    // Before the start: nothing held.
    assert!(ivy.whoami().await.expect("me").roles.is_empty());
    let e = ivy
        .audit_events(&EventFilter::default())
        .await
        .expect_err("not yet");
    assert_eq!(e.code(), Some("forbidden"));
    eventually("the scheduled start", 8, async || {
        state_of(&ivy, &r.id).await == "active"
    })
    .await;
    assert!(ivy.audit_events(&EventFilter::default()).await.is_ok());
    let started = ivy.activation_request(&r.id).await.expect("request");
    assert!(parse(started.activated_at.as_deref().expect("activated")) >= start);
    assert_eq!(started.ends_at, r.ends_at, "the window did not move");
    let ev = events_of(&admin, "request.activated", &r.id).await;
    assert_eq!(ev.len(), 1, "one activation");
    assert_eq!(ev[0].actor, "system:expiry");
    assert_eq!(ev[0].details["approval"], "scheduled");
    assert_eq!(events_of(&admin, "request.scheduled", &r.id).await.len(), 1);
    app.stop().await;
}

async fn a_scheduled_activation_is_approved_ahead_and_starts_on_time(app: TestApp) {
    let admin = admin(&app).await;
    let (ivy, jon) = approval_setup_for(&app, &admin, None).await;
    let r = ivy
        .request_activation(&later("security-reader", 900, 4))
        .await
        .expect("pending");
    assert_eq!(r.state, "pending_approval");
    let self_approval = ivy
        .approve(&r.id, &DecisionRequest::default())
        .await
        .expect_err("own request");
    assert_eq!(self_approval.code(), Some("self_approval"));
    let approved = jon
        .approve(&r.id, &DecisionRequest::default())
        .await
        .expect("approve");
    assert_eq!(
        approved.state, "scheduled",
        "approved ahead, not yet active"
    );
    assert!(ivy.whoami().await.expect("me").roles.is_empty());
    eventually("the approved start", 9, async || {
        state_of(&ivy, &r.id).await == "active"
    })
    .await;
    let roles = ivy.whoami().await.expect("me").roles;
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0].role, "security-reader");
    app.stop().await;
}

async fn a_start_after_the_eligibility_ends_is_refused(app: TestApp) {
    let admin = admin(&app).await;
    let ivy = eligible_mfa_user(&app, &admin, "ivy", "audit-reader", Some(60)).await;
    let e = ivy
        .request_activation(&later("audit-reader", 600, 120))
        .await
        .expect_err("eligibility ends first");
    assert_eq!(e.code(), Some("not_eligible"), "{e}");
    assert!(e.to_string().contains("ends before the start"), "{e}");
    assert!(
        ivy.requests("mine", None).await.expect("mine").is_empty(),
        "nothing was written"
    );
    app.stop().await;
}

async fn bad_starts_are_refused_and_change_nothing(app: TestApp) {
    let admin = admin(&app).await;
    let ivy = eligible_mfa_user(&app, &admin, "ivy", "audit-reader", None).await;
    for (start, why) in [
        (at(-60), "in the past"),
        (at(31 * 86_400), "more than 30 days ahead"),
        ("tomorrow morning".to_owned(), "not a time"),
        ("2026-13-45T99:00:00Z".to_owned(), "not a date"),
    ] {
        let req = CreateActivationRequest {
            starts_at: Some(start),
            ..ask("audit-reader", 600, Some("x"))
        };
        let e = ivy.request_activation(&req).await.expect_err(why);
        assert_eq!(e.code(), Some("invalid_request"), "{why}: {e}");
    }
    assert!(ivy.requests("mine", None).await.expect("mine").is_empty());
    app.stop().await;
}

/// ivy is eligible through a role-assignable group; taken out of the group before the start,
/// her scheduled activation is cancelled at once and never starts.
async fn leaving_the_group_cancels_a_scheduled_activation(app: TestApp) {
    let admin = admin(&app).await;
    let (ivy, _) = mfa_user(&app, &admin, "ivy", "amber-willow-canyon-58").await;
    admin
        .create_group(&portcullis_core::api::CreateGroupRequest {
            name: "readers".into(),
            display_name: None,
            role_assignable: true,
        })
        .await
        .expect("group");
    admin
        .add_group_member(
            "readers",
            &GroupMemberRequest {
                member: "ivy".into(),
            },
        )
        .await
        .expect("member");
    admin
        .create_assignment(&eligible("group:readers", "audit-reader", None))
        .await
        .expect("group eligible");
    let r = ivy
        .request_activation(&later("audit-reader", 600, 3))
        .await
        .expect("scheduled");
    assert_eq!(r.state, "scheduled");
    admin
        .remove_group_member("readers", "ivy")
        .await
        .expect("removed");
    let after = ivy.activation_request(&r.id).await.expect("request");
    assert_eq!(
        (after.state.as_str(), after.close_reason.as_deref()),
        ("cancelled", Some("left_role_assignable_group")),
        "nothing was granted, so nothing is revoked"
    );
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    assert_eq!(state_of(&ivy, &r.id).await, "cancelled", "never started");
    assert!(ivy.whoami().await.expect("me").roles.is_empty());
    app.stop().await;
}

/// ivy's account is disabled before her scheduled start: at the start the worker finds she
/// can no longer hold it, and cancels it instead of starting it.
async fn a_scheduled_activation_of_a_disabled_account_is_cancelled_at_its_start(app: TestApp) {
    let admin = admin(&app).await;
    let ivy = eligible_mfa_user(&app, &admin, "ivy", "audit-reader", None).await;
    let r = ivy
        .request_activation(&later("audit-reader", 600, 3))
        .await
        .expect("scheduled");
    admin.disable_user("ivy").await.expect("disable");
    assert_eq!(
        admin
            .activation_request(&r.id)
            .await
            .expect("request")
            .state,
        "scheduled",
        "disabling alone leaves it to the start"
    );
    eventually("the start to be refused", 8, async || {
        admin
            .activation_request(&r.id)
            .await
            .expect("request")
            .state
            == "cancelled"
    })
    .await;
    let after = admin.activation_request(&r.id).await.expect("request");
    assert_eq!(after.close_reason.as_deref(), Some("no_longer_eligible"));
    assert!(after.activated_at.is_none(), "it never was active");
    let ev = events_of(&admin, "request.cancelled", &r.id).await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].details["reason"], "no_longer_eligible");
    assert!(
        events_of(&admin, "request.activated", &r.id)
            .await
            .is_empty()
    );
    app.stop().await;
}

/// Removing the eligibility and the requester's own cancel both end a scheduled request at once.
async fn a_scheduled_activation_is_cancelled_by_its_requester_or_its_eligibility_end(app: TestApp) {
    let admin = admin(&app).await;
    let ivy = eligible_mfa_user(&app, &admin, "ivy", "audit-reader", None).await;
    let mine = ivy
        .request_activation(&later("audit-reader", 600, 3))
        .await
        .expect("scheduled");
    let cancelled = ivy
        .cancel_request(&mine.id, &DecisionRequest::default())
        .await
        .expect("cancel");
    assert_eq!(cancelled.state, "cancelled");
    let e = ivy
        .deactivate(&mine.id, &DecisionRequest::default())
        .await
        .expect_err("not active");
    assert_eq!(e.code(), Some("already_decided"));
    let second = ivy
        .request_activation(&later("audit-reader", 600, 3))
        .await
        .expect("scheduled");
    let id = admin_assignment_id(&admin, "ivy", "audit-reader").await;
    admin.delete_assignment(&id).await.expect("unassign");
    assert_eq!(state_of(&ivy, &second.id).await, "cancelled");
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    assert_eq!(state_of(&ivy, &mine.id).await, "cancelled", "never started");
    assert_eq!(
        state_of(&ivy, &second.id).await,
        "cancelled",
        "never started"
    );
    assert!(ivy.whoami().await.expect("me").roles.is_empty());
    app.stop().await;
}

async fn an_activation_is_extended_at_once_where_no_approval_is_needed(app: TestApp) {
    let admin = admin(&app).await;
    let ivy = eligible_mfa_user(&app, &admin, "ivy", "audit-reader", None).await;
    let r = ivy
        .request_activation(&ask("audit-reader", 600, Some("look at the log")))
        .await
        .expect("active");
    let old_end = parse(r.ends_at.as_deref().expect("end"));
    let ext = ivy
        .extend_activation(&r.id, &more(300))
        .await
        .expect("extend");
    assert_eq!(ext.state, "applied");
    assert_eq!(ext.extends.as_deref(), Some(r.id.as_str()));
    let now = ivy.activation_request(&r.id).await.expect("request");
    assert_eq!(now.state, "active");
    assert_eq!(
        parse(now.ends_at.as_deref().expect("end")),
        old_end + time::Duration::seconds(300)
    );
    let ev = events_of(&admin, "request.extended", &r.id).await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].details["extension_id"], ext.id.as_str());
    assert_eq!(
        ev[0].details["ends_at_before"],
        r.ends_at.as_deref().expect("end")
    );
    // whoami counts the new end.
    let left = ivy.whoami().await.expect("me").roles[0]
        .seconds_left
        .expect("left");
    assert!(left > 600, "{left}");
    app.stop().await;
}

/// An activation extended before its end keeps running past the old end, and ends at the new.
async fn an_extended_activation_ends_at_its_new_end(app: TestApp) {
    let admin = admin(&app).await;
    let ivy = eligible_mfa_user(&app, &admin, "ivy", "audit-reader", None).await;
    let r = ivy
        .request_activation(&ask("audit-reader", 3, Some("quick look")))
        .await
        .expect("active");
    ivy.extend_activation(&r.id, &more(3))
        .await
        .expect("extend");
    tokio::time::sleep(std::time::Duration::from_millis(4000)).await;
    assert!(
        ivy.audit_events(&EventFilter::default()).await.is_ok(),
        "still held after the old end"
    );
    assert_eq!(state_of(&ivy, &r.id).await, "active");
    eventually("the new end", 5, async || {
        state_of(&ivy, &r.id).await == "expired"
    })
    .await;
    assert_eq!(
        ivy.audit_events(&EventFilter::default())
            .await
            .expect_err("expired")
            .code(),
        Some("forbidden")
    );
    assert_eq!(events_of(&admin, "request.expired", &r.id).await.len(), 1);
    app.stop().await;
}

async fn extending_past_the_roles_maximum_is_refused(app: TestApp) {
    let admin = admin(&app).await;
    // helpdesk-administrator: at most 8 h.
    let ivy = eligible_mfa_user(&app, &admin, "ivy", "helpdesk-administrator", None).await;
    let r = ivy
        .request_activation(&ask("helpdesk-administrator", 3600, Some("tickets")))
        .await
        .expect("active");
    for (secs, code_) in [
        (7 * 3600 + 1, "duration_too_long"),
        (30 * 86_400, "duration_too_long"),
        (0, "invalid_request"),
        (-60, "invalid_request"),
    ] {
        let e = ivy
            .extend_activation(&r.id, &more(secs))
            .await
            .expect_err("refused");
        assert_eq!(e.code(), Some(code_), "{secs}: {e}");
    }
    // Repeated extensions are each measured from now: they cannot stack past the maximum.
    let ok = ivy
        .extend_activation(&r.id, &more(7 * 3600 - 60))
        .await
        .expect("up to the maximum");
    assert_eq!(ok.state, "applied");
    let e = ivy
        .extend_activation(&r.id, &more(120))
        .await
        .expect_err("already at the maximum");
    assert_eq!(e.code(), Some("duration_too_long"));
    let no_reason = ExtendActivationRequest {
        justification: None,
        ..more(60)
    };
    let e = ivy
        .extend_activation(&r.id, &no_reason)
        .await
        .expect_err("justification");
    assert_eq!(e.code(), Some("justification_required"));
    let ends = ivy
        .activation_request(&r.id)
        .await
        .expect("request")
        .ends_at;
    assert_eq!(
        parse(ends.as_deref().expect("end")),
        parse(r.ends_at.as_deref().expect("end")) + time::Duration::seconds(7 * 3600 - 60),
        "only the allowed extension moved the end"
    );
    app.stop().await;
}

async fn an_extension_waits_for_approval_while_the_grant_keeps_running(app: TestApp) {
    let admin = admin(&app).await;
    let (ivy, jon) = approval_setup_for(&app, &admin, None).await;
    let r = ivy
        .request_activation(&ask("security-reader", 900, Some("audit prep")))
        .await
        .expect("pending");
    jon.approve(&r.id, &DecisionRequest::default())
        .await
        .expect("approve");
    let active = ivy.activation_request(&r.id).await.expect("request");
    let ext = ivy.extend_activation(&r.id, &more(600)).await.expect("ask");
    assert_eq!(ext.state, "pending_approval");
    // The grant keeps running with its old end meanwhile.
    let meanwhile = ivy.activation_request(&r.id).await.expect("request");
    assert_eq!(
        (meanwhile.state.as_str(), &meanwhile.ends_at),
        ("active", &active.ends_at)
    );
    assert_eq!(ivy.whoami().await.expect("me").roles.len(), 1);
    // A second extension while one waits: refused.
    let e = ivy
        .extend_activation(&r.id, &more(60))
        .await
        .expect_err("one at a time");
    assert_eq!(e.code(), Some("conflict"), "{e}");
    // Nobody approves their own extension.
    let e = ivy
        .approve(&ext.id, &DecisionRequest::default())
        .await
        .expect_err("own extension");
    assert_eq!(e.code(), Some("self_approval"));
    let to_approve = jon.requests("to_approve", None).await.expect("list");
    assert!(
        to_approve
            .iter()
            .any(|x| x.id == ext.id && x.extends.as_deref() == Some(r.id.as_str())),
        "the approver sees what it extends"
    );
    let applied = jon
        .approve(&ext.id, &DecisionRequest::default())
        .await
        .expect("approve");
    assert_eq!(applied.state, "applied");
    let after = ivy.activation_request(&r.id).await.expect("request");
    assert_eq!(
        parse(after.ends_at.as_deref().expect("end")),
        parse(active.ends_at.as_deref().expect("end")) + time::Duration::seconds(600)
    );
    let ev = events_of(&admin, "request.extended", &r.id).await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].actor, "user:jon");
    app.stop().await;
}

async fn an_extension_is_only_for_ones_own_live_activation(app: TestApp) {
    let admin = admin(&app).await;
    let (ivy, jon) = approval_setup_for(&app, &admin, None).await;
    admin
        .create_assignment(&eligible("jon", "security-reader", None))
        .await
        .expect("jon eligible");
    let r = ivy
        .request_activation(&ask("security-reader", 900, Some("audit prep")))
        .await
        .expect("pending");
    // Not yet active: nothing to extend.
    let e = ivy
        .extend_activation(&r.id, &more(60))
        .await
        .expect_err("pending");
    assert_eq!(e.code(), Some("already_decided"));
    jon.approve(&r.id, &DecisionRequest::default())
        .await
        .expect("approve");
    // Someone else's activation is not even named.
    let e = jon
        .extend_activation(&r.id, &more(60))
        .await
        .expect_err("not jon's");
    assert_eq!(e.code(), Some("not_found"));
    // An extension pending when the activation ends is cancelled with it.
    let ext = ivy.extend_activation(&r.id, &more(60)).await.expect("ask");
    ivy.deactivate(&r.id, &DecisionRequest::default())
        .await
        .expect("deactivate");
    let closed = ivy.activation_request(&ext.id).await.expect("extension");
    assert_eq!(
        (closed.state.as_str(), closed.close_reason.as_deref()),
        ("cancelled", Some("activation_ended"))
    );
    let e = jon
        .approve(&ext.id, &DecisionRequest::default())
        .await
        .expect_err("closed");
    assert_eq!(e.code(), Some("already_decided"));
    let e = ivy
        .extend_activation(&r.id, &more(60))
        .await
        .expect_err("ended");
    assert_eq!(e.code(), Some("already_decided"));
    // An extension cannot itself be extended.
    let e = ivy
        .extend_activation(&ext.id, &more(60))
        .await
        .expect_err("an extension");
    assert_eq!(e.code(), Some("already_decided"));
    app.stop().await;
}

/// An extension never outlives the eligibility: it is cut at the eligibility's end, and an
/// activation already ending with its eligibility cannot be extended.
async fn an_extension_never_outlives_the_eligibility(app: TestApp) {
    let admin = admin(&app).await;
    let ivy = eligible_mfa_user(&app, &admin, "ivy", "audit-reader", Some(1200)).await;
    let r = ivy
        .request_activation(&ask("audit-reader", 600, Some("x")))
        .await
        .expect("active");
    let ext = ivy
        .extend_activation(&r.id, &more(3600))
        .await
        .expect("cut");
    let eligibility_end = admin
        .assignments()
        .await
        .expect("assignments")
        .into_iter()
        .find(|a| a.principal == "user:ivy")
        .and_then(|a| a.ends_at)
        .expect("eligibility end");
    assert_eq!(ext.ends_at.as_deref(), Some(eligibility_end.as_str()));
    let e = ivy
        .extend_activation(&r.id, &more(60))
        .await
        .expect_err("nothing left");
    assert_eq!(e.code(), Some("not_eligible"));
    app.stop().await;
}

/// A contained principal's scheduled activation is cancelled with everything else.
async fn containment_cancels_a_scheduled_activation(app: TestApp) {
    let admin = admin(&app).await;
    let ivy = eligible_mfa_user(&app, &admin, "ivy", "audit-reader", None).await;
    let r = ivy
        .request_activation(&later("audit-reader", 600, 3))
        .await
        .expect("scheduled");
    admin
        .contain_principal(
            "ivy",
            &ContainRequest {
                reason: "suspected phishing".into(),
                force: false,
            },
        )
        .await
        .expect("contain");
    let after = admin.activation_request(&r.id).await.expect("request");
    assert_eq!(after.state, "cancelled");
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    assert_eq!(
        admin
            .activation_request(&r.id)
            .await
            .expect("request")
            .state,
        "cancelled",
        "never started"
    );
    app.stop().await;
}

/// Two replicas on one PostgreSQL, both woken for the same start (replica b by a deadline of
/// its own at that moment): each of ten scheduled activations starts once, with one
/// `request.activated` event and one grant at the target.
async fn scheduled_starts_on_two_replicas_happen_once(backend: Backend) {
    let Backend::Postgres = backend else { return };
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    let (a, b) = two_replicas(&url).await;
    let token = admin_token(&a).await;
    let on_a = a
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let on_b = b.anonymous.with_token(Some(SecretString::from(token)));
    let inbox = Inbox::default();
    let (port, _task) = receiver(inbox.clone(), 0).await;
    deploy_hook(&on_a, port).await;
    let (ivy, _) = mfa_user(&a, &on_a, "ivy", "amber-willow-canyon-58").await;
    on_a.create_assignment(&CreateAssignmentRequest {
        scope: Some("/targets/deploy-hook".into()),
        ..eligible("ivy", "deployer", None)
    })
    .await
    .expect("eligible");
    let start = at(4);
    let mut ids = Vec::new();
    for _ in 0..10 {
        let r = ivy
            .request_activation(&CreateActivationRequest {
                scope: Some("/targets/deploy-hook".into()),
                starts_at: Some(start.clone()),
                ..ask("deployer", 600, Some("release train"))
            })
            .await
            .expect("scheduled");
        assert_eq!(r.state, "scheduled");
        ids.push(r.id);
    }
    // Replica b gets a deadline of its own at the same moment, so its worker wakes then too.
    mfa_user(&b, &on_b, "jon", "cobalt-meadow-lantern-39").await;
    on_b.create_assignment(&CreateAssignmentRequest {
        ends_at: Some(start.clone()),
        ..eligible("jon", "audit-reader", None)
    })
    .await
    .expect("b's deadline");
    eventually("every start", 15, async || {
        let mine = ivy.requests("mine", Some("active")).await.expect("mine");
        mine.len() == ids.len()
    })
    .await;
    eventually("every grant delivered", 15, async || {
        let ops = on_a
            .target_ops(Some("deploy-hook"), None)
            .await
            .expect("ops");
        ops.iter()
            .filter(|o| o.op == "grant" && o.state == "applied")
            .count()
            >= ids.len()
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let ops = on_a
        .target_ops(Some("deploy-hook"), None)
        .await
        .expect("ops");
    for id in &ids {
        assert_eq!(
            events_of(&on_b, "request.activated", id).await.len(),
            1,
            "{id} started once"
        );
        assert_eq!(
            ops.iter()
                .filter(|o| o.op == "grant" && &o.grant_id == id)
                .count(),
            1,
            "{id} granted once"
        );
    }
    a.stop().await;
    b.stop().await;
}

backend_tests!(scheduled_starts_on_two_replicas_happen_once);

api_tests!(
    a_scheduled_activation_grants_nothing_until_its_start,
    a_scheduled_activation_is_approved_ahead_and_starts_on_time,
    a_start_after_the_eligibility_ends_is_refused,
    bad_starts_are_refused_and_change_nothing,
    leaving_the_group_cancels_a_scheduled_activation,
    a_scheduled_activation_of_a_disabled_account_is_cancelled_at_its_start,
    a_scheduled_activation_is_cancelled_by_its_requester_or_its_eligibility_end,
    an_activation_is_extended_at_once_where_no_approval_is_needed,
    an_extended_activation_ends_at_its_new_end,
    extending_past_the_roles_maximum_is_refused,
    an_extension_waits_for_approval_while_the_grant_keeps_running,
    an_extension_is_only_for_ones_own_live_activation,
    an_extension_never_outlives_the_eligibility,
    containment_cancels_a_scheduled_activation,
);
