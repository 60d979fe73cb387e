//! Rules 2, 6 and 8 (findings 3, 10 and 12): nobody takes over or gives roles to a service
//! account whose secret they hold; introspection answers only the token's audience; no factors.

use super::*;
use portcullis_core::api::CreateRoleRequest;

/// Finding 3 and rule 6: a Service Administrator cannot add a secret to a service account that
/// holds a privileged role (and act as it); an ordinary one stays theirs to manage.
async fn service_administrator_cannot_take_over_a_privileged_service_account(app: TestApp) {
    let admin = admin(&app).await;
    bare_service_account(&admin, "ops-bot").await;
    bare_service_account(&admin, "plain-bot").await;
    // A top-tier administrator may give a service account a privileged role actively.
    admin
        .create_assignment(&assignment(
            "service_account:ops-bot",
            "privileged-role-administrator",
            "active",
            Some(86_400),
        ))
        .await
        .expect("active PRA for a daemon, by a Global Administrator");
    // Who assigned it the role does not also take its credentials.
    assert_eq!(
        code_of(admin.add_client_secret("ops-bot").await),
        "self_assignment"
    );
    let (sam, _) = holder(&app, &admin, "sam", "service-administrator").await;
    assert_eq!(
        code_of(sam.add_client_secret("ops-bot").await),
        "privileged_principal"
    );
    assert_eq!(
        code_of(
            sam.set_networks(
                "ops-bot",
                &portcullis_core::api::NetworksRequest { cidrs: vec![] }
            )
            .await
        ),
        "privileged_principal"
    );
    assert!(sam.add_client_secret("plain-bot").await.is_ok());
    assert_eq!(
        refusals_of(&admin, "user:sam")
            .await
            .first()
            .map(|r| r.0.clone()),
        Some("privileged_principal".to_owned())
    );
    app.stop().await;
}

/// Rule 2: a service account whose secret you added is you; you do not give it roles.
async fn nobody_assigns_a_role_to_a_service_account_whose_secret_they_hold(app: TestApp) {
    let admin = admin(&app).await;
    service_account(&admin, "helper-bot").await;
    let r = admin
        .create_assignment(&assignment(
            "service_account:helper-bot",
            "audit-reader",
            "active",
            Some(3600),
        ))
        .await;
    assert_eq!(code_of(r), "self_assignment");
    app.stop().await;
}

/// Finding 10 and rule 8: every token names its client as audience, and introspection answers
/// `active` only to that client (or to a service account holding `tokens.introspect`).
async fn introspection_answers_only_the_tokens_audience(app: TestApp) {
    let admin = admin(&app).await;
    let a = service_account(&admin, "alpha").await;
    let b = service_account(&admin, "beta").await;
    bare_service_account(&admin, "resource-server").await;
    let token = access_token(&app, "alpha", &a).await;
    assert_eq!(claims_of(&token)["aud"], "alpha");
    assert_eq!(introspect(&app, "alpha", &a, &token).await["active"], true);
    let foreign = introspect(&app, "beta", &b, &token).await;
    assert_eq!(
        foreign,
        serde_json::json!({ "active": false }),
        "beta learns nothing"
    );
    admin
        .create_role(&CreateRoleRequest {
            slug: "token-introspector".into(),
            display_name: None,
            description: String::new(),
            permissions: vec!["tokens.introspect".into()],
        })
        .await
        .expect("role");
    admin
        .create_assignment(&assignment(
            "service_account:resource-server",
            "token-introspector",
            "active",
            Some(86_400),
        ))
        .await
        .expect("an ordinary role may be held actively");
    // Who assigned it a role does not hold its secret: a Service Administrator adds it.
    let (sam, _) = holder(&app, &admin, "sam", "service-administrator").await;
    let rs = secret_of(&sam, "resource-server").await;
    let granted = introspect(&app, "resource-server", &rs, &token).await;
    assert_eq!(granted["active"], true);
    assert_eq!(granted["client_id"], "alpha");
    app.stop().await;
}

/// Finding 12 and rule 6: service accounts enrol no factors.
async fn service_accounts_enrol_no_factors(app: TestApp) {
    let admin = admin(&app).await;
    let s = service_account(&admin, "robot").await;
    let robot = token_client(&app, &access_token(&app, "robot", &s).await);
    assert_eq!(
        code_of(
            robot
                .mfa_enrol_totp(&TotpEnrolRequest { name: "x".into() })
                .await
        ),
        "forbidden"
    );
    assert_eq!(
        code_of(
            robot
                .mfa_webauthn_register(&WebauthnRegisterRequest { name: "x".into() })
                .await
        ),
        "forbidden"
    );
    app.stop().await;
}

api_tests!(
    service_administrator_cannot_take_over_a_privileged_service_account,
    nobody_assigns_a_role_to_a_service_account_whose_secret_they_hold,
    introspection_answers_only_the_tokens_audience,
    service_accounts_enrol_no_factors,
);
