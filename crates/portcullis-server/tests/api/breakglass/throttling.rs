//! Failures never lock a break-glass account out: no per-account throttling, only per address.

use super::*;

/// Invariant 4: failures never lock a break-glass account out. Failed attempts from many
/// addresses throttle an ordinary account (per account), but the right password of a
/// break-glass account still signs in at once from a fresh address (per-IP throttling only).
async fn breakglass_accounts_are_not_throttled_per_account(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin, &["alice", "bob", "olga"]).await;
    let pw = create_split_account(&app, &token, "bg-one", &["alice", "bob"], 2).await;
    let from = |last: u8| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, last]))
            .build()
            .expect("client")
    };
    let attempt = |last: u8, user: &'static str, password: String| {
        let base = app.base.clone();
        async move {
            from(last)
                .post(format!("{base}/api/v1/signin"))
                .json(&serde_json::json!({ "username": user, "password": password }))
                .send()
                .await
                .expect("signin")
                .status()
                .as_u16()
        }
    };
    for (i, user) in [(0u8, "olga"), (100u8, "bg-one")] {
        for n in 0..10 {
            let s = attempt(10 + i + n, user, "not-the-password-at-all".into()).await;
            assert!(s == 401 || s == 429, "{user}: {s}");
        }
    }
    assert_eq!(
        attempt(50, "olga", CUSTODIAN_PW.into()).await,
        429,
        "an ordinary account is throttled per account"
    );
    assert_eq!(
        attempt(150, "bg-one", pw.clone()).await,
        200,
        "a break-glass account is throttled per address only"
    );
    // Custodians mistyping shares again and again (reported failed recoveries) do not delay
    // the sign-in that follows from their address.
    let mut statuses = Vec::new();
    for _ in 0..25 {
        let r = from(77)
            .post(format!(
                "{}/api/v1/breakglass/bg-one/failed-recovery",
                app.base
            ))
            .json(&serde_json::json!({ "reason": "wrong_shares" }))
            .send()
            .await
            .expect("report");
        statuses.push(r.status().as_u16());
    }
    assert!(
        statuses.contains(&429),
        "reports are throttled: {statuses:?}"
    );
    assert_eq!(attempt(77, "bg-one", pw).await, 200);
    app.stop().await;
}

api_tests!(breakglass_accounts_are_not_throttled_per_account);
