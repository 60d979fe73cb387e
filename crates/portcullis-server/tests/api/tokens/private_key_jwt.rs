//! Client credentials with `private_key_jwt`: registering public keys, signed assertions (also
//! to introspect and revoke), every way one can be wrong (replay, audience, algorithm, key).

use super::*;
use jwt_simple::prelude::{
    ECDSAP256KeyPairLike, ES256KeyPair, Ed25519KeyPair, EdDSAKeyPairLike, JWTClaims, NoCustomClaims,
};

/// The service account `nightly` with two keys, and the token endpoint discovery names.
struct Nightly {
    admin: Client,
    /// Ed25519, kid `ed-1`, registered with the account.
    ed: Ed25519KeyPair,
    /// ES256, kid `ec-1`, added after.
    ec: ES256KeyPair,
    endpoint: String,
}

impl Nightly {
    /// Claims of `nightly` about itself for the token endpoint, two minutes long.
    fn claims(&self, jti: &str) -> JWTClaims<NoCustomClaims> {
        claims_to("nightly", &self.endpoint, jti)
    }

    /// An assertion signed with `ed-1`.
    fn ed(&self, jti: &str) -> String {
        self.ed.sign(self.claims(jti)).expect("sign")
    }

    /// An assertion signed with `ec-1`.
    fn ec(&self, jti: &str) -> String {
        self.ec.sign(self.claims(jti)).expect("sign")
    }
}

/// Claims issued by `iss` about `nightly` for `aud`, two minutes long.
fn claims_to(iss: &str, aud: &str, jti: &str) -> JWTClaims<NoCustomClaims> {
    use jwt_simple::prelude::*;
    Claims::create(Duration::from_mins(2))
        .with_issuer(iss)
        .with_subject("nightly")
        .with_audience(aud)
        .with_jwt_id(jti)
}

fn key_request(pem: String, kid: Option<&str>) -> portcullis_core::api::AddClientKeyRequest {
    portcullis_core::api::AddClientKeyRequest {
        public_key: pem,
        key_id: kid.map(str::to_owned),
    }
}

async fn discovery(app: &TestApp) -> serde_json::Value {
    app.http
        .get(format!("{}/.well-known/openid-configuration", app.base))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json")
}

/// `nightly` made with its Ed25519 key `ed-1` in one step, then given the ES256 key `ec-1`.
async fn nightly(app: &TestApp) -> Nightly {
    let admin = admin(app).await;
    let ed = Ed25519KeyPair::generate().with_key_id("ed-1");
    let ec = ES256KeyPair::generate().with_key_id("ec-1");
    admin
        .create_service_account(&CreateServiceAccountRequest {
            name: "nightly".into(),
            display_name: None,
            public_key: Some(ed.public_key().to_pem()),
            key_id: Some("ed-1".into()),
        })
        .await
        .expect("sa with key");
    let pem = ec.public_key().to_pem().expect("pem");
    let k = admin
        .add_client_key("nightly", &key_request(pem, Some("ec-1")))
        .await
        .expect("es256 key");
    assert_eq!((k.key_id.as_str(), k.algorithm.as_str()), ("ec-1", "ES256"));
    let endpoint = discovery(app).await["token_endpoint"]
        .as_str()
        .expect("endpoint")
        .to_owned();
    Nightly {
        admin,
        ed,
        ec,
        endpoint,
    }
}

/// The service account `other-daemon` with its own Ed25519 key `other-1`.
async fn other_daemon(admin: &Client) -> Ed25519KeyPair {
    let other = Ed25519KeyPair::generate().with_key_id("other-1");
    admin
        .create_service_account(&CreateServiceAccountRequest {
            name: "other-daemon".into(),
            display_name: None,
            public_key: Some(other.public_key().to_pem()),
            key_id: Some("other-1".into()),
        })
        .await
        .expect("other sa");
    other
}

/// The access token of a successful token answer.
async fn issued(r: reqwest::Response) -> String {
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    body["access_token"].as_str().expect("token").to_owned()
}

/// Introspection of `token`, the client authenticated by `assertion`.
async fn introspect_by_assertion(app: &TestApp, assertion: &str, token: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/oauth2/introspect", app.base))
        .form(&[
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
            ("token", token),
        ])
        .send()
        .await
        .expect("send")
}

