//! Conditional access: what-if, with an explanation per policy.

use super::*;

/// What-if explains every policy and judges by location (IPv4-mapped addresses as IPv4) and
/// by the strength of the sign-in.
async fn what_if_explains_every_policy_by_location_and_strength(app: TestApp) {
    let p = with_six_policies(&app).await;
    let token = &p.token;
    let inside = whatif(
        &app,
        token,
        serde_json::json!({"user": "gary", "ip": "127.0.0.1", "app": "cli"}),
    )
    .await;
    assert_eq!(inside["outcome"], "allow", "{inside}");
    assert_eq!(
        inside["explanation"].as_array().expect("explanation").len(),
        6
    );
    let outside = whatif(
        &app,
        token,
        serde_json::json!({"user": "gary", "ip": "2001:db8:99::1", "app": "cli"}),
    )
    .await;
    assert_eq!(outside["outcome"], "block", "{outside}");
    assert_eq!(
        outside["policies"],
        serde_json::json!(["guests-only-from-lab"])
    );
    let mapped = whatif(
        &app,
        token,
        serde_json::json!({"user": "gary", "ip": "::ffff:127.0.0.9", "app": "cli"}),
    )
    .await;
    assert_eq!(
        mapped["outcome"], "allow",
        "an IPv4-mapped address is judged as IPv4: {mapped}"
    );
    let keys = whatif(
        &app,
        token,
        serde_json::json!({"user": "alice", "ip": "127.0.0.1", "app": "cli", "strength": "mfa"}),
    )
    .await;
    assert_eq!(
        (keys["outcome"].as_str(), keys["strength"].as_str()),
        (Some("require"), Some("phishing_resistant"))
    );
    verify_and_stop(app, &p.admin).await;
}

/// What-if refuses a bad address, an out-of-range hour count and a malformed user name.
async fn what_if_refuses_bad_input(app: TestApp) {
    let p = with_six_policies(&app).await;
    let (status, _, _) = error_of(
        post_json(
            &app,
            Some(&p.token),
            "/api/v1/ca/whatif",
            serde_json::json!({"user": "alice", "ip": "not-an-ip"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    for bad in [
        serde_json::json!({"user": "alice", "ip": "127.0.0.1", "hours_since_sign_in": u32::MAX}),
        serde_json::json!({"user": "Not A Name!", "ip": "127.0.0.1"}),
    ] {
        let r = post_json(&app, Some(&p.token), "/api/v1/ca/whatif", bad.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    verify_and_stop(app, &p.admin).await;
}

api_tests!(
    what_if_explains_every_policy_by_location_and_strength,
    what_if_refuses_bad_input,
);
