//! OpenID Connect authorization code flow: registered clients, redirect URIs, PKCE, scopes
//! and the authorization request.
//!
//! Invariants:
//! - A redirect URI is compared with the registered ones as an exact string (no trailing-slash,
//!   case or default-port leniency, RFC 9700 §4.1.3). Registered URIs are absolute, carry no
//!   fragment and no credentials, and use `https`, or `http` only on a loopback address
//!   (RFC 8252 §7.3 for native apps).
//! - PKCE is required for every client and only `S256` is accepted (RFC 9700 §2.1.1); the
//!   verifier is 43–128 unreserved characters and is checked in constant time.
//! - Scopes are a closed set; an unknown scope is `invalid_scope`, not silently dropped.
//! - An authorization request is validated in two steps: the client and redirect URI first
//!   (a failure there is shown to the person, never redirected: an unchecked redirect is an
//!   open redirector), then everything else (a failure there goes back to the client with
//!   `state`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The scopes a client may ask for.
pub const SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// How many redirect URIs a client may register.
pub const MAX_REDIRECT_URIS: usize = 10;

/// Longest `state` or `nonce` accepted.
pub const MAX_STATE_LEN: usize = 512;

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// Has a client secret (a server-side web application).
    Confidential,
    /// Has none (a single-page or native application); PKCE alone binds the code.
    Public,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confidential => "confidential",
            Self::Public => "public",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "confidential" => Some(Self::Confidential),
            "public" => Some(Self::Public),
            _ => None,
        }
    }
}

/// Why a registered redirect URI is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    #[error("{0} is not an absolute URL")]
    NotAbsolute(String),
    #[error("{0}: use https (http is allowed only on a loopback address such as 127.0.0.1)")]
    Insecure(String),
    #[error("{0}: a redirect URI must not contain a fragment (#…)")]
    Fragment(String),
    #[error("{0}: a redirect URI must not contain a user name or password")]
    Credentials(String),
    #[error("a redirect URI is at most 512 characters")]
    TooLong,
    #[error("register between 1 and {MAX_REDIRECT_URIS} redirect URIs")]
    Count,
    #[error("{0} is registered twice")]
    Duplicate(String),
}

/// Validates the redirect URIs of a client registration.
pub fn validate_redirect_uris(uris: &[String]) -> Result<(), RedirectUriError> {
    if uris.is_empty() || uris.len() > MAX_REDIRECT_URIS {
        return Err(RedirectUriError::Count);
    }
    for (i, u) in uris.iter().enumerate() {
        validate_redirect_uri(u)?;
        if uris[..i].contains(u) {
            return Err(RedirectUriError::Duplicate(u.clone()));
        }
    }
    Ok(())
}

fn validate_redirect_uri(s: &str) -> Result<(), RedirectUriError> {
    if s.len() > 512 {
        return Err(RedirectUriError::TooLong);
    }
    let u = url::Url::parse(s).map_err(|_| RedirectUriError::NotAbsolute(s.to_owned()))?;
    if s.contains('#') {
        return Err(RedirectUriError::Fragment(s.to_owned()));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(RedirectUriError::Credentials(s.to_owned()));
    }
    let loopback = is_loopback(&u);
    match u.scheme() {
        "https" if u.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(RedirectUriError::Insecure(s.to_owned())),
    }
}

/// Whether a URL's host is a loopback address (`127.0.0.0/8`, `::1`, `localhost`): where
/// plain `http` is acceptable because nothing leaves the machine. Schemes the URL standard
/// does not know (`smtp://127.0.0.1`) keep their host as opaque text, judged the same way.
pub fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => {
            d == "localhost"
                || d.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    }
}

/// Whether `presented` is one of `registered`, compared exactly.
pub fn redirect_uri_registered(registered: &[String], presented: &str) -> bool {
    registered.iter().any(|r| r == presented)
}

