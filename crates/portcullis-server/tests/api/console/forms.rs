//! The console's forms through HTTP: a stranger is sent to sign in and back; a refused
//! request shows the service's reason and changes nothing; a self-approval is refused on the
//! page and audited; a cross-site or token-less form is refused before anything runs; an
//! approver decides from the inbox and the requester sees the role active, then deactivates;
//! the requester extends an activation from its page and schedules one for later.

use super::*;

api_tests!(
    a_stranger_is_sent_to_sign_in_and_back_to_the_console,
    a_request_over_the_maximum_shows_why_and_changes_nothing,
    a_request_without_justification_shows_why_and_changes_nothing,
    a_cross_site_or_tokenless_form_changes_nothing,
    a_self_approval_is_refused_on_the_page_and_audited,
    an_approver_decides_from_the_inbox_and_the_requester_deactivates,
    the_requester_extends_and_schedules_from_the_console,
);

const PW: &str = "orchid-lantern-basalt-37";

/// The requests `c` has made, through the API.
async fn requests_of(c: &Client) -> Vec<portcullis_core::api::ActivationRequestView> {
    c.requests("mine", None).await.expect("requests")
}

/// Posts the request form for [`ROLE`] at `/` as the visitor of `b`.
async fn request_role(
    b: &mut Browser,
    csrf: &str,
    minutes: &str,
    justification: &str,
    ticket: &str,
) -> reqwest::Response {
    b.post(
        "/console/requests",
        &[
            ("csrf", csrf),
            ("eligibility", "security-reader /"),
            ("minutes", minutes),
            ("justification", justification),
            ("ticket", ticket),
        ],
    )
    .await
}

async fn a_stranger_is_sent_to_sign_in_and_back_to_the_console(app: TestApp) {
    let admin = admin(&app).await;
    let secret = eligible_person(&app, &admin, "alice", PW).await;
    let mut b = Browser::new(&app.base);
    let r = b.get("/console/approvals").await;
    assert_eq!(location(&r), "/signin?return_to=%2Fconsole%2Fapprovals");
    // A return_to that leaves the console (or the server) is dropped, not followed.
    for evil in [
        "//evil.example/console",
        "/console//evil.example",
        "https://evil.example/",
    ] {
        let q: String = url::form_urlencoded::byte_serialize(evil.as_bytes()).collect();
        let page = b.get(&format!("/signin?return_to={q}")).await;
        let html = page.text().await.expect("html");
        assert!(!html.contains("name=\"return_to\""), "{evil}: {html}");
    }
    let (mut b, _) = console_visitor(&app, "alice", PW, &secret, 0).await;
    let r = b.get("/console").await;
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(part), "{part} in {csp}");
    }
    assert_eq!(r.headers()["cache-control"], "no-store");
    let html = r.text().await.expect("html");
    assert!(html.contains("security-reader at /"), "{html}");
    assert!(html.contains("You hold no role right now"), "{html}");
}

async fn a_request_over_the_maximum_shows_why_and_changes_nothing(app: TestApp) {
    let admin = admin(&app).await;
    approval_by(&admin, "root-admin").await;
    let secret = eligible_person(&app, &admin, "alice", PW).await;
    let (mut b, csrf) = console_visitor(&app, "alice", PW, &secret, 0).await;
    let r = request_role(&mut b, &csrf, "600", "quarterly access review", "").await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.expect("html");
    assert!(html.contains("role=\"alert\""), "{html}");
    assert!(html.contains("3600"), "the limit is named: {html}");
    // What was typed is kept.
    assert!(html.contains("quarterly access review"), "{html}");
    let alice = sign_in(&app, "alice", PW, &secret, 1).await;
    assert!(requests_of(&alice).await.is_empty(), "nothing requested");
}

async fn a_request_without_justification_shows_why_and_changes_nothing(app: TestApp) {
    let admin = admin(&app).await;
    approval_by(&admin, "root-admin").await;
    let secret = eligible_person(&app, &admin, "alice", PW).await;
    let (mut b, csrf) = console_visitor(&app, "alice", PW, &secret, 0).await;
    let r = request_role(&mut b, &csrf, "30", "   ", "").await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.expect("html");
    assert!(html.contains("justification"), "{html}");
    let alice = sign_in(&app, "alice", PW, &secret, 1).await;
    assert!(requests_of(&alice).await.is_empty(), "nothing requested");
}

