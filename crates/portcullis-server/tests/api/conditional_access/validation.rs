//! Conditional access: policies and named locations as data, validated (every problem at
//! once, nothing changed), alerted on change, unique ignoring case, kept while in use.

use super::*;

/// Bad named locations are refused, every problem named, and nothing is added; a good one is
/// added.
async fn bad_named_locations_are_refused_and_add_nothing(app: TestApp) {
    let (token, admin) = administrator(&app).await;
    for (body, needle) in [
        (
            serde_json::json!({"name": "lab", "cidrs": ["10.0.0.0/8", "10.1.0.0/16"]}),
            "overlaps",
        ),
        (
            serde_json::json!({"name": "lab", "cidrs": ["10.0.0.1/8", "300.1.1.1"]}),
            "host bits",
        ),
        (
            serde_json::json!({"name": "any", "cidrs": ["10.0.0.0/8"]}),
            "reserved",
        ),
        (
            serde_json::json!({"name": "lab", "cidrs": []}),
            "at least one",
        ),
    ] {
        let (status, _, msg) =
            error_of(post_json(&app, Some(&token), "/api/v1/ca/locations", body.clone()).await)
                .await;
        assert_eq!(status, 400, "{body}: {msg}");
        assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
    }
    assert_eq!(
        api_get(&app, &token, "/api/v1/ca/locations").await,
        serde_json::json!([])
    );
    add_lab(&app, &token).await;
    verify_and_stop(app, &admin).await;
}

/// Bad policy imports (unknown names, all listed; a duplicated name; an unknown field) are
/// refused and change nothing.
async fn bad_policy_imports_are_refused_naming_every_problem(app: TestApp) {
    let (token, admin) = administrator(&app).await;
    let (status, _, msg) = error_of(ca_import(&app, &token, serde_json::json!([
        {"name": "p1", "state": "enabled", "conditions": {"principals": {"include": ["user:nobody", "group:ghosts", "role:no-such-role"]}, "applications": {"include": ["client:no-client"]}, "locations": {"include": ["nowhere"]}}, "grant": {"require": "mfa"}}
    ]), false).await).await;
    assert_eq!(status, 400);
    for n in ["nobody", "ghosts", "no-such-role", "no-client", "nowhere"] {
        assert!(msg.contains(n), "{n} not in {msg}");
    }
    let p = serde_json::json!({"name": "dup", "state": "enabled", "conditions": {"principals": {"include": ["guests"]}}, "grant": {"require": "mfa"}});
    let (status, _, msg) = error_of(
        ca_import(
            &app,
            &token,
            serde_json::json!([p.clone(), p.clone()]),
            false,
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(msg.contains("dup"), "{msg}");
    let (status, _, _) = error_of(ca_import(&app, &token, serde_json::json!([{"name": "x", "state": "enabled", "grant": {"block": true}, "surprise": 1}]), false).await).await;
    assert_eq!(status, 400, "unknown field");
    assert_eq!(
        api_get(&app, &token, "/api/v1/ca/policies").await,
        serde_json::json!([])
    );
    verify_and_stop(app, &admin).await;
}

/// Every policy change alerts; re-importing a policy unchanged is a no-op.
async fn policy_changes_alert_and_reimporting_the_same_is_a_no_op(app: TestApp) {
    let p = with_six_policies(&app).await;
    assert_eq!(
        alert_count(&app, &p.token, "conditional_access.changed").await,
        6,
        "every policy change alerts"
    );
    let same: serde_json::Value = ca_import(&app, &p.token, serde_json::json!([
        {"name": "members-mfa", "state": "enabled", "conditions": {"principals": {"include": ["user:paul"]}}, "grant": {"require": "mfa"}}
    ]), false).await.json().await.expect("json");
    assert_eq!(same["unchanged"], serde_json::json!(["members-mfa"]));
    verify_and_stop(app, &p.admin).await;
}

/// Policy names are unique ignoring case: re-importing in another case replaces, never adds.
async fn policy_names_are_unique_ignoring_case(app: TestApp) {
    let p = with_six_policies(&app).await;
    let token = &p.token;
    for name in ["Case-Test", "case-test"] {
        let r = ca_import(&app, token, serde_json::json!([
            {"name": name, "state": "disabled", "conditions": {"principals": {"include": ["guests"]}}, "grant": {"block": true}}
        ]), false).await;
        assert_eq!(r.status(), 200);
    }
    let names: Vec<String> = api_get(&app, token, "/api/v1/ca/policies")
        .await
        .as_array()
        .expect("list")
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_owned())
        .filter(|n| n.eq_ignore_ascii_case("case-test"))
        .collect();
    assert_eq!(names, ["case-test"]);
    let r = app
        .http
        .delete(format!("{}/api/v1/ca/policies/case-test", app.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    verify_and_stop(app, &p.admin).await;
}

/// A location a policy uses cannot be deleted; the refusal names the policy.
async fn a_location_in_use_cannot_be_deleted(app: TestApp) {
    let p = with_six_policies(&app).await;
    let r = app
        .http
        .delete(format!("{}/api/v1/ca/locations/lab", app.base))
        .bearer_auth(&p.token)
        .send()
        .await
        .expect("delete");
    let (status, _, msg) = error_of(r).await;
    assert_eq!(status, 409);
    assert!(msg.contains("guests-only-from-lab"), "{msg}");
    verify_and_stop(app, &p.admin).await;
}

api_tests!(
    bad_named_locations_are_refused_and_add_nothing,
    bad_policy_imports_are_refused_naming_every_problem,
    policy_changes_alert_and_reimporting_the_same_is_a_no_op,
    policy_names_are_unique_ignoring_case,
    a_location_in_use_cannot_be_deleted,
);
