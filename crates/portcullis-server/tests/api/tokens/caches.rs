//! The hot paths' caches never outlive a change: once a write that revokes or ends something
//! has returned, the next request on this replica is judged by it, although the request just
//! before was answered from the cache (another replica: `replicas.rs`).

use super::*;

/// A service account `name` with a client secret added by `admin`, asked for a token twice
/// (the second answer comes from the caches).
pub(crate) async fn warmed_daemon(
    app: &TestApp,
    admin: &Client,
    name: &str,
) -> portcullis_core::api::ClientSecretIssued {
    warmed_daemon_by(app, admin, admin, name).await
}

/// [`warmed_daemon`] with its secret added by `holder` (who then may not assign it roles).
async fn warmed_daemon_by(
    app: &TestApp,
    admin: &Client,
    holder: &Client,
    name: &str,
) -> portcullis_core::api::ClientSecretIssued {
    admin
        .create_service_account(&portcullis_core::api::CreateServiceAccountRequest {
            name: name.into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
    let s = holder.add_client_secret(name).await.expect("secret");
    for _ in 0..2 {
        access_token(app, name, &s.client_secret).await;
    }
    s
}

/// A client secret removed is refused on the very next request.
async fn a_removed_secret_is_refused_at_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = admin(&app).await;
    let s = warmed_daemon(&app, &admin, "cache-probe").await;
    admin
        .remove_client_secret("cache-probe", &s.id)
        .await
        .expect("removed");
    let r = token_request(
        &app,
        &[("grant_type", "client_credentials")],
        Some(("cache-probe", &s.client_secret)),
    )
    .await;
    oauth_error(r, 401, "invalid_client").await;
    app.stop().await;
}

/// A role ended (its assignment removed) is missing from the very next token.
async fn an_ended_role_leaves_the_next_token_at_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = admin(&app).await;
    // Its secret is a Service Administrator's: who holds it may not assign it roles.
    let (sam, _) = holder(&app, &admin, "sam", "service-administrator").await;
    let s = warmed_daemon_by(&app, &admin, &sam, "cache-roles").await;
    let a = admin
        .create_assignment(&CreateAssignmentRequest {
            principal: "service_account:cache-roles".into(),
            role: "audit-reader".into(),
            scope: None,
            kind: Some("active".into()),
            duration_seconds: Some(600),
            ends_at: None,
        })
        .await
        .expect("active role");
    let roles = |t: &str| claims_of(t)["roles"].as_array().map_or(0, Vec::len);
    for _ in 0..2 {
        let t = access_token(&app, "cache-roles", &s.client_secret).await;
        assert_eq!(roles(&t), 1, "the role travels in the token");
    }
    admin.delete_assignment(&a.id).await.expect("ended");
    let t = access_token(&app, "cache-roles", &s.client_secret).await;
    assert_eq!(roles(&t), 0, "the ended role is gone from the next token");
    app.stop().await;
}

/// A token revoked is inactive at the very next introspection, although the one before said
/// active.
async fn a_revoked_token_is_inactive_at_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = admin(&app).await;
    let s = warmed_daemon(&app, &admin, "cache-intro").await;
    let t = access_token(&app, "cache-intro", &s.client_secret).await;
    for _ in 0..2 {
        let v = introspect(&app, "cache-intro", &s.client_secret, &t).await;
        assert_eq!(v["active"], true);
    }
    let r = app
        .http
        .post(format!("{}/oauth2/revoke", app.base))
        .basic_auth("cache-intro", Some(&s.client_secret))
        .form(&[("token", t.as_str())])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let v = introspect(&app, "cache-intro", &s.client_secret, &t).await;
    assert_eq!(v["active"], false, "{v}");
    app.stop().await;
}

backend_tests!(
    a_removed_secret_is_refused_at_once,
    an_ended_role_leaves_the_next_token_at_once,
    a_revoked_token_is_inactive_at_once,
);
