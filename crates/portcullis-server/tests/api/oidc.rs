//! OpenID Connect: authorization code with PKCE for relying parties, pages, ID tokens, userinfo,
//! and bad input at every endpoint.

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

/// Every way an authorization request or code exchange can be wrong: a clear error, and
/// nothing issued; a reused code revokes what it gave; CSRF and foreign origins are refused.
async fn oidc_bad_input(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let secret = oidc_person(&app, &admin, "oscar", "copper-meadow-river-42").await;
    let redirect = "http://127.0.0.1:9/cb";

    // Registration: insecure, fragment, relative URIs and duplicate names are refused.
    for bad in ["http://app.example/cb", "https://app.example/cb#x", "/cb"] {
        let r = register_client(&app, &token, "Bad", &[bad], false).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    let (id, sec) = confidential_client(&app, &token, "Wiki", redirect).await;
    assert_eq!(
        register_client(&app, &token, "Wiki", &[redirect], false)
            .await
            .status(),
        409
    );
    let r = register_client(&app, &token, "Spa", &["http://localhost:3000/cb"], true).await;
    assert_eq!(r.status(), 201);
    let spa: serde_json::Value = r.json().await.expect("json");
    assert!(
        spa["client_secret"].is_null(),
        "a public client has no secret"
    );
    let spa_id = spa["client"]["client_id"].as_str().expect("id").to_owned();
    let list: serde_json::Value = app
        .http
        .get(format!("{}/api/v1/clients", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list.as_array().expect("list").len(), 2);

    let mut b = Browser::new(&app.base);
    // Client or redirect URI wrong: an error page, never a redirect.
    for (client, uri) in [
        (id.as_str(), "http://127.0.0.1:9/cb/"),
        (id.as_str(), "http://127.0.0.1:9/CB"),
        ("pcc_unknown", redirect),
    ] {
        let (u, _) = authorize_url(&app.base, client, uri, &[]);
        let r = b.get(&u).await;
        assert_eq!(r.status(), 400, "{client} {uri}");
        assert!(r.headers().get("location").is_none());
        assert!(
            r.headers()["content-security-policy"]
                .to_str()
                .expect("csp")
                .contains("frame-ancestors 'none'")
        );
    }
    // Everything else goes back to the client with the error and the state.
    let mut no_pkce =
        url::Url::parse(&authorize_url(&app.base, &id, redirect, &[]).0).expect("url");
    let kept: Vec<(String, String)> = no_pkce
        .query_pairs()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    no_pkce.query_pairs_mut().clear().extend_pairs(kept);
    for u in [
        no_pkce.to_string(),
        authorize_url(&app.base, &id, redirect, &[("scope", "openid admin")])
            .0
            .replace("scope=openid+offline_access&", ""),
    ] {
        let r = b.get(&u).await;
        let to = location(&r);
        assert!(to.starts_with(redirect), "{to}");
        assert!(query_param(&to, "error").is_some(), "{to}");
        assert_eq!(query_param(&to, "state").as_deref(), Some("s-1"));
        assert!(query_param(&to, "code").is_none());
    }
    let mut plain = url::Url::parse(&authorize_url(&app.base, &id, redirect, &[]).0).expect("url");
    let kept: Vec<(String, String)> = plain
        .query_pairs()
        .map(|(k, v)| {
            if k == "code_challenge_method" {
                (k.into_owned(), "plain".to_owned())
            } else {
                (k.into_owned(), v.into_owned())
            }
        })
        .collect();
    plain.query_pairs_mut().clear().extend_pairs(kept);
    let to = location(&b.get(plain.as_str()).await);
    assert_eq!(
        query_param(&to, "error").as_deref(),
        Some("invalid_request")
    );
    // prompt=none without a session: login_required, no page.
    let (u, _) = authorize_url(&app.base, &id, redirect, &[("prompt", "none")]);
    let to = location(&b.get(&u).await);
    assert_eq!(query_param(&to, "error").as_deref(), Some("login_required"));

    // CSRF: a sign-in form without the token, or from another origin, is refused.
    let r = b.get("/signin").await;
    let html = r.text().await.expect("html");
    let csrf = hidden(&html, "csrf");
    let r = b
        .post(
            "/signin",
            &[
                ("username", "oscar"),
                ("password", "copper-meadow-river-42"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    let r = b
        .http
        .post(format!("{}/signin", app.base))
        .header("cookie", b.cookie_header())
        .header("origin", "https://evil.example")
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "oscar"),
            ("password", "copper-meadow-river-42"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    // A browser that withholds its origin sends `Origin: null`: not taken for a foreign site
    // (the token decides; here it is right, so the password is checked and is wrong).
    let r = b
        .http
        .post(format!("{}/signin", app.base))
        .header("cookie", b.cookie_header())
        .header("origin", "null")
        .header("sec-fetch-site", "same-origin")
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "oscar"),
            ("password", "wrong-wrong-wrong-1"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["referrer-policy"], "same-origin");
    // A wrong password: the same page again with the generic answer.
    let r = b
        .post(
            "/signin",
            &[
                ("csrf", &csrf),
                ("username", "oscar"),
                ("password", "wrong-wrong-wrong-1"),
            ],
        )
        .await;
    assert_eq!(r.status(), 401);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("user name or password is wrong")
    );
    // Markup in input is escaped, never echoed raw.
    let r = b
        .post(
            "/signin",
            &[
                ("csrf", &csrf),
                ("username", "<script>x</script>"),
                ("password", "p"),
            ],
        )
        .await;
    let html = r.text().await.expect("html");
    assert!(!html.contains("<script>"), "{html}");

    // Sign in, consent, get a code; deny once too.
    let (u, verifier) = authorize_url(&app.base, &id, redirect, &[]);
    let page = browser_sign_in(&mut b, &u, "oscar", "copper-meadow-river-42", &secret, 0).await;
    let to = consent(&mut b, page, "deny").await;
    assert_eq!(query_param(&to, "error").as_deref(), Some("access_denied"));
    let page = b.get(&u).await;
    let to = consent(&mut b, page, "allow").await;
    let code = query_param(&to, "code").expect("code");

    // Wrong or missing verifier, other redirect, other client, no secret: refused, code kept.
    let wrong = portcullis_core::oidc::s256("not-the-verifier");
    for (client, uri, v) in [
        ((id.as_str(), Some(sec.as_str())), redirect, None),
        (
            (id.as_str(), Some(sec.as_str())),
            redirect,
            Some(format!("{wrong}aaaa")),
        ),
        (
            (id.as_str(), Some(sec.as_str())),
            "http://127.0.0.1:9/cb/",
            Some(verifier.clone()),
        ),
        ((spa_id.as_str(), None), redirect, Some(verifier.clone())),
    ] {
        oauth_error(
            exchange(&app, client, &code, uri, v.as_deref()).await,
            400,
            "invalid_grant",
        )
        .await;
    }
    oauth_error(
        exchange(&app, (id.as_str(), None), &code, redirect, Some(&verifier)).await,
        401,
        "invalid_client",
    )
    .await;
    oauth_error(
        exchange(
            &app,
            (id.as_str(), Some("pcs_wrong")),
            &code,
            redirect,
            Some(&verifier),
        )
        .await,
        401,
        "invalid_client",
    )
    .await;
    // The right exchange works once.
    let r = exchange(&app, (&id, Some(&sec)), &code, redirect, Some(&verifier)).await;
    assert_eq!(r.status(), 200);
    let t: serde_json::Value = r.json().await.expect("json");
    let access = t["access_token"].as_str().expect("at").to_owned();
    let refresh = t["refresh_token"].as_str().expect("rt").to_owned();
    let userinfo = |tok: String| {
        let http = app.http.clone();
        let base = app.base.clone();
        async move {
            http.get(format!("{base}/oauth2/userinfo"))
                .bearer_auth(tok)
                .send()
                .await
                .expect("userinfo")
                .status()
        }
    };
    assert_eq!(userinfo(access.clone()).await, 200);
    // A refresh token presented by another client: refused, and the family is revoked.
    let r = form_post(
        &app,
        "/oauth2/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &spa_id),
        ],
    )
    .await;
    oauth_error(r, 400, "invalid_grant").await;
    let r = form_post(
        &app,
        "/oauth2/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &id),
            ("client_secret", &sec),
        ],
    )
    .await;
    oauth_error(r, 400, "invalid_grant").await;

    // A fresh code; its reuse revokes the access token (and refresh family) it gave.
    let (u, verifier) = authorize_url(&app.base, &id, redirect, &[]);
    let to = location(&b.get(&u).await);
    let code = query_param(&to, "code").expect("consented: straight back with a code");
    let r = exchange(&app, (&id, Some(&sec)), &code, redirect, Some(&verifier)).await;
    let t: serde_json::Value = r.json().await.expect("json");
    let access = t["access_token"].as_str().expect("at").to_owned();
    let refresh = t["refresh_token"].as_str().expect("rt").to_owned();
    assert_eq!(userinfo(access.clone()).await, 200);
    oauth_error(
        exchange(&app, (&id, Some(&sec)), &code, redirect, Some(&verifier)).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        userinfo(access).await,
        401,
        "the code's access token is revoked"
    );
    let r = form_post(
        &app,
        "/oauth2/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &id),
            ("client_secret", &sec),
        ],
    )
    .await;
    oauth_error(r, 400, "invalid_grant").await;
    let events = admin
        .audit_events(&EventFilter {
            action: Some("oauth.code_exchange".into()),
            ..Default::default()
        })
        .await
        .expect("events");
    let reasons: Vec<String> = events
        .events
        .iter()
        .map(|e| e.details["reason"].as_str().unwrap_or("").to_owned())
        .collect();
    for want in [
        "pkce_verifier_missing",
        "pkce_verifier_wrong",
        "redirect_uri_mismatch",
        "other_client",
        "reused",
    ] {
        assert!(reasons.iter().any(|r| r == want), "{want} in {reasons:?}");
    }
    assert!(
        events
            .events
            .iter()
            .any(|e| e.details["reason"] == "reused" && e.details["alert"] == true)
    );

    // Deleting the client ends what it holds.
    let r = app
        .http
        .delete(format!("{}/api/v1/clients/Wiki", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    let (u, _) = authorize_url(&app.base, &id, redirect, &[]);
    assert_eq!(b.get(&u).await.status(), 400);
    app.stop().await;
}

api_tests!(oidc_bad_input);

backend_tests!(oidc_relying_party);