async fn a_cross_site_or_tokenless_form_changes_nothing(app: TestApp) {
    let admin = admin(&app).await;
    let secret = eligible_person(&app, &admin, "alice", PW).await;
    let (b, csrf) = console_visitor(&app, "alice", PW, &secret, 0).await;
    let form = |token: &str| {
        vec![
            ("csrf".to_owned(), token.to_owned()),
            ("eligibility".to_owned(), "security-reader /".to_owned()),
            ("minutes".to_owned(), "30".to_owned()),
            ("justification".to_owned(), "forged".to_owned()),
        ]
    };
    let attempts: [(Vec<(&str, &str)>, String); 4] = [
        (vec![("origin", "https://evil.example")], csrf.clone()),
        (vec![("sec-fetch-site", "cross-site")], csrf.clone()),
        (vec![], String::new()),
        (vec![], "0".repeat(64)),
    ];
    for (headers, token) in attempts {
        let mut req = b
            .http
            .post(b.url("/console/requests"))
            .header("cookie", b.cookie_header())
            .form(&form(&token));
        for (k, v) in &headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.expect("post");
        assert_eq!(r.status(), 403, "{headers:?}");
        let html = r.text().await.expect("html");
        assert!(html.contains("CSRF"), "{html}");
    }
    let alice = sign_in(&app, "alice", PW, &secret, 1).await;
    assert!(requests_of(&alice).await.is_empty(), "nothing requested");
}

async fn a_self_approval_is_refused_on_the_page_and_audited(app: TestApp) {
    let admin = admin(&app).await;
    let secret = eligible_person(&app, &admin, "alice", PW).await;
    // Alice is listed as an approver of the role she requests.
    approval_by(&admin, "alice").await;
    let (mut b, csrf) = console_visitor(&app, "alice", PW, &secret, 0).await;
    let r = request_role(&mut b, &csrf, "30", "reviewing alerts", "").await;
    assert_eq!(location(&r), "/console?done=requested");
    let alice = sign_in(&app, "alice", PW, &secret, 1).await;
    let id = requests_of(&alice).await[0].id.clone();
    // Her own request is not in her inbox, and the page offers her no decision.
    let inbox = b
        .get("/console/approvals")
        .await
        .text()
        .await
        .expect("html");
    assert!(!inbox.contains(&id), "{inbox}");
    let page = b.get(&format!("/console/requests/{id}")).await;
    let html = page.text().await.expect("html");
    assert!(!html.contains("value=\"approve\""), "{html}");
    // A forged decision is refused by the service, shown, and audited.
    let r = b
        .post(
            &format!("/console/requests/{id}/decide"),
            &[("csrf", &csrf), ("decision", "approve"), ("reason", "me")],
        )
        .await;
    assert_eq!(r.status(), 403);
    let html = r.text().await.expect("html");
    assert!(html.contains("own request"), "{html}");
    assert_eq!(requests_of(&alice).await[0].state, "pending_approval");
    let refused = events_named(&admin, "authz.refused").await;
    assert!(
        refused.iter().any(|e| e.actor == "user:alice"
            && e.details["code"] == "self_approval"
            && e.target == "route:POST /console/requests/{id}/decide"),
        "{refused:?}"
    );
}

async fn an_approver_decides_from_the_inbox_and_the_requester_deactivates(app: TestApp) {
    let admin = admin(&app).await;
    let alice_secret = eligible_person(&app, &admin, "alice", PW).await;
    let bob_secret = user_with_totp(&app, &admin, "bob", "BOB".into(), None, PW).await;
    approval_by(&admin, "bob").await;
    let (mut a, a_csrf) = console_visitor(&app, "alice", PW, &alice_secret, 0).await;
    let r = request_role(&mut a, &a_csrf, "30", "reviewing alerts", "SEC-42").await;
    assert_eq!(location(&r), "/console?done=requested");
    let (mut b, b_csrf) = console_visitor(&app, "bob", PW, &bob_secret, 0).await;
    let inbox = b
        .get("/console/approvals")
        .await
        .text()
        .await
        .expect("html");
    assert!(
        inbox.contains("alice") && inbox.contains("SEC-42"),
        "{inbox}"
    );
    let alice = sign_in(&app, "alice", PW, &alice_secret, 1).await;
    let id = requests_of(&alice).await[0].id.clone();
    let page = b
        .get(&format!("/console/requests/{id}"))
        .await
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("value=\"approve\"") && page.contains("reviewing alerts"),
        "{page}"
    );
    let r = b
        .post(
            &format!("/console/requests/{id}/decide"),
            &[("csrf", &b_csrf), ("decision", "approve"), ("reason", "ok")],
        )
        .await;
    assert_eq!(
        location(&r),
        format!("/console/requests/{id}?done=approved")
    );
    let mine = a.get("/console").await.text().await.expect("html");
    assert!(mine.contains("data-ends-at="), "time left shown: {mine}");
    assert!(mine.contains("Deactivate security-reader"), "{mine}");
    let r = a
        .post(
            &format!("/console/requests/{id}/deactivate"),
            &[("csrf", &a_csrf)],
        )
        .await;
    assert_eq!(location(&r), "/console?done=deactivated");
    assert_eq!(requests_of(&alice).await[0].state, "deactivated");
}

