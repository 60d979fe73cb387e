//! Accounts and sign-in: the bootstrap administrator, password + TOTP sign-in, privileged
//! people with a confirmed TOTP factor, registration-only sessions.

use super::*;

pub(crate) const ADMIN_PW: &str = "violet-kettle-orbit-93";

pub(crate) const ADMIN_SECRET: &[u8] = b"portcullis-test-totp-secret";

pub(crate) fn now_unix() -> u64 {
    time::OffsetDateTime::now_utc().unix_timestamp() as u64
}

/// A code for `offset` steps from now (step +1 is accepted and always newer than a code
/// accepted just before).
pub(crate) fn code(secret: &[u8], offset: i64) -> String {
    portcullis_server::testing::totp_code(secret, offset)
}

pub(crate) async fn bootstrap_admin(app: &TestApp) {
    app.anonymous
        .bootstrap(&BootstrapRequest {
            token: app.token.clone(),
            username: "root-admin".into(),
            display_name: "Root Admin".into(),
            email: Some("root@example.org".into()),
            password: ADMIN_PW.into(),
            totp_secret: totp::base32(ADMIN_SECRET),
            totp_code: code(ADMIN_SECRET, 0),
        })
        .await
        .expect("bootstrap");
}

/// Signs in with password and TOTP; `offset` picks the code's step.
pub(crate) async fn sign_in(
    app: &TestApp,
    user: &str,
    pw: &str,
    secret: &[u8],
    offset: i64,
) -> Client {
    let token = sign_in_token(app, user, pw, secret, offset).await;
    app.anonymous.with_token(Some(SecretString::from(token)))
}

/// The session token of a password + TOTP sign-in.
pub(crate) async fn sign_in_token(
    app: &TestApp,
    user: &str,
    pw: &str,
    secret: &[u8],
    offset: i64,
) -> String {
    let (r, done) =
        portcullis_server::testing::password_and_totp(&app.anonymous, user, pw, secret, offset)
            .await;
    assert_eq!(r.status, "mfa_required");
    assert_eq!(done.status, "signed_in");
    let s = done.session.expect("session");
    assert_eq!(s.strength, "mfa");
    s.token
}

pub(crate) async fn admin(app: &TestApp) -> Client {
    bootstrap_admin(app).await;
    sign_in(app, "root-admin", ADMIN_PW, ADMIN_SECRET, 1).await
}

/// The admin's session token (bootstrap, then password and TOTP).
pub(crate) async fn admin_token(app: &TestApp) -> String {
    bootstrap_admin(app).await;
    let r = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "root-admin".into(),
            password: ADMIN_PW.into(),
        })
        .await
        .expect("password");
    let r = app
        .anonymous
        .signin_totp(&TotpSignInRequest {
            signin_id: r.signin_id.expect("id"),
            code: code(ADMIN_SECRET, 1),
        })
        .await
        .expect("totp");
    r.session.expect("session").token
}

pub(crate) async fn create_privileged(admin: &Client, name: &str, pw: &str) {
    admin
        .create_user(&CreateUserRequest {
            name: name.into(),
            display_name: name.to_uppercase(),
            email: None,
            phone: None,
            guest_organisation: None,
            privileged: true,
            password: pw.into(),
        })
        .await
        .expect("create user");
}

/// Password sign-in of an account without a second factor: a registration-only session.
pub(crate) async fn registration_session(app: &TestApp, name: &str, pw: &str) -> Client {
    let r = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: name.into(),
            password: pw.into(),
        })
        .await
        .expect("password");
    let s = r.session.expect("session");
    assert_eq!(s.scope, "registration_only");
    app.anonymous.with_token(Some(SecretString::from(s.token)))
}

/// A privileged user with a confirmed TOTP factor (its code for step -1 used); the secret.
pub(crate) async fn user_with_totp(
    app: &TestApp,
    admin: &Client,
    name: &str,
    display_name: String,
    email: Option<String>,
    pw: &str,
) -> Vec<u8> {
    admin
        .create_user(&CreateUserRequest {
            name: name.into(),
            display_name,
            email,
            phone: None,
            guest_organisation: None,
            privileged: true,
            password: pw.into(),
        })
        .await
        .expect("create user");
    let reg = registration_session(app, name, pw).await;
    let enrol = reg
        .mfa_enrol_totp(&TotpEnrolRequest {
            name: "phone".into(),
        })
        .await
        .expect("enrol");
    let secret = totp::base32_decode(&enrol.secret).expect("b32");
    // The code is for the step before the current one; if a step boundary passes between
    // computing it and the server checking it, it is two steps old and refused: try once more.
    for last_try in [false, true] {
        let step = now_unix() / 30;
        let r = reg
            .mfa_confirm_totp(
                &enrol.factor_id,
                &TotpConfirmRequest {
                    code: code(&secret, -1),
                },
            )
            .await;
        match r {
            Ok(_) => break,
            Err(e) if !last_try && now_unix() / 30 != step => {
                eprintln!("retrying TOTP confirmation across a step boundary: {e:?}");
            }
            Err(e) => panic!("confirm: {e:?}"),
        }
    }
    secret
}

/// A user with a confirmed TOTP factor, signed in with it (strength `mfa`).
pub(crate) async fn mfa_user(
    app: &TestApp,
    admin: &Client,
    name: &str,
    pw: &str,
) -> (Client, Vec<u8>) {
    let secret = user_with_totp(app, admin, name, name.to_uppercase(), None, pw).await;
    (sign_in(app, name, pw, &secret, 0).await, secret)
}
