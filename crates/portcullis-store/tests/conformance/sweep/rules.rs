//! The sweep's rules across tables: what is never swept, batching, and what it reports.

use super::*;

/// Finding 7: the sweep deletes what has expired (in bounded batches) and nothing that still
/// matters; the audit log is never touched.
async fn the_sweep_deletes_what_expired_and_nothing_else(db: Db) {
    let store = initialised(&db).await;
    let now = OffsetDateTime::now_utc();
    let now_us = (now.unix_timestamp_nanos() / 1000) as i64;
    let hour = 3_600_000_000i64;
    // Throttle counters: an old one and a fresh one.
    store
        .write(
            Change::RecordFailures {
                keys: vec!["ip:old".into()],
                at_us: now_us - 48 * hour,
            },
            vec![],
        )
        .await
        .expect("old counter");
    store
        .write(
            Change::RecordFailures {
                keys: vec!["ip:fresh".into()],
                at_us: now_us,
            },
            vec![],
        )
        .await
        .expect("fresh counter");
    // Revoked tokens: one expired, one still live.
    for (jti, exp) in [("gone", now_us - hour), ("live", now_us + hour)] {
        store
            .write(
                Change::RevokeToken {
                    jti: jti.into(),
                    expires_at_us: exp,
                    at_us: now_us,
                },
                vec![],
            )
            .await
            .expect("revoked");
    }
    let events_before = count(&store).await;
    let retention = portcullis_store::sweep::Retention {
        device_codes_us: 24 * hour,
        ceremonies_us: hour,
        throttle_us: 24 * hour,
        authorization_codes_us: 8 * 24 * hour,
        refresh_tokens_us: 24 * hour,
        sessions_us: 30 * 24 * hour,
        signin_addresses_us: 30 * 24 * hour,
        ssh_certificates_us: 24 * hour,
    };
    let deleted = store.sweep(now_us, &retention).await.expect("sweep");
    let n = |t: &str| deleted.iter().find(|(x, _)| x == t).map_or(0, |(_, n)| *n);
    assert_eq!(n("throttle"), 1, "{deleted:?}");
    assert_eq!(n("revoked_tokens"), 1, "{deleted:?}");
    let left = store
        .throttle_counters(&["ip:old".to_owned(), "ip:fresh".to_owned()])
        .await
        .expect("counters");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].0, "ip:fresh");
    assert!(store.token_revoked("live").await.expect("live"));
    assert!(!store.token_revoked("gone").await.expect("gone"));
    assert_eq!(
        count(&store).await,
        events_before,
        "the audit log is never swept"
    );
    // A second sweep finds nothing.
    assert!(
        store
            .sweep(now_us, &retention)
            .await
            .expect("again")
            .is_empty()
    );
    assert!(store.verify_chain().await.expect("verify").is_ok());
}

/// A break-glass account's sessions are never swept: they show its last use (and its drills).
async fn the_sweep_keeps_every_session_of_a_break_glass_account(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    sweep_user(&store, "u-1", false, now).await;
    sweep_user(&store, "bg-1", true, now).await;
    store
        .write(
            Change::CreateBreakGlass(NewBreakGlass {
                principal_id: "bg-1".into(),
                credential: "password".into(),
                custodians: r#"["a","b","c"]"#.into(),
                threshold: 2,
                key_holder: None,
                pin_holder: None,
                created_by: "user:admin".into(),
                created_at_us: now - 90 * DAY,
            }),
            vec![],
        )
        .await
        .expect("break-glass");
    let old = now - sweep_retention().sessions_us - 30 * DAY;
    session(&store, "s-bg-use", "bg-1", old).await;
    session(&store, "s-bg-drill", "bg-1", old + DAY).await;
    store
        .write(
            Change::RecordDrill {
                id: "drill-1".into(),
                principal_id: "bg-1".into(),
                session_id: "s-bg-drill".into(),
                at_us: old + DAY,
            },
            vec![],
        )
        .await
        .expect("drill");
    // An ordinary user's session as old is swept in the same run.
    session(&store, "s-user", "u-1", old).await;
    assert_eq!(sweep_at(&store, now).await, only("sessions", 1));
    assert!(store.session_by_id("s-user").await.expect("read").is_none());
    assert!(
        store
            .session_by_id("s-bg-use")
            .await
            .expect("read")
            .is_some()
    );
    assert!(
        store
            .session_by_id("s-bg-drill")
            .await
            .expect("read")
            .is_some()
    );
    let account = store
        .breakglass_account("bg-1")
        .await
        .expect("read")
        .expect("account");
    assert_eq!(
        account.last_use_us,
        Some(old),
        "its last use is still known"
    );
    assert_eq!(account.last_drill_us, Some(old + DAY));
}