/// Each of `cases` (what, assertion, reason) is answered `invalid_client` and adds exactly one
/// failure event with its reason and nothing else (no token, no jti used up). A success after
/// each resets the per-client throttle, so the cases do not wait on each other.
async fn refused_one_by_one(app: &TestApp, n: &Nightly, cases: Vec<(&str, String, &str)>) {
    let mut cursor = 0;
    events_since(&n.admin, &mut cursor).await;
    for (i, (what, assertion, reason)) in cases.into_iter().enumerate() {
        let r = assertion_request(app, &assertion).await;
        assert_eq!(r.status(), 401, "{what}");
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["error"], "invalid_client", "{what}");
        // How to fix an assertion made wrong is said; who or which key exists is not.
        let says = match reason {
            "assertion_replayed" => "jti was used before",
            "assertion_wrong_audience" => "aud must be",
            "assertion_expired" => "expired",
            "assertion_lifetime_too_long" => "at most 5 minutes",
            _ => "client authentication failed",
        };
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(description.contains(says), "{what}: {body}");
        let new = events_since(&n.admin, &mut cursor).await;
        assert_eq!(new.len(), 1, "{what}: one event, nothing else: {new:?}");
        assert_eq!(
            (new[0].action.as_str(), new[0].outcome.as_str()),
            ("token.client_credentials", "failure"),
            "{what}"
        );
        assert_eq!(new[0].details["reason"], reason, "{what}");
        if reason != "assertion_malformed" {
            assert_eq!(new[0].target, "service_account:nightly", "{what}");
        }
        issued(assertion_request(app, &n.ed(&format!("reset-{i}"))).await).await;
        events_since(&n.admin, &mut cursor).await;
    }
}

/// Public keys register with the account in one step or after it: listed in order, with no
/// secret; an added key is audited with an alert.
async fn public_keys_register_with_the_account_or_after_it(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let n = nightly(&app).await;
    let detail = n.admin.service_account("nightly").await.expect("detail");
    let kids: Vec<&str> = detail.keys.iter().map(|k| k.key_id.as_str()).collect();
    assert_eq!(kids, ["ed-1", "ec-1"]);
    assert!(detail.secrets.is_empty());
    let added = events_named(&n.admin, "service_account.key_added").await;
    assert!(
        added
            .iter()
            .any(|e| e.details["key_id"] == "ec-1" && e.details["alert"] == true)
    );
    app.stop().await;
}

/// Bad keys are refused: a private key (never echoed), no PEM, a kid taken, a bad kid; an
/// account whose key is bad is not made at all.
async fn a_bad_public_key_is_refused_and_never_echoed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let n = nightly(&app).await;
    let ed_pem = n.ed.public_key().to_pem();
    let add = |pem: String, kid: Option<&str>| {
        let req = key_request(pem, kid);
        let admin = &n.admin;
        async move { admin.add_client_key("nightly", &req).await }
    };
    let e = add(n.ed.to_pem(), None).await.expect_err("a private key");
    assert_eq!(e.code(), Some("invalid_public_key"));
    assert!(!e.to_string().contains(&n.ed.to_pem()), "never echoed");
    let e = add("garbage".into(), None).await.expect_err("not pem");
    assert_eq!(e.code(), Some("invalid_public_key"));
    let e = add(ed_pem.clone(), Some("ed-1"))
        .await
        .expect_err("kid taken");
    assert_eq!(e.code(), Some("conflict"));
    let e = add(ed_pem, Some("a b")).await.expect_err("bad kid");
    assert_eq!(e.code(), Some("invalid_request"));
    let e = n
        .admin
        .create_service_account(&CreateServiceAccountRequest {
            name: "half-made".into(),
            display_name: None,
            public_key: Some("garbage".into()),
            key_id: None,
        })
        .await
        .expect_err("bad key at creation");
    assert_eq!(e.code(), Some("invalid_public_key"));
    assert!(
        n.admin.service_account("half-made").await.is_err(),
        "no account without its key"
    );
    app.stop().await;
}

/// Discovery names `private_key_jwt` and its signing algorithms.
async fn discovery_names_private_key_jwt_and_its_algorithms(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let discovery = discovery(&app).await;
    assert!(
        discovery["token_endpoint_auth_methods_supported"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m == "private_key_jwt"))
    );
    assert_eq!(
        discovery["token_endpoint_auth_signing_alg_values_supported"],
        serde_json::json!(["EdDSA", "ES256"])
    );
    app.stop().await;
}

/// Assertions signed with either algorithm are exchanged for tokens; the issuer is an accepted
/// audience too, and `client_id` may come as well (RFC 7523 §3); the issue is audited with the
/// method and the key.
async fn assertions_of_either_algorithm_issue_tokens(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let n = nightly(&app).await;
    issued(assertion_request(&app, &n.ed("j-1")).await).await;
    issued(assertion_request(&app, &n.ec("j-2")).await).await;
    let issuer = discovery(&app).await["issuer"]
        .as_str()
        .expect("issuer")
        .to_owned();
    let to_issuer =
        n.ed.sign(claims_to("nightly", &issuer, "j-3"))
            .expect("sign");
    issued(assertion_request(&app, &to_issuer).await).await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "nightly"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", &n.ed("j-4")),
    ];
    issued(token_request(&app, &form, None).await).await;
    let all = n
        .admin
        .audit_events(&EventFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("events")
        .events;
    assert!(all.iter().any(|e| e.details["reason"] == "issued"
        && e.details["auth_method"] == "private_key_jwt"
        && e.details["key_id"] == "ec-1"));
    app.stop().await;
}

