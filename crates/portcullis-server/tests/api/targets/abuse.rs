//! Targets under the privilege model and with bad input: only target managers change them,
//! nobody decides what their own role grants, secrets are never shown, and every bad request
//! is refused with a clear error and changes nothing.

use super::*;

api_tests!(
    a_person_without_targets_manage_cannot_add_bind_or_reconcile,
    binding_a_role_one_holds_is_refused_and_audited,
    bad_target_input_is_refused_and_changes_nothing,
    a_target_secret_is_never_shown_nor_audited,
    a_flood_of_metrics_scrapes_counts_target_operations_once_a_second,
);

fn webhook(name: &str, url: &str) -> portcullis_core::api::CreateTargetRequest {
    portcullis_core::api::CreateTargetRequest {
        name: name.into(),
        kind: "webhook".into(),
        url: url.into(),
        observe_url: None,
        login: None,
        secret: Some("a-key-long-enough-for-hmac".into()),
        secret_env: None,
        drift: None,
        reconcile_interval: None,
        ssh: None,
        msgraph: None,
    }
}

async fn a_person_without_targets_manage_cannot_add_bind_or_reconcile(app: TestApp) {
    let admin = admin(&app).await;
    admin
        .create_target(&webhook("hook", "http://127.0.0.1:9/ops"))
        .await
        .expect("add");
    let (nobody, _) = mfa_user(&app, &admin, "nobody", "quartz-harbor-lantern-71").await;
    let forbidden = |r: Result<_, ClientError>| r.err().and_then(|e| e.status()) == Some(403);
    assert!(forbidden(
        nobody
            .create_target(&webhook("mine", "http://127.0.0.1:9/x"))
            .await
            .map(|_| ())
    ));
    assert!(forbidden(nobody.targets().await.map(|_| ())));
    assert!(forbidden(
        nobody
            .bind_role(
                "hook",
                "audit-reader",
                &portcullis_core::api::BindRoleRequest {
                    grants: vec!["x".into()],
                    mode: None,
                    ssh: None
                }
            )
            .await
            .map(|_| ())
    ));
    assert!(forbidden(nobody.reconcile_target("hook").await.map(|_| ())));
    assert!(forbidden(nobody.remove_target("hook").await));
    assert!(forbidden(nobody.target_ops(None, None).await.map(|_| ())));
    assert_eq!(
        admin.targets().await.expect("list").len(),
        1,
        "nothing changed"
    );
    assert!(
        admin
            .target("hook")
            .await
            .expect("show")
            .bindings
            .is_empty()
    );
}

async fn binding_a_role_one_holds_is_refused_and_audited(app: TestApp) {
    let admin = admin(&app).await;
    admin
        .create_target(&webhook("hook", "http://127.0.0.1:9/ops"))
        .await
        .expect("add");
    // The first administrator holds Global Administrator: they may not decide what it grants.
    let e = admin
        .bind_role(
            "hook",
            "global-administrator",
            &portcullis_core::api::BindRoleRequest {
                grants: vec!["root".into()],
                mode: None,
                ssh: None,
            },
        )
        .await
        .expect_err("self-escalation");
    assert_eq!(e.status(), Some(403));
    assert!(
        admin
            .target("hook")
            .await
            .expect("show")
            .bindings
            .is_empty()
    );
    let refused = events_named(&admin, "target.bound").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].outcome, "failure");
    assert_eq!(refused[0].details["reason"], "self_escalation");
    // A role they neither hold nor are eligible for is theirs to bind.
    admin
        .bind_role(
            "hook",
            "audit-reader",
            &portcullis_core::api::BindRoleRequest {
                grants: vec!["read".into()],
                mode: None,
                ssh: None,
            },
        )
        .await
        .expect("bind another role");
}

