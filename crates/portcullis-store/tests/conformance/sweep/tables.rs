//! The sweep, table by table: one row past its retention goes, one just inside it stays.

use super::*;

async fn the_sweep_deletes_device_codes_a_day_past_their_expiry(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    let cutoff = now - sweep_retention().device_codes_us;
    device_code(&store, "old", cutoff - MINUTE).await;
    // Expired too, but not yet for a day: it stays.
    device_code(&store, "recent", cutoff + MINUTE).await;
    assert_eq!(
        sweep_at(&store, now).await,
        only("device_authorizations", 1)
    );
    let read = |tag: &'static str| {
        let store = store.clone();
        async move {
            store
                .device_by_code_hash(format!("device-code-{tag}").as_bytes())
                .await
                .expect("read")
        }
    };
    assert!(read("old").await.is_none());
    assert_eq!(
        read("recent").await.map(|d| d.id),
        Some("dev-recent".to_owned())
    );
}

async fn the_sweep_deletes_webauthn_ceremonies_an_hour_after_creation(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    sweep_user(&store, "u-1", false, now).await;
    let cutoff = now - sweep_retention().ceremonies_us;
    ceremony(&store, "old", "u-1", cutoff - MINUTE).await;
    ceremony(&store, "recent", "u-1", cutoff + MINUTE).await;
    assert_eq!(sweep_at(&store, now).await, only("webauthn_ceremonies", 1));
    assert!(
        store
            .ceremony(b"ceremony-old")
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(
        store
            .ceremony(b"ceremony-recent")
            .await
            .expect("read")
            .map(|c| c.5),
        Some(cutoff + MINUTE)
    );
}

async fn the_sweep_deletes_webauthn_decoys_an_hour_after_creation(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    let cutoff = now - sweep_retention().ceremonies_us;
    decoy(&store, "old", cutoff - MINUTE).await;
    decoy(&store, "recent", cutoff + MINUTE).await;
    assert_eq!(sweep_at(&store, now).await, only("webauthn_decoys", 1));
    assert!(store.decoy(b"decoy-old").await.expect("read").is_none());
    assert_eq!(
        store.decoy(b"decoy-recent").await.expect("read"),
        Some(("nobody-recent".to_owned(), cutoff + MINUTE))
    );
}

async fn the_sweep_deletes_half_finished_sign_ins_an_hour_after_creation(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    sweep_user(&store, "u-1", false, now).await;
    let cutoff = now - sweep_retention().ceremonies_us;
    pending_signin(&store, "old", "u-1", cutoff - MINUTE).await;
    pending_signin(&store, "recent", "u-1", cutoff + MINUTE).await;
    assert_eq!(sweep_at(&store, now).await, only("pending_signins", 1));
    assert!(
        store
            .pending_signin(b"pending-old")
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(
        store.pending_signin(b"pending-recent").await.expect("read"),
        Some(("u-1".to_owned(), cutoff + MINUTE))
    );
}

async fn the_sweep_deletes_throttle_counters_their_forget_period_after_the_last_failure(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    let cutoff = now - sweep_retention().throttle_us;
    // The old counter's first failure is older still; its last one decides.
    throttle_failures(&store, vec!["ip:192.0.2.1".into()], cutoff - DAY).await;
    throttle_failures(&store, vec!["ip:192.0.2.1".into()], cutoff - MINUTE).await;
    throttle_failures(&store, vec!["ip:192.0.2.2".into()], cutoff - DAY).await;
    throttle_failures(&store, vec!["ip:192.0.2.2".into()], cutoff + MINUTE).await;
    assert_eq!(sweep_at(&store, now).await, only("throttle", 1));
    let left = store
        .throttle_counters(&["ip:192.0.2.1".to_owned(), "ip:192.0.2.2".to_owned()])
        .await
        .expect("counters");
    assert_eq!(left, vec![("ip:192.0.2.2".to_owned(), 2, cutoff + MINUTE)]);
}

async fn the_sweep_deletes_revoked_token_ids_at_their_expiry(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    revoked_jti(&store, "jti-expired", now - MINUTE).await;
    revoked_jti(&store, "jti-live", now + MINUTE).await;
    assert_eq!(sweep_at(&store, now).await, only("revoked_tokens", 1));
    assert!(!store.token_revoked("jti-expired").await.expect("read"));
    assert!(store.token_revoked("jti-live").await.expect("read"));
}

async fn the_sweep_deletes_client_assertion_ids_at_their_expiry(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    assertion_jti(&store, "jti-expired", now - MINUTE).await;
    assertion_jti(&store, "jti-live", now + MINUTE).await;
    let recorded = |jti: &'static str| {
        let sql = format!(
            "SELECT COUNT(*) FROM client_assertion_jtis WHERE principal_id = 'svc-1' AND jti = '{jti}'"
        );
        let db = &db;
        async move { db.count_rows(&sql).await }
    };
    assert_eq!(recorded("jti-expired").await, 1, "both recorded before");
    assert_eq!(
        sweep_at(&store, now).await,
        only("client_assertion_jtis", 1)
    );
    assert_eq!(recorded("jti-expired").await, 0);
    assert_eq!(recorded("jti-live").await, 1);
    // The live id still refuses a replay.
    let replay = store
        .write(
            Change::UseClientAssertion {
                principal_id: "svc-1".into(),
                jti: "jti-live".into(),
                expires_at_us: now + MINUTE,
                at_us: now,
            },
            vec![],
        )
        .await;
    assert!(matches!(replay, Err(StoreError::Conflict(_))), "{replay:?}");
}

async fn the_sweep_deletes_authorization_codes_their_retention_after_creation(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    sweep_user(&store, "u-1", false, now).await;
    let cutoff = now - sweep_retention().authorization_codes_us;
    authorization_code(&store, "old", "u-1", cutoff - MINUTE).await;
    // Long expired, but inside its retention (a used code can still revoke its family): it stays.
    authorization_code(&store, "recent", "u-1", cutoff + MINUTE).await;
    assert_eq!(sweep_at(&store, now).await, only("authorization_codes", 1));
    assert!(
        store
            .authorization_code_by_hash(b"code-old")
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(
        store
            .authorization_code_by_hash(b"code-recent")
            .await
            .expect("read")
            .map(|c| c.id),
        Some("code-recent".to_owned())
    );
}

async fn the_sweep_deletes_refresh_families_a_retention_past_their_absolute_end(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    sweep_user(&store, "u-1", false, now).await;
    let cutoff = now - sweep_retention().refresh_tokens_us;
    // Two families of two tokens each (a rotation: the first used, its successor live).
    for (family, end) in [
        ("fam-old", cutoff - MINUTE),
        ("fam-recent", cutoff + MINUTE),
    ] {
        refresh_token(&store, &format!("{family}-1"), family, "u-1", end).await;
        store
            .write(
                Change::UseRefreshToken {
                    id: format!("rt-{family}-1"),
                    at_us: end - 6 * DAY,
                },
                vec![],
            )
            .await
            .expect("rotate");
        refresh_token(&store, &format!("{family}-2"), family, "u-1", end).await;
    }
    assert_eq!(sweep_at(&store, now).await, only("refresh_tokens", 2));
    let read = |tag: &'static str| {
        let store = store.clone();
        async move {
            store
                .refresh_token_by_hash(format!("refresh-{tag}").as_bytes())
                .await
                .expect("read")
        }
    };
    assert!(read("fam-old-1").await.is_none());
    assert!(read("fam-old-2").await.is_none());
    let used = read("fam-recent-1").await.expect("the used token stays");
    assert!(used.used_at_us.is_some(), "so its reuse is still detected");
    assert_eq!(
        read("fam-recent-2").await.map(|t| t.family_id),
        Some("fam-recent".to_owned())
    );
}

async fn the_sweep_deletes_sessions_their_retention_after_creation(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    sweep_user(&store, "u-1", false, now).await;
    let cutoff = now - sweep_retention().sessions_us;
    session(&store, "s-old", "u-1", cutoff - MINUTE).await;
    session(&store, "s-recent", "u-1", cutoff + MINUTE).await;
    // Seen a moment ago, yet created before the cutoff: its age counts, not its last use.
    store
        .write(
            Change::TouchSession {
                id: "s-old".into(),
                at_us: now - MINUTE,
            },
            vec![],
        )
        .await
        .expect("touch");
    assert_eq!(sweep_at(&store, now).await, only("sessions", 1));
    assert!(store.session_by_id("s-old").await.expect("read").is_none());
    assert_eq!(
        store
            .session_by_id("s-recent")
            .await
            .expect("read")
            .map(|s| s.created_at_us),
        Some(cutoff + MINUTE)
    );
}

conformance!(
    the_sweep_deletes_device_codes_a_day_past_their_expiry,
    the_sweep_deletes_webauthn_ceremonies_an_hour_after_creation,
    the_sweep_deletes_webauthn_decoys_an_hour_after_creation,
    the_sweep_deletes_half_finished_sign_ins_an_hour_after_creation,
    the_sweep_deletes_throttle_counters_their_forget_period_after_the_last_failure,
    the_sweep_deletes_revoked_token_ids_at_their_expiry,
    the_sweep_deletes_client_assertion_ids_at_their_expiry,
    the_sweep_deletes_authorization_codes_their_retention_after_creation,
    the_sweep_deletes_refresh_families_a_retention_past_their_absolute_end,
    the_sweep_deletes_sessions_their_retention_after_creation,
);