/// A session that proved a drill is kept on its own, not only as a break-glass account's
/// (drills are a break-glass account's, which the rule above keeps anyway: this pins the
/// second rule, so neither goes unnoticed).
async fn the_sweep_keeps_a_session_recorded_as_a_drill(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    sweep_user(&store, "u-1", false, now).await;
    let old = now - sweep_retention().sessions_us - DAY;
    session(&store, "s-drill", "u-1", old).await;
    session(&store, "s-other", "u-1", old).await;
    store
        .write(
            Change::RecordDrill {
                id: "drill-1".into(),
                principal_id: "u-1".into(),
                session_id: "s-drill".into(),
                at_us: old,
            },
            vec![],
        )
        .await
        .expect("drill");
    assert_eq!(sweep_at(&store, now).await, only("sessions", 1));
    assert!(
        store
            .session_by_id("s-other")
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .session_by_id("s-drill")
            .await
            .expect("read")
            .is_some()
    );
}

async fn the_sweep_deletes_familiar_addresses_their_retention_after_the_last_success(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    sweep_user(&store, "u-1", false, now).await;
    let cutoff = now - sweep_retention().signin_addresses_us;
    signin_address(&store, "u-1", "192.0.2.1", cutoff - DAY).await;
    signin_address(&store, "u-1", "192.0.2.1", cutoff - MINUTE).await;
    // First seen before the cutoff, last successful after it: it stays.
    signin_address(&store, "u-1", "192.0.2.2", cutoff - DAY).await;
    signin_address(&store, "u-1", "192.0.2.2", cutoff + MINUTE).await;
    assert_eq!(sweep_at(&store, now).await, only("signin_addresses", 1));
    let known = |address: &'static str| {
        let store = store.clone();
        async move {
            store
                .familiar_address("u-1", address, 0)
                .await
                .expect("read")
        }
    };
    assert!(!known("192.0.2.1").await);
    assert!(known("192.0.2.2").await);
}

/// More expired rows than one batch: one sweep deletes them all (batch after batch until one
/// comes back short) and counts them all.
async fn the_sweep_deletes_more_than_one_batch_in_one_call(db: Db) {
    use portcullis_store::sweep::BATCH;
    let store = initialised(&db).await;
    let now = now_us();
    let cutoff = now - sweep_retention().throttle_us;
    let n = BATCH as usize + 1;
    throttle_failures(
        &store,
        (0..n).map(|i| format!("acct:flood-{i}")).collect(),
        cutoff - MINUTE,
    )
    .await;
    throttle_failures(&store, vec!["acct:fresh".into()], cutoff + MINUTE).await;
    assert_eq!(
        db.count_rows("SELECT COUNT(*) FROM throttle").await,
        n as i64 + 1
    );
    assert_eq!(sweep_at(&store, now).await, only("throttle", n as u64));
    assert_eq!(db.count_rows("SELECT COUNT(*) FROM throttle").await, 1);
    assert_eq!(
        store
            .throttle_counters(&["acct:fresh".to_owned()])
            .await
            .expect("read")
            .len(),
        1
    );
    assert!(sweep_at(&store, now).await.is_empty());
}

