//! OpenID Connect and browsers: registering relying parties, a cookie-keeping `Browser` through
//! the sign-in and consent pages, PKCE authorization URLs, code exchange, real-browser tools.

use super::*;

/// Registers an OpenID Connect client through the API.
pub(crate) async fn register_client(
    app: &TestApp,
    token: &str,
    name: &str,
    uris: &[&str],
    public: bool,
) -> reqwest::Response {
    app.http
        .post(format!("{}/api/v1/clients", app.base))
        .bearer_auth(token)
        .json(&serde_json::json!({ "name": name, "redirect_uris": uris, "public": public }))
        .send()
        .await
        .expect("send")
}

/// Registers a confidential client with one redirect URI; its id and secret.
pub(crate) async fn confidential_client(
    app: &TestApp,
    token: &str,
    name: &str,
    redirect: &str,
) -> (String, String) {
    let r = register_client(app, token, name, &[redirect], false).await;
    assert_eq!(r.status(), 201);
    let created: serde_json::Value = r.json().await.expect("json");
    let id = created["client"]["client_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let sec = created["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    (id, sec)
}

/// A person with an email address and a confirmed TOTP factor (its code for step -1 used).
pub(crate) async fn oidc_person(app: &TestApp, admin: &Client, name: &str, pw: &str) -> Vec<u8> {
    let email = Some(format!("{name}@example.org"));
    user_with_totp(app, admin, name, format!("{name} Example"), email, pw).await
}

/// A browser: follows nothing by itself, keeps cookies per name like a cookie jar for one site.
pub(crate) struct Browser {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) cookies: std::collections::BTreeMap<String, String>,
    /// Every Set-Cookie header seen, for attribute checks.
    pub(crate) set_cookies: Vec<String>,
}

impl Browser {
    pub(crate) fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http"),
            base: base.to_owned(),
            cookies: Default::default(),
            set_cookies: Vec::new(),
        }
    }

    pub(crate) fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.base)
        }
    }

    pub(crate) fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(crate) fn keep(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all("set-cookie") {
            let v = v.to_str().expect("ascii").to_owned();
            let pair = v.split(';').next().expect("pair");
            let (k, val) = pair.split_once('=').expect("name=value");
            self.cookies.insert(k.to_owned(), val.to_owned());
            self.set_cookies.push(v);
        }
    }

    pub(crate) async fn get(&mut self, path_or_url: &str) -> reqwest::Response {
        let r = self
            .http
            .get(self.url(path_or_url))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("get");
        self.keep(&r);
        r
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let r = self
            .http
            .post(self.url(path))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .expect("post");
        self.keep(&r);
        r
    }
}

pub(crate) fn location(r: &reqwest::Response) -> String {
    assert_eq!(r.status(), 303, "expected a redirect");
    r.headers()["location"].to_str().expect("ascii").to_owned()
}

/// The value of the hidden input `name` in a page (HTML-unescaped).
pub(crate) fn hidden(html: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + needle.len();
    let end = start + html[start..].find('"').expect("closing quote");
    unescape(&html[start..end])
}

/// Decodes the character references an HTML attribute value may hold (named and numeric).
pub(crate) fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after.find(';').expect("terminated reference");
        let name = &after[..end];
        let c = match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            n if n.starts_with("#x") => {
                char::from_u32(u32::from_str_radix(&n[2..], 16).expect("hex")).expect("char")
            }
            n if n.starts_with('#') => {
                char::from_u32(n[1..].parse().expect("decimal")).expect("char")
            }
            other => panic!("unknown reference &{other};"),
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

pub(crate) fn query_param(url: &str, key: &str) -> Option<String> {
    let u = url::Url::parse(url).expect("url");
    u.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Signs in through the pages from an authorization URL and returns the page after sign-in
/// (a consent page or a redirect to the client).
pub(crate) async fn browser_sign_in(
    b: &mut Browser,
    authorize_url: &str,
    user: &str,
    pw: &str,
    secret: &[u8],
    offset: i64,
) -> reqwest::Response {
    let r = b.get(authorize_url).await;
    let to_signin = location(&r);
    assert!(to_signin.starts_with("/signin?return_to="), "{to_signin}");
    let r = b.get(&to_signin).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.expect("html");
    let csrf = hidden(&page, "csrf");
    let return_to = hidden(&page, "return_to");
    let r = b
        .post(
            "/signin",
            &[
                ("csrf", &csrf),
                ("return_to", &return_to),
                ("username", user),
                ("password", pw),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.expect("html");
    let signin_id = hidden(&page, "signin_id");
    let r = b
        .post(
            "/signin/totp",
            &[
                ("csrf", &csrf),
                ("return_to", &return_to),
                ("signin_id", &signin_id),
                ("code", &code(secret, offset)),
            ],
        )
        .await;
    let back = location(&r);
    assert_eq!(back, return_to);
    b.get(&back).await
}

/// Answers the consent page with `decision`; returns where the browser is sent.
pub(crate) async fn consent(b: &mut Browser, page: reqwest::Response, decision: &str) -> String {
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("asks to"), "{html}");
    let r = b
        .post(
            "/oauth2/authorize/consent",
            &[
                ("csrf", &hidden(&html, "csrf")),
                ("request", &hidden(&html, "request")),
                ("decision", decision),
            ],
        )
        .await;
    location(&r)
}

/// A valid authorization URL for `client_id` with a fresh PKCE pair; returns it and the
/// verifier.
pub(crate) fn authorize_url(
    base: &str,
    client_id: &str,
    redirect: &str,
    extra: &[(&str, &str)],
) -> (String, String) {
    let verifier = format!("v{}", "x".repeat(50)) + &now_unix().to_string();
    let challenge = portcullis_core::oidc::s256(&verifier);
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", "openid offline_access")
        .append_pair("state", "s-1")
        .append_pair("nonce", "n-1")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    (format!("{base}/oauth2/authorize?{}", q.finish()), verifier)
}

pub(crate) async fn exchange(
    app: &TestApp,
    client: (&str, Option<&str>),
    code: &str,
    redirect: &str,
    verifier: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect),
        ("client_id", client.0),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    if let Some(s) = client.1 {
        form.push(("client_secret", s));
    }
    form_post(app, "/oauth2/token", &form).await
}

/// The `value` of an `<input name=…>` (not only hidden ones).
pub(crate) fn hidden_input(html: &str, name: &str) -> String {
    let start = html.find(&format!("name=\"{name}\"")).expect("input");
    let rest = &html[start..];
    let v = rest.find("value=\"").expect("value") + 7;
    let end = v + rest[v..].find('"').expect("quote");
    unescape(&rest[v..end])
}

/// What a real-browser test needs: Node.js with playwright-core (`PORTCULLIS_BROWSER_NODE_PATH`
/// names its node_modules) and Chromium. `None` where they are missing, unless
/// PORTCULLIS_REQUIRE_BROWSER says they must be there (CI).
pub(crate) fn browser_tools() -> Option<(String, String)> {
    let required = std::env::var("PORTCULLIS_REQUIRE_BROWSER").is_ok();
    let node_path = std::env::var("PORTCULLIS_BROWSER_NODE_PATH").ok();
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    match (node_path, chromium) {
        (Some(n), Some(c)) => Some((n, c.to_owned())),
        _ if required => panic!(
            "a browser test must run here: set PORTCULLIS_BROWSER_NODE_PATH and install chromium"
        ),
        _ => {
            eprintln!("skipped: no Chromium or playwright-core (PORTCULLIS_BROWSER_NODE_PATH)");
            None
        }
    }
}
