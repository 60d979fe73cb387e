//! Addresses: the public URL follows the bound listener when unset, and `X-Forwarded-For` is
//! believed only from trusted proxies.

use super::*;

/// Unset, the public URL follows the bound listener: discovery of a server on a random port
/// names that port (it used to say localhost:8080 whatever the listener).
async fn public_url_follows_the_listener(backend: Backend) {
    let Some(app) = spawn_with(backend, |c| c.public_url = None).await else {
        return;
    };
    let port = addr_of(&app).port();
    let d: serde_json::Value = app
        .http
        .get(format!("{}/.well-known/openid-configuration", app.base))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json");
    let own = format!("http://localhost:{port}");
    assert_eq!(d["issuer"], own.as_str());
    assert_eq!(d["jwks_uri"], format!("{own}/oauth2/jwks").as_str());
    assert_eq!(app.public_url, own);
    app.stop().await;
}

/// The `client_ip` of the latest failed password sign-in for `user`.
async fn failed_signin_ip(app: &TestApp, user: &str) -> String {
    let events = app
        .client
        .audit_events(&EventFilter {
            action: Some("signin.password".into()),
            target: Some(format!("user:{user}")),
            limit: Some(100),
            ..Default::default()
        })
        .await
        .expect("events")
        .events;
    let last = events.last().expect("a sign-in event");
    last.details["client_ip"]
        .as_str()
        .expect("client_ip")
        .to_owned()
}

async fn failed_signin_with_forwarded_for(app: &TestApp, user: &str, xff: &str) {
    let resp = app
        .http
        .post(format!("{}/api/v1/signin", app.base))
        .header("x-forwarded-for", xff)
        .json(&serde_json::json!({ "username": user, "password": "not-the-password-1" }))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 401);
}

/// Without `trusted_proxies`, a client's own `X-Forwarded-For` changes nothing: throttling
/// and the audit trail see the TCP peer.
async fn forwarded_for_from_an_untrusted_peer_is_ignored(app: TestApp) {
    failed_signin_with_forwarded_for(&app, "nobody-a", "203.0.113.7").await;
    assert_eq!(failed_signin_ip(&app, "nobody-a").await, "127.0.0.1");
    app.stop().await;
}

/// From a trusted proxy the right-most address that is not itself a trusted proxy is the
/// client; what the client forged to its left is ignored.
async fn forwarded_for_from_a_trusted_proxy_is_believed(backend: Backend) {
    let Some(app) = spawn_with(backend, |c| {
        c.trusted_proxies = vec!["127.0.0.1/32"].into();
    })
    .await
    else {
        return;
    };
    failed_signin_with_forwarded_for(&app, "nobody-b", "198.51.100.1, 203.0.113.7").await;
    assert_eq!(failed_signin_ip(&app, "nobody-b").await, "203.0.113.7");
    // A chain through a second trusted hop.
    failed_signin_with_forwarded_for(&app, "nobody-c", "203.0.113.8, 127.0.0.1").await;
    assert_eq!(failed_signin_ip(&app, "nobody-c").await, "203.0.113.8");
    app.stop().await;
}

api_tests!(forwarded_for_from_an_untrusted_peer_is_ignored);

backend_tests!(
    public_url_follows_the_listener,
    forwarded_for_from_a_trusted_proxy_is_believed,
);
