//! Client credentials with a client secret: who manages a service account's secrets and roles,
//! the token, its claims and audience, refusals, introspection, revocation, secret rotation.

use super::*;

/// The service account `payroll-sync`, made by `admin`, with its two client secrets added by
/// `by` (who then may not assign it roles).
async fn payroll_sync(
    admin: &Client,
    by: &Client,
) -> (
    portcullis_core::api::ClientSecretIssued,
    portcullis_core::api::ClientSecretIssued,
) {
    admin
        .create_service_account(&portcullis_core::api::CreateServiceAccountRequest {
            name: "payroll-sync".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
    let s1 = by
        .add_client_secret("payroll-sync")
        .await
        .expect("secret 1");
    let s2 = by
        .add_client_secret("payroll-sync")
        .await
        .expect("secret 2");
    (s1, s2)
}

/// The published JWKS.
async fn jwks(app: &TestApp) -> serde_json::Value {
    app.http
        .get(format!("{}/oauth2/jwks", app.base))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json")
}

/// `token` verified by another JWT library (`jwt_simple`) against `jwks`, for the issuer
/// `http://localhost:8080` and the audience `payroll-sync` (each client is its own audience).
fn verify(
    jwks: &serde_json::Value,
    token: &str,
) -> Result<jwt_simple::prelude::JWTClaims<TheirClaims>, String> {
    use jwt_simple::prelude::*;
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
        allowed_audiences: Some(HashSet::from_strings(&["payroll-sync"])),
        ..Default::default()
    };
    pk.verify_token::<TheirClaims>(token, Some(opts))
        .map_err(|e| e.to_string())
}

/// The `token.client_credentials` audit events so far.
async fn client_credentials_events(admin: &Client) -> Vec<portcullis_core::api::AuditEventView> {
    events_named(admin, "token.client_credentials").await
}

/// A Service Administrator manages a service account's secrets: at most two live at once, and
/// a secret is shown once, never again in the account's detail.
async fn a_service_account_holds_at_most_two_live_secrets(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = admin(&app).await;
    let (sam, _) = holder(&app, &admin, "sam", "service-administrator").await;
    let (s1, _s2) = payroll_sync(&admin, &sam).await;
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
    app.stop().await;
}

/// Basic and post client authentication both issue a token, and the issue is audited.
async fn basic_and_post_authentication_both_issue_a_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = admin(&app).await;
    let (s1, s2) = payroll_sync(&admin, &admin).await;
    let _ = access_token(&app, "payroll-sync", &s1.client_secret).await;
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
    let cc = client_credentials_events(&admin).await;
    assert!(
        cc.iter().any(|e| e.details["reason"] == "issued"),
        "issued missing"
    );
    app.stop().await;
}

/// Another JWT library verifies the token against the published JWKS: the discovery issuer,
/// the client as audience, `client_id` and `acr`, and no role by default.
async fn the_token_verifies_with_another_jwt_library_against_the_jwks(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = admin(&app).await;
    let (s1, _) = payroll_sync(&admin, &admin).await;
    let t1 = access_token(&app, "payroll-sync", &s1.client_secret).await;
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
    let c = verify(&jwks(&app).await, &t1).expect("verifies");
    assert_eq!(
        (c.custom.client_id.as_str(), c.custom.acr.as_str()),
        ("payroll-sync", "client_credentials")
    );
    assert!(c.custom.roles.is_empty(), "no role by default");
    app.stop().await;
}

/// Roles and consent travel in the token (roles the Global Administrator's to assign, the
/// secret a Service Administrator's); consent takes permissions only; the token's exp never
/// passes the earliest role's end.
async fn roles_and_consent_travel_in_the_token_and_exp_never_passes_a_role_end(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = admin(&app).await;
    let (sam, _) = holder(&app, &admin, "sam", "service-administrator").await;
    let (s1, _) = payroll_sync(&admin, &sam).await;
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
    let consent = |permission: &str| portcullis_core::api::ConsentRequest {
        permissions: vec![permission.into()],
    };
    admin
        .consent("payroll-sync", &consent("app:payroll.read"))
        .await
        .expect("consent");
    let bad_consent = admin
        .consent("payroll-sync", &consent("payroll"))
        .await
        .expect_err("not a permission");
    assert_eq!(bad_consent.code(), Some("invalid_request"));
    let t2 = access_token(&app, "payroll-sync", &s1.client_secret).await;
    let c = verify(&jwks(&app).await, &t2).expect("verifies");
    assert_eq!(c.custom.roles[0]["role"], "audit-reader");
    assert_eq!(c.custom.permissions, ["app:payroll.read"]);
    let exp = c.expires_at.expect("exp").as_secs() as i64;
    let role_end = c.custom.roles[0]["exp"].as_i64().expect("role exp");
    assert!(exp <= role_end, "token exp {exp} after role end {role_end}");
    assert!(exp - (now_unix() as i64) <= 121);
    app.stop().await;
}

