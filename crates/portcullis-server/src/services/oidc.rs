//! OpenID Connect authorization code flow with PKCE: the authorization decision, codes, the
//! code exchange, ID tokens and userinfo. The pages a person sees are in [`crate::http::pages`].
//!
//! Invariants:
//! - A request whose client or redirect URI does not check out is never redirected (see
//!   [`portcullis_core::oidc`]); every other failure goes back to the exact registered URI with
//!   `state` and `iss` (RFC 9207).
//! - Codes are 256-bit random values stored as SHA-256, live 60 seconds and are redeemed once
//!   (a conditional update, so also across replicas), only by the client they were issued to,
//!   with the same redirect URI and the PKCE verifier of the challenge. Presenting a redeemed
//!   code again revokes the refresh family and the access token issued from it (RFC 6749
//!   §4.1.2), audited as alert-worthy.
//! - Conditional access at the code exchange and at every refresh of its family is judged by
//!   the person's address — the browser's at the authorize step, recorded with the code and
//!   the family — never by the relying party's, which is the caller of the token endpoint.
//! - Tokens carry the strength of the session the person signed in with (`acr`, `amr`,
//!   `auth_time`); a refresh family is tied to that session like the device grant's, so
//!   signing out or an administrator revoking the session ends it.
//! - ID tokens are signed with the active key of the client's `id_token_signed_response_alg`
//!   (EdDSA, the access tokens' key, unless it chose ES256 or RS256), are addressed to the client
//!   (`aud`, `azp`), carry the request's `nonce`, and never outlive the access token.
//! - Access tokens issued to registered clients serve userinfo and the client's own resource
//!   servers; the Portcullis API does not accept them (see [`crate::services::caller`]).

use portcullis_core::audit::Outcome;
use portcullis_core::oidc::{AuthorizeRequest, RedirectError, Scopes, pkce_matches};
use portcullis_core::session::AuthStrength;
use portcullis_core::token::{AccessClaims, IdClaims};
use portcullis_store::accounts::Principal;
use portcullis_store::crypto::{random_token, token_hash};
use portcullis_store::oidc::OAuthClient;
use portcullis_store::{Change, NewAuthorizationCode, StoreError};
use time::{Duration, OffsetDateTime};

use crate::services::caller::{ClientInfo, SessionCaller};
use crate::services::device::{event, invalid_grant};
use crate::services::oauth::OAuthError;
use crate::services::support::new_id;
use crate::state::AppState;
use crate::time_us::{from_us, us};

/// How long an authorization code lives.
pub const CODE_LIFETIME: Duration = Duration::seconds(60);

/// Where to send the browser with an error for the client.
pub fn error_redirect(
    state: &AppState,
    redirect_uri: &str,
    client_state: Option<&str>,
    e: &RedirectError,
) -> String {
    let mut pairs = vec![
        ("error", e.error.to_owned()),
        ("error_description", e.description.clone()),
    ];
    if let Some(s) = client_state {
        pairs.push(("state", s.to_owned()));
    }
    pairs.push(("iss", state.tokens.issuer.clone()));
    with_query(redirect_uri, &pairs)
}

/// `uri` with `pairs` added to its query (keeping what it has).
fn with_query(uri: &str, pairs: &[(&str, String)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        // Registered URIs were validated as absolute URLs.
        Err(_) => uri.to_owned(),
    }
}

/// Whether the person must sign in (again) before this request can be answered.
pub fn needs_signin(req: &AuthorizeRequest, s: &SessionCaller, now: OffsetDateTime) -> bool {
    if req.prompt.login {
        return true;
    }
    match req.max_age {
        Some(max) => {
            let auth_time = from_us(
                s.session
                    .strong_auth_at_us
                    .unwrap_or(s.session.created_at_us),
            );
            (now - auth_time).whole_seconds() > max
        }
        None => false,
    }
}

/// Whether `p` has consented to `req.client_id` for the requested scopes already.
pub async fn has_consent(
    state: &AppState,
    p: &Principal,
    req: &AuthorizeRequest,
) -> Result<bool, StoreError> {
    Ok(
        match state.store.oauth_consent(&p.id, &req.client_id).await? {
            Some(scope) => Scopes::parse(&scope).is_ok_and(|given| req.scopes.within(&given)),
            None => false,
        },
    )
}

