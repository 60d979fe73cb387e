//! Conditional access: importing policies and asking what-if.

use super::*;

pub(crate) async fn ca_import(
    app: &TestApp,
    token: &str,
    policies: serde_json::Value,
    force: bool,
) -> reqwest::Response {
    post_json(
        app,
        Some(token),
        "/api/v1/ca/policies",
        serde_json::json!({ "policies": policies, "force": force }),
    )
    .await
}

pub(crate) async fn whatif(
    app: &TestApp,
    token: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let r = post_json(app, Some(token), "/api/v1/ca/whatif", body).await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}
