//! Every way an authorization request or code exchange can be wrong: a clear error and nothing
//! issued; reused codes, CSRF and foreign origins.

use super::*;

const REDIRECT: &str = "http://127.0.0.1:9/cb";
const USER: &str = "oscar";
const PASSWORD: &str = "copper-meadow-river-42";

/// The shared setup: an administrator, the person oscar (with TOTP) and the confidential
/// client Wiki redirecting to `REDIRECT`.
struct Wiki {
    token: String,
    admin: Client,
    secret: Vec<u8>,
    id: String,
    sec: String,
}

async fn wiki(app: &TestApp) -> Wiki {
    let token = admin_token(app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let secret = oidc_person(app, &admin, USER, PASSWORD).await;
    let (id, sec) = confidential_client(app, &token, "Wiki", REDIRECT).await;
    Wiki {
        token,
        admin,
        secret,
        id,
        sec,
    }
}

/// Registers the public client Spa (which gets no secret); its id.
async fn spa(app: &TestApp, token: &str) -> String {
    let r = register_client(app, token, "Spa", &["http://localhost:3000/cb"], true).await;
    assert_eq!(r.status(), 201);
    let spa: serde_json::Value = r.json().await.expect("json");
    assert!(
        spa["client_secret"].is_null(),
        "a public client has no secret"
    );
    spa["client"]["client_id"].as_str().expect("id").to_owned()
}

/// Signs oscar in through the pages and consents for Wiki: the browser, a code and its verifier.
async fn consented_code(app: &TestApp, w: &Wiki) -> (Browser, String, String) {
    let mut b = Browser::new(&app.base);
    let (u, verifier) = authorize_url(&app.base, &w.id, REDIRECT, &[]);
    let page = browser_sign_in(&mut b, &u, USER, PASSWORD, &w.secret, 0).await;
    let to = consent(&mut b, page, "allow").await;
    (b, query_param(&to, "code").expect("code"), verifier)
}

/// Exchanges a Wiki code rightly: its access and refresh token.
async fn wiki_tokens(app: &TestApp, w: &Wiki, code: &str, verifier: &str) -> (String, String) {
    let r = exchange(app, (&w.id, Some(&w.sec)), code, REDIRECT, Some(verifier)).await;
    assert_eq!(r.status(), 200);
    let t: serde_json::Value = r.json().await.expect("json");
    let access = t["access_token"].as_str().expect("at").to_owned();
    let refresh = t["refresh_token"].as_str().expect("rt").to_owned();
    (access, refresh)
}

async fn userinfo(app: &TestApp, token: &str) -> reqwest::StatusCode {
    app.http
        .get(format!("{}/oauth2/userinfo", app.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("userinfo")
        .status()
}

/// A refresh grant for `refresh_token` by the client in `client` (id, and secret if any).
async fn refresh_grant(app: &TestApp, refresh: &str, client: &[(&str, &str)]) -> reqwest::Response {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", refresh)];
    form.extend_from_slice(client);
    form_post(app, "/oauth2/token", &form).await
}

/// The audited failed code exchanges.
async fn code_exchange_events(admin: &Client) -> Vec<serde_json::Value> {
    let events = admin
        .audit_events(&EventFilter {
            action: Some("oauth.code_exchange".into()),
            ..Default::default()
        })
        .await
        .expect("events");
    events.events.into_iter().map(|e| e.details).collect()
}

/// Registration refuses insecure, fragment and relative redirect URIs and a duplicate name; a
/// public client gets no secret; the list shows the clients registered.
async fn oidc_registration_refuses_bad_redirect_uris_and_duplicates(app: TestApp) {
    let token = admin_token(&app).await;
    for bad in ["http://app.example/cb", "https://app.example/cb#x", "/cb"] {
        let r = register_client(&app, &token, "Bad", &[bad], false).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    confidential_client(&app, &token, "Wiki", REDIRECT).await;
    assert_eq!(
        register_client(&app, &token, "Wiki", &[REDIRECT], false)
            .await
            .status(),
        409
    );
    spa(&app, &token).await;
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
    app.stop().await;
}

/// An authorization request with an unknown client or an unregistered redirect URI gets an
/// error page that cannot be framed, never a redirect.
async fn oidc_authorize_wrong_client_or_redirect_shows_error_page(app: TestApp) {
    let w = wiki(&app).await;
    let mut b = Browser::new(&app.base);
    for (client, uri) in [
        (w.id.as_str(), "http://127.0.0.1:9/cb/"),
        (w.id.as_str(), "http://127.0.0.1:9/CB"),
        ("pcc_unknown", REDIRECT),
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
    app.stop().await;
}

/// Any other bad authorization request (no PKCE, no or a foreign scope, the plain method,
/// prompt=none without a session) goes back to the client with the error and the state.
async fn oidc_authorize_bad_request_redirects_error_with_state(app: TestApp) {
    let w = wiki(&app).await;
    let mut b = Browser::new(&app.base);
    let valid = |extra: &[(&str, &str)]| authorize_url(&app.base, &w.id, REDIRECT, extra).0;
    let mut no_pkce = url::Url::parse(&valid(&[])).expect("url");
    let kept: Vec<(String, String)> = no_pkce
        .query_pairs()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    no_pkce.query_pairs_mut().clear().extend_pairs(kept);
    for u in [
        no_pkce.to_string(),
        valid(&[("scope", "openid admin")]).replace("scope=openid+offline_access&", ""),
    ] {
        let r = b.get(&u).await;
        let to = location(&r);
        assert!(to.starts_with(REDIRECT), "{to}");
        assert!(query_param(&to, "error").is_some(), "{to}");
        assert_eq!(query_param(&to, "state").as_deref(), Some("s-1"));
        assert!(query_param(&to, "code").is_none());
    }
    let mut plain = url::Url::parse(&valid(&[])).expect("url");
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
    let to = location(&b.get(&valid(&[("prompt", "none")])).await);
    assert_eq!(query_param(&to, "error").as_deref(), Some("login_required"));
    app.stop().await;
}

/// The person oscar, and a fresh browser on the sign-in page: it and the page's CSRF token.
async fn signin_page(app: &TestApp) -> (Browser, String) {
    let token = admin_token(app).await;
    let admin = app.anonymous.with_token(Some(SecretString::from(token)));
    oidc_person(app, &admin, USER, PASSWORD).await;
    let mut b = Browser::new(&app.base);
    let html = b.get("/signin").await.text().await.expect("html");
    let csrf = hidden(&html, "csrf");
    (b, csrf)
}

/// A sign-in form without the CSRF token, or posted from another origin, is refused.
async fn oidc_signin_refuses_missing_csrf_or_foreign_origin(app: TestApp) {
    let (mut b, csrf) = signin_page(&app).await;
    let r = b
        .post("/signin", &[("username", USER), ("password", PASSWORD)])
        .await;
    assert_eq!(r.status(), 403);
    let r = b
        .http
        .post(format!("{}/signin", app.base))
        .header("cookie", b.cookie_header())
        .header("origin", "https://evil.example")
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", USER),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    app.stop().await;
}

/// `Origin: null` is not taken for a foreign site (the token decides); a wrong password gets
/// the same page with the generic answer; markup in input is escaped, never echoed raw.
async fn oidc_signin_wrong_password_is_generic_and_escaped(app: TestApp) {
    let (mut b, csrf) = signin_page(&app).await;
    // A browser that withholds its origin sends `Origin: null`: the token is right here, so
    // the password is checked and is wrong.
    let r = b
        .http
        .post(format!("{}/signin", app.base))
        .header("cookie", b.cookie_header())
        .header("origin", "null")
        .header("sec-fetch-site", "same-origin")
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", USER),
            ("password", "wrong-wrong-wrong-1"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["referrer-policy"], "same-origin");
    let form = [
        ("csrf", csrf.as_str()),
        ("username", USER),
        ("password", "wrong-wrong-wrong-1"),
    ];
    let r = b.post("/signin", &form).await;
    assert_eq!(r.status(), 401);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("user name or password is wrong")
    );
    let form = [
        ("csrf", csrf.as_str()),
        ("username", "<script>x</script>"),
        ("password", "p"),
    ];
    let html = b.post("/signin", &form).await.text().await.expect("html");
    assert!(!html.contains("<script>"), "{html}");
    app.stop().await;
}

/// Denying consent sends the browser back with access_denied; asking again and allowing gives
/// a code.
async fn oidc_consent_denied_sends_access_denied(app: TestApp) {
    let w = wiki(&app).await;
    let mut b = Browser::new(&app.base);
    let (u, _) = authorize_url(&app.base, &w.id, REDIRECT, &[]);
    let page = browser_sign_in(&mut b, &u, USER, PASSWORD, &w.secret, 0).await;
    let to = consent(&mut b, page, "deny").await;
    assert_eq!(query_param(&to, "error").as_deref(), Some("access_denied"));
    let page = b.get(&u).await;
    let to = consent(&mut b, page, "allow").await;
    assert!(query_param(&to, "code").is_some(), "{to}");
    app.stop().await;
}

/// A code exchange with a wrong or missing verifier, another redirect URI, another client, no
/// or a wrong secret is refused and audited with its reason; the code still works once after.
async fn oidc_code_exchange_refused_keeps_code(app: TestApp) {
    let w = wiki(&app).await;
    let spa_id = spa(&app, &w.token).await;
    let (_b, code, verifier) = consented_code(&app, &w).await;
    let (id, sec) = (w.id.as_str(), Some(w.sec.as_str()));
    let wrong = portcullis_core::oidc::s256("not-the-verifier");
    for (client, uri, v) in [
        ((id, sec), REDIRECT, None),
        ((id, sec), REDIRECT, Some(format!("{wrong}aaaa"))),
        ((id, sec), "http://127.0.0.1:9/cb/", Some(verifier.clone())),
        ((spa_id.as_str(), None), REDIRECT, Some(verifier.clone())),
    ] {
        let r = exchange(&app, client, &code, uri, v.as_deref()).await;
        oauth_error(r, 400, "invalid_grant").await;
    }
    for secret in [None, Some("pcs_wrong")] {
        let r = exchange(&app, (id, secret), &code, REDIRECT, Some(&verifier)).await;
        oauth_error(r, 401, "invalid_client").await;
    }
    let reasons: Vec<String> = code_exchange_events(&w.admin)
        .await
        .iter()
        .map(|d| d["reason"].as_str().unwrap_or("").to_owned())
        .collect();
    for want in [
        "pkce_verifier_missing",
        "pkce_verifier_wrong",
        "redirect_uri_mismatch",
        "other_client",
    ] {
        assert!(reasons.iter().any(|r| r == want), "{want} in {reasons:?}");
    }
    // The right exchange works once.
    let (access, _) = wiki_tokens(&app, &w, &code, &verifier).await;
    assert_eq!(userinfo(&app, &access).await, 200);
    app.stop().await;
}

/// A refresh token presented by another client is refused, and its family is revoked: the
/// rightful client's refresh fails too.
async fn oidc_refresh_by_other_client_revokes_family(app: TestApp) {
    let w = wiki(&app).await;
    let spa_id = spa(&app, &w.token).await;
    let (_b, code, verifier) = consented_code(&app, &w).await;
    let (access, refresh) = wiki_tokens(&app, &w, &code, &verifier).await;
    assert_eq!(userinfo(&app, &access).await, 200);
    let r = refresh_grant(&app, &refresh, &[("client_id", &spa_id)]).await;
    oauth_error(r, 400, "invalid_grant").await;
    let own = [("client_id", w.id.as_str()), ("client_secret", &w.sec)];
    oauth_error(
        refresh_grant(&app, &refresh, &own).await,
        400,
        "invalid_grant",
    )
    .await;
    app.stop().await;
}

/// A reused code is refused with an audited alert and revokes the access token and refresh
/// family it gave.
async fn oidc_reused_code_revokes_what_it_gave(app: TestApp) {
    let w = wiki(&app).await;
    let (mut b, code, verifier) = consented_code(&app, &w).await;
    wiki_tokens(&app, &w, &code, &verifier).await;
    // A fresh code; consented already, so straight back with it.
    let (u, verifier) = authorize_url(&app.base, &w.id, REDIRECT, &[]);
    let to = location(&b.get(&u).await);
    let code = query_param(&to, "code").expect("consented: straight back with a code");
    let (access, refresh) = wiki_tokens(&app, &w, &code, &verifier).await;
    assert_eq!(userinfo(&app, &access).await, 200);
    let again = (w.id.as_str(), Some(w.sec.as_str()));
    let r = exchange(&app, again, &code, REDIRECT, Some(&verifier)).await;
    oauth_error(r, 400, "invalid_grant").await;
    assert_eq!(
        userinfo(&app, &access).await,
        401,
        "the code's access token is revoked"
    );
    let own = [("client_id", w.id.as_str()), ("client_secret", &w.sec)];
    oauth_error(
        refresh_grant(&app, &refresh, &own).await,
        400,
        "invalid_grant",
    )
    .await;
    let events = code_exchange_events(&w.admin).await;
    assert!(
        events.iter().any(|d| d["reason"] == "reused"),
        "reused in {events:?}"
    );
    assert!(
        events
            .iter()
            .any(|d| d["reason"] == "reused" && d["alert"] == true)
    );
    app.stop().await;
}

/// Deleting a client ends what it holds: its authorization requests get the error page.
async fn oidc_deleted_client_cannot_authorize(app: TestApp) {
    let w = wiki(&app).await;
    let (mut b, _, _) = consented_code(&app, &w).await;
    let r = app
        .http
        .delete(format!("{}/api/v1/clients/Wiki", app.base))
        .bearer_auth(&w.token)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    let (u, _) = authorize_url(&app.base, &w.id, REDIRECT, &[]);
    assert_eq!(b.get(&u).await.status(), 400);
    app.stop().await;
}

api_tests!(
    oidc_registration_refuses_bad_redirect_uris_and_duplicates,
    oidc_authorize_wrong_client_or_redirect_shows_error_page,
    oidc_authorize_bad_request_redirects_error_with_state,
    oidc_signin_refuses_missing_csrf_or_foreign_origin,
    oidc_signin_wrong_password_is_generic_and_escaped,
    oidc_consent_denied_sends_access_denied,
    oidc_code_exchange_refused_keeps_code,
    oidc_refresh_by_other_client_revokes_family,
    oidc_reused_code_revokes_what_it_gave,
    oidc_deleted_client_cannot_authorize,
);