async fn the_requester_extends_and_schedules_from_the_console(app: TestApp) {
    let admin = admin(&app).await;
    let alice_secret = eligible_person(&app, &admin, "alice", PW).await;
    let bob_secret = eligible_person(&app, &admin, "bob", PW).await;
    let (mut a, a_csrf) = console_visitor(&app, "alice", PW, &alice_secret, 0).await;
    let r = request_role(&mut a, &a_csrf, "30", "reviewing alerts", "").await;
    assert_eq!(location(&r), "/console?done=activated");
    let alice = sign_in(&app, "alice", PW, &alice_secret, 1).await;
    let active = requests_of(&alice).await[0].clone();
    let id = active.id.clone();
    let mine = a.get("/console").await.text().await.expect("html");
    assert!(
        mine.contains(&format!("href=\"/console/requests/{id}\">Extend")),
        "{mine}"
    );
    let page = a
        .get(&format!("/console/requests/{id}"))
        .await
        .text()
        .await
        .expect("html");
    assert!(
        page.contains(&format!("action=\"/console/requests/{id}/extend\"")),
        "{page}"
    );
    // Past the role's maximum (8 h from now): the reason on the page, nothing moved.
    let r = a
        .post(
            &format!("/console/requests/{id}/extend"),
            &[
                ("csrf", &a_csrf),
                ("minutes", "600"),
                ("justification", "long"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("at most 8 h from now")
    );
    assert_eq!(
        alice
            .activation_request(&id)
            .await
            .expect("request")
            .ends_at,
        active.ends_at
    );
    // Someone else's activation: not found, not extended.
    let (mut b, b_csrf) = console_visitor(&app, "bob", PW, &bob_secret, 0).await;
    let r = b
        .post(
            &format!("/console/requests/{id}/extend"),
            &[
                ("csrf", &b_csrf),
                ("minutes", "15"),
                ("justification", "mine now"),
            ],
        )
        .await;
    assert_eq!(r.status(), 404);
    let r = a
        .post(
            &format!("/console/requests/{id}/extend"),
            &[
                ("csrf", &a_csrf),
                ("minutes", "15"),
                ("justification", "runs long"),
            ],
        )
        .await;
    assert_eq!(
        location(&r),
        format!("/console/requests/{id}?done=extended")
    );
    let ends = |v: &portcullis_core::api::ActivationRequestView| {
        time::OffsetDateTime::parse(
            v.ends_at.as_deref().expect("end"),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("time")
    };
    let extended = alice.activation_request(&id).await.expect("request");
    assert_eq!(ends(&extended), ends(&active) + time::Duration::minutes(15));
    // Scheduled for an hour from now (the form's time is UTC, without seconds).
    let start = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]"
        ))
        .expect("start");
    let r = a
        .post(
            "/console/requests",
            &[
                ("csrf", a_csrf.as_str()),
                ("eligibility", "security-reader /"),
                ("minutes", "30"),
                ("justification", "tomorrow's window"),
                ("ticket", ""),
                ("start", start.as_str()),
            ],
        )
        .await;
    assert_eq!(location(&r), "/console?done=scheduled");
    let scheduled = requests_of(&alice).await[0].clone();
    assert_eq!(scheduled.state, "scheduled");
    assert!(
        scheduled
            .starts_at
            .as_deref()
            .is_some_and(|s| s.starts_with(&start)),
        "{scheduled:?}"
    );
}
