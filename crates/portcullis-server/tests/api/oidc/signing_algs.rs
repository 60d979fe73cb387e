//! ID-token signing algorithms: a relying party chooses EdDSA (the default), ES256 or RS256 at
//! registration; discovery and JWKS publish all three; nothing else is accepted, and a token
//! whose header names another algorithm than its key's is refused.

use super::*;

/// A relying party registered for RS256, then one for ES256, completes the code flow with the
/// `openidconnect` crate expecting exactly that algorithm and verifies the ID token (and the
/// refreshed one) against JWKS; access tokens stay EdDSA.
async fn oidc_id_tokens_in_rs256_and_es256(backend: Backend) {
    use openidconnect::core::{
        CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    };
    use openidconnect::{
        AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
        OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
    };
    let Some(app) = spawn_at_localhost(backend).await else {
        return;
    };
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let secret = oidc_person(&app, &admin, "rhea", "copper-kettle-mild-71").await;
    let redirect = "http://127.0.0.1:9/callback";
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http");
    let issuer = app.public_url.clone();
    let mut b = Browser::new(&issuer);
    let cases = [
        ("RS256", CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256),
        ("ES256", CoreJwsSigningAlgorithm::EcdsaP256Sha256),
    ];
    for (i, (alg, core_alg)) in cases.into_iter().enumerate() {
        let r = app
            .http
            .post(format!("{}/api/v1/clients", app.base))
            .bearer_auth(&token)
            .json(&serde_json::json!({
                "name": format!("App {alg}"), "redirect_uris": [redirect],
                "id_token_signed_response_alg": alg,
            }))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 201);
        let created: serde_json::Value = r.json().await.expect("json");
        assert_eq!(created["client"]["id_token_signed_response_alg"], alg);
        let client_id = created["client"]["client_id"]
            .as_str()
            .expect("id")
            .to_owned();
        let client_secret = created["client_secret"]
            .as_str()
            .expect("secret")
            .to_owned();
        let shown = admin.oidc_client(&client_id).await.expect("show");
        assert_eq!(shown.id_token_signed_response_alg, alg);

        let meta = CoreProviderMetadata::discover_async(
            IssuerUrl::new(issuer.clone()).expect("iss"),
            &http,
        )
        .await
        .expect("discovery");
        let rp = CoreClient::from_provider_metadata(
            meta,
            ClientId::new(client_id.clone()),
            Some(ClientSecret::new(client_secret.clone())),
        )
        .set_redirect_uri(RedirectUrl::new(redirect.into()).expect("redirect"));
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (auth_url, _csrf, nonce) = rp
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("offline_access".into()))
            .set_pkce_challenge(challenge)
            .url();
        let page = if i == 0 {
            browser_sign_in(
                &mut b,
                auth_url.as_str(),
                "rhea",
                "copper-kettle-mild-71",
                &secret,
                0,
            )
            .await
        } else {
            // Signed in already: straight to this client's consent page.
            b.get(auth_url.as_str()).await
        };
        let back = consent(&mut b, page, "allow").await;
        let code = query_param(&back, "code").expect("code");
        let tokens = rp
            .exchange_code(AuthorizationCode::new(code))
            .expect("token endpoint")
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await
            .expect("code exchange");
        let id_token = tokens.id_token().expect("id token");
        assert_eq!(id_token.signing_alg().expect("alg"), &core_alg);
        let only = rp.id_token_verifier().set_allowed_algs([core_alg.clone()]);
        let claims = id_token
            .claims(&only, &nonce)
            .unwrap_or_else(|e| panic!("{alg} ID token verifies against JWKS: {e}"));
        assert_eq!(
            claims.preferred_username().map(|u| u.as_str()),
            Some("rhea")
        );
        // A verifier that expects EdDSA does not take it.
        let ed_only = rp
            .id_token_verifier()
            .set_allowed_algs([CoreJwsSigningAlgorithm::EdDsa]);
        assert!(id_token.claims(&ed_only, &nonce).is_err());
        // The access token is signed in the algorithm the client registered too (a resource
        // server of an RS256-only relying party verifies it with the same library).
        let access = tokens.access_token().secret().clone();
        let meta = jwt_simple::prelude::Token::decode_metadata(&access).expect("metadata");
        assert_eq!(meta.algorithm(), alg);
        assert_eq!(meta.signature_type(), Some("at+jwt"));
        let jwks = public_json(&app, "/oauth2/jwks").await;
        let key = jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["kid"] == kid_of(&access).as_str())
            .expect("the access token's key is in JWKS");
        assert_eq!(key["alg"], alg);

        // A refresh brings an ID token in the same algorithm.
        let refresh = tokens.refresh_token().expect("refresh").clone();
        let refreshed = rp
            .exchange_refresh_token(&refresh)
            .expect("token endpoint")
            .request_async(&http)
            .await
            .expect("refresh");
        let again = refreshed.id_token().expect("refreshed ID token");
        assert_eq!(again.signing_alg().expect("alg"), &core_alg);
        again
            .claims(&only, |_: Option<&Nonce>| Ok(()))
            .expect("refreshed ID token verifies");

        // Userinfo takes the access token; the ID token is no access token.
        let r = app
            .http
            .get(format!("{}/oauth2/userinfo", app.base))
            .bearer_auth(&access)
            .send()
            .await
            .expect("userinfo");
        assert_eq!(r.status(), 200);
        let r = app
            .http
            .get(format!("{}/oauth2/userinfo", app.base))
            .bearer_auth(id_token.to_string())
            .send()
            .await
            .expect("userinfo");
        assert_eq!(r.status(), 401);
    }
    app.stop().await;
}

