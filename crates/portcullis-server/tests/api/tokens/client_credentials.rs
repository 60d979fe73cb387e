//! Client credentials with a client secret: who manages a service account's secrets and roles,
//! the token, its claims and audience, refusals, introspection, revocation, secret rotation.

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

api_tests!(service_account_client_credentials);
