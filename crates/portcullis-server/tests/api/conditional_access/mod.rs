//! Conditional access: policies as data (locations and policies validated, every problem at
//! once, nothing changed); enforcement at sign-in (block, requirement, report-only recorded in
//! the audit event), at token refresh and for client credentials; what-if with an explanation
//! per policy; break-glass accounts untouched by any policy; the lockout guard refuses (a) and
//! lets the caller force only (b), audited and alerted. One file per topic; the set-ups they
//! share are here.

use super::*;

mod break_glass;
mod lockout;
mod sign_in;
mod token_grants;
mod validation;
mod what_if;

const ALICE_PW: &str = "copper-lantern-river-42";

/// The administrator's token and a client signed in with it.
async fn administrator(app: &TestApp) -> (String, Client) {
    let token = admin_token(app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    (token, admin)
}

/// Every test ends the same way: the audit chain still verifies.
async fn verify_and_stop(app: TestApp, admin: &Client) {
    assert!(admin.audit_verify().await.expect("verify").ok);
    app.stop().await;
}

/// The trusted named location `lab`: loopback and 2001:db8:10::/48.
async fn add_lab(app: &TestApp, token: &str) {
    let r = post_json(app, Some(token), "/api/v1/ca/locations", serde_json::json!({"name": "lab", "cidrs": ["127.0.0.0/8", "2001:db8:10::/48"], "trusted": true})).await;
    assert_eq!(r.status(), 200);
}

/// The people the policies name, and the location `lab`.
struct People {
    token: String,
    admin: Client,
    /// Signed in with TOTP (offset 0), a member of `secops`.
    alice: Client,
    alice_secret: Vec<u8>,
}

/// alice (TOTP, in `secops`), gary (a guest from Contoso), paul (a member without a second
/// factor) and the trusted location `lab`; no policy yet.
async fn people_and_lab(app: &TestApp) -> People {
    let (token, admin) = administrator(app).await;
    let (alice, alice_secret) = mfa_user(app, &admin, "alice", ALICE_PW).await;
    admin
        .create_user(&CreateUserRequest {
            name: "gary".into(),
            display_name: "Gary".into(),
            email: None,
            phone: None,
            guest_organisation: Some("Contoso".into()),
            privileged: false,
            password: CUSTODIAN_PW.into(),
        })
        .await
        .expect("guest");
    people(&admin, &["paul"]).await;
    admin
        .create_group(&CreateGroupRequest {
            name: "secops".into(),
            display_name: None,
            role_assignable: false,
        })
        .await
        .expect("group");
    admin
        .add_group_member(
            "secops",
            &GroupMemberRequest {
                member: "alice".into(),
            },
        )
        .await
        .expect("member");
    add_lab(app, &token).await;
    People {
        token,
        admin,
        alice,
        alice_secret,
    }
}

/// Five enforced policies plus a report-only one, imported.
async fn import_six_policies(app: &TestApp, token: &str) {
    let r = ca_import(app, token, serde_json::json!([
        {"name": "guests-only-from-lab", "state": "enabled", "conditions": {"principals": {"include": ["guests"]}, "locations": {"include": ["any"], "exclude": ["lab"]}}, "grant": {"block": true}},
        {"name": "guests-never", "state": "enabled", "conditions": {"principals": {"include": ["user:gary"]}, "applications": {"include": ["api"]}}, "grant": {"block": true}},
        {"name": "secops-keys", "state": "enabled", "conditions": {"principals": {"include": ["group:secops"]}, "applications": {"include": ["cli"]}}, "grant": {"require": "phishing_resistant"}},
        {"name": "members-mfa", "state": "enabled", "conditions": {"principals": {"include": ["user:paul"]}}, "grant": {"require": "mfa"}},
        {"name": "watch-alice", "state": "report_only", "conditions": {"principals": {"include": ["user:alice"]}}, "grant": {"block": true}},
        {"name": "alice-hourly", "state": "enabled", "conditions": {"principals": {"include": ["user:alice"]}}, "session": {"sign_in_frequency_hours": 1}}
    ]), false).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

/// [`people_and_lab`] with [`import_six_policies`].
async fn with_six_policies(app: &TestApp) -> People {
    let p = people_and_lab(app).await;
    import_six_policies(app, &p.token).await;
    p
}

/// alice signs in with her password and TOTP (offset 1) under the six policies.
async fn alice_signs_in(app: &TestApp, secret: &[u8]) -> portcullis_core::api::SessionIssued {
    let first = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "alice".into(),
            password: ALICE_PW.into(),
        })
        .await
        .expect("password");
    app.anonymous
        .signin_totp(&TotpSignInRequest {
            signin_id: first.signin_id.expect("id"),
            code: crate::code(secret, 1),
        })
        .await
        .expect("totp")
        .session
        .expect("session")
}
