//! The console in a real Chromium (tests/support/console_flow.js): request, approve with a
//! step-up to a security key, time left counting down, deactivate, the audit log; refused
//! forms shown on the page; axe-core finds no WCAG 2 A/AA violation on any page visited.

use super::*;

const PW: &str = "granite-willow-comet-81";

/// Three people in three browser contexts, each with a virtual security key: alice requests
/// (and tries what she may not), bob approves after stepping up from TOTP to his key, alice
/// deactivates, carol reads the audit log. Afterwards the API agrees with what the pages said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_a_real_browser() {
    let Some((node_path, chromium)) = browser_tools() else {
        return;
    };
    if !std::path::Path::new(&node_path).join("axe-core").is_dir() {
        assert!(
            std::env::var("PORTCULLIS_REQUIRE_BROWSER").is_err(),
            "the console browser test needs axe-core in {node_path} (npm install axe-core)"
        );
        eprintln!("skipped: no axe-core in {node_path}");
        return;
    }
    let app = spawn_at_localhost(Backend::Sqlite).await.expect("app");
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let alice_secret = eligible_person(&app, &admin, "alice", PW).await;
    let bob_secret = user_with_totp(&app, &admin, "bob", "BOB".into(), None, PW).await;
    let carol_secret = user_with_totp(&app, &admin, "carol", "CAROL".into(), None, PW).await;
    // The role needs a security key, and bob's approval.
    admin
        .update_role_settings(
            ROLE,
            &RoleSettingsUpdate {
                max_activation_seconds: Some(3600),
                required_strength: Some("phishing_resistant".into()),
                require_justification: Some(true),
                require_approval: Some(true),
                approvers: Some(vec!["user:bob".into()]),
                approvals_required: Some(1),
                ..Default::default()
            },
        )
        .await
        .expect("settings");
    admin
        .create_assignment(&CreateAssignmentRequest {
            principal: "carol".into(),
            role: "audit-reader".into(),
            scope: None,
            kind: Some("active".into()),
            duration_seconds: Some(86_400),
            ends_at: None,
        })
        .await
        .expect("carol reads the audit log");
    // Sessions through the API to register each one's key from their own browser.
    let alice_token = sign_in_token(&app, "alice", PW, &alice_secret, 0).await;
    let bob_token = sign_in_token(&app, "bob", PW, &bob_secret, 0).await;
    let alice = app
        .anonymous
        .with_token(Some(SecretString::from(alice_token.clone())));

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/console_flow.js");
    let shots = concat!(env!("CARGO_TARGET_TMPDIR"), "/console-screenshots");
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(180),
        tokio::process::Command::new("node")
            .arg(script)
            .env("NODE_PATH", &node_path)
            .env("CHROMIUM", &chromium)
            .env("BASE", &app.public_url)
            .env("OUT", shots)
            .env("ROLE", ROLE)
            .env("PASSWORD", PW)
            .env("ADMIN_TOKEN", &token)
            .env("ALICE_TOKEN", &alice_token)
            .env("BOB_TOKEN", &bob_token)
            .env("BOB_TOTP", hex::encode(&bob_secret))
            .env("CAROL_TOTP", hex::encode(&carol_secret))
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
        "console flow: {}",
        serde_json::to_string_pretty(&r).expect("json")
    );
    let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
    // Reflow at 320 px (WCAG 1.4.10), which axe does not check: no page is wider.
    assert!(
        r["narrow_overflow"].as_array().is_none_or(|a| a.is_empty()),
        "pages wider than a 320 px viewport: {}",
        r["narrow_overflow"]
    );

    // Nothing the browser saw was wrong: no axe violation, no page error, no CSP violation.
    for (page, status) in r["admin_pages"].as_object().expect("admin pages") {
        assert_eq!(status, 200, "{page}");
    }
    assert_eq!(r["admin_pages"].as_object().map(|m| m.len()), Some(7));
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
    for page in [
        "signin",
        "second-factor",
        "console",
        "approvals",
        "request (approver)",
        "reauth",
        "audit",
        "audit event",
    ] {
        assert!(
            r["pages_checked"]
                .as_array()
                .expect("pages")
                .iter()
                .any(|p| p == page),
            "axe ran on {page}: {}",
            r["pages_checked"]
        );
    }

    // The refusals were shown on the page.
    assert_eq!(r["over_max_status"], 400);
    assert!(text("over_max_alert").contains("3600"), "{r}");
    assert_eq!(r["no_justification_status"], 400);
    assert!(
        text("no_justification_alert").contains("justification"),
        "{r}"
    );
    assert_eq!(r["own_request_offers_decision"], false);
    assert_eq!(r["self_approval_status"], 403);
    assert!(text("self_approval_alert").contains("own request"), "{r}");
    assert_eq!(r["cross_site_status"], 403);
    assert!(text("cross_site_text").contains("CSRF"), "{r}");

    // The request, its approval after the step-up, the time left, the deactivation.
    assert!(text("requested").starts_with("Your request is in"), "{r}");
    assert_eq!(r["inbox_requester"], "alice");
    assert!(text("reauthenticated").starts_with("Confirmed"), "{r}");
    assert_eq!(r["strength_after_step_up"], "phishing_resistant");
    assert_eq!(r["approved"], "Approved.");
    let left = r["time_left"].as_array().expect("time left");
    let shape = |s: &serde_json::Value| {
        let s = s.as_str().unwrap_or_default();
        s.ends_with(" s left") && s.contains(" min ")
    };
    assert!(left.iter().all(shape), "{left:?}");
    assert!(
        left[0].as_str().expect("s").starts_with("29 min"),
        "{left:?}"
    );
    assert_ne!(left[0], left[1], "the time left counts down");
    assert!(
        text("deactivated").starts_with("The role is deactivated"),
        "{r}"
    );
    assert_eq!(r["still_active"], 0);
    assert_eq!(r["deactivate_buttons_after"], 0);

    // The audit log, filtered in the page.
    let audit = &r["audit"];
    assert_eq!(
        audit["status"], 200,
        "GET /console/audit answered {} (is the audit page there?)",
        audit["status"]
    );
    assert!(
        audit["rows_by_action"].as_u64().expect("rows") >= 1,
        "{audit}"
    );
    assert_eq!(audit["rows_by_action_and_actor"], 1, "{audit}");
    let q = audit["query"].as_str().expect("query");
    assert!(
        q.contains("action=request.approved") && q.contains("actor=user%3Abob"),
        "{q}"
    );
    assert!(
        audit["first_row"]
            .as_str()
            .expect("row")
            .contains("request.approved"),
        "{audit}"
    );
    assert_eq!(audit["event_status"], 200);
    let ev = audit["event_text"].as_str().expect("event");
    assert!(
        ev.contains("request.approved") && ev.contains("user:bob"),
        "{ev}"
    );

    let shot_files = r["screenshots"].as_array().expect("screenshots");
    assert!(shot_files.len() >= 14, "{shot_files:?}");
    for f in shot_files {
        let f = f.as_str().expect("path");
        assert!(
            std::fs::metadata(f).expect("screenshot").len() > 1000,
            "{f}"
        );
    }

    // The API agrees: one request (the over-maximum, justification-less and cross-site forms
    // made none), approved by bob, now deactivated.
    let mine = alice.requests("mine", None).await.expect("requests");
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0].id, text("request_id"));
    assert_eq!(mine[0].state, "deactivated");
    assert_eq!(mine[0].justification.as_deref(), Some("reviewing alerts"));
    assert_eq!(mine[0].ticket.as_deref(), Some("SEC-42"));
    let refused = events_named(&admin, "authz.refused").await;
    assert!(
        refused.iter().any(|e| e.actor == "user:alice"
            && e.details["code"] == "self_approval"
            && e.target == "route:POST /console/requests/{id}/decide"),
        "{refused:?}"
    );
    let approved = events_named(&admin, "request.approved").await;
    assert!(
        approved
            .iter()
            .any(|e| e.actor == "user:bob" && e.details["request_id"] == text("request_id")),
        "{approved:?}"
    );
    app.stop().await;
}
