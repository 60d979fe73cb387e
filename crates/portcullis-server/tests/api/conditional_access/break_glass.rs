//! Conditional access never applies to break-glass accounts, however it is written.

use super::*;

/// Including a break-glass account by name is refused as misleading: it could never apply.
async fn a_policy_naming_a_break_glass_account_is_refused(app: TestApp) {
    let p = with_six_policies(&app).await;
    people(&p.admin, &["cara", "dan"]).await;
    create_split_account(&app, &p.token, "bg-one", &["cara", "dan"], 2).await;
    let (status, _, msg) = error_of(ca_import(&app, &p.token, serde_json::json!([
        {"name": "no-bg", "state": "enabled", "conditions": {"principals": {"include": ["user:bg-one"]}}, "grant": {"block": true}}
    ]), false).await).await;
    assert_eq!(status, 400);
    assert!(msg.contains("bg-one is a break-glass account"), "{msg}");
    verify_and_stop(app, &p.admin).await;
}

/// A break-glass account is never evaluated: with every member but the administrator
/// blocked (excluding it by name is fine), it still signs in while another member is
/// blocked, and what-if says so.
async fn break_glass_accounts_are_never_evaluated(app: TestApp) {
    let p = with_six_policies(&app).await;
    let token = &p.token;
    people(&p.admin, &["cara", "dan"]).await;
    let pw = create_split_account(&app, token, "bg-one", &["cara", "dan"], 2).await;
    let r = ca_import(&app, token, serde_json::json!([
        {"name": "members-out", "state": "enabled", "conditions": {"principals": {"include": ["members"], "exclude": ["user:root-admin", "user:bg-one"]}}, "grant": {"block": true}},
        {"name": "members-out-2", "state": "enabled", "conditions": {"principals": {"include": ["members"], "exclude": ["user:root-admin"]}}, "grant": {"block": true}}
    ]), false).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let s = breakglass_signin(&app, "bg-one", &pw)
        .await
        .expect("break-glass signs in");
    assert_eq!(s.status, "signed_in");
    let e = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "cara".into(),
            password: CUSTODIAN_PW.into(),
        })
        .await
        .expect_err("a member is blocked");
    assert_eq!(e.code(), Some("ca_blocked"));
    let w = whatif(
        &app,
        token,
        serde_json::json!({"user": "bg-one", "ip": "203.0.113.7"}),
    )
    .await;
    assert_eq!(
        (w["outcome"].as_str(), w["break_glass"].as_bool()),
        (Some("allow"), Some(true)),
        "{w}"
    );
    for name in ["members-out", "members-out-2"] {
        ca_delete_now(&app, token, name).await;
    }
    verify_and_stop(app, &p.admin).await;
}

api_tests!(
    a_policy_naming_a_break_glass_account_is_refused,
    break_glass_accounts_are_never_evaluated,
);