/// Issues a code for the signed-in person (recording their consent when `consent_given`) and
/// returns where to send the browser.
pub async fn issue_code(
    state: &AppState,
    s: &SessionCaller,
    req: &AuthorizeRequest,
    consent_given: bool,
    client: &ClientInfo,
    now: OffsetDateTime,
) -> Result<String, StoreError> {
    let code = format!("pca_{}", random_token().as_str());
    let id = new_id("ac");
    let auth_time_us = s
        .session
        .strong_auth_at_us
        .unwrap_or(s.session.created_at_us);
    let mut changes = vec![Change::CreateAuthorizationCode(NewAuthorizationCode {
        id: id.clone(),
        code_hash: token_hash(&code),
        client_id: req.client_id.clone(),
        principal_id: s.principal.id.clone(),
        session_id: s.session.id.clone(),
        redirect_uri: req.redirect_uri.clone(),
        scope: req.scopes.to_string(),
        nonce: req.nonce.clone(),
        code_challenge: req.code_challenge.clone(),
        strength: s.strength,
        auth_time_us,
        created_at_us: us(now),
        expires_at_us: us(now + CODE_LIFETIME),
        // The browser's address: conditional access judges the code exchange by it, since the
        // token request comes from the relying party (issue 13, finding 9).
        person_ip: client.ip.clone(),
    })];
    let who = format!("user:{}", s.principal.name);
    let mut events = Vec::new();
    if consent_given {
        changes.push(Change::RecordOAuthConsent {
            principal_id: s.principal.id.clone(),
            client_id: req.client_id.clone(),
            scope: req.scopes.to_string(),
            at_us: us(now),
        });
        events.push(event(
            &who,
            "oauth.consent_given",
            &format!("client:{}", req.client_id),
            Outcome::Success,
            serde_json::json!({ "scope": req.scopes.to_string(), "client_ip": client.ip }),
        ));
    }
    events.push(event(
        &who,
        "oauth.code_issued",
        &format!("client:{}", req.client_id),
        Outcome::Success,
        serde_json::json!({
            "code_id": id, "scope": req.scopes.to_string(), "session_id": s.session.id,
            "strength": s.strength.as_str(), "client_ip": client.ip,
        }),
    ));
    state.store.write(Change::Many(changes), events).await?;
    let mut pairs = vec![("code", code)];
    if let Some(st) = &req.state {
        pairs.push(("state", st.clone()));
    }
    pairs.push(("iss", state.tokens.issuer.clone()));
    Ok(with_query(&req.redirect_uri, &pairs))
}

/// Records that the person refused consent and returns the error redirect.
pub async fn deny(
    state: &AppState,
    s: &SessionCaller,
    req: &AuthorizeRequest,
    client: &ClientInfo,
) -> Result<String, StoreError> {
    let who = format!("user:{}", s.principal.name);
    state
        .store
        .append(event(
            &who,
            "oauth.consent_denied",
            &format!("client:{}", req.client_id),
            Outcome::Failure,
            serde_json::json!({ "scope": req.scopes.to_string(), "client_ip": client.ip }),
        ))
        .await?;
    Ok(error_redirect(
        state,
        &req.redirect_uri,
        req.state.as_deref(),
        &RedirectError {
            error: "access_denied",
            description: "the person declined".into(),
        },
    ))
}

/// What the token endpoint answers for a person: an access token, an ID token, and with
/// `offline_access` a refresh token.
pub struct CodeTokens {
    pub access_token: String,
    pub claims: AccessClaims,
    pub id_token: String,
    pub refresh_token: Option<String>,
    pub scope: String,
}

/// The ID token accompanying `claims` (same subject, strength, lifetime).
pub fn id_token(
    state: &AppState,
    p: &Principal,
    claims: &AccessClaims,
    scopes: &Scopes,
    nonce: Option<String>,
    session_id: &str,
    alg: crate::services::keys::SigningAlg,
) -> Result<String, OAuthError> {
    let profile = scopes.contains("profile");
    let email = scopes.contains("email") && p.email.is_some();
    let c = IdClaims {
        iss: claims.iss.clone(),
        sub: claims.sub.clone(),
        aud: claims.client_id.clone(),
        azp: claims.client_id.clone(),
        iat: claims.iat,
        exp: claims.exp,
        auth_time: claims.auth_time.unwrap_or(claims.iat),
        nonce,
        acr: claims.acr.clone(),
        amr: claims.amr.clone(),
        sid: session_id.to_owned(),
        roles: claims.roles.clone(),
        name: profile.then(|| p.display_name.clone()),
        preferred_username: profile.then(|| p.name.clone()),
        email: if email { p.email.clone() } else { None },
        // Addresses are entered by administrators, not proven by a mail round trip.
        email_verified: email.then_some(false),
    };
    state.tokens.sign_id_token(&c, alg).map_err(|e| {
        tracing::error!(error = %e, "cannot sign an ID token");
        OAuthError::server_error()
    })
}

