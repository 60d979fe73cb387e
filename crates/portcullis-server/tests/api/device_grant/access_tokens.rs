//! Access tokens as API credentials (permissions from the grants held now; revoked, forged
//! and disabled-subject tokens refused) and long-running clients refreshing by themselves.

use super::*;

/// Access tokens work as bearer credentials of the API, for service accounts and for people
/// (after the device grant); permissions come from the grants held *now*, so removing a role
/// takes effect on a token that still names it; revoked, forged and disabled-subject tokens are
/// refused.
async fn access_tokens_are_api_credentials(app: TestApp) {
    use portcullis_core::api::DeviceDecisionRequest;
    let admin = admin(&app).await;
    admin
        .create_service_account(&portcullis_core::api::CreateServiceAccountRequest {
            name: "audit-shipper".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
    // Who holds its secret never assigns it roles: a Service Administrator adds the secret.
    let (sam, _) = holder(&app, &admin, "sam", "service-administrator").await;
    let s = sam
        .add_client_secret("audit-shipper")
        .await
        .expect("secret");
    let as_bearer = |t: &str| {
        Client::new(&app.base, Some(secrecy::SecretString::from(t.to_owned()))).expect("client")
    };

    // No role: the token authenticates, the permission is missing.
    let t0 = access_token(&app, "audit-shipper", &s.client_secret).await;
    let e = as_bearer(&t0)
        .audit_events(&EventFilter::default())
        .await
        .expect_err("no role");
    assert_eq!(e.code(), Some("forbidden"), "{e}");

    // With an active Audit Reader assignment: allowed.
    let a = admin
        .create_assignment(&CreateAssignmentRequest {
            principal: "service_account:audit-shipper".into(),
            role: "audit-reader".into(),
            scope: None,
            kind: Some("active".into()),
            duration_seconds: Some(3600),
            ends_at: None,
        })
        .await
        .expect("assign");
    let t1 = access_token(&app, "audit-shipper", &s.client_secret).await;
    let shipper = as_bearer(&t1);
    shipper
        .audit_events(&EventFilter::default())
        .await
        .expect("reads the audit log");
    // The role ends: the same token (which still names it) is refused at once.
    admin.delete_assignment(&a.id).await.expect("unassign");
    let e = shipper
        .audit_events(&EventFilter::default())
        .await
        .expect_err("role gone");
    assert_eq!(e.code(), Some("forbidden"), "{e}");

    // Revoked, forged and disabled-subject tokens: unauthenticated.
    let r = app
        .http
        .post(format!("{}/oauth2/revoke", app.base))
        .basic_auth("audit-shipper", Some(&s.client_secret))
        .form(&[("token", t1.as_str())])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let e = shipper.whoami().await.expect_err("revoked");
    assert_eq!(e.code(), Some("unauthenticated"), "{e}");
    let mut forged = t0.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    for bad in [forged.as_str(), "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
        let e = as_bearer(bad).whoami().await.expect_err("forged");
        assert_eq!(e.code(), Some("unauthenticated"), "{bad}: {e}");
    }

    // A person's token from the device grant: their identity, their roles now.
    let d = device_start(&app).await;
    admin
        .approve_device(&DeviceDecisionRequest {
            user_code: code_of(&d, "user_code"),
        })
        .await
        .expect("approve");
    let t: serde_json::Value = device_poll(&app, &code_of(&d, "device_code"))
        .await
        .json()
        .await
        .expect("json");
    let cli = as_bearer(t["access_token"].as_str().expect("at"));
    let me = cli.whoami().await.expect("whoami with a token");
    assert_eq!(me.user.name, "root-admin");
    cli.users()
        .await
        .expect("a global administrator lists users");

    // A disabled person's token stops working at once.
    let (erin, _) = mfa_user(&app, &admin, "erin", "copper-lantern-river-42").await;
    let d = device_start(&app).await;
    erin.approve_device(&DeviceDecisionRequest {
        user_code: code_of(&d, "user_code"),
    })
    .await
    .expect("erin approves");
    let t: serde_json::Value = device_poll(&app, &code_of(&d, "device_code"))
        .await
        .json()
        .await
        .expect("json");
    let erin_cli = as_bearer(t["access_token"].as_str().expect("at"));
    assert_eq!(erin_cli.whoami().await.expect("erin").user.name, "erin");
    admin.disable_user("erin").await.expect("disable");
    let e = erin_cli.whoami().await.expect_err("disabled");
    assert_eq!(e.code(), Some("unauthenticated"), "{e}");
    app.stop().await;
}

/// `Client::with_refresh_token` keeps a script's tokens fresh by itself: it refreshes before
/// expiry, refreshes once and retries after a 401, hands every rotated refresh token to its
/// callback, and stops with `invalid_grant` when the server refuses the refresh.
async fn long_running_clients_refresh_by_themselves(app: TestApp) {
    use portcullis_core::api::DeviceDecisionRequest;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    let admin = admin(&app).await;
    let d = device_start(&app).await;
    admin
        .approve_device(&DeviceDecisionRequest {
            user_code: code_of(&d, "user_code"),
        })
        .await
        .expect("approve");
    let t: serde_json::Value = device_poll(&app, &code_of(&d, "device_code"))
        .await
        .json()
        .await
        .expect("json");
    let access = t["access_token"].as_str().expect("at").to_owned();
    let first_refresh = t["refresh_token"].as_str().expect("rt").to_owned();
    let rotated = Arc::new(Mutex::new(Vec::<String>::new()));
    let keep = |log: &Arc<Mutex<Vec<String>>>| -> Option<portcullis_client::OnRotate> {
        let log = log.clone();
        Some(Box::new(move |rt: &str| {
            log.lock().expect("lock").push(rt.to_owned())
        }))
    };
    let secret = |s: &str| secrecy::SecretString::from(s.to_owned());

    // About to expire: refreshed before the call; fresh afterwards: not refreshed again.
    let c = Client::with_refresh_token(
        &app.base,
        secret(&access),
        Duration::ZERO,
        secret(&first_refresh),
        keep(&rotated),
    )
    .expect("client");
    assert_eq!(c.whoami().await.expect("whoami").user.name, "root-admin");
    c.users().await.expect("users");
    let seen = rotated.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "one refresh for two calls");
    assert_ne!(seen[0], first_refresh);

    // A refused access token: refreshed once, the call retried and answered.
    let rotated2 = Arc::new(Mutex::new(Vec::<String>::new()));
    let c2 = Client::with_refresh_token(
        &app.base,
        secret("eyJhbGciOiJFZERTQSJ9.e30.AAAA"),
        Duration::from_secs(3600),
        secret(&seen[0]),
        keep(&rotated2),
    )
    .expect("client");
    assert_eq!(c2.whoami().await.expect("retried").user.name, "root-admin");
    assert_eq!(rotated2.lock().expect("lock").len(), 1);

    // A rotated refresh token replayed: the refresh is refused and the family revoked.
    let c3 = Client::with_refresh_token(
        &app.base,
        secret("eyJhbGciOiJFZERTQSJ9.e30.AAAA"),
        Duration::from_secs(3600),
        secret(&first_refresh),
        None,
    )
    .expect("client");
    let e = c3.whoami().await.expect_err("replayed");
    assert_eq!(e.code(), Some("invalid_grant"), "{e}");
    let latest = rotated2.lock().expect("lock")[0].clone();
    oauth_error(
        refresh_with(&app, "portcullis-cli", &latest).await,
        400,
        "invalid_grant",
    )
    .await;
    app.stop().await;
}

api_tests!(
    access_tokens_are_api_credentials,
    long_running_clients_refresh_by_themselves,
);