/// What the sweep returns (the `store.swept` event's counts): each table it deleted from, with
/// the number of its rows deleted, and no other table.
async fn the_sweep_counts_what_it_deleted_per_table(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    let r = sweep_retention();
    sweep_user(&store, "u-1", false, now).await;
    // A different number of expired rows in every table (1 to 11), and one live row in each.
    let past = |retention: i64, i: usize| now - retention - MINUTE - i as i64;
    for i in 0..=1 {
        let at = if i < 1 {
            past(r.device_codes_us, i)
        } else {
            now
        };
        device_code(&store, &format!("{i}"), at).await;
    }
    for i in 0..=2 {
        let at = if i < 2 { past(r.ceremonies_us, i) } else { now };
        ceremony(&store, &format!("{i}"), "u-1", at).await;
    }
    for i in 0..=3 {
        let at = if i < 3 { past(r.ceremonies_us, i) } else { now };
        decoy(&store, &format!("{i}"), at).await;
    }
    for i in 0..=4 {
        let at = if i < 4 { past(r.ceremonies_us, i) } else { now };
        pending_signin(&store, &format!("{i}"), "u-1", at).await;
    }
    throttle_failures(
        &store,
        (0..5).map(|i| format!("ip:flood-{i}")).collect(),
        past(r.throttle_us, 0),
    )
    .await;
    throttle_failures(&store, vec!["ip:fresh".into()], now).await;
    for i in 0..=6 {
        let at = if i < 6 { past(0, i) } else { now + HOUR };
        revoked_jti(&store, &format!("revoked-{i}"), at).await;
    }
    for i in 0..=7 {
        // The live one is accepted an hour before its expiry, after the others expired.
        let at = if i < 7 { past(0, i) } else { now + MINUTE };
        assertion_jti(&store, &format!("assertion-{i}"), at).await;
    }
    for i in 0..=8 {
        let at = if i < 8 {
            past(r.authorization_codes_us, i)
        } else {
            now
        };
        authorization_code(&store, &format!("{i}"), "u-1", at).await;
    }
    for i in 0..=9 {
        let at = if i < 9 {
            past(r.refresh_tokens_us, i)
        } else {
            now + DAY
        };
        refresh_token(&store, &format!("{i}"), &format!("fam-{i}"), "u-1", at).await;
    }
    for i in 0..=10 {
        let at = if i < 10 { past(r.sessions_us, i) } else { now };
        session(&store, &format!("s-{i}"), "u-1", at).await;
    }
    for i in 0..=11 {
        let at = if i < 11 {
            past(r.signin_addresses_us, i)
        } else {
            now
        };
        signin_address(&store, "u-1", &format!("192.0.2.{i}"), at).await;
    }
    let events_before = count(&store).await;
    assert_eq!(
        sweep_at(&store, now).await,
        BTreeMap::from(
            [
                ("device_authorizations", 1),
                ("webauthn_ceremonies", 2),
                ("webauthn_decoys", 3),
                ("pending_signins", 4),
                ("throttle", 5),
                ("revoked_tokens", 6),
                ("client_assertion_jtis", 7),
                ("authorization_codes", 8),
                ("refresh_tokens", 9),
                ("sessions", 10),
                ("signin_addresses", 11),
            ]
            .map(|(t, n)| (t.to_owned(), n))
        )
    );
    assert_eq!(
        count(&store).await,
        events_before,
        "the sweep writes no event"
    );
    // Only live rows are left: a second sweep deletes nothing and reports nothing.
    assert!(sweep_at(&store, now).await.is_empty());
}

conformance!(
    the_sweep_deletes_what_expired_and_nothing_else,
    the_sweep_keeps_every_session_of_a_break_glass_account,
    the_sweep_keeps_a_session_recorded_as_a_drill,
    the_sweep_deletes_familiar_addresses_their_retention_after_the_last_success,
    the_sweep_deletes_more_than_one_batch_in_one_call,
    the_sweep_counts_what_it_deleted_per_table,
);