/// Redeems an authorization code for `client` (authenticated by the caller).
pub async fn exchange_code(
    state: &AppState,
    client: &ClientInfo,
    oc: &OAuthClient,
    code: Option<&str>,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
    now: OffsetDateTime,
) -> Result<CodeTokens, OAuthError> {
    let code = code.ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let redirect_uri =
        redirect_uri.ok_or_else(|| OAuthError::invalid_request("redirect_uri is required"))?;
    if code.len() > 256 {
        return Err(invalid_grant("unknown authorization code"));
    }
    let Some(c) = state
        .store
        .authorization_code_by_hash(&token_hash(code))
        .await?
    else {
        return Err(invalid_grant("unknown authorization code"));
    };
    let who = match state.store.principal_by_id(&c.principal_id).await? {
        Some(p) => format!("user:{}", p.name),
        None => c.principal_id.clone(),
    };
    let refuse = |reason: &'static str, alert: bool, revoke: Change| {
        let who = who.clone();
        let ip = client.ip.clone();
        let code_id = c.id.clone();
        async move {
            let ev = event(
                &who,
                "oauth.code_exchange",
                &format!("client:{}", oc.client_id),
                Outcome::Failure,
                serde_json::json!({
                    "reason": reason, "code_id": code_id, "client_ip": ip, "alert": alert,
                }),
            );
            match state.store.write(revoke, vec![ev]).await {
                Ok(_) => invalid_grant("the authorization code is not valid"),
                Err(e) => e.into(),
            }
        }
    };
    if c.client_id != oc.client_id {
        return Err(refuse("other_client", true, Change::None).await);
    }
    if c.used_at_us.is_some() {
        return Err(refuse("reused", true, revoke_issued(&c, now)).await);
    }
    if now >= from_us(c.expires_at_us) {
        return Err(refuse("expired", false, Change::None).await);
    }
    if c.redirect_uri != redirect_uri {
        return Err(refuse("redirect_uri_mismatch", false, Change::None).await);
    }
    let Some(verifier) = verifier else {
        return Err(refuse("pkce_verifier_missing", false, Change::None).await);
    };
    if !pkce_matches(&c.code_challenge, verifier) {
        return Err(refuse("pkce_verifier_wrong", false, Change::None).await);
    }
    let Some(p) = crate::services::device::enabled_principal(state, &c.principal_id).await? else {
        return Err(refuse("account_disabled", false, Change::None).await);
    };
    let session_revoked = state
        .store
        .session_by_id(&c.session_id)
        .await?
        .is_none_or(|s| s.revoked_at_us.is_some());
    if session_revoked {
        return Err(refuse("session_revoked", false, Change::None).await);
    }
    // Judged by the person's address at the authorize step, not the relying party's (the
    // caller here); a code that does not record it (issued before it was, its session gone)
    // is refused rather than judged by the wrong address.
    let Some(person_ip) = c.person_ip.as_deref() else {
        return Err(refuse("person_address_unknown", false, Change::None).await);
    };
    let origin = crate::services::conditional_access::TokenOrigin {
        client_id: &oc.client_id,
        strength: c.strength,
        auth_time_us: c.auth_time_us,
        flow: None,
        person_ip: Some(person_ip),
    };
    let ca = crate::services::conditional_access::at_token(
        state,
        &p,
        &origin,
        client,
        "token.authorization_code",
    )
    .await?;
    let scopes = Scopes::parse(&c.scope).map_err(|_| OAuthError::server_error())?;
    let (access_token, claims) = crate::services::device::access_for(
        state,
        &p,
        &oc.client_id,
        c.strength,
        c.auth_time_us,
        Some(c.scope.clone()),
        now,
    )
    .await?;
    let id_token = id_token(
        state,
        &p,
        &claims,
        &scopes,
        c.nonce.clone(),
        &c.session_id,
        crate::services::clients::id_token_alg(&oc.id_token_alg),
    )?;
    let mut changes = Vec::new();
    let mut refresh_token = None;
    let mut family = None;
    if scopes.contains("offline_access") {
        let family_id = new_id("rf");
        let (value, mut row) = crate::services::device::new_refresh_token(
            state,
            &p,
            &origin,
            &c.session_id,
            (family_id.clone(), now + state.device.refresh.absolute),
            &c.scope,
            now,
        );
        row.access = Some((claims.jti.clone(), claims.exp.saturating_mul(1_000_000)));
        changes.push(Change::IssueRefreshToken(row));
        refresh_token = Some(value);
        family = Some(family_id);
    }
    changes.insert(
        0,
        Change::RedeemAuthorizationCode {
            id: c.id.clone(),
            family_id: family.clone(),
            access_jti: claims.jti.clone(),
            access_expires_at_us: claims.exp.saturating_mul(1_000_000),
            at_us: us(now),
        },
    );
    let ev = event(
        &who,
        "token.authorization_code",
        &format!("user:{}", p.name),
        Outcome::Success,
        serde_json::json!({
            "client_id": oc.client_id, "code_id": c.id, "client_ip": client.ip,
            "person_ip": person_ip, "jti": claims.jti, "exp": claims.exp, "family": family, "scope": c.scope,
            "conditional_access": ca,
        }),
    );
    match state.store.write(Change::Many(changes), vec![ev]).await {
        Ok(_) => {}
        // Redeemed at the same moment elsewhere: one of the two is not the real client.
        Err(StoreError::Conflict(_)) => {
            let fresh = state
                .store
                .authorization_code_by_hash(&token_hash(code))
                .await?
                .unwrap_or(c.clone());
            return Err(refuse("reused", true, revoke_issued(&fresh, now)).await);
        }
        Err(e) => return Err(e.into()),
    }
    Ok(CodeTokens {
        access_token,
        claims,
        id_token,
        refresh_token,
        scope: c.scope,
    })
}