/// Discovery lists every algorithm an ID token may be signed with (RS256 among them, as OIDC
/// Discovery requires); JWKS has one active key per algorithm with its `kty`, `alg`, `use`.
async fn oidc_discovery_and_jwks_list_every_algorithm(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let d: serde_json::Value = public_json(&app, "/.well-known/openid-configuration").await;
    assert_eq!(
        d["id_token_signing_alg_values_supported"],
        serde_json::json!(["EdDSA", "ES256", "RS256"])
    );
    let jwks: serde_json::Value = public_json(&app, "/oauth2/jwks").await;
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 3, "{jwks}");
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(v.as_str().expect("string"))
            .expect("b64")
    };
    for (alg, kty) in [("EdDSA", "OKP"), ("ES256", "EC"), ("RS256", "RSA")] {
        let of: Vec<_> = keys.iter().filter(|k| k["alg"] == alg).collect();
        assert_eq!(of.len(), 1, "one {alg} key: {jwks}");
        let k = of[0];
        assert_eq!(k["kty"], kty);
        assert_eq!(k["use"], "sig");
        assert!(k["kid"].as_str().is_some_and(|s| !s.is_empty()));
        match alg {
            "EdDSA" => {
                assert_eq!(k["crv"], "Ed25519");
                assert_eq!(b64(&k["x"]).len(), 32);
            }
            "ES256" => {
                assert_eq!(k["crv"], "P-256");
                assert_eq!(b64(&k["x"]).len(), 32);
                assert_eq!(b64(&k["y"]).len(), 32);
            }
            _ => {
                assert_eq!(b64(&k["n"]).len(), 256, "RSA 2048");
                assert_eq!(k["e"], "AQAB");
            }
        }
    }
    // The first key is the access tokens' (EdDSA), as verifiers of old expect.
    assert_eq!(keys[0]["alg"], "EdDSA");
    let token = admin_token(&app).await;
    let listed = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())))
        .signing_keys()
        .await
        .expect("keys");
    let mut algs: Vec<&str> = listed
        .iter()
        .filter(|k| k.active)
        .map(|k| k.algorithm.as_str())
        .collect();
    algs.sort_unstable();
    assert_eq!(algs, ["ES256", "EdDSA", "RS256"]);

    // `?algorithm=` rotates that algorithm's key; the old one stays in JWKS for now.
    let rs_before = keys.iter().find(|k| k["alg"] == "RS256").expect("rs")["kid"].clone();
    let r = app
        .http
        .post(format!("{}/api/v1/keys/rotate?algorithm=RS256", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let rotated: serde_json::Value = r.json().await.expect("json");
    assert_eq!(rotated["previous_key_id"], rs_before);
    let jwks: serde_json::Value = public_json(&app, "/oauth2/jwks").await;
    let rs: Vec<_> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| k["alg"] == "RS256")
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(rs, [rotated["key_id"].clone(), rs_before]);
    for bad in ["HS256", "none"] {
        let r = app
            .http
            .post(format!("{}/api/v1/keys/rotate?algorithm={bad}", app.base))
            .bearer_auth(&token)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 400, "{bad}");
    }
    app.stop().await;
}

