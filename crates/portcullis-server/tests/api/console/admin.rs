//! Administration in the console: the same services as the API, so the same permissions and
//! privilege model: an administrator assigns and ends a role, changes a role's settings and
//! asks what-if; a person without the permissions is refused (audited) and changes nothing;
//! nobody assigns a role to themselves through a page either.

use portcullis_core::api::CaImportRequest;

use super::*;

api_tests!(
    an_administrator_assigns_and_ends_a_role_from_the_console,
    an_administrator_changes_a_roles_settings_from_the_console,
    what_if_shows_the_decision_and_every_policys_reason,
    a_person_without_permissions_is_refused_and_changes_nothing,
    nobody_assigns_themselves_a_role_through_the_console,
);

const PW: &str = "granite-willow-comet-58";

/// The console as the administrator (the API sign-in's session as the browser's cookie); the
/// API client of the same session.
async fn admin_console(app: &TestApp) -> (Browser, String, Client) {
    let token = admin_token(app).await;
    let mut b = Browser::new(&app.base);
    b.cookies.insert("portcullis_session".into(), token.clone());
    let r = b.get("/console").await;
    assert_eq!(r.status(), 200);
    let csrf = hidden(&r.text().await.expect("html"), "csrf");
    let api = app.anonymous.with_token(Some(SecretString::from(token)));
    (b, csrf, api)
}

async fn an_administrator_assigns_and_ends_a_role_from_the_console(app: TestApp) {
    let (mut b, csrf, admin) = admin_console(&app).await;
    user_with_totp(&app, &admin, "alice", "ALICE".into(), None, PW).await;
    let page = b.get("/console/admin/assignments").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("Assign a role"));
    let r = b
        .post(
            "/console/admin/assignments",
            &[
                ("csrf", &csrf),
                ("principal", "alice"),
                ("role", ROLE),
                ("scope", "/"),
                ("kind", "eligible"),
                ("days", "30"),
            ],
        )
        .await;
    assert_eq!(location(&r), "/console/admin/assignments?done=assigned");
    let listed = admin.assignments_of("alice").await.expect("assignments");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].role.as_str(), listed[0].kind.as_str()),
        (ROLE, "eligible")
    );
    let page = b
        .get("/console/admin/assignments?principal=alice")
        .await
        .text()
        .await
        .expect("html");
    assert!(
        page.contains(&format!("End {ROLE} of user:alice")),
        "{page}"
    );
    let r = b
        .post(
            &format!("/console/admin/assignments/{}/end", listed[0].id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(location(&r), "/console/admin/assignments?done=ended");
    assert!(
        admin
            .assignments_of("alice")
            .await
            .expect("assignments")
            .is_empty()
    );
}

async fn an_administrator_changes_a_roles_settings_from_the_console(app: TestApp) {
    let (mut b, csrf, admin) = admin_console(&app).await;
    let page = b.get(&format!("/console/admin/roles/{ROLE}")).await;
    assert_eq!(page.status(), 200);
    let r = b
        .post(
            &format!("/console/admin/roles/{ROLE}"),
            &[
                ("csrf", &csrf),
                ("max_minutes", "45"),
                ("strength", "mfa"),
                ("require_justification", "true"),
                ("require_ticket", "true"),
                ("require_approval", "false"),
                ("approvals_required", "1"),
                ("approvers", ""),
            ],
        )
        .await;
    assert_eq!(
        location(&r),
        format!("/console/admin/roles/{ROLE}?done=saved")
    );
    let s = admin.role_settings(ROLE).await.expect("settings");
    assert_eq!((s.max_activation_seconds, s.require_ticket), (2700, true));
    // A bad value is refused with the service's reason and changes nothing.
    let r = b
        .post(
            &format!("/console/admin/roles/{ROLE}"),
            &[
                ("csrf", &csrf),
                ("max_minutes", "45"),
                ("strength", "telepathy"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("html").contains("role=\"alert\""));
    assert_eq!(
        admin
            .role_settings(ROLE)
            .await
            .expect("settings")
            .required_strength,
        "mfa"
    );
}

async fn what_if_shows_the_decision_and_every_policys_reason(app: TestApp) {
    let (mut b, _, admin) = admin_console(&app).await;
    user_with_totp(&app, &admin, "alice", "ALICE".into(), None, PW).await;
    admin
        .ca_import(&CaImportRequest {
            policies: vec![
                serde_json::json!({"name": "alice-never", "state": "enabled", "conditions": {"principals": {"include": ["user:alice"]}, "applications": {"include": ["api"]}}, "grant": {"block": true}}),
                serde_json::json!({"name": "watch-alice", "state": "report_only", "conditions": {"principals": {"include": ["user:alice"]}}, "grant": {"require": "phishing_resistant"}}),
            ],
            force: false,
        })
        .await
        .expect("import");
    let page = b
        .get("/console/admin/policies?user=alice&ip=203.0.113.7&app=api&strength=")
        .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("Decision: block"), "{html}");
    assert!(
        html.contains("alice-never") && html.contains("watch-alice"),
        "{html}"
    );
    // A bad address is the service's message on the page.
    let page = b
        .get("/console/admin/policies?user=alice&ip=not-an-ip")
        .await;
    assert_eq!(page.status(), 400);
    assert!(
        page.text()
            .await
            .expect("html")
            .contains("not an IP address")
    );
}

async fn a_person_without_permissions_is_refused_and_changes_nothing(app: TestApp) {
    let admin = admin(&app).await;
    let secret = eligible_person(&app, &admin, "alice", PW).await;
    let (mut b, csrf) = console_visitor(&app, "alice", PW, &secret, 0).await;
    for page in [
        "/console/admin/users",
        "/console/admin/assignments",
        "/console/admin/policies",
        "/console/audit",
    ] {
        let r = b.get(page).await;
        assert_eq!(r.status(), 403, "{page}");
    }
    let home = b.get("/console").await.text().await.expect("html");
    assert!(
        !home.contains("Administration"),
        "no such menu for her: {home}"
    );
    let r = b
        .post(
            "/console/admin/assignments",
            &[
                ("csrf", &csrf),
                ("principal", "alice"),
                ("role", "global-administrator"),
                ("kind", "active"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        admin
            .assignments_of("alice")
            .await
            .expect("assignments")
            .len(),
        1,
        "only her eligibility"
    );
    let refused = events_named(&admin, "authz.refused").await;
    for route in [
        "route:GET /console/admin/users",
        "route:POST /console/admin/assignments",
    ] {
        assert!(
            refused
                .iter()
                .any(|e| e.actor == "user:alice" && e.target == route),
            "{route}: {refused:?}"
        );
    }
}

async fn nobody_assigns_themselves_a_role_through_the_console(app: TestApp) {
    let (mut b, csrf, admin) = admin_console(&app).await;
    let r = b
        .post(
            "/console/admin/assignments",
            &[
                ("csrf", &csrf),
                ("principal", "root-admin"),
                ("role", ROLE),
                ("kind", "eligible"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    let html = r.text().await.expect("html");
    assert!(html.contains("role=\"alert\""), "{html}");
    assert!(
        !admin
            .assignments_of("root-admin")
            .await
            .expect("assignments")
            .iter()
            .any(|a| a.role == ROLE)
    );
}
