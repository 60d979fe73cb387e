//! Two replicas on one PostgreSQL store, both running the target worker: every grant and
//! revoke is applied once (invariant 8), each operation attempted once.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_apply_each_target_operation_once() {
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    let Some(pg) = PgTarget::new().await else {
        return;
    };
    let (a, b) = two_replicas(&url).await;
    let token = admin_token(&a).await;
    let admin = a.anonymous.with_token(Some(SecretString::from(token)));
    postgres_target(&admin, &pg, "payroll-db", "report", "1h").await;
    let names: Vec<String> = (0..10).map(|i| format!("batch{i}")).collect();
    for name in &names {
        pg.create_login(name).await;
        admin
            .create_service_account(&CreateServiceAccountRequest {
                name: name.clone(),
                display_name: None,
                public_key: None,
                key_id: None,
            })
            .await
            .expect("service account");
        admin
            .create_assignment(&CreateAssignmentRequest {
                principal: format!("service_account:{name}"),
                role: DB_ROLE.into(),
                scope: Some("/targets/payroll-db".into()),
                kind: Some("active".into()),
                duration_seconds: Some(4),
                ends_at: None,
            })
            .await
            .expect("a four-second assignment");
    }
    let all_applied = || async {
        let ops = admin
            .target_ops(Some("payroll-db"), None)
            .await
            .expect("ops");
        ops.len() == 20 && ops.iter().all(|o| o.state == "applied")
    };
    assert!(eventually(15.0, all_applied).await, "granted and revoked");
    assert!(pg.readers().await.is_empty());
    let ops = admin
        .target_ops(Some("payroll-db"), None)
        .await
        .expect("ops");
    for o in &ops {
        let shown = admin.target_op(o.id).await.expect("op");
        assert_eq!(shown.attempts, 1, "operation {} attempted once", o.id);
        assert_eq!(shown.history.len(), 1);
    }
    assert_eq!(events_named(&admin, "target.granted").await.len(), 10);
    assert_eq!(events_named(&admin, "target.revoked").await.len(), 10);
    a.stop().await;
    b.stop().await;
}
