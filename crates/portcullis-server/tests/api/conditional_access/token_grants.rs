//! Conditional access at token refresh, device grant and client credentials.

use super::*;

/// A refresh token issued before any policy is judged by the policies of now (audited), and
/// so is a new device grant: secops needs security keys on the CLI.
async fn token_refresh_and_issuance_are_judged_by_the_policies_of_now(app: TestApp) {
    let p = people_and_lab(&app).await;
    // alice's CLI login from before any policy.
    let d = device_start(&app).await;
    p.alice
        .approve_device(&portcullis_core::api::DeviceDecisionRequest {
            user_code: code_of(&d, "user_code"),
        })
        .await
        .expect("approve");
    let r = device_poll(&app, &code_of(&d, "device_code")).await;
    assert_eq!(r.status(), 200);
    let cli_tokens: serde_json::Value = r.json().await.expect("json");
    let alice_refresh = cli_tokens["refresh_token"].as_str().expect("rt").to_owned();
    import_six_policies(&app, &p.token).await;

    let r = refresh_with(&app, "portcullis-cli", &alice_refresh).await;
    oauth_refusal_naming(r, 400, "invalid_grant", "secops-keys").await;
    let refused = events_named(&p.admin, "token.refresh").await;
    assert_eq!(
        last_event(&refused, "user:alice").details["conditional_access"]["outcome"],
        "require"
    );
    let d = device_start(&app).await;
    p.alice
        .approve_device(&portcullis_core::api::DeviceDecisionRequest {
            user_code: code_of(&d, "user_code"),
        })
        .await
        .expect("approve");
    oauth_error(
        device_poll(&app, &code_of(&d, "device_code")).await,
        400,
        "invalid_grant",
    )
    .await;
    verify_and_stop(app, &p.admin).await;
}

/// Client credentials: a service account outside its allowed place is refused, naming the
/// policy.
async fn client_credentials_outside_the_allowed_location_are_refused(app: TestApp) {
    let p = with_six_policies(&app).await;
    p.admin
        .create_service_account(&CreateServiceAccountRequest {
            name: "etl".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
    let secret = p
        .admin
        .add_client_secret("etl")
        .await
        .expect("secret")
        .client_secret;
    access_token(&app, "etl", &secret).await;
    let r = ca_import(&app, &p.token, serde_json::json!([
        {"name": "daemons-outside", "state": "enabled", "conditions": {"principals": {"include": ["service_accounts"]}, "locations": {"include": ["lab"]}}, "grant": {"block": true}}
    ]), false).await;
    assert_eq!(r.status(), 200);
    let r = token_request(
        &app,
        &[("grant_type", "client_credentials")],
        Some(("etl", &secret)),
    )
    .await;
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"], "unauthorized_client");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("daemons-outside"),
        "{body}"
    );
    verify_and_stop(app, &p.admin).await;
}

api_tests!(
    token_refresh_and_issuance_are_judged_by_the_policies_of_now,
    client_credentials_outside_the_allowed_location_are_refused,
);