/// Whether `s` is a syntactically valid PKCE code verifier (RFC 7636 §4.1).
pub fn valid_verifier(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `s` looks like an S256 code challenge (43 base64url characters, 32 bytes).
pub fn valid_challenge(s: &str) -> bool {
    s.len() == 43 && URL_SAFE_NO_PAD.decode(s).is_ok_and(|b| b.len() == 32)
}

/// The S256 challenge of a verifier.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` matches the S256 `challenge`, compared in constant time.
pub fn pkce_matches(challenge: &str, verifier: &str) -> bool {
    valid_verifier(verifier) && bool::from(s256(verifier).as_bytes().ct_eq(challenge.as_bytes()))
}

/// A validated, de-duplicated scope set in canonical order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(Vec<&'static str>);

impl Scopes {
    /// Parses a space-separated scope string; every value must be known.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut unknown = Vec::new();
        let mut seen = [false; SCOPES.len()];
        for v in s.split(' ').filter(|v| !v.is_empty()) {
            match SCOPES.iter().position(|k| *k == v) {
                Some(i) => seen[i] = true,
                None => unknown.push(v.chars().take(64).collect::<String>()),
            }
        }
        if !unknown.is_empty() {
            return Err(format!(
                "unknown scope {}; supported: {}",
                unknown.join(", "),
                SCOPES.join(" ")
            ));
        }
        Ok(Self(
            SCOPES
                .iter()
                .zip(seen)
                .filter(|(_, on)| *on)
                .map(|(k, _)| *k)
                .collect(),
        ))
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(&scope)
    }

    /// Whether every scope of `self` is in `other`.
    pub fn within(&self, other: &Scopes) -> bool {
        self.0.iter().all(|s| other.0.contains(s))
    }

    pub fn as_vec(&self) -> &[&'static str] {
        &self.0
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

/// `prompt` (OIDC Core §3.1.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Prompt {
    /// `none`: answer at once, without showing any page.
    pub none: bool,
    /// `login`: sign in again even with a live session.
    pub login: bool,
    /// `consent`: ask for consent even when given before.
    pub consent: bool,
}

/// An authorization request whose client and redirect URI have been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Scopes,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub prompt: Prompt,
    /// Seconds: the person must have signed in at most this long ago.
    pub max_age: Option<i64>,
}

/// An error to send back to the client's redirect URI (RFC 6749 §4.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectError {
    pub error: &'static str,
    pub description: String,
}

impl RedirectError {
    fn new(error: &'static str, d: impl Into<String>) -> Self {
        Self {
            error,
            description: d.into(),
        }
    }
}

