//! The token service for service accounts: client credentials (secret and `private_key_jwt`),
//! signing-key rotation, allowed networks, throttling of wrong secrets.

use super::*;

async fn service_account_client_credentials(app: TestApp) {
    use jwt_simple::prelude::*;
    let admin = admin(&app).await;
    admin
        .create_service_account(&portcullis_core::api::CreateServiceAccountRequest {
            name: "payroll-sync".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
    // Its credentials are a Service Administrator's to manage; its roles the Global
    // Administrator's to assign (who holds a service account's secret never assigns it roles).
    let (sam, _) = holder(&app, &admin, "sam", "service-administrator").await;
    let s1 = sam
        .add_client_secret("payroll-sync")
        .await
        .expect("secret 1");
    let s2 = sam
        .add_client_secret("payroll-sync")
        .await
        .expect("secret 2");
    assert_eq!(s1.client_id, "payroll-sync");
    let third = sam
        .add_client_secret("payroll-sync")
        .await
        .expect_err("two at most");
    assert_eq!(third.code(), Some("conflict"));
    let detail = admin.service_account("payroll-sync").await.expect("detail");
    assert_eq!(detail.secrets.len(), 2);
    assert!(
        !serde_json::to_string(&detail)
            .expect("json")
            .contains(&s1.client_secret)
    );

    // Basic and post authentication both work.
    let t1 = access_token(&app, "payroll-sync", &s1.client_secret).await;
    let r = token_request(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "payroll-sync"),
            ("client_secret", &s2.client_secret),
        ],
        None,
    )
    .await;
    assert_eq!(r.status(), 200);

    // Another JWT library verifies the token against the published JWKS.
    let discovery: serde_json::Value = app
        .http
        .get(format!("{}/.well-known/openid-configuration", app.base))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(discovery["issuer"], "http://localhost:8080");
    let jwks: serde_json::Value = app
        .http
        .get(format!("{}/oauth2/jwks", app.base))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let verify = |token: &str| -> Result<JWTClaims<TheirClaims>, String> {
        let meta = Token::decode_metadata(token).map_err(|e| e.to_string())?;
        let kid = meta.key_id().ok_or("no kid")?.to_owned();
        let jwk = jwks["keys"]
            .as_array()
            .and_then(|k| k.iter().find(|k| k["kid"] == kid.as_str()))
            .ok_or("unknown kid")?;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let raw = URL_SAFE_NO_PAD
            .decode(jwk["x"].as_str().ok_or("no x")?)
            .map_err(|e| e.to_string())?;
        let pk = Ed25519PublicKey::from_bytes(&raw).map_err(|e| e.to_string())?;
        let opts = VerificationOptions {
            allowed_issuers: Some(HashSet::from_strings(&["http://localhost:8080"])),
            // Each client is its own audience.
            allowed_audiences: Some(HashSet::from_strings(&["payroll-sync"])),
            ..Default::default()
        };
        pk.verify_token::<TheirClaims>(token, Some(opts))
            .map_err(|e| e.to_string())
    };
    let c = verify(&t1).expect("verifies");
    assert_eq!(
        (c.custom.client_id.as_str(), c.custom.acr.as_str()),
        ("payroll-sync", "client_credentials")
    );
    assert!(c.custom.roles.is_empty(), "no role by default");

    // Roles and consent travel in the token; exp never passes the earliest role's end.
    admin
        .create_assignment(&CreateAssignmentRequest {
            principal: "service_account:payroll-sync".into(),
            role: "audit-reader".into(),
            scope: None,
            kind: Some("active".into()),
            duration_seconds: Some(120),
            ends_at: None,
        })
        .await
        .expect("active role for 2 minutes");
    admin
        .consent(
            "payroll-sync",
            &portcullis_core::api::ConsentRequest {
                permissions: vec!["app:payroll.read".into()],
            },
        )
        .await
        .expect("consent");
    let bad_consent = admin
        .consent(
            "payroll-sync",
            &portcullis_core::api::ConsentRequest {
                permissions: vec!["payroll".into()],
            },
        )
        .await
        .expect_err("not a permission");
    assert_eq!(bad_consent.code(), Some("invalid_request"));
    let t2 = access_token(&app, "payroll-sync", &s1.client_secret).await;
    let c = verify(&t2).expect("verifies");
    assert_eq!(c.custom.roles[0]["role"], "audit-reader");
    assert_eq!(c.custom.permissions, ["app:payroll.read"]);
    let exp = c.expires_at.expect("exp").as_secs() as i64;
    let role_end = c.custom.roles[0]["exp"].as_i64().expect("role exp");
    assert!(exp <= role_end, "token exp {exp} after role end {role_end}");
    assert!(exp - (now_unix() as i64) <= 121);

    // Refusals, each in OAuth's error shape and changing nothing.
    oauth_error(
        token_request(
            &app,
            &[("grant_type", "client_credentials")],
            Some(("payroll-sync", "pcs_wrong")),
        )
        .await,
        401,
        "invalid_client",
    )
    .await;
    oauth_error(
        token_request(
            &app,
            &[("grant_type", "client_credentials")],
            Some(("nobody", "pcs_wrong")),
        )
        .await,
        401,
        "invalid_client",
    )
    .await;
    oauth_error(
        token_request(
            &app,
            &[("grant_type", "client_credentials")],
            Some(("root-admin", ADMIN_PW)),
        )
        .await,
        401,
        "invalid_client",
    )
    .await;
    oauth_error(
        token_request(&app, &[], Some(("payroll-sync", &s1.client_secret))).await,
        400,
        "invalid_request",
    )
    .await;
    oauth_error(
        token_request(
            &app,
            &[("grant_type", "password")],
            Some(("payroll-sync", &s1.client_secret)),
        )
        .await,
        400,
        "unsupported_grant_type",
    )
    .await;
    oauth_error(
        token_request(
            &app,
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
            ],
            Some(("payroll-sync", &s1.client_secret)),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    let r = app
        .http
        .post(format!("{}/oauth2/token", app.base))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .expect("send");
    oauth_error(r, 400, "invalid_request").await;

    // Introspection: real tokens are active; forged ones never are.
    let i = introspect(&app, "payroll-sync", &s2.client_secret, &t2).await;
    assert_eq!(
        (i["active"].as_bool(), i["client_id"].as_str()),
        (Some(true), Some("payroll-sync"))
    );
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = t2.split('.').nth(1).expect("payload");
    let none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
    );
    let kid = jwks["keys"][0]["kid"].as_str().expect("kid");
    let public = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["x"].as_str().expect("x"))
        .expect("b64");
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json");
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some(kid.to_owned());
    let hmac = jsonwebtoken::encode(
        &h,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&public),
    )
    .expect("hs256");
    let mut tampered = t2.clone();
    tampered.pop();
    tampered.push(if t2.ends_with('A') { 'B' } else { 'A' });
    for forged in [none.as_str(), hmac.as_str(), tampered.as_str(), "garbage"] {
        assert_eq!(
            introspect(&app, "payroll-sync", &s2.client_secret, forged).await["active"],
            false,
            "{forged}"
        );
        assert!(verify(forged).is_err());
    }
    // Revocation (RFC 7009) makes the token inactive; revoking again is fine.
    for _ in 0..2 {
        let r = app
            .http
            .post(format!("{}/oauth2/revoke", app.base))
            .basic_auth("payroll-sync", Some(&s1.client_secret))
            .form(&[("token", t2.as_str())])
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        introspect(&app, "payroll-sync", &s2.client_secret, &t2).await["active"],
        false
    );
    assert_eq!(
        introspect(&app, "payroll-sync", &s2.client_secret, &t1).await["active"],
        true
    );

    // Rotation: remove the first secret; it stops working at once, the second goes on.
    admin
        .remove_client_secret("payroll-sync", &s1.id)
        .await
        .expect("remove");
    oauth_error(
        token_request(
            &app,
            &[("grant_type", "client_credentials")],
            Some(("payroll-sync", &s1.client_secret)),
        )
        .await,
        401,
        "invalid_client",
    )
    .await;
    let _ = access_token(&app, "payroll-sync", &s2.client_secret).await;

    let events = admin
        .audit_events(&EventFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("events")
        .events;
    let cc: Vec<_> = events
        .iter()
        .filter(|e| e.action == "token.client_credentials")
        .collect();
    for reason in [
        "issued",
        "wrong_secret",
        "unknown_client",
        "not_a_service_account",
        "token_revoked",
    ] {
        assert!(
            cc.iter().any(|e| e.details["reason"] == reason),
            "{reason} missing"
        );
    }
    assert!(
        cc.iter()
            .any(|e| e.details["reason"] == "not_a_service_account" && e.details["alert"] == true)
    );
    assert!(
        !serde_json::to_string(&events)
            .expect("json")
            .contains(&s2.client_secret),
        "no secret in the audit log"
    );
    app.stop().await;
}

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
    let keys = admin.signing_keys().await.expect("keys");
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
    assert_eq!(admin.signing_keys().await.expect("keys").len(), 1);

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
    let keys = admin.signing_keys().await.expect("keys");
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
    assert_eq!(admin.signing_keys().await.expect("keys").len(), 3);

    // After the lifetime of k1's tokens (10 s) and the grace (1 s), k1 is gone from JWKS
    // and a token it signed is refused.
    tokio::time::sleep(std::time::Duration::from_millis(11_500)).await;
    let kids = jwks_kids(&app).await;
    assert!(!kids.contains(&k1), "{kids:?}");
    assert_eq!(
        introspect(&app, "rotation-probe", &s.client_secret, &old).await["active"],
        false
    );
    let keys = admin.signing_keys().await.expect("keys");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_rotate_and_retire_sqlite() {
    signing_keys_rotate_and_retire(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_rotate_and_retire_postgres() {
    signing_keys_rotate_and_retire(Backend::Postgres).await;
}

async fn service_account_private_key_jwt(app: TestApp) {
    use jwt_simple::prelude::*;
    let admin = admin(&app).await;
    let ed = Ed25519KeyPair::generate().with_key_id("ed-1");
    let ec = ES256KeyPair::generate().with_key_id("ec-1");
    let other = Ed25519KeyPair::generate().with_key_id("other-1");
    let ed_pem = ed.public_key().to_pem();

    // Registration: with the account in one step, then another key; bad keys refused.
    admin
        .create_service_account(&CreateServiceAccountRequest {
            name: "nightly".into(),
            display_name: None,
            public_key: Some(ed_pem.clone()),
            key_id: Some("ed-1".into()),
        })
        .await
        .expect("sa with key");
    let k = admin
        .add_client_key(
            "nightly",
            &portcullis_core::api::AddClientKeyRequest {
                public_key: ec.public_key().to_pem().expect("pem"),
                key_id: Some("ec-1".into()),
            },
        )
        .await
        .expect("es256 key");
    assert_eq!((k.key_id.as_str(), k.algorithm.as_str()), ("ec-1", "ES256"));
    admin
        .create_service_account(&CreateServiceAccountRequest {
            name: "other-daemon".into(),
            display_name: None,
            public_key: Some(other.public_key().to_pem()),
            key_id: Some("other-1".into()),
        })
        .await
        .expect("other sa");
    let bad_key = |pem: String, kid: Option<&str>| portcullis_core::api::AddClientKeyRequest {
        public_key: pem,
        key_id: kid.map(str::to_owned),
    };
    let e = admin
        .add_client_key("nightly", &bad_key(ed.to_pem(), None))
        .await
        .expect_err("a private key");
    assert_eq!(e.code(), Some("invalid_public_key"));
    assert!(!e.to_string().contains(&ed.to_pem()), "never echoed");
    let e = admin
        .add_client_key("nightly", &bad_key("garbage".into(), None))
        .await
        .expect_err("not pem");
    assert_eq!(e.code(), Some("invalid_public_key"));
    let e = admin
        .add_client_key("nightly", &bad_key(ed_pem.clone(), Some("ed-1")))
        .await
        .expect_err("kid taken");
    assert_eq!(e.code(), Some("conflict"));
    let e = admin
        .add_client_key("nightly", &bad_key(ed_pem.clone(), Some("a b")))
        .await
        .expect_err("bad kid");
    assert_eq!(e.code(), Some("invalid_request"));
    let e = admin
        .create_service_account(&CreateServiceAccountRequest {
            name: "half-made".into(),
            display_name: None,
            public_key: Some("garbage".into()),
            key_id: None,
        })
        .await
        .expect_err("bad key at creation");
    assert_eq!(e.code(), Some("invalid_public_key"));
    assert!(
        admin.service_account("half-made").await.is_err(),
        "no account without its key"
    );
    let detail = admin.service_account("nightly").await.expect("detail");
    let kids: Vec<&str> = detail.keys.iter().map(|k| k.key_id.as_str()).collect();
    assert_eq!(kids, ["ed-1", "ec-1"]);
    assert!(detail.secrets.is_empty());

    // Discovery names the method and its algorithms.
    let discovery: serde_json::Value = app
        .http
        .get(format!("{}/.well-known/openid-configuration", app.base))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(
        discovery["token_endpoint_auth_methods_supported"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m == "private_key_jwt"))
    );
    assert_eq!(
        discovery["token_endpoint_auth_signing_alg_values_supported"],
        serde_json::json!(["EdDSA", "ES256"])
    );
    let issuer = discovery["issuer"].as_str().expect("issuer").to_owned();
    let endpoint = discovery["token_endpoint"]
        .as_str()
        .expect("endpoint")
        .to_owned();

    let claims = |jti: &str| {
        Claims::create(Duration::from_mins(2))
            .with_issuer("nightly")
            .with_subject("nightly")
            .with_audience(&endpoint)
            .with_jwt_id(jti)
    };
    let ok = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.expect("json");
        body["access_token"].as_str().expect("token").to_owned()
    };

    // Both algorithms work, and the issuer is an accepted audience too.
    let first = ed.sign(claims("j-1")).expect("sign");
    let token = ok(assertion_request(&app, &first).await).await;
    ok(assertion_request(&app, &ec.sign(claims("j-2")).expect("sign")).await).await;
    let to_issuer = Claims::create(Duration::from_mins(2))
        .with_issuer("nightly")
        .with_subject("nightly")
        .with_audience(&issuer)
        .with_jwt_id("j-3");
    ok(assertion_request(&app, &ed.sign(to_issuer).expect("sign")).await).await;
    // With client_id given as well (RFC 7523 §3 allows it).
    let r = token_request(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "nightly"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &ed.sign(claims("j-4")).expect("sign")),
        ],
        None,
    )
    .await;
    ok(r).await;

    // Introspection and revocation accept assertions too, each used once.
    let intro = |assertion: String, token: String| {
        let http = app.http.clone();
        let url = format!("{}/oauth2/introspect", app.base);
        async move {
            http.post(url)
                .form(&[
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", assertion.as_str()),
                    ("token", token.as_str()),
                ])
                .send()
                .await
                .expect("send")
        }
    };
    let intro_assertion = ed.sign(claims("j-intro")).expect("sign");
    let r = intro(intro_assertion.clone(), token.clone()).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        (body["active"].as_bool(), body["client_id"].as_str()),
        (Some(true), Some("nightly"))
    );
    oauth_error(
        intro(intro_assertion, token.clone()).await,
        401,
        "invalid_client",
    )
    .await;

    // Refusals: each answered `invalid_client`, each adding exactly one failure event with its
    // reason and nothing else (no token, no jti used up). A success after each resets the
    // per-client throttle, so the cases do not wait on each other.
    let mut expired = claims("bad-expired");
    expired.issued_at = Some(Clock::now_since_epoch() - Duration::from_mins(10));
    expired.invalid_before = expired.issued_at;
    expired.expires_at = Some(Clock::now_since_epoch() - Duration::from_mins(5));
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"ed-1"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims("bad-none")).expect("claims json"))
    );
    let hmac = HS256Key::from_bytes(ed_pem.as_bytes())
        .with_key_id("ed-1")
        .authenticate(claims("bad-hmac"))
        .expect("hs256");
    let hmac_raw = HS256Key::from_bytes(&ed.public_key().to_bytes())
        .with_key_id("ed-1")
        .authenticate(claims("bad-hmac-raw"))
        .expect("hs256");
    let wrong_aud = Claims::create(Duration::from_mins(2))
        .with_issuer("nightly")
        .with_subject("nightly")
        .with_audience("https://elsewhere.example/oauth2/token")
        .with_jwt_id("bad-aud");
    let wrong_sub = Claims::create(Duration::from_mins(2))
        .with_issuer("other-daemon")
        .with_subject("nightly")
        .with_audience(&endpoint)
        .with_jwt_id("bad-sub");
    let too_long = Claims::create(Duration::from_mins(60))
        .with_issuer("nightly")
        .with_subject("nightly")
        .with_audience(&endpoint)
        .with_jwt_id("bad-long");
    let stranger = Ed25519KeyPair::generate();
    let cases: Vec<(&str, String, &str)> = vec![
        ("reused jti", first.clone(), "assertion_replayed"),
        (
            "wrong aud",
            ed.sign(wrong_aud).expect("sign"),
            "assertion_wrong_audience",
        ),
        ("alg none", none, "assertion_algorithm_refused"),
        (
            "HS256 with the PEM as secret",
            hmac,
            "assertion_algorithm_refused",
        ),
        (
            "HS256 with the raw key as secret",
            hmac_raw,
            "assertion_algorithm_refused",
        ),
        (
            "unknown kid",
            stranger
                .clone()
                .with_key_id("nope")
                .sign(claims("bad-kid"))
                .expect("sign"),
            "assertion_unknown_key",
        ),
        (
            "a known kid, another key",
            stranger
                .with_key_id("ed-1")
                .sign(claims("bad-sig"))
                .expect("sign"),
            "assertion_bad_signature",
        ),
        (
            "expired",
            ed.sign(expired).expect("sign"),
            "assertion_expired",
        ),
        (
            "another account's key",
            other.sign(claims("bad-other")).expect("sign"),
            "assertion_unknown_key",
        ),
        (
            "ES256 header on the Ed25519 kid",
            ES256KeyPair::from_bytes(&ec.to_bytes())
                .expect("same key")
                .with_key_id("ed-1")
                .sign(claims("bad-mix"))
                .expect("sign"),
            "assertion_algorithm_refused",
        ),
        (
            "issuer is another account",
            ed.sign(wrong_sub).expect("sign"),
            "assertion_wrong_subject",
        ),
        (
            "lifetime too long",
            ed.sign(too_long).expect("sign"),
            "assertion_lifetime_too_long",
        ),
        ("garbage", "a.b.c".into(), "assertion_malformed"),
    ];
    let mut cursor = 0;
    events_since(&admin, &mut cursor).await;
    for (i, (what, assertion, reason)) in cases.into_iter().enumerate() {
        oauth_error(
            assertion_request(&app, &assertion).await,
            401,
            "invalid_client",
        )
        .await;
        let new = events_since(&admin, &mut cursor).await;
        assert_eq!(new.len(), 1, "{what}: one event, nothing else: {new:?}");
        assert_eq!(
            (new[0].action.as_str(), new[0].outcome.as_str()),
            ("token.client_credentials", "failure"),
            "{what}"
        );
        assert_eq!(new[0].details["reason"], reason, "{what}");
        if reason != "assertion_malformed" {
            assert_eq!(new[0].target, "service_account:nightly", "{what}");
        }
        ok(assertion_request(&app, &ed.sign(claims(&format!("reset-{i}"))).expect("sign")).await)
            .await;
        events_since(&admin, &mut cursor).await;
    }
    // The refused assertions used up nothing: their jtis still work once.
    for jti in ["bad-aud", "bad-hmac", "bad-expired", "bad-other", "bad-sig"] {
        ok(assertion_request(&app, &ed.sign(claims(jti)).expect("sign")).await).await;
    }

    // One method at a time; the assertion type must be the JWT bearer one.
    let r = app
        .http
        .post(format!("{}/oauth2/token", app.base))
        .basic_auth("nightly", Some("pcs_x"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            (
                "client_assertion",
                &ed.sign(claims("two-ways")).expect("sign"),
            ),
        ])
        .send()
        .await
        .expect("send");
    oauth_error(r, 400, "invalid_request").await;
    let r = token_request(
        &app,
        &[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            ),
            ("client_assertion", &ed.sign(claims("saml")).expect("sign")),
        ],
        None,
    )
    .await;
    oauth_error(r, 400, "invalid_request").await;

    // Revocation with an assertion.
    let r = app
        .http
        .post(format!("{}/oauth2/revoke", app.base))
        .form(&[
            ("client_assertion_type", JWT_BEARER),
            (
                "client_assertion",
                &ed.sign(claims("j-revoke")).expect("sign"),
            ),
            ("token", token.as_str()),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let r = intro(ed.sign(claims("j-intro-2")).expect("sign"), token.clone()).await;
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["active"], false, "revoked");

    // A removed key stops working at once, and its kid is never given to another key.
    admin
        .remove_client_key("nightly", "ed-1")
        .await
        .expect("remove");
    oauth_error(
        assertion_request(&app, &ed.sign(claims("after-removal")).expect("sign")).await,
        401,
        "invalid_client",
    )
    .await;
    let e = admin
        .add_client_key(
            "nightly",
            &bad_key(
                Ed25519KeyPair::generate().public_key().to_pem(),
                Some("ed-1"),
            ),
        )
        .await
        .expect_err("kid reuse");
    assert_eq!(e.code(), Some("conflict"));
    ok(assertion_request(&app, &ec.sign(claims("j-ec-after")).expect("sign")).await).await;

    let all = admin
        .audit_events(&EventFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("events")
        .events;
    assert!(all.iter().any(|e| e.action == "service_account.key_added"
        && e.details["key_id"] == "ec-1"
        && e.details["alert"] == true));
    assert!(
        all.iter()
            .any(|e| e.action == "service_account.key_removed")
    );
    assert!(all.iter().any(|e| e.details["reason"] == "issued"
        && e.details["auth_method"] == "private_key_jwt"
        && e.details["key_id"] == "ec-1"));
    app.stop().await;
}

// ---- Service-account networks.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_networks_sqlite() {
    service_account_networks(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_networks_postgres() {
    service_account_networks(Backend::Postgres).await;
}

// ---- Client-credentials throttling.

/// Wrong secrets slow a client down at the address they come from (429 `invalid_client` with
/// Retry-After — `slow_down` is the device grant's — and never a lockout); the right secret is
/// never refused, neither from that address nor from another (finding: unrelated clients at one
/// address locked each other out).
async fn client_credentials_throttle_and_reset(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = admin(&app).await;
    admin
        .create_service_account(&portcullis_core::api::CreateServiceAccountRequest {
            name: "throttle-probe".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
    let s = admin
        .add_client_secret("throttle-probe")
        .await
        .expect("secret");
    let wrong = "pcs_not-the-secret";
    let base = app.base.clone();
    let attempt = |from: u8, secret: &str| {
        let secret = secret.to_owned();
        let base = base.clone();
        async move {
            reqwest::Client::builder()
                .local_address(std::net::IpAddr::from([127, 0, 0, from]))
                .build()
                .expect("client")
                .post(format!("{base}/oauth2/token"))
                .basic_auth("throttle-probe", Some(&secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .expect("send")
        }
    };
    for _ in 0..11 {
        oauth_error(attempt(1, wrong).await, 401, "invalid_client").await;
    }
    let r = attempt(1, wrong).await;
    assert_eq!(
        r.status(),
        429,
        "the twelfth failure from one address waits"
    );
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client", "not slow_down: {body}");
    // The right secret is never refused for failures, here or elsewhere.
    assert_eq!(attempt(1, &s.client_secret).await.status(), 200);
    assert_eq!(attempt(2, &s.client_secret).await.status(), 200);
    // A wrong secret from another address is judged there alone.
    oauth_error(attempt(3, wrong).await, 401, "invalid_client").await;
    // Never a lockout: after the wait a failure counts again (401, not 429).
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    oauth_error(attempt(1, wrong).await, 401, "invalid_client").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_throttle_and_reset_sqlite() {
    client_credentials_throttle_and_reset(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_throttle_and_reset_postgres() {
    client_credentials_throttle_and_reset(Backend::Postgres).await;
}

api_tests!(
    service_account_client_credentials,
    service_account_private_key_jwt,
);
