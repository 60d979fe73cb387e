//! Signing-key rotation: new tokens use the new key at once, the old key stays in JWKS until
//! its tokens have expired, and racing rotations make exactly one new key.

use super::*;

/// `keys rotate`: new tokens are signed by the new key at once; the old key stays in JWKS,
/// and its tokens stay valid, until they have all expired, then it is gone and refused.
/// Two rotations racing from the same key make exactly one new key.
async fn signing_keys_rotate_and_retire(backend: Backend) {
    let Some(app) = spawn_with(backend, |c| {
        c.access_token_seconds = 10;
        c.signing_key_grace_seconds = 1;
    })
    .await
    else {
        return;
    };
    let admin = admin(&app).await;
    admin
        .create_service_account(&portcullis_core::api::CreateServiceAccountRequest {
            name: "rotation-probe".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
    let s = admin
        .add_client_secret("rotation-probe")
        .await
        .expect("secret");
    let keys = ed_keys(&admin).await;
    assert_eq!(keys.len(), 1);
    assert!(keys[0].active && keys[0].published);
    let k1 = keys[0].key_id.clone();
    let old = access_token(&app, "rotation-probe", &s.client_secret).await;
    assert_eq!(kid_of(&old), k1);

    // Without the permission: refused, nothing changes.
    let sa_token = old.clone();
    let r = app
        .http
        .post(format!("{}/api/v1/keys/rotate", app.base))
        .bearer_auth(&sa_token)
        .send()
        .await
        .expect("send");
    assert!(matches!(r.status().as_u16(), 401 | 403), "{}", r.status());
    assert_eq!(ed_keys(&admin).await.len(), 1);

    let rotated = admin.rotate_signing_key(None).await.expect("rotate");
    assert_eq!(rotated.previous_key_id, k1);
    let k2 = rotated.key_id.clone();
    assert_ne!(k1, k2);
    let new = access_token(&app, "rotation-probe", &s.client_secret).await;
    assert_eq!(kid_of(&new), k2, "new tokens use the new key at once");
    assert_eq!(jwks_kids(&app).await, [k2.clone(), k1.clone()]);
    for t in [&old, &new] {
        assert_eq!(
            introspect(&app, "rotation-probe", &s.client_secret, t).await["active"],
            true
        );
    }
    let keys = ed_keys(&admin).await;
    assert_eq!(keys.len(), 2);
    assert!(keys[0].active && keys[0].key_id == k2);
    assert!(!keys[1].active && keys[1].published && keys[1].published_until.is_some());

    // Racing rotations from k2: one winner, the other told plainly.
    let (a, b) = tokio::join!(
        admin.rotate_signing_key(Some(&k2)),
        admin.rotate_signing_key(Some(&k2))
    );
    let outcomes = [a.is_ok(), b.is_ok()];
    assert_eq!(
        outcomes.iter().filter(|ok| **ok).count(),
        1,
        "exactly one rotation wins"
    );
    let loser = a.err().or(b.err()).expect("one lost");
    assert_eq!(loser.code(), Some("conflict"), "{loser}");
    assert_eq!(ed_keys(&admin).await.len(), 3);

    // After the lifetime of k1's tokens (10 s) and the grace (1 s), k1 is gone from JWKS
    // and a token it signed is refused.
    tokio::time::sleep(std::time::Duration::from_millis(11_500)).await;
    let kids = jwks_kids(&app).await;
    assert!(!kids.contains(&k1), "{kids:?}");
    assert_eq!(
        introspect(&app, "rotation-probe", &s.client_secret, &old).await["active"],
        false
    );
    let keys = ed_keys(&admin).await;
    assert!(!keys[2].published, "k1 is listed as no longer published");

    // Every rotation is in the audit log.
    let events = admin
        .audit_events(&EventFilter {
            action: Some("signing_key.rotated".into()),
            ..Default::default()
        })
        .await
        .expect("events")
        .events;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].details["previous_key_id"], k1.as_str());
    app.stop().await;
}

/// The `EdDSA` keys (the access tokens' keys) as listed, newest first.
async fn ed_keys(admin: &portcullis_client::Client) -> Vec<portcullis_core::api::SigningKeyView> {
    admin
        .signing_keys()
        .await
        .expect("keys")
        .into_iter()
        .filter(|k| k.algorithm == "EdDSA")
        .collect()
}

backend_tests!(signing_keys_rotate_and_retire);
