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
    the_sweep_deletes_ssh_certificates_their_retention_past_expiry,
);

/// An ssh-ca target `fleet` whose role `operator` person `ops` holds actively, and a
/// certificate of theirs with `serial` valid until `valid_before`.
async fn ssh_certificates(store: &Store, now: i64, certificates: &[(i64, i64)]) {
    use portcullis_store::ssh::{NewSshCaKey, NewSshCertificate};
    use portcullis_store::targets::{NewBinding, NewTarget};
    let long_ago = now - 90 * DAY;
    sweep_user(store, "ops", false, now).await;
    let setup = [
        Change::AddTarget(NewTarget {
            name: "fleet".into(),
            kind: "ssh-ca".into(),
            config: "{}".into(),
            sealed_secret: None,
            secret_env: None,
            drift_mode: "report".into(),
            reconcile_interval_s: 60,
            created_by: "test".into(),
            at_us: long_ago,
        }),
        Change::AddSshCaKey {
            key: NewSshCaKey {
                target: "fleet".into(),
                fingerprint: "SHA256:ca".into(),
                public_key: "ssh-ed25519 AAAA portcullis-ca:fleet".into(),
                sealed_private: vec![0; 48],
                at_us: long_ago,
            },
            retire_until_us: None,
        },
        Change::BindRole(NewBinding {
            role: "operator".into(),
            target: "fleet".into(),
            grants: "[\"root\"]".into(),
            mode: "grant".into(),
            options: None,
            by: "test".into(),
            at_us: long_ago,
        }),
        Change::CreateAssignment(portcullis_store::NewAssignment {
            id: "asg-ops".into(),
            principal_id: "ops".into(),
            role: "operator".into(),
            scope: "/targets/fleet".into(),
            kind: portcullis_core::roles::AssignmentKind::Active,
            starts_at_us: long_ago,
            ends_at_us: None,
            created_by: "test".into(),
            created_at_us: long_ago,
        }),
    ];
    for change in setup {
        store.write(change, vec![]).await.expect("set up");
    }
    for (serial, valid_before) in certificates {
        let cert = NewSshCertificate {
            target: "fleet".into(),
            serial: *serial,
            ca_fingerprint: "SHA256:ca".into(),
            principal_id: "ops".into(),
            key_id: "portcullis:ops:asg-ops".into(),
            principals: "[\"root\"]".into(),
            key_fingerprint: "SHA256:key".into(),
            valid_after_us: valid_before - HOUR,
            valid_before_us: *valid_before,
            at_us: valid_before - HOUR,
            grants: vec![("asg-ops".into(), "operator".into())],
        };
        store
            .write(Change::IssueSshCertificate(cert), vec![])
            .await
            .expect("issue");
    }
}

async fn the_sweep_deletes_ssh_certificates_their_retention_past_expiry(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    let cutoff = now - sweep_retention().ssh_certificates_us;
    // One expired longer than the retention, one expired more recently, one live.
    ssh_certificates(
        &store,
        now,
        &[(1, cutoff - MINUTE), (2, cutoff + MINUTE), (3, now + HOUR)],
    )
    .await;
    assert_eq!(
        sweep_at(&store, now).await,
        BTreeMap::from([
            ("ssh_certificate_grants".to_owned(), 1),
            ("ssh_certificates".to_owned(), 1),
        ])
    );
    let left: Vec<i64> = store
        .ssh_live_certificates("fleet", 0)
        .await
        .expect("read")
        .iter()
        .map(|c| c.serial)
        .collect();
    assert_eq!(left, [2, 3]);
    assert!(sweep_at(&store, now).await.is_empty(), "nothing twice");
}
