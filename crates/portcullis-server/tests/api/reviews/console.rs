//! The reviewer's console pages: through HTTP with a cookie jar (the list, an item, the
//! decision form with its CSRF check, one's own item refused on the page and audited), and in
//! a real Chromium (tests/support/review_flow.js: the form used, axe-core on every page, no
//! CSP violation, nothing wider than 320 px).

use super::*;
use crate::console::console_visitor;

api_tests!(a_reviewer_decides_through_the_console_form);

/// alice and bob, both eligible for [`ROLE`] and both in the role-assignable group that
/// reviews it; the review's open round; bob's TOTP secret.
async fn reviewers_and_round(app: &TestApp, admin: &Client) -> (String, Vec<u8>) {
    eligible_person(app, admin, "alice").await;
    let bob_secret = user_with_totp(app, admin, "bob", "BOB".into(), None, PW).await;
    admin
        .create_assignment(&eligible("bob", ROLE, None))
        .await
        .expect("eligible");
    group_with(admin, "reviewers", true, &["alice", "bob"]).await;
    let r = admin
        .create_review(&review_of(ROLE, "group:reviewers", "keep"))
        .await
        .expect("review");
    (open_round(&r), bob_secret)
}

async fn a_reviewer_decides_through_the_console_form(app: TestApp) {
    let admin = admin(&app).await;
    let (round, bob_secret) = reviewers_and_round(&app, &admin).await;
    let alice_item = item_of(&admin, &round, "user:alice").await;
    let own_item = item_of(&admin, &round, "user:bob").await;
    let (mut b, csrf) = console_visitor(&app, "bob", PW, &bob_secret, 0).await;
    let r = b.get("/console/reviews").await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("form-action 'self'"),
        "{csp}"
    );
    let html = r.text().await.expect("html");
    let alice_path = format!("/console/reviews/{round}/{}", alice_item.assignment_id);
    let own_path = format!("/console/reviews/{round}/{}", own_item.assignment_id);
    assert!(html.contains(&format!("href=\"{alice_path}\"")), "{html}");
    assert!(
        html.contains("href=\"/console/reviews\" aria-current=\"page\""),
        "{html}"
    );
    // His own item: no form on its page, and a forged form is refused, shown and audited.
    let page = b.get(&own_path).await.text().await.expect("html");
    assert!(!page.contains("value=\"remove\""), "{page}");
    let r = b
        .post(
            &format!("{own_path}/decide"),
            &[("csrf", &csrf), ("decision", "keep"), ("reason", "mine")],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.expect("html").contains("own access"));
    // A form without its CSRF token changes nothing.
    let r = b
        .post(
            &format!("{alice_path}/decide"),
            &[("decision", "remove"), ("reason", "forged")],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.expect("html").contains("CSRF"));
    assert!(
        item_of(&admin, &round, "user:alice")
            .await
            .decision
            .is_none()
    );
    // The form: a reason is required, then the decision is recorded.
    let r = b
        .post(
            &format!("{alice_path}/decide"),
            &[("csrf", &csrf), ("decision", "remove"), ("reason", " ")],
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = b
        .post(
            &format!("{alice_path}/decide"),
            &[
                ("csrf", &csrf),
                ("decision", "remove"),
                ("reason", "left the audit team"),
            ],
        )
        .await;
    assert_eq!(location(&r), format!("{alice_path}?done=review_removed"));
    let page = b.get(&format!("{alice_path}?done=review_removed")).await;
    let html = page.text().await.expect("html");
    assert!(html.contains("Marked for removal"), "{html}");
    assert!(html.contains("data-decision=\"remove\""), "{html}");
    let item = item_of(&admin, &round, "user:alice").await;
    assert_eq!(item.decision.as_deref(), Some("remove"));
    assert_eq!(item.decided_by.as_deref(), Some("user:bob"));
    assert_eq!(item.reason.as_deref(), Some("left the audit team"));
    let refusals = events_named(&admin, "authz.refused").await;
    assert!(
        refusals.iter().any(|e| e.actor == "user:bob"
            && e.details["code"] == "self_review"
            && e.target == "route:POST /console/reviews/{round}/{assignment}/decide"),
        "{refusals:?}"
    );
    app.stop().await;
}

/// The review pages in Chromium: bob removes alice's item through the form; axe-core finds no
/// WCAG 2 A/AA violation on the list, his own item and alice's item before and after; no page
/// error or CSP violation; nothing wider than 320 px.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_pages_work_in_a_real_browser() {
    let Some((node_path, chromium)) = browser_tools() else {
        return;
    };
    if !std::path::Path::new(&node_path).join("axe-core").is_dir() {
        assert!(
            std::env::var("PORTCULLIS_REQUIRE_BROWSER").is_err(),
            "the review browser test needs axe-core in {node_path} (npm install axe-core)"
        );
        eprintln!("skipped: no axe-core in {node_path}");
        return;
    }
    let app = spawn_at_localhost(Backend::Sqlite).await.expect("app");
    let admin = admin(&app).await;
    let (round, bob_secret) = reviewers_and_round(&app, &admin).await;
    let alice_item = item_of(&admin, &round, "user:alice").await;
    let own_item = item_of(&admin, &round, "user:bob").await;
    let bob_token = sign_in_token(&app, "bob", PW, &bob_secret, 0).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/review_flow.js");
    let shots = concat!(env!("CARGO_TARGET_TMPDIR"), "/review-screenshots");
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(script)
            .env("NODE_PATH", &node_path)
            .env("CHROMIUM", &chromium)
            .env("BASE", &app.public_url)
            .env("OUT", shots)
            .env("REVIEWER_TOKEN", &bob_token)
            .env("OTHER", &alice_item.assignment_id)
            .env("OWN", &own_item.assignment_id)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser finished in time")
    .expect("node runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_slice(out.stdout.trim_ascii()).expect("one JSON line");
    eprintln!(
        "review flow: {}",
        serde_json::to_string_pretty(&r).expect("json")
    );
    assert_eq!(
        r["violations"],
        serde_json::json!([]),
        "axe-core (WCAG 2 A/AA) violations:\n{}",
        serde_json::to_string_pretty(&r["violations"]).expect("json")
    );
    assert_eq!(
        r["problems"],
        serde_json::json!([]),
        "page errors or CSP violations"
    );
    assert_eq!(
        r["narrow_overflow"],
        serde_json::json!([]),
        "pages wider than 320 px"
    );
    assert_eq!(r["pages_checked"].as_array().map(Vec::len), Some(4));
    assert_eq!(r["list_status"], 200);
    assert_eq!(r["nav_current"], "Reviews");
    assert_eq!(r["listed"], "user:alice");
    assert_eq!(r["own_offers_form"], 0);
    assert_eq!(r["decision"], "remove");
    assert_eq!(r["form_after"], 0);
    assert!(
        r["done"]
            .as_str()
            .unwrap_or("")
            .starts_with("Marked for removal"),
        "{r}"
    );
    let item = item_of(&admin, &round, "user:alice").await;
    assert_eq!(item.decision.as_deref(), Some("remove"));
    assert_eq!(item.reason.as_deref(), Some("left the audit team in June"));
    app.stop().await;
}
