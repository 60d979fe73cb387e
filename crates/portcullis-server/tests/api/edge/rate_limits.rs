//! Rate limits per address and global: 429 with Retry-After, never for sign-in; clients behind
//! a trusted proxy have their own budgets, IPv6 counted per /64.

use super::*;

async fn error_code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

/// Sends `GET /healthz` from `client` until a 429 (at most `n` times); the 429, if any.
async fn until_limited(
    client: &reqwest::Client,
    url: &str,
    xff: Option<&str>,
    n: usize,
) -> Option<reqwest::Response> {
    for _ in 0..n {
        let mut req = client.get(url);
        if let Some(x) = xff {
            req = req.header("x-forwarded-for", x);
        }
        let resp = req.send().await.expect("send");
        if resp.status().as_u16() == 429 {
            return Some(resp);
        }
        assert_eq!(resp.status().as_u16(), 200);
    }
    None
}

/// Over the per-address rate, requests get 429 in the one error shape with Retry-After;
/// another address is unaffected, and the sign-in endpoints of the limited address still
/// answer (break-glass must get through; a shared address must not lock anyone out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_address_rate_limit_spares_other_addresses_and_sign_in() {
    let app = edge_app(|c| {
        c.rate_limit_per_address = 1;
        c.rate_limit_per_address_burst = 3;
    })
    .await;
    let health = format!("{}/healthz", app.base);
    let one = client_from("127.0.0.1");
    let limited = until_limited(&one, &health, None, 20)
        .await
        .expect("the fourth request in a burst of three is refused");
    let retry: i64 = limited
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(retry >= 1);
    assert_eq!(error_code(limited).await, (429, "rate_limited".into()));
    // Another address has its own budget.
    let two = client_from("127.0.0.2");
    let resp = two.get(&health).send().await.expect("send");
    assert_eq!(resp.status().as_u16(), 200);
    // Sign-in and the failed-recovery report from the limited address are not rate limited.
    for _ in 0..3 {
        let resp = one
            .post(format!("{}/api/v1/signin", app.base))
            .json(&serde_json::json!({ "username": "someone", "password": "wrong-password-1" }))
            .send()
            .await
            .expect("send");
        assert_eq!(error_code(resp).await, (401, "invalid_credentials".into()));
        let resp = one
            .post(format!(
                "{}/api/v1/breakglass/nobody/failed-recovery",
                app.base
            ))
            .json(&serde_json::json!({}))
            .send()
            .await
            .expect("send");
        assert_ne!(error_code(resp).await.1, "rate_limited");
    }
    app.stop().await;
}

/// The global limit refuses every address once spent, but never sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_rate_limit_covers_all_addresses_but_not_sign_in() {
    let app = edge_app(|c| {
        c.rate_limit_per_address = 0;
        c.rate_limit_global = 1;
        c.rate_limit_global_burst = 3;
    })
    .await;
    let health = format!("{}/healthz", app.base);
    let one = client_from("127.0.0.1");
    until_limited(&one, &health, None, 20).await.expect("spent");
    let two = client_from("127.0.0.2");
    let resp = two.get(&health).send().await.expect("send");
    assert_eq!(error_code(resp).await, (429, "rate_limited".into()));
    let resp = two
        .post(format!("{}/api/v1/signin", app.base))
        .json(&serde_json::json!({ "username": "someone", "password": "wrong-password-1" }))
        .send()
        .await
        .expect("send");
    assert_eq!(error_code(resp).await, (401, "invalid_credentials".into()));
    app.stop().await;
}

/// Behind a trusted reverse proxy every client has its own budget (keyed by the resolved
/// address), and IPv6 clients are counted per /64.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_behind_a_trusted_proxy_have_their_own_budgets_ipv6_per_64() {
    let app = edge_app(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32"].into();
        c.rate_limit_per_address = 1;
        c.rate_limit_per_address_burst = 3;
    })
    .await;
    let health = format!("{}/healthz", app.base);
    let proxy = client_from("127.0.0.1");
    until_limited(&proxy, &health, Some("203.0.113.7"), 20)
        .await
        .expect("first client limited");
    let other = proxy
        .get(&health)
        .header("x-forwarded-for", "203.0.113.8")
        .send()
        .await
        .expect("send");
    assert_eq!(
        other.status().as_u16(),
        200,
        "another client behind the proxy"
    );
    until_limited(&proxy, &health, Some("2001:db8:0:5::1"), 20)
        .await
        .expect("v6 client limited");
    let same_64 = proxy
        .get(&health)
        .header("x-forwarded-for", "2001:db8:0:5:ffff::2")
        .send()
        .await
        .expect("send");
    assert_eq!(error_code(same_64).await, (429, "rate_limited".into()));
    let next_64 = proxy
        .get(&health)
        .header("x-forwarded-for", "2001:db8:0:6::1")
        .send()
        .await
        .expect("send");
    assert_eq!(next_64.status().as_u16(), 200);
    app.stop().await;
}
