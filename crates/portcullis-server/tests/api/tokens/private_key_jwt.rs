//! Client credentials with `private_key_jwt`: registering public keys, signed assertions (also
//! to introspect and revoke), every way one can be wrong (replay, audience, algorithm, key).

use super::*;

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

api_tests!(service_account_private_key_jwt);
