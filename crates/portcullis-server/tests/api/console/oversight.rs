//! The console's oversight pages through HTTP: break-glass accounts (custody, drills, the
//! minimum) and alert deliveries (attempts, dead letters, retry), each for the holders of the
//! permission the API asks for, refused and audited for anyone else; a retry form without its
//! CSRF token changes nothing.

use super::*;

api_tests!(a_person_without_the_permissions_is_refused_and_audited);

backend_tests!(
    an_administrator_sees_custody_and_overdue_drills,
    a_dead_letter_is_shown_with_its_attempts_and_retried_from_the_page,
    a_retry_without_the_csrf_token_changes_nothing,
);

const PW: &str = "juniper-anvil-meadow-58";

/// The password `holder` gives the people it makes.
const HOLDER_PW: &str = "quartz-harbor-lantern-71";

/// `sam`, a person holding Security Administrator (breakglass.read, alerts.read and
/// alerts.manage), in the console; the admin's API client and token.
async fn security_admin(app: &TestApp) -> (Browser, String, Client, String) {
    let token = admin_token(app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    // Privileged roles are only ever eligible for people: sam activates it (no approval).
    let (_, secret) = holder(app, &admin, "sam", "security-administrator").await;
    let (b, csrf) = console_visitor(app, "sam", HOLDER_PW, &secret, 1).await;
    (b, csrf, admin, token)
}

/// A dead letter: a test message on a webhook channel whose port is closed, given up after
/// its one attempt (`alert_max_attempts = 1`); its id and the closed port.
async fn dead_letter(app: &TestApp, token: &str) -> (String, u16) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let r = add_channel(
        app,
        token,
        serde_json::json!({"name": "soc-hook", "kind": "webhook", "url": format!("http://127.0.0.1:{port}/hook")}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let sent = post_json(
        app,
        Some(token),
        "/api/v1/alerts/channels/soc-hook/test",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(sent.status(), 202);
    let sent: serde_json::Value = sent.json().await.expect("json");
    let id = sent["id"].as_str().expect("id").to_owned();
    eventually("the test message dead-lettered", 30, async || {
        api_get(app, token, &format!("/api/v1/alerts/{id}")).await["state"] == "dead"
    })
    .await;
    (id, port)
}

async fn an_administrator_sees_custody_and_overdue_drills(backend: Backend) {
    let Some(app) = spawn_with(backend, |c| c.breakglass_drill_max_age = "1s".into()).await else {
        return;
    };
    let (mut b, _, admin, token) = security_admin(&app).await;
    people(&admin, &["alice", "bob", "carol"]).await;
    let pw = create_split_account(&app, &token, "bg-vault", &["alice", "bob", "carol"], 2).await;
    // Older than the drill age, never drilled.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let nav = b.get("/console").await.text().await.expect("html");
    assert!(nav.contains("href=\"/console/breakglass\""), "{nav}");
    let r = b.get("/console/breakglass").await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("html");
    assert!(html.contains("data-account=\"bg-vault\""), "{html}");
    assert!(
        html.contains("password split 2 of 3 among alice, bob, carol"),
        "custody: {html}"
    );
    assert!(html.contains(">overdue<"), "the overdue drill: {html}");
    assert!(html.contains(">usable<"), "{html}");
    // One usable account of the two required: highlighted.
    assert!(
        html.contains("role=\"alert\" data-usable=\"1\"") && html.contains("of the required 2"),
        "{html}"
    );
    assert!(!html.contains(&pw), "never a secret");
    app.stop().await;
}

async fn a_person_without_the_permissions_is_refused_and_audited(app: TestApp) {
    let admin = admin(&app).await;
    let secret = eligible_person(&app, &admin, "alice", PW).await;
    let (mut b, csrf) = console_visitor(&app, "alice", PW, &secret, 0).await;
    let home = b.get("/console").await.text().await.expect("html");
    assert!(
        !home.contains("/console/breakglass") && !home.contains("/console/alerts"),
        "no links to pages she may not see: {home}"
    );
    for path in [
        "/console/breakglass",
        "/console/alerts",
        "/console/alerts/m_0123456789abcdef",
    ] {
        let r = b.get(path).await;
        assert_eq!(r.status(), 403, "{path}");
    }
    let r = b
        .post(
            "/console/alerts/m_0123456789abcdef/retry",
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), 403);
    let refused = events_named(&admin, "authz.refused").await;
    for route in [
        "route:GET /console/breakglass",
        "route:GET /console/alerts",
        "route:GET /console/alerts/{id}",
        "route:POST /console/alerts/{id}/retry",
    ] {
        assert!(
            refused
                .iter()
                .any(|e| e.actor == "user:alice" && e.target == route),
            "{route}: {refused:?}"
        );
    }
}

async fn a_dead_letter_is_shown_with_its_attempts_and_retried_from_the_page(backend: Backend) {
    let Some(app) = spawn_with(backend, |c| c.alert_max_attempts = 1).await else {
        return;
    };
    let (mut b, csrf, _, token) = security_admin(&app).await;
    let (id, port) = dead_letter(&app, &token).await;
    let list = b
        .get("/console/alerts?state=dead")
        .await
        .text()
        .await
        .expect("html");
    assert!(list.contains(&format!("data-alert=\"{id}\"")), "{list}");
    assert!(list.contains("soc-hook"), "{list}");
    let page = b
        .get(&format!("/console/alerts/{id}"))
        .await
        .text()
        .await
        .expect("html");
    assert!(page.contains("data-attempt=\"1\""), "the attempt: {page}");
    assert!(page.contains("cannot connect"), "{page}");
    assert!(page.contains("Retry this delivery"), "{page}");
    // The receiver is back; the retry from the page delivers it.
    let inbox: Inbox = Default::default();
    let (_, _task) = receiver(inbox.clone(), port).await;
    let r = b
        .post(&format!("/console/alerts/{id}/retry"), &[("csrf", &csrf)])
        .await;
    assert_eq!(location(&r), format!("/console/alerts/{id}?done=retried"));
    let done = b
        .get(&format!("/console/alerts/{id}?done=retried"))
        .await
        .text()
        .await
        .expect("html");
    assert!(done.contains("back in the queue"), "{done}");
    eventually("the retried delivery", 30, async || {
        api_get(&app, &token, &format!("/api/v1/alerts/{id}")).await["state"] == "delivered"
    })
    .await;
    assert!(
        inbox
            .lock()
            .expect("inbox")
            .requests
            .iter()
            .any(|(_, h, _)| h
                .get("x-portcullis-message-id")
                .is_some_and(|v| v == id.as_str()))
    );
    app.stop().await;
}

async fn a_retry_without_the_csrf_token_changes_nothing(backend: Backend) {
    let Some(app) = spawn_with(backend, |c| c.alert_max_attempts = 1).await else {
        return;
    };
    let (mut b, _, admin, token) = security_admin(&app).await;
    let (id, _) = dead_letter(&app, &token).await;
    let before = api_get(&app, &token, &format!("/api/v1/alerts/{id}")).await;
    let r = b.post(&format!("/console/alerts/{id}/retry"), &[]).await;
    assert_eq!(r.status(), 403);
    let html = r.text().await.expect("html");
    assert!(html.contains("CSRF"), "{html}");
    let after = api_get(&app, &token, &format!("/api/v1/alerts/{id}")).await;
    assert_eq!(after["state"], "dead");
    assert_eq!(after["attempts"], before["attempts"]);
    assert!(events_named(&admin, "alert.retried").await.is_empty());
    app.stop().await;
}
