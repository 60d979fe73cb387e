//! The web console (`/console`): its pages through HTTP with a cookie jar (forms, CSRF,
//! messages, the privilege model as the API enforces it), and in a real Chromium.

use portcullis_core::api::RoleSettingsUpdate;

use super::*;

mod admin;
mod browser;
mod forms;
mod oversight;

/// The role people request in the console tests.
pub(crate) const ROLE: &str = "security-reader";

/// `name` (password `pw`, TOTP), eligible for [`ROLE`] at `/`; the TOTP secret.
pub(crate) async fn eligible_person(
    app: &TestApp,
    admin: &Client,
    name: &str,
    pw: &str,
) -> Vec<u8> {
    let secret = user_with_totp(app, admin, name, name.to_uppercase(), None, pw).await;
    admin
        .create_assignment(&CreateAssignmentRequest {
            principal: name.into(),
            role: ROLE.into(),
            scope: None,
            kind: Some("eligible".into()),
            duration_seconds: None,
            ends_at: None,
        })
        .await
        .expect("eligible");
    secret
}

/// [`ROLE`] needs approval by `approver`, at most an hour, a justification.
pub(crate) async fn approval_by(admin: &Client, approver: &str) {
    admin
        .update_role_settings(
            ROLE,
            &RoleSettingsUpdate {
                max_activation_seconds: Some(3600),
                require_justification: Some(true),
                require_approval: Some(true),
                approvers: Some(vec![format!("user:{approver}")]),
                approvals_required: Some(1),
                ..Default::default()
            },
        )
        .await
        .expect("settings");
}

/// A cookie-keeping client signed in to the console as `user` (password and TOTP step
/// `offset`), on the page `/console`; the page's CSRF token.
pub(crate) async fn console_visitor(
    app: &TestApp,
    user: &str,
    pw: &str,
    secret: &[u8],
    offset: i64,
) -> (Browser, String) {
    let mut b = Browser::new(&app.base);
    let page = browser_sign_in(&mut b, "/console", user, pw, secret, offset).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("My access"), "{html}");
    let csrf = hidden(&html, "csrf");
    (b, csrf)
}
