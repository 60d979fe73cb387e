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

/// Deletes policy `name` as `token`. Deleting an enforced policy that applies to a privileged
/// role is a change request (four eyes); with nobody else at the top tier it takes effect
/// after the test servers' one-second cooling-off, which this waits out.
pub(crate) async fn ca_delete_now(app: &TestApp, token: &str, name: &str) {
    let url = format!("{}/api/v1/ca/policies/{name}", app.base);
    let r = app
        .http
        .delete(&url)
        .bearer_auth(token)
        .send()
        .await
        .expect("delete");
    match r.status().as_u16() {
        204 => return,
        403 => {
            let body: serde_json::Value = r.json().await.expect("json");
            assert_eq!(body["error"]["code"], "change_pending", "{body}");
        }
        s => panic!("deleting {name}: {s}"),
    }
    for _ in 0..100 {
        let r = app
            .http
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .expect("get");
        if r.status() == 404 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the deletion of {name} did not take effect");
}
