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

/// A grant read into the cache ends at its deadline to the microsecond without any write:
/// every use filters the cached read by its own `now` (grants are removed on expiry, to the
/// second). The uses at and after the deadline are answered from the cache (no read).
async fn a_cached_grant_ends_at_its_deadline_without_a_write(backend: Backend) {
    use portcullis_server::services::grants::grant_rows;
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = admin(&app).await;
    let (sam, _) = holder(&app, &admin, "sam", "service-administrator").await;
    warmed_daemon_by(&app, &admin, &sam, "cache-deadline").await;
    admin
        .create_assignment(&CreateAssignmentRequest {
            principal: "service_account:cache-deadline".into(),
            role: "audit-reader".into(),
            scope: None,
            kind: Some("active".into()),
            duration_seconds: Some(600),
            ends_at: None,
        })
        .await
        .expect("active role");
    let id = app
        .state
        .store
        .principal_by_name("cache-deadline")
        .await
        .expect("read")
        .expect("exists")
        .id;
    let at = |us: i64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000).expect("time")
    };
    let (rows, _) = grant_rows(&app.state, &id, time::OffsetDateTime::now_utc())
        .await
        .expect("grants");
    assert_eq!(rows.len(), 1, "the role is held");
    let end = rows[0].ends_at_us.expect("the role ends");
    let ((before, at_end), reads) = portcullis_store::testing::counting_reads(async {
        let before = grant_rows(&app.state, &id, at(end - 1))
            .await
            .expect("grants");
        let at_end = grant_rows(&app.state, &id, at(end)).await.expect("grants");
        (before.0.len(), at_end.0.len())
    })
    .await;
    assert_eq!(reads, 0, "both answered from the cache");
    assert_eq!(before, 1, "held a microsecond before its end");
    assert_eq!(
        at_end, 0,
        "gone at its end, although the cached read holds it"
    );
    app.stop().await;
}

backend_tests!(
    a_cached_grant_ends_at_its_deadline_without_a_write,
    a_removed_secret_is_refused_at_once,
    an_ended_role_leaves_the_next_token_at_once,
    a_revoked_token_is_inactive_at_once,
);
