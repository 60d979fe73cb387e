//! Service-account networks: no token from outside the allowed networks, bad lists refused
//! whole, an empty list lifts the limit.

use super::*;

/// A service account limited to some networks gets no token from elsewhere, even with the
/// right secret (refused as `invalid_client`, audited as alert-worthy); bad lists are refused
/// whole and change nothing; an empty list lifts the limit.
async fn service_account_networks(backend: Backend) {
    use portcullis_core::api::NetworksRequest;
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = admin(&app).await;
    admin
        .create_service_account(&portcullis_core::api::CreateServiceAccountRequest {
            name: "net-probe".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
    let s = admin.add_client_secret("net-probe").await.expect("secret");
    let ask = || {
        token_request(
            &app,
            &[("grant_type", "client_credentials")],
            Some(("net-probe", &s.client_secret)),
        )
    };
    assert_eq!(ask().await.status(), 200, "unrestricted at first");

    let admin_ref = &admin;
    let set = |cidrs: &[&str]| {
        let req = NetworksRequest {
            cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
        };
        async move { admin_ref.set_networks("net-probe", &req).await }
    };
    let d = set(&["10.0.0.0/8", "2001:db8::/32"]).await.expect("set");
    assert_eq!(d.allowed_networks, ["10.0.0.0/8", "2001:db8::/32"]);
    oauth_error(ask().await, 401, "invalid_client").await;
    let refused = admin
        .audit_events(&EventFilter {
            action: Some("token.client_credentials".into()),
            outcome: Some("failure".into()),
            ..Default::default()
        })
        .await
        .expect("events")
        .events;
    let last = refused.last().expect("refusal recorded");
    assert_eq!(last.details["reason"], "network_not_allowed");
    assert_eq!(last.details["alert"], true);

    // Bad lists: every problem named, nothing changed.
    let count = || async {
        admin
            .audit_events(&EventFilter {
                limit: Some(1000),
                ..Default::default()
            })
            .await
            .expect("events")
            .events
            .len()
    };
    let before = count().await;
    let e = set(&["10.0.0.1/8", "bogus", "192.168.0.0/16", "192.168.4.0/24"])
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Some("invalid_request"), "{e}");
    for needle in ["did you mean 10.0.0.0/8", "bogus", "overlaps"] {
        assert!(e.to_string().contains(needle), "{needle} missing from {e}");
    }
    assert_eq!(count().await, before, "a refused list writes nothing");
    assert_eq!(
        admin
            .service_account("net-probe")
            .await
            .expect("detail")
            .allowed_networks,
        ["10.0.0.0/8", "2001:db8::/32"]
    );

    // Loopback allowed: the token comes again; an empty list lifts the limit.
    set(&["127.0.0.0/8", "::1"]).await.expect("set");
    assert_eq!(ask().await.status(), 200);
    let d = set(&[]).await.expect("clear");
    assert!(d.allowed_networks.is_empty());
    assert_eq!(ask().await.status(), 200);
    let changes = admin
        .audit_events(&EventFilter {
            action: Some("service_account.networks_changed".into()),
            ..Default::default()
        })
        .await
        .expect("events")
        .events;
    assert_eq!(changes.len(), 3);
    assert_eq!(changes[2].details["after"], serde_json::json!([]));
    app.stop().await;
}

backend_tests!(service_account_networks);