/// The parameters of an authorization request after the client and redirect URI checked out.
/// `get` reads a parameter (each given at most once; the caller refuses duplicates).
pub fn validate_authorize<'a>(
    client_id: &str,
    redirect_uri: &str,
    get: impl Fn(&str) -> Option<&'a str>,
) -> Result<AuthorizeRequest, RedirectError> {
    match get("response_type") {
        Some("code") => {}
        Some(_) => {
            return Err(RedirectError::new(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
        None => {
            return Err(RedirectError::new(
                "invalid_request",
                "response_type is required",
            ));
        }
    }
    if get("request").is_some() {
        return Err(RedirectError::new(
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    if get("request_uri").is_some() {
        return Err(RedirectError::new(
            "request_uri_not_supported",
            "request_uri is not supported",
        ));
    }
    let scopes = Scopes::parse(get("scope").unwrap_or(""))
        .map_err(|e| RedirectError::new("invalid_scope", e))?;
    if !scopes.contains("openid") {
        return Err(RedirectError::new(
            "invalid_scope",
            "scope must include openid",
        ));
    }
    match get("code_challenge_method") {
        Some("S256") => {}
        Some(_) => {
            return Err(RedirectError::new(
                "invalid_request",
                "code_challenge_method must be S256",
            ));
        }
        None => {
            return Err(RedirectError::new(
                "invalid_request",
                "PKCE is required: code_challenge_method=S256 and code_challenge",
            ));
        }
    }
    let code_challenge = get("code_challenge")
        .filter(|c| valid_challenge(c))
        .ok_or_else(|| {
            RedirectError::new(
                "invalid_request",
                "code_challenge must be the 43-character base64url SHA-256 of the verifier",
            )
        })?
        .to_owned();
    let bounded = |k: &str| -> Result<Option<String>, RedirectError> {
        match get(k) {
            Some(v) if v.len() > MAX_STATE_LEN => Err(RedirectError::new(
                "invalid_request",
                format!("{k} is at most {MAX_STATE_LEN} characters"),
            )),
            Some("") | None => Ok(None),
            Some(v) => Ok(Some(v.to_owned())),
        }
    };
    let state = bounded("state")?;
    let nonce = bounded("nonce")?;
    let mut prompt = Prompt::default();
    for p in get("prompt")
        .unwrap_or("")
        .split(' ')
        .filter(|p| !p.is_empty())
    {
        match p {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            "select_account" => {}
            _ => {
                return Err(RedirectError::new(
                    "invalid_request",
                    "prompt must be none, login, consent or select_account",
                ));
            }
        }
    }
    if prompt.none && (prompt.login || prompt.consent) {
        return Err(RedirectError::new(
            "invalid_request",
            "prompt=none cannot be combined with other values",
        ));
    }
    let max_age = match get("max_age") {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| RedirectError::new("invalid_request", "max_age must be seconds"))?,
        ),
    };
    Ok(AuthorizeRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        scopes,
        state,
        nonce,
        code_challenge,
        prompt,
        max_age,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_of_any_scheme() {
        for (u, want) in [
            ("http://127.0.0.1:8080/cb", true),
            ("smtp://127.0.0.1:2525", true),
            ("smtp://[::1]:25", true),
            ("smtp://localhost", true),
            ("smtp://mail.example.org", false),
            ("smtp://10.0.0.1", false),
            ("https://example.com", false),
        ] {
            let parsed = url::Url::parse(u).expect("url");
            assert_eq!(is_loopback(&parsed), want, "{u}");
        }
    }

    #[test]
    fn redirect_uris_are_exact_and_secure() {
        let ok = |s: &str| validate_redirect_uris(&[s.to_owned()]);
        assert!(ok("https://app.example/cb").is_ok());
        assert!(ok("http://127.0.0.1:8080/cb").is_ok());
        assert!(ok("http://[::1]/cb").is_ok());
        assert!(ok("http://localhost:3000/cb").is_ok());
        assert!(matches!(
            ok("http://app.example/cb"),
            Err(RedirectUriError::Insecure(_))
        ));
        assert!(matches!(
            ok("https://app.example/cb#x"),
            Err(RedirectUriError::Fragment(_))
        ));
        assert!(matches!(
            ok("https://u:p@app.example/cb"),
            Err(RedirectUriError::Credentials(_))
        ));
        assert!(matches!(ok("/cb"), Err(RedirectUriError::NotAbsolute(_))));
        assert!(matches!(
            ok("javascript:alert(1)"),
            Err(RedirectUriError::Insecure(_))
        ));
        assert_eq!(validate_redirect_uris(&[]), Err(RedirectUriError::Count));
        let twice = vec!["https://a.example/cb".to_owned(); 2];
        assert!(matches!(
            validate_redirect_uris(&twice),
            Err(RedirectUriError::Duplicate(_))
        ));
        let reg = vec!["https://app.example/cb".to_owned()];
        assert!(redirect_uri_registered(&reg, "https://app.example/cb"));
        assert!(!redirect_uri_registered(&reg, "https://app.example/cb/"));
        assert!(!redirect_uri_registered(&reg, "https://APP.example/cb"));
        assert!(!redirect_uri_registered(&reg, "https://app.example:443/cb"));
    }

    #[test]
    fn pkce_s256_rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(s256(verifier), challenge);
        assert!(pkce_matches(challenge, verifier));
        assert!(!pkce_matches(
            challenge,
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK"
        ));
        assert!(!pkce_matches(challenge, ""));
        assert!(!pkce_matches(challenge, &"a".repeat(129)));
        assert!(valid_challenge(challenge));
        assert!(!valid_challenge("short"));
    }

    #[test]
    fn scopes_are_a_closed_set() {
        let s = Scopes::parse("email openid  openid").expect("scopes");
        assert_eq!(s.to_string(), "openid email");
        assert!(Scopes::parse("openid admin").is_err());
        assert!(
            Scopes::parse("openid")
                .expect("s")
                .within(&Scopes::parse("openid email").expect("s"))
        );
    }

    #[test]
    fn authorize_requests() {
        let challenge = s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        let base = |extra: &[(&'static str, &'static str)]| {
            let mut p: Vec<(&str, String)> = vec![
                ("response_type", "code".into()),
                ("scope", "openid email".into()),
                ("code_challenge_method", "S256".into()),
                ("code_challenge", challenge.clone()),
                ("state", "st".into()),
                ("nonce", "n".into()),
            ];
            for (k, v) in extra {
                p.retain(|(pk, _)| pk != k);
                if !v.is_empty() {
                    p.push((k, (*v).to_owned()));
                }
            }
            p
        };
        fn run(p: Vec<(&str, String)>) -> Result<AuthorizeRequest, RedirectError> {
            let map: std::collections::HashMap<&str, String> = p.into_iter().collect();
            validate_authorize("c", "https://a.example/cb", |k| {
                map.get(k).map(String::as_str)
            })
        }
        let ok = run(base(&[])).expect("valid");
        assert_eq!(ok.state.as_deref(), Some("st"));
        assert_eq!(ok.nonce.as_deref(), Some("n"));
        let err = |extra: &[(&'static str, &'static str)]| run(base(extra)).expect_err("refused");
        assert_eq!(
            err(&[("code_challenge_method", "plain")]).error,
            "invalid_request"
        );
        assert_eq!(
            err(&[("code_challenge_method", "")]).error,
            "invalid_request"
        );
        assert_eq!(err(&[("code_challenge", "")]).error, "invalid_request");
        assert_eq!(
            err(&[("response_type", "token")]).error,
            "unsupported_response_type"
        );
        assert_eq!(err(&[("scope", "email")]).error, "invalid_scope");
        assert_eq!(err(&[("scope", "openid root")]).error, "invalid_scope");
        assert_eq!(err(&[("prompt", "none login")]).error, "invalid_request");
        assert_eq!(err(&[("max_age", "-1")]).error, "invalid_request");
    }
}
