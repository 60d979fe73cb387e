//! Every way an authorization request or code exchange can be wrong: a clear error and nothing
//! issued; reused codes, CSRF and foreign origins.

use super::*;

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
