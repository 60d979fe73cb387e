//! A standard OpenID Connect relying party (the `openidconnect` crate): discovery, code + PKCE
//! through the pages, ID-token verification, userinfo and refresh.

use super::*;

/// A standard relying party (the `openidconnect` crate) does discovery, authorization code +
/// PKCE through the sign-in and consent pages, the code exchange, ID-token verification
/// against JWKS, userinfo and refresh; a second JWT library verifies the access token.
async fn oidc_relying_party(backend: Backend) {
    use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
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
    let secret = oidc_person(&app, &admin, "olivia", "amber-lantern-quiet-58").await;
    // A role ending in two minutes: no token may outlive it (invariant 3).
    admin
        .create_assignment(&CreateAssignmentRequest {
            principal: "olivia".into(),
            role: "audit-reader".into(),
            scope: None,
            kind: Some("active".into()),
            duration_seconds: Some(120),
            ends_at: None,
        })
        .await
        .expect("assign");
    let role_ends = now_unix() + 120;
    let redirect = "http://127.0.0.1:9/callback";
    let (client_id, client_secret) = confidential_client(&app, &token, "Grafana", redirect).await;
    assert!(client_id.starts_with("pcc_"));

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http");
    let issuer = app.public_url.clone();
    let meta =
        CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.clone()).expect("iss"), &http)
            .await
            .expect("discovery");
    let rp = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(client_id.clone()),
        Some(ClientSecret::new(client_secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(redirect.into()).expect("redirect"));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf_state, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    let mut b = Browser::new(&issuer);
    let page = browser_sign_in(
        &mut b,
        auth_url.as_str(),
        "olivia",
        "amber-lantern-quiet-58",
        &secret,
        0,
    )
    .await;
    // Strict cookies, and a CSP without scripts on every page.
    assert!(
        b.set_cookies
            .iter()
            .any(|c| c.starts_with("portcullis_session="))
    );
    for c in &b.set_cookies {
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
    }
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:9"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline") && !csp.contains("script-src"));
    let back = consent(&mut b, page, "allow").await;
    assert!(back.starts_with(redirect), "{back}");
    assert_eq!(
        query_param(&back, "state").as_deref(),
        Some(csrf_state.secret().as_str())
    );
    assert_eq!(query_param(&back, "iss").as_deref(), Some(issuer.as_str()));
    let code = query_param(&back, "code").expect("code");

    let tokens = rp
        .exchange_code(AuthorizationCode::new(code))
        .expect("token endpoint")
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("id token");
    let claims = id_token
        .claims(&rp.id_token_verifier(), &nonce)
        .expect("ID token verifies against JWKS");
    assert_eq!(
        claims.preferred_username().map(|u| u.as_str()),
        Some("olivia")
    );
    assert_eq!(
        claims.email().map(|e| e.as_str()),
        Some("olivia@example.org")
    );
    assert_eq!(claims.auth_context_ref().map(|a| a.as_str()), Some("mfa"));
    assert!(claims.auth_time().is_some());
    let id_exp = claims.expiration().timestamp() as u64;
    assert!(
        id_exp <= role_ends + 1,
        "ID token outlives the role: {id_exp} > {role_ends}"
    );
    let subject = claims.subject().as_str().to_owned();
    let refresh = tokens
        .refresh_token()
        .expect("offline_access gives a refresh token")
        .clone();

    // Another JWT library verifies the access token against JWKS.
    {
        use jwt_simple::prelude::*;
        let jwks: serde_json::Value = app
            .http
            .get(format!("{}/oauth2/jwks", app.base))
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("json");
        let x = jwks["keys"][0]["x"].as_str().expect("x");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(x)
            .expect("b64");
        let key = Ed25519PublicKey::from_bytes(&raw).expect("key");
        let opts = VerificationOptions {
            allowed_issuers: Some(HashSet::from_strings(&[&issuer])),
            // Each client is its own audience.
            allowed_audiences: Some(HashSet::from_strings(&[&client_id])),
            ..Default::default()
        };
        let verified = key
            .verify_token::<serde_json::Value>(tokens.access_token().secret(), Some(opts))
            .expect("access token verifies");
        assert_eq!(verified.subject.as_deref(), Some(subject.as_str()));
        assert_eq!(verified.custom["client_id"], client_id);
        assert_eq!(verified.custom["acr"], "mfa");
        assert_eq!(verified.custom["roles"][0]["role"], "audit-reader");
        let exp = verified.expires_at.expect("exp").as_secs();
        assert!(
            exp <= role_ends + 1,
            "access token outlives the role: {exp} > {role_ends}"
        );
        // The default lifetime is longer than the role's two minutes: the role bounds it.
        assert!(
            exp + 5 >= role_ends,
            "cut at the role's end, not before: {exp}"
        );
    }

    // Userinfo, through the relying party.
    let info: openidconnect::core::CoreUserInfoClaims = rp
        .user_info(tokens.access_token().clone(), None)
        .expect("userinfo endpoint")
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.subject().as_str(), subject);
    assert_eq!(info.email().map(|e| e.as_str()), Some("olivia@example.org"));

    // An application's access token is not a credential for the Portcullis API.
    let r = app
        .http
        .get(format!("{}/api/v1/me", app.base))
        .bearer_auth(tokens.access_token().secret())
        .send()
        .await
        .expect("me");
    assert_eq!(r.status(), 401);

    // Refresh rotates and brings a new ID token.
    let refreshed = rp
        .exchange_refresh_token(&refresh)
        .expect("token endpoint")
        .request_async(&http)
        .await
        .expect("refresh");
    let again = refreshed.id_token().expect("refreshed ID token");
    let c2 = again
        .claims(&rp.id_token_verifier(), |_: Option<&Nonce>| Ok(()))
        .expect("refreshed ID token verifies");
    assert_eq!(c2.subject().as_str(), subject);
    assert!(refreshed.refresh_token().is_some());
    assert_ne!(
        refreshed.refresh_token().map(|t| t.secret().clone()),
        Some(refresh.secret().clone())
    );

    // The consent is remembered: a second authorization goes straight back with a code.
    let (challenge2, _v2) = PkceCodeChallenge::new_random_sha256();
    let (url2, _, _) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge2)
        .url();
    let r = b.get(url2.as_str()).await;
    let to = location(&r);
    assert!(
        to.starts_with(redirect) && query_param(&to, "code").is_some(),
        "{to}"
    );

    // RFC 7009: another client cannot revoke this one's token; its own client can.
    let live = refreshed.refresh_token().expect("rt").secret().clone();
    let r = register_client(&app, &token, "Other", &[redirect], true).await;
    let other: serde_json::Value = r.json().await.expect("json");
    let other_id = other["client"]["client_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let r = form_post(
        &app,
        "/oauth2/revoke",
        &[("client_id", &other_id), ("token", &live)],
    )
    .await;
    assert_eq!(r.status(), 200);
    // Introspection: the confidential client may, the public one may not.
    let fresh_at = refreshed.access_token().secret().clone();
    let seen = introspect(&app, &client_id, &client_secret, &fresh_at).await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["client_id"], client_id.as_str());
    assert_eq!(seen["scope"], "openid profile email offline_access");
    let r = form_post(
        &app,
        "/oauth2/introspect",
        &[("client_id", &other_id), ("token", &fresh_at)],
    )
    .await;
    oauth_error(r, 401, "invalid_client").await;
    let refresh_with = |rt: String| {
        let (http, base, id, sec) = (
            app.http.clone(),
            app.base.clone(),
            client_id.clone(),
            client_secret.clone(),
        );
        async move {
            http.post(format!("{base}/oauth2/token"))
                .basic_auth(&id, Some(&sec))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                ])
                .send()
                .await
                .expect("refresh")
        }
    };
    let r = refresh_with(live).await;
    assert_eq!(r.status(), 200, "a foreign revocation changed nothing");
    let t: serde_json::Value = r.json().await.expect("json");
    let live = t["refresh_token"].as_str().expect("rt").to_owned();
    let r = app
        .http
        .post(format!("{}/oauth2/revoke", app.base))
        .basic_auth(&client_id, Some(&client_secret))
        .form(&[("token", live.as_str())])
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 200);
    oauth_error(refresh_with(live).await, 400, "invalid_grant").await;
    app.stop().await;
}

backend_tests!(oidc_relying_party);