/// Introspection accepts an assertion as client authentication, each assertion used once.
async fn introspection_accepts_an_assertion_only_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let n = nightly(&app).await;
    let token = issued(assertion_request(&app, &n.ed("j-1")).await).await;
    let intro_assertion = n.ed("j-intro");
    let r = introspect_by_assertion(&app, &intro_assertion, &token).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        (body["active"].as_bool(), body["client_id"].as_str()),
        (Some(true), Some("nightly"))
    );
    let again = introspect_by_assertion(&app, &intro_assertion, &token).await;
    oauth_error(again, 401, "invalid_client").await;
    app.stop().await;
}

/// Revocation accepts an assertion as client authentication: the token is inactive after.
async fn revocation_accepts_an_assertion(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let n = nightly(&app).await;
    let token = issued(assertion_request(&app, &n.ed("j-1")).await).await;
    let r = app
        .http
        .post(format!("{}/oauth2/revoke", app.base))
        .form(&[
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &n.ed("j-revoke")),
            ("token", token.as_str()),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let r = introspect_by_assertion(&app, &n.ed("j-intro-2"), &token).await;
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["active"], false, "revoked");
    app.stop().await;
}

/// Assertions wrong in their claims (a reused jti, another audience, expired, issued by
/// another account, too long, not a JWT) are each refused alone, using up no jti.
async fn an_assertion_wrong_in_its_claims_is_refused_alone(backend: Backend) {
    use jwt_simple::prelude::*;
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let n = nightly(&app).await;
    other_daemon(&n.admin).await;
    let first = n.ed("j-1");
    issued(assertion_request(&app, &first).await).await;
    let mut expired = n.claims("bad-expired");
    expired.issued_at = Some(Clock::now_since_epoch() - Duration::from_mins(10));
    expired.invalid_before = expired.issued_at;
    expired.expires_at = Some(Clock::now_since_epoch() - Duration::from_mins(5));
    let elsewhere = "https://elsewhere.example/oauth2/token";
    let wrong_aud = claims_to("nightly", elsewhere, "bad-aud");
    let wrong_sub = claims_to("other-daemon", &n.endpoint, "bad-sub");
    let too_long = Claims::create(Duration::from_mins(60))
        .with_issuer("nightly")
        .with_subject("nightly")
        .with_audience(&n.endpoint)
        .with_jwt_id("bad-long");
    let sign = |c| n.ed.sign(c).expect("sign");
    let cases: Vec<(&str, String, &str)> = vec![
        ("reused jti", first, "assertion_replayed"),
        ("wrong aud", sign(wrong_aud), "assertion_wrong_audience"),
        ("expired", sign(expired), "assertion_expired"),
        (
            "issuer is another account",
            sign(wrong_sub),
            "assertion_wrong_subject",
        ),
        (
            "lifetime too long",
            sign(too_long),
            "assertion_lifetime_too_long",
        ),
        ("garbage", "a.b.c".into(), "assertion_malformed"),
    ];
    refused_one_by_one(&app, &n, cases).await;
    for jti in ["bad-aud", "bad-expired"] {
        issued(assertion_request(&app, &n.ed(jti)).await).await;
    }
    app.stop().await;
}

/// An assertion whose header names the fully-specified algorithm `Ed25519` (RFC 9864, what
/// Node's openid-client writes) is accepted as EdDSA with the registered Ed25519 key; one
/// with a signature that does not verify is refused.
async fn an_ed25519_alg_assertion_is_eddsa(backend: Backend) {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ed25519_dalek::Signer;
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let n = nightly(&app).await;
    let pair: [u8; 64] = n.ed.to_bytes().try_into().expect("64 bytes");
    let key = ed25519_dalek::SigningKey::from_keypair_bytes(&pair).expect("key pair");
    let make = |jti: &str, tamper: bool| {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"Ed25519","kid":"ed-1","typ":"JWT"}"#);
        let claims = serde_json::to_vec(&n.claims(jti)).expect("claims");
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
        let mut sig = key.sign(input.as_bytes()).to_bytes();
        if tamper {
            sig[0] ^= 1;
        }
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    };
    issued(assertion_request(&app, &make("ed25519-1", false)).await).await;
    let r = assertion_request(&app, &make("ed25519-2", true)).await;
    oauth_error(r, 401, "invalid_client").await;
    app.stop().await;
}

