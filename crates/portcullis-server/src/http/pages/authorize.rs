//! The authorization endpoint and the consent page (OpenID Connect code flow with PKCE).

use super::*;

// ----- the authorization endpoint -----

/// The authorization endpoint (GET and POST, OIDC Core §3.1.2.1).
pub async fn authorize(
    state: &AppState,
    client: &ClientInfo,
    headers: &HeaderMap,
    raw: &str,
) -> Response {
    let p = match parse_once(raw) {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    let Some(client_id) = p.get("client_id") else {
        return error_page(StatusCode::BAD_REQUEST, "client_id is required");
    };
    let oc = match state.store.oauth_client(client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return error_page(StatusCode::BAD_REQUEST, "unknown client_id"),
        Err(e) => {
            tracing::error!(error = %e, "authorize");
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    let Some(redirect_uri) = p.get("redirect_uri") else {
        return error_page(StatusCode::BAD_REQUEST, "redirect_uri is required");
    };
    if !redirect_uri_registered(&oc.redirect_uris, redirect_uri) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "redirect_uri is not registered for this client (it must match exactly)",
        );
    }
    let req = match validate_authorize(client_id, redirect_uri, |k| p.get(k).map(String::as_str)) {
        Ok(r) => r,
        Err(e) => {
            let to = crate::services::oidc::error_redirect(
                state,
                redirect_uri,
                p.get("state").map(String::as_str),
                &e,
            );
            return see_other(&to, vec![]);
        }
    };
    let now = OffsetDateTime::now_utc();
    let session = match browser_session(state, headers, now).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let to_client = |e: &'static str, d: &str| {
        let to = crate::services::oidc::error_redirect(
            state,
            redirect_uri,
            req.state.as_deref(),
            &RedirectError {
                error: e,
                description: d.to_owned(),
            },
        );
        see_other(&to, vec![])
    };
    let usable = session.filter(|s| {
        s.scope == SessionScope::Full && !crate::services::oidc::needs_signin(&req, s, now)
    });
    let Some(s) = usable else {
        if req.prompt.none {
            return to_client("login_required", "the person must sign in");
        }
        // The sign-in about to happen satisfies prompt=login and max_age.
        let again: Vec<(String, String)> = p
            .iter()
            .filter(|(k, _)| k.as_str() != "max_age")
            .map(|(k, v)| {
                let v = if k == "prompt" {
                    v.split(' ')
                        .filter(|x| *x != "login")
                        .collect::<Vec<_>>()
                        .join(" ")
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .filter(|(k, v)| k != "prompt" || !v.is_empty())
            .collect();
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(again)
            .finish();
        let return_to = format!("/oauth2/authorize?{q}");
        let to = format!(
            "/signin?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("return_to", &return_to)
                .finish()
        );
        return see_other(&to, vec![]);
    };
    let consented = match crate::services::oidc::has_consent(state, &s.principal, &req).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "consent lookup");
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    if consented && !req.prompt.consent {
        return match crate::services::oidc::issue_code(state, &s, &req, false, client, now).await {
            Ok(to) => see_other(&to, vec![]),
            Err(e) => {
                tracing::error!(error = %e, "issue code");
                error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        };
    }
    if req.prompt.none {
        return to_client("consent_required", "the person has not consented yet");
    }
    consent_page(state, headers, &s, &oc.name, &req, raw)
}

pub(super) fn scope_text(scope: &str) -> &'static str {
    match scope {
        "openid" => "know who you are (your account id) and how you signed in",
        "profile" => "see your name and user name",
        "email" => "see your email address",
        "offline_access" => "stay signed in while you are away (refresh tokens)",
        _ => "",
    }
}

pub(super) fn consent_page(
    state: &AppState,
    headers: &HeaderMap,
    s: &SessionCaller,
    client_name: &str,
    req: &portcullis_core::oidc::AuthorizeRequest,
    raw: &str,
) -> Response {
    let (csrf, set) = csrf_token(state, headers);
    let mut page = Page::new(&ConsentPage {
        title: "Allow access?",
        error: None,
        user: &s.principal.name,
        strength: crate::services::oidc::strength_label(s.strength),
        client: client_name,
        scopes: req
            .scopes
            .as_vec()
            .iter()
            .map(|sc| scope_text(sc))
            .collect(),
        csrf: &csrf,
        request: raw,
    });
    page.cookies.extend(set);
    page.form_origin = origin_of(&req.redirect_uri);
    page.into_response()
}

/// The person's answer on the consent page.
pub async fn consent(
    state: &AppState,
    client: &ClientInfo,
    headers: &HeaderMap,
    form: &str,
) -> Response {
    let Ok(f) = parse_once(form) else {
        return error_page(StatusCode::BAD_REQUEST, "malformed form");
    };
    if !csrf_ok(state, headers, &f) {
        return error_page(
            StatusCode::FORBIDDEN,
            "this form expired or came from another site; go back to the application and start again",
        );
    }
    let raw = f.get("request").cloned().unwrap_or_default();
    let Ok(p) = parse_once(&raw) else {
        return error_page(StatusCode::BAD_REQUEST, "malformed request");
    };
    // The request is checked again from scratch: the form is not trusted to carry it intact.
    let oc = match (p.get("client_id"), p.get("redirect_uri")) {
        (Some(id), Some(r)) => match state.store.oauth_client(id).await {
            Ok(Some(c)) if redirect_uri_registered(&c.redirect_uris, r) => c,
            Ok(_) => return error_page(StatusCode::BAD_REQUEST, "unknown client or redirect_uri"),
            Err(e) => {
                tracing::error!(error = %e, "consent");
                return error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
            }
        },
        _ => return error_page(StatusCode::BAD_REQUEST, "malformed request"),
    };
    let redirect_uri = p.get("redirect_uri").cloned().unwrap_or_default();
    let req = match validate_authorize(&oc.client_id, &redirect_uri, |k| {
        p.get(k).map(String::as_str)
    }) {
        Ok(r) => r,
        Err(_) => return error_page(StatusCode::BAD_REQUEST, "malformed request"),
    };
    let now = OffsetDateTime::now_utc();
    let s = match browser_session(state, headers, now).await {
        Ok(Some(s)) if s.scope == SessionScope::Full => s,
        Ok(_) => {
            return error_page(
                StatusCode::UNAUTHORIZED,
                "your session has ended; go back to the application and start again",
            );
        }
        Err(r) => return r,
    };
    let to = match f.get("decision").map(String::as_str) {
        Some("allow") => {
            crate::services::oidc::issue_code(state, &s, &req, true, client, now).await
        }
        Some("deny") => crate::services::oidc::deny(state, &s, &req, client).await,
        _ => return error_page(StatusCode::BAD_REQUEST, "choose Allow or Deny"),
    };
    match to {
        Ok(to) => see_other(&to, vec![]),
        Err(e) => {
            tracing::error!(error = %e, "consent");
            error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}