/// Only EdDSA, ES256 and RS256 are accepted at registration: `HS256`, `none` and the like are
/// refused (400) and nothing is stored; without a choice a client gets EdDSA.
async fn oidc_registration_refuses_other_id_token_algorithms(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let token = admin_token(&app).await;
    let redirect = "https://app.example.org/cb";
    for bad in ["HS256", "none", "RS512", "eddsa", "", "PS256"] {
        let r = app
            .http
            .post(format!("{}/api/v1/clients", app.base))
            .bearer_auth(&token)
            .json(&serde_json::json!({
                "name": "Refused", "redirect_uris": [redirect],
                "id_token_signed_response_alg": bad,
            }))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 400, "{bad}");
    }
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    assert!(admin.oidc_clients().await.expect("list").is_empty());
    let r = register_client(&app, &token, "Plain", &[redirect], false).await;
    assert_eq!(r.status(), 201);
    let created: serde_json::Value = r.json().await.expect("json");
    assert_eq!(created["client"]["id_token_signed_response_alg"], "EdDSA");
    app.stop().await;
}

/// A token whose header names another algorithm than its key's (RS256 or ES256 on the EdDSA
/// key, EdDSA on the RS256 key), or `none`/HS256, is refused by introspection and the API.
async fn tokens_naming_another_algorithm_than_their_key_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = admin(&app).await;
    admin
        .create_service_account(&portcullis_core::api::CreateServiceAccountRequest {
            name: "alg-probe".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
    let s = admin.add_client_secret("alg-probe").await.expect("secret");
    let good = access_token(&app, "alg-probe", &s.client_secret).await;
    let ed_kid = kid_of(&good);
    let jwks: serde_json::Value = public_json(&app, "/oauth2/jwks").await;
    let kid_of_alg = |alg: &str| {
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["alg"] == alg)
            .and_then(|k| k["kid"].as_str())
            .expect("kid")
            .to_owned()
    };
    let rs_kid = kid_of_alg("RS256");
    let es_kid = kid_of_alg("ES256");
    let me = |t: String| {
        let app = &app;
        async move {
            app.http
                .get(format!("{}/api/v1/me", app.base))
                .bearer_auth(t)
                .send()
                .await
                .expect("me")
                .status()
                .as_u16()
        }
    };
    assert_eq!(me(good.clone()).await, 200);
    assert_eq!(
        introspect(&app, "alg-probe", &s.client_secret, &good).await["active"],
        true
    );
    let parts: Vec<&str> = good.split('.').collect();
    let enc = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    for (alg, kid) in [
        ("RS256", ed_kid.as_str()),
        ("ES256", ed_kid.as_str()),
        ("EdDSA", rs_kid.as_str()),
        ("EdDSA", es_kid.as_str()),
        ("HS256", ed_kid.as_str()),
        ("none", ed_kid.as_str()),
    ] {
        let header = enc(serde_json::json!({ "alg": alg, "typ": "at+jwt", "kid": kid }));
        let forged = format!("{header}.{}.{}", parts[1], parts[2]);
        assert_eq!(me(forged.clone()).await, 401, "{alg} {kid}");
        assert_eq!(
            introspect(&app, "alg-probe", &s.client_secret, &forged).await["active"],
            false,
            "{alg} {kid}"
        );
    }
    app.stop().await;
}

backend_tests!(
    oidc_id_tokens_in_rs256_and_es256,
    oidc_discovery_and_jwks_list_every_algorithm,
    oidc_registration_refuses_other_id_token_algorithms,
    tokens_naming_another_algorithm_than_their_key_are_refused,
);