async fn bad_target_input_is_refused_and_changes_nothing(app: TestApp) {
    let admin = admin(&app).await;
    admin
        .create_target(&webhook("hook", "http://127.0.0.1:9/ops"))
        .await
        .expect("add");
    let code = |r: Result<portcullis_core::api::TargetView, ClientError>| {
        r.err()
            .map(|e| (e.status().unwrap_or(0), e.code().unwrap_or("").to_owned()))
    };
    let bad = Some((400, "invalid_request".to_owned()));
    let mut unknown_kind = webhook("k", "http://127.0.0.1:9/ops");
    unknown_kind.kind = "ldap".into();
    assert_eq!(code(admin.create_target(&unknown_kind).await), bad);
    assert_eq!(
        code(
            admin
                .create_target(&webhook("Bad Name", "http://127.0.0.1:9/ops"))
                .await
        ),
        bad
    );
    assert_eq!(
        code(
            admin
                .create_target(&webhook("far", "http://example.com/ops"))
                .await
        ),
        bad,
        "http off loopback"
    );
    assert_eq!(
        code(
            admin
                .create_target(&webhook("creds", "https://u:p@example.com/ops"))
                .await
        ),
        bad
    );
    let mut pg_password = webhook("pg", "postgres://u:secret@127.0.0.1:5432/db");
    pg_password.kind = "postgres".into();
    assert_eq!(
        code(admin.create_target(&pg_password).await),
        bad,
        "no password in a URL"
    );
    let mut env = webhook("env", "http://127.0.0.1:9/ops");
    env.secret = None;
    env.secret_env = Some("HOME".into());
    assert_eq!(
        code(admin.create_target(&env).await),
        bad,
        "only PORTCULLIS_TARGET_SECRET_*"
    );
    let mut nul = webhook("nul", "http://127.0.0.1:9/ops");
    nul.reconcile_interval = Some("1s".into());
    assert_eq!(
        code(admin.create_target(&nul).await),
        bad,
        "interval at least 5s"
    );
    assert_eq!(
        code(
            admin
                .create_target(&webhook("hook", "http://127.0.0.1:9/other"))
                .await
        ),
        Some((409, "already_exists".to_owned()))
    );
    let bind = |t: &'static str, r: &'static str, g: Vec<String>| {
        let admin = admin.clone();
        async move {
            admin
                .bind_role(
                    t,
                    r,
                    &portcullis_core::api::BindRoleRequest {
                        grants: g,
                        mode: None,
                        ssh: None,
                    },
                )
                .await
                .err()
                .and_then(|e| e.status())
        }
    };
    assert_eq!(
        bind("nowhere", "audit-reader", vec!["x".into()]).await,
        Some(404)
    );
    assert_eq!(
        bind("hook", "no-such-role", vec!["x".into()]).await,
        Some(404)
    );
    assert_eq!(bind("hook", "audit-reader", vec![]).await, Some(400));
    assert_eq!(
        bind("hook", "audit-reader", vec!["a\u{0}b".into()]).await,
        Some(400)
    );
    assert_eq!(
        admin.targets().await.expect("list").len(),
        1,
        "nothing was added"
    );
    // A bound target is not removed (its grants would be left behind).
    admin
        .bind_role(
            "hook",
            "audit-reader",
            &portcullis_core::api::BindRoleRequest {
                grants: vec!["x".into()],
                mode: None,
                ssh: None,
            },
        )
        .await
        .expect("bind");
    assert_eq!(
        admin
            .remove_target("hook")
            .await
            .err()
            .and_then(|e| e.status()),
        Some(409)
    );
    assert_eq!(
        admin
            .remove_target("nowhere")
            .await
            .err()
            .and_then(|e| e.status()),
        Some(404)
    );
}

async fn a_target_secret_is_never_shown_nor_audited(app: TestApp) {
    let admin = admin(&app).await;
    let secret = "connector-password-9f2c";
    let mut t = webhook("pgdb", "postgres://pcconn@127.0.0.1:5432/db");
    t.kind = "postgres".into();
    t.secret = Some(secret.into());
    let added = admin.create_target(&t).await.expect("add");
    assert_eq!(added.secret, "sealed");
    assert!(added.generated_secret.is_none());
    let everything = format!(
        "{}{}{}",
        serde_json::to_string(&added).expect("json"),
        serde_json::to_string(&admin.targets().await.expect("list")).expect("json"),
        serde_json::to_string(
            &admin
                .audit_events(&EventFilter {
                    limit: Some(1000),
                    ..Default::default()
                })
                .await
                .expect("events")
                .events
        )
        .expect("json"),
    );
    assert!(!everything.contains(secret));
}

async fn a_flood_of_metrics_scrapes_counts_target_operations_once_a_second(app: TestApp) {
    let admin = admin(&app).await;
    admin
        .create_target(&webhook("hook", "http://127.0.0.1:9/ops"))
        .await
        .expect("add");
    // `/metrics` answers anyone: the per-target counts are read once, then served from memory
    // for up to a second, so scrapes cannot make the store count again and again.
    let (first, reads) = portcullis_store::testing::counting_reads(
        portcullis_server::services::targets::stats(&app.state),
    )
    .await;
    assert_eq!(first.expect("stats").0.len(), 1);
    assert_eq!(reads, 1, "the first scrape counts");
    let (again, reads) = portcullis_store::testing::counting_reads(async {
        for _ in 0..50 {
            portcullis_server::services::targets::stats(&app.state)
                .await
                .expect("stats");
        }
        portcullis_server::services::targets::stats(&app.state).await
    })
    .await;
    assert_eq!(again.expect("stats").0.len(), 1);
    assert_eq!(reads, 0, "51 more scrapes within the second read nothing");
}
