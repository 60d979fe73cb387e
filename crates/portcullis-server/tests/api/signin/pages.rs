//! The sign-in pages: a security key through the pages (software authenticator), and a real
//! browser (Chromium) signing in to a relying party.

use super::*;

/// An account whose only second factor is a security key signs in through the pages: the page
/// carries the WebAuthn challenge and loads the server's own script (no inline script); a
/// standard software authenticator answers; a forged answer is refused with a fresh challenge;
/// the tokens say `phishing_resistant`.
async fn security_key_on_the_sign_in_page(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let pw = "harbour-quartz-velvet-64";
    create_privileged(&admin, "kai", pw).await;
    let reg = registration_session(&app, "kai", pw).await;
    let mut key = SoftPasskey::new(true);
    register(&reg, &mut key, "yubikey").await;
    let redirect = "http://127.0.0.1:9/cb";
    let (id, sec) = confidential_client(&app, &token, "Vault UI", redirect).await;

    let js = app
        .http
        .get(format!("{}/assets/webauthn.js", app.base))
        .send()
        .await
        .expect("js");
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/javascript")
    );
    assert!(
        js.text()
            .await
            .expect("js")
            .contains("navigator.credentials.get")
    );

    let mut b = Browser::new(&app.base);
    let (u, verifier) = authorize_url(&app.base, &id, redirect, &[]);
    let to_signin = location(&b.get(&u).await);
    let page = b.get(&to_signin).await.text().await.expect("html");
    let csrf = hidden(&page, "csrf");
    let return_to = hidden(&page, "return_to");
    let r = b
        .post(
            "/signin",
            &[
                ("csrf", &csrf),
                ("return_to", &return_to),
                ("username", "kai"),
                ("password", pw),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    let html = r.text().await.expect("html");
    assert!(
        html.contains("<script src=\"/assets/webauthn.js\""),
        "{html}"
    );
    assert!(
        !html.contains("name=\"code\""),
        "no code form without a TOTP factor"
    );
    let challenge = |html: &str| WebauthnChallenge {
        ceremony_id: hidden(html, "ceremony_id"),
        options: serde_json::from_str(&hidden(html, "options")).expect("options JSON"),
    };
    let post_key = |b: &mut Browser, html: &str, cred: serde_json::Value| {
        let form = [
            ("csrf", csrf.clone()),
            ("return_to", return_to.clone()),
            ("signin_id", hidden(html, "signin_id")),
            ("ceremony_id", hidden(html, "ceremony_id")),
            ("credential", cred.to_string()),
        ];
        let http = b.http.clone();
        let url = b.url("/signin/webauthn");
        let cookie = b.cookie_header();
        async move {
            http.post(url)
                .header("cookie", cookie)
                .form(&form)
                .send()
                .await
                .expect("post")
        }
    };
    // A forged assertion: refused, and the page offers a fresh challenge.
    let forged = tamper(answer(&mut key, &challenge(&html), origin()), "signature");
    let r = post_key(&mut b, &html, forged).await;
    assert_eq!(r.status(), 401);
    let html2 = r.text().await.expect("html");
    assert_ne!(hidden(&html2, "ceremony_id"), hidden(&html, "ceremony_id"));
    // The real one signs in.
    let good = answer(&mut key, &challenge(&html2), origin());
    let r = post_key(&mut b, &html2, good).await;
    b.keep(&r);
    assert_eq!(location(&r), return_to);
    let page = b.get(&return_to).await;
    let to = consent(&mut b, page, "allow").await;
    let code = query_param(&to, "code").expect("code");
    let r = exchange(&app, (&id, Some(&sec)), &code, redirect, Some(&verifier)).await;
    assert_eq!(r.status(), 200);
    let t: serde_json::Value = r.json().await.expect("json");
    let id_token = t["id_token"].as_str().expect("id token");
    let payload = id_token.split('.').nth(1).expect("payload");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64"),
    )
    .expect("json");
    assert_eq!(claims["acr"], "phishing_resistant");
    assert_eq!(claims["nonce"], "n-1");
    app.stop().await;
}

/// A real browser signs in to a relying party with a security key: Chromium runs the page's
/// own webauthn.js under the pages' CSP (no inline script), keeps the strict cookies, passes
/// the CSRF checks (its real Origin and Sec-Fetch-Site headers), and lands on the client's
/// redirect URI with a code that exchanges for tokens of strength phishing_resistant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_signs_in_with_a_security_key() {
    let Some((node_path, chromium)) = browser_tools() else {
        return;
    };
    let app = spawn_at_localhost(Backend::Sqlite).await.expect("app");
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let pw = "lantern-cobalt-meadow-52";
    create_privileged(&admin, "lee", pw).await;
    let reg = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "lee".into(),
            password: pw.into(),
        })
        .await
        .expect("password");
    let reg_token = reg.session.expect("registration session").token;
    let redirect = "http://127.0.0.1:9/cb";
    let (id, sec) = confidential_client(&app, &token, "Browser RP", redirect).await;
    let issuer = app.public_url.clone();
    let (url, verifier) = authorize_url(&issuer, &id, redirect, &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/browser_flow.js");
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(script)
            .env("NODE_PATH", &node_path)
            .env("CHROMIUM", &chromium)
            .env("BASE", &issuer)
            .env("REG_TOKEN", &reg_token)
            .env("USERNAME", "lee")
            .env("PASSWORD", pw)
            .env("AUTHORIZE_URL", &url)
            .env("REDIRECT_URI", redirect)
            .output(),
    )
    .await
    .expect("the browser finished in time")
    .expect("node runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value =
        serde_json::from_slice(out.stdout.trim_ascii()).expect("one JSON line");
    let back = line["redirect"].as_str().expect("redirect");
    assert_eq!(query_param(back, "state").as_deref(), Some("s-1"));
    let code = query_param(back, "code").expect("code");
    let r = exchange(&app, (&id, Some(&sec)), &code, redirect, Some(&verifier)).await;
    assert_eq!(r.status(), 200);
    let t: serde_json::Value = r.json().await.expect("json");
    let payload = t["id_token"]
        .as_str()
        .expect("id token")
        .split('.')
        .nth(1)
        .expect("payload")
        .to_owned();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64"),
    )
    .expect("json");
    assert_eq!(claims["acr"], "phishing_resistant");
    app.stop().await;
}

api_tests!(security_key_on_the_sign_in_page);