/// Revokes what a redeemed code gave: its refresh family and its access token.
fn revoke_issued(c: &portcullis_store::oidc::AuthorizationCode, now: OffsetDateTime) -> Change {
    let mut out = Vec::new();
    if let Some(f) = &c.family_id {
        out.push(Change::RevokeRefreshFamily {
            family_id: f.clone(),
            at_us: us(now),
        });
    }
    if let (Some(jti), Some(exp)) = (&c.access_jti, c.access_expires_at_us) {
        out.push(Change::RevokeToken {
            jti: jti.clone(),
            expires_at_us: exp,
            at_us: us(now),
        });
    }
    Change::Many(out)
}

/// Why userinfo refused a token (RFC 6750 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserinfoError {
    /// Missing, expired, revoked, of a deleted client, or its subject is disabled.
    InvalidToken,
    /// Valid, but without the `openid` scope.
    InsufficientScope,
    /// The store could not answer.
    ServerError,
}

impl UserinfoError {
    /// The RFC 6750 error code.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::ServerError => "server_error",
        }
    }
}

/// The claims userinfo answers for a valid access token issued to an OpenID Connect client.
pub async fn userinfo(state: &AppState, token: &str) -> Result<serde_json::Value, UserinfoError> {
    let invalid = UserinfoError::InvalidToken;
    let claims = state.tokens.verify(token).ok_or(invalid)?;
    let scope = claims.scope.as_deref().ok_or(invalid)?;
    let scopes = Scopes::parse(scope).map_err(|_| invalid)?;
    if !scopes.contains("openid") {
        return Err(UserinfoError::InsufficientScope);
    }
    let store_err = |_| UserinfoError::ServerError;
    // A deleted client's tokens die with it.
    if state
        .store
        .oauth_client(&claims.client_id)
        .await
        .map_err(store_err)?
        .is_none()
    {
        return Err(invalid);
    }
    let p = crate::services::tokens::live_subject(state, &claims)
        .await
        .map_err(store_err)?
        .ok_or(invalid)?;
    let mut out = serde_json::json!({ "sub": p.id });
    if let Some(o) = out.as_object_mut() {
        if scopes.contains("profile") {
            o.insert("name".into(), p.display_name.clone().into());
            o.insert("preferred_username".into(), p.name.clone().into());
        }
        if scopes.contains("email")
            && let Some(e) = &p.email
        {
            o.insert("email".into(), e.clone().into());
            o.insert("email_verified".into(), false.into());
        }
    }
    Ok(out)
}

/// The strength a session gives, for pages that explain what a client will see.
pub fn strength_label(s: AuthStrength) -> &'static str {
    match s {
        AuthStrength::Password => "password",
        AuthStrength::Mfa => "password and a one-time code",
        AuthStrength::PhishingResistant => "a security key",
    }
}