/// Each refusal at the token endpoint is in OAuth's error shape: a wrong secret, an unknown
/// client, a person (audited with an alert), no or another or a repeated grant type, JSON.
async fn each_token_refusal_is_in_oauth_error_shape(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = admin(&app).await;
    let (s1, _) = payroll_sync(&admin, &admin).await;
    let cc = [("grant_type", "client_credentials")];
    for who in [
        ("payroll-sync", "pcs_wrong"),
        ("nobody", "pcs_wrong"),
        ("root-admin", ADMIN_PW),
    ] {
        let r = token_request(&app, &cc, Some(who)).await;
        oauth_error(r, 401, "invalid_client").await;
    }
    let good = Some(("payroll-sync", s1.client_secret.as_str()));
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[], "invalid_request"),
        (&[("grant_type", "password")], "unsupported_grant_type"),
        (&[cc[0], cc[0]], "invalid_request"),
    ];
    for (form, error) in cases {
        oauth_error(token_request(&app, form, good).await, 400, error).await;
    }
    let r = app
        .http
        .post(format!("{}/oauth2/token", app.base))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .expect("send");
    oauth_error(r, 400, "invalid_request").await;
    let cc = client_credentials_events(&admin).await;
    for reason in ["wrong_secret", "unknown_client", "not_a_service_account"] {
        let found = cc.iter().any(|e| e.details["reason"] == reason);
        assert!(found, "{reason} missing");
    }
    assert!(
        cc.iter()
            .any(|e| e.details["reason"] == "not_a_service_account" && e.details["alert"] == true)
    );
    app.stop().await;
}

/// Introspection says a real token is active (with its client); forged ones (alg none, HS256
/// keyed with the public key, a tampered signature, garbage) never are, nor do they verify.
async fn introspection_finds_real_tokens_active_and_forged_ones_never(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = admin(&app).await;
    let (s1, s2) = payroll_sync(&admin, &admin).await;
    let t2 = access_token(&app, "payroll-sync", &s1.client_secret).await;
    let i = introspect(&app, "payroll-sync", &s2.client_secret, &t2).await;
    assert_eq!(
        (i["active"].as_bool(), i["client_id"].as_str()),
        (Some(true), Some("payroll-sync"))
    );
    let jwks = jwks(&app).await;
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
    let key = jsonwebtoken::EncodingKey::from_secret(&public);
    let hmac = jsonwebtoken::encode(&h, &claims, &key).expect("hs256");
    let mut tampered = t2.clone();
    tampered.pop();
    tampered.push(if t2.ends_with('A') { 'B' } else { 'A' });
    for forged in [none.as_str(), hmac.as_str(), tampered.as_str(), "garbage"] {
        assert_eq!(
            introspect(&app, "payroll-sync", &s2.client_secret, forged).await["active"],
            false,
            "{forged}"
        );
        assert!(verify(&jwks, forged).is_err());
    }
    app.stop().await;
}

/// Revocation (RFC 7009) makes the token inactive, and only that token; revoking again is
/// fine; the revocation is audited.
async fn revocation_makes_a_token_inactive_and_again_is_fine(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = admin(&app).await;
    let (s1, s2) = payroll_sync(&admin, &admin).await;
    let t1 = access_token(&app, "payroll-sync", &s1.client_secret).await;
    let t2 = access_token(&app, "payroll-sync", &s1.client_secret).await;
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
    let cc = client_credentials_events(&admin).await;
    let revoked = cc.iter().any(|e| e.details["reason"] == "token_revoked");
    assert!(revoked, "token_revoked missing");
    app.stop().await;
}

/// Rotation: a removed secret stops working at once, the other goes on; no secret ever
/// reaches the audit log.
async fn a_removed_secret_stops_at_once_and_the_other_goes_on(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = admin(&app).await;
    let (s1, s2) = payroll_sync(&admin, &admin).await;
    let _ = access_token(&app, "payroll-sync", &s1.client_secret).await;
    admin
        .remove_client_secret("payroll-sync", &s1.id)
        .await
        .expect("remove");
    let cc = [("grant_type", "client_credentials")];
    let r = token_request(&app, &cc, Some(("payroll-sync", &s1.client_secret))).await;
    oauth_error(r, 401, "invalid_client").await;
    let _ = access_token(&app, "payroll-sync", &s2.client_secret).await;
    let events = admin
        .audit_events(&EventFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("events")
        .events;
    let log = serde_json::to_string(&events).expect("json");
    for s in [&s1, &s2] {
        assert!(
            !log.contains(&s.client_secret),
            "no secret in the audit log"
        );
    }
    app.stop().await;
}

backend_tests!(
    a_service_account_holds_at_most_two_live_secrets,
    basic_and_post_authentication_both_issue_a_token,
    the_token_verifies_with_another_jwt_library_against_the_jwks,
    roles_and_consent_travel_in_the_token_and_exp_never_passes_a_role_end,
    each_token_refusal_is_in_oauth_error_shape,
    introspection_finds_real_tokens_active_and_forged_ones_never,
    revocation_makes_a_token_inactive_and_again_is_fine,
    a_removed_secret_stops_at_once_and_the_other_goes_on,
);
