//! Client-credentials throttling: wrong secrets slow a client down at their address, never a
//! lockout, and the right secret is never refused.

use super::*;

/// Wrong secrets slow a client down at the address they come from (429 `invalid_client` with
/// Retry-After — `slow_down` is the device grant's — and never a lockout); the right secret is
/// never refused, neither from that address nor from another (finding: unrelated clients at one
/// address locked each other out).
async fn client_credentials_throttle_and_reset(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = admin(&app).await;
    admin
        .create_service_account(&portcullis_core::api::CreateServiceAccountRequest {
            name: "throttle-probe".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
    let s = admin
        .add_client_secret("throttle-probe")
        .await
        .expect("secret");
    let wrong = "pcs_not-the-secret";
    let base = app.base.clone();
    let attempt = |from: u8, secret: &str| {
        let secret = secret.to_owned();
        let base = base.clone();
        async move {
            reqwest::Client::builder()
                .local_address(std::net::IpAddr::from([127, 0, 0, from]))
                .build()
                .expect("client")
                .post(format!("{base}/oauth2/token"))
                .basic_auth("throttle-probe", Some(&secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .expect("send")
        }
    };
    for _ in 0..11 {
        oauth_error(attempt(1, wrong).await, 401, "invalid_client").await;
    }
    let r = attempt(1, wrong).await;
    assert_eq!(
        r.status(),
        429,
        "the twelfth failure from one address waits"
    );
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client", "not slow_down: {body}");
    // The right secret is never refused for failures, here or elsewhere.
    assert_eq!(attempt(1, &s.client_secret).await.status(), 200);
    assert_eq!(attempt(2, &s.client_secret).await.status(), 200);
    // A wrong secret from another address is judged there alone.
    oauth_error(attempt(3, wrong).await, 401, "invalid_client").await;
    // Never a lockout: after the wait a failure counts again (401, not 429).
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    oauth_error(attempt(1, wrong).await, 401, "invalid_client").await;
    app.stop().await;
}

backend_tests!(client_credentials_throttle_and_reset);
