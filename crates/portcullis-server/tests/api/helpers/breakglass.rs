//! Break-glass accounts: custodians, passwords split as the CLI does, creating and signing
//! in to accounts.

use super::*;

pub(crate) const CUSTODIAN_PW: &str = "copper-lantern-river-42";

pub(crate) async fn people(admin: &Client, names: &[&str]) {
    for n in names {
        admin
            .create_user(&CreateUserRequest {
                name: (*n).into(),
                display_name: n.to_uppercase(),
                email: Some(format!("{n}@example.org")),
                phone: None,
                guest_organisation: None,
                privileged: false,
                password: CUSTODIAN_PW.into(),
            })
            .await
            .expect("create custodian");
    }
}

/// A fresh password for `account`, split as the CLI does.
pub(crate) fn split_for(
    account: &str,
    custodians: &[&str],
    t: usize,
    force: bool,
) -> (String, Vec<bg::Share>) {
    let name = portcullis_core::principal::PrincipalName::parse("name", account).expect("name");
    let c = bg::Custodians::parse(custodians.iter()).expect("custodians");
    let threshold = bg::Threshold::new(t, &c, force).expect("threshold");
    // Like the CLI: a random draw can, rarely, contain a short account name, which the password
    // policy refuses (it once made this helper flaky for `bg1`); draw again.
    let pw = loop {
        let pw = bg::generate_password(&mut rand::rngs::OsRng);
        if portcullis_core::password::check(&pw, name.as_str(), None, true).is_ok() {
            break pw;
        }
    };
    let (_, shares) = bg::split(&name, &pw, &c, threshold, &mut rand::rngs::OsRng).expect("split");
    (pw.to_string(), shares)
}

pub(crate) async fn create_split_account(
    app: &TestApp,
    token: &str,
    name: &str,
    custodians: &[&str],
    t: usize,
) -> String {
    let (pw, _) = split_for(name, custodians, t, false);
    let r = post_json(app, Some(token), "/api/v1/breakglass", serde_json::json!({
        "name": name, "credential": "password", "password": pw, "custodians": custodians, "threshold": t,
    })).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    pw
}

pub(crate) async fn breakglass_signin(
    app: &TestApp,
    name: &str,
    pw: &str,
) -> Result<portcullis_core::api::SignInResponse, ClientError> {
    app.anonymous
        .signin_password(&PasswordSignInRequest {
            username: name.into(),
            password: pw.into(),
        })
        .await
}

pub(crate) async fn breakglass_list(app: &TestApp, token: &str) -> serde_json::Value {
    api_get(app, token, "/api/v1/breakglass").await
}

/// A custodian's own session (full, after TOTP is not needed for a 403 check: a
/// registration-only session is refused just the same).
pub(crate) async fn registration_or_full(app: &TestApp, name: &str) -> String {
    let r = breakglass_signin(app, name, CUSTODIAN_PW)
        .await
        .expect("custodian signs in");
    r.session.expect("session").token
}