/// Assertions wrong in their algorithm or key (alg none, HS256 keyed with the public key,
/// an unknown kid, a known kid with another key, another account's key, an ES256 header on the
/// Ed25519 kid) are each refused alone, using up no jti.
async fn an_assertion_wrong_in_its_algorithm_or_key_is_refused_alone(backend: Backend) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jwt_simple::prelude::*;
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let n = nightly(&app).await;
    let other = other_daemon(&n.admin).await;
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"ed-1"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&n.claims("bad-none")).expect("claims json"))
    );
    let hmac = |secret: &[u8], jti: &str| {
        HS256Key::from_bytes(secret)
            .with_key_id("ed-1")
            .authenticate(n.claims(jti))
            .expect("hs256")
    };
    let stranger = Ed25519KeyPair::generate();
    let as_kid = |kid: &str, jti: &str| {
        let key = stranger.clone().with_key_id(kid);
        key.sign(n.claims(jti)).expect("sign")
    };
    let mixed = ES256KeyPair::from_bytes(&n.ec.to_bytes())
        .expect("same key")
        .with_key_id("ed-1");
    let refused = "assertion_algorithm_refused";
    let cases: Vec<(&str, String, &str)> = vec![
        ("alg none", none, refused),
        (
            "HS256 with the PEM as secret",
            hmac(n.ed.public_key().to_pem().as_bytes(), "bad-hmac"),
            refused,
        ),
        (
            "HS256 with the raw key as secret",
            hmac(&n.ed.public_key().to_bytes(), "bad-hmac-raw"),
            refused,
        ),
        (
            "unknown kid",
            as_kid("nope", "bad-kid"),
            "assertion_unknown_key",
        ),
        (
            "a known kid, another key",
            as_kid("ed-1", "bad-sig"),
            "assertion_bad_signature",
        ),
        (
            "another account's key",
            other.sign(n.claims("bad-other")).expect("sign"),
            "assertion_unknown_key",
        ),
        (
            "ES256 header on the Ed25519 kid",
            mixed.sign(n.claims("bad-mix")).expect("sign"),
            refused,
        ),
    ];
    refused_one_by_one(&app, &n, cases).await;
    for jti in ["bad-hmac", "bad-other", "bad-sig"] {
        issued(assertion_request(&app, &n.ed(jti)).await).await;
    }
    app.stop().await;
}

/// One client authentication method at a time, and the assertion type must be the JWT bearer
/// one.
async fn one_client_authentication_at_a_time_and_only_the_jwt_bearer_type(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let n = nightly(&app).await;
    let r = app
        .http
        .post(format!("{}/oauth2/token", app.base))
        .basic_auth("nightly", Some("pcs_x"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &n.ed("two-ways")),
        ])
        .send()
        .await
        .expect("send");
    oauth_error(r, 400, "invalid_request").await;
    let saml = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer";
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", saml),
        ("client_assertion", &n.ed("saml")),
    ];
    oauth_error(
        token_request(&app, &form, None).await,
        400,
        "invalid_request",
    )
    .await;
    app.stop().await;
}

/// A removed key stops working at once (audited), its kid is never given to another key, and
/// the account's other key goes on.
async fn a_removed_key_stops_at_once_and_its_kid_is_never_reused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let n = nightly(&app).await;
    n.admin
        .remove_client_key("nightly", "ed-1")
        .await
        .expect("remove");
    let r = assertion_request(&app, &n.ed("after-removal")).await;
    oauth_error(r, 401, "invalid_client").await;
    let pem = Ed25519KeyPair::generate().public_key().to_pem();
    let e = n
        .admin
        .add_client_key("nightly", &key_request(pem, Some("ed-1")))
        .await
        .expect_err("kid reuse");
    assert_eq!(e.code(), Some("conflict"));
    issued(assertion_request(&app, &n.ec("j-ec-after")).await).await;
    let removed = events_named(&n.admin, "service_account.key_removed").await;
    assert!(!removed.is_empty());
    app.stop().await;
}

backend_tests!(
    public_keys_register_with_the_account_or_after_it,
    a_bad_public_key_is_refused_and_never_echoed,
    discovery_names_private_key_jwt_and_its_algorithms,
    assertions_of_either_algorithm_issue_tokens,
    introspection_accepts_an_assertion_only_once,
    revocation_accepts_an_assertion,
    an_assertion_wrong_in_its_claims_is_refused_alone,
    an_assertion_wrong_in_its_algorithm_or_key_is_refused_alone,
    an_ed25519_alg_assertion_is_eddsa,
    one_client_authentication_at_a_time_and_only_the_jwt_bearer_type,
    a_removed_key_stops_at_once_and_its_kid_is_never_reused,
);
