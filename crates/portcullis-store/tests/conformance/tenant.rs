//! The tenant: the master key is proved before anything is written, the bootstrap token is stored
//! hashed and expires, a newer schema is refused.

use super::*;

async fn wrong_master_key_is_refused_and_changes_nothing(db: Db) {
    let store = initialised(&db).await;
    store.append(ev(1)).await.expect("append");
    let before = count(&store).await;
    let err = store
        .initialise_tenant(
            &MasterKey::from_bytes(&[2u8; 32]).expect("key"),
            OffsetDateTime::now_utc(),
        )
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, StoreError::WrongMasterKey), "{err}");
    assert_eq!(count(&store).await, before);
    // The right key loads the same tenant without writing.
    let t = store
        .initialise_tenant(
            &MasterKey::from_bytes(&[1u8; 32]).expect("key"),
            OffsetDateTime::now_utc(),
        )
        .await
        .expect("loads");
    assert!(!t.created && t.bootstrap_token.is_none());
    assert_eq!(count(&store).await, before);
}

async fn bootstrap_token_is_stored_hashed_and_expires(db: Db) {
    let store = db.open().await;
    let now = OffsetDateTime::now_utc();
    let t = store
        .initialise_tenant(&MasterKey::from_bytes(&[1u8; 32]).expect("key"), now)
        .await
        .expect("init");
    let token = t.bootstrap_token.expect("created").to_string();
    assert!(
        store
            .bootstrap_token_valid(&token, now)
            .await
            .expect("check")
    );
    assert!(
        !store
            .bootstrap_token_valid("nope", now)
            .await
            .expect("check")
    );
    let later = now + portcullis_store::BOOTSTRAP_TOKEN_LIFETIME + time::Duration::seconds(1);
    assert!(
        !store
            .bootstrap_token_valid(&token, later)
            .await
            .expect("check")
    );
    // Not stored in the clear anywhere in the event log either.
    let events = store
        .list_events(&AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(!format!("{events:?}").contains(&token));
}

async fn newer_schema_is_refused(db: Db) {
    let store = db.open().await;
    store.close().await;
    let blob = if db.url.starts_with("sqlite:") {
        "X'00'"
    } else {
        "'\\x00'::bytea"
    };
    db.exec(&format!("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (9999, 'future', TRUE, {blob}, 0)")).await;
    match Store::open(&db.url, StoreOptions::default()).await {
        Err(StoreError::SchemaTooNew { found, known }) => {
            assert_eq!(found, 9999);
            assert_eq!(
                known,
                portcullis_store::known_schema_version(!db.url.starts_with("sqlite:"))
            );
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a newer schema"),
    }
}

conformance!(
    wrong_master_key_is_refused_and_changes_nothing,
    bootstrap_token_is_stored_hashed_and_expires,
    newer_schema_is_refused,
);
