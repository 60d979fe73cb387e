//! The sign-in pages: password, then a TOTP code or a security key; the session becomes a cookie.

use super::*;

// ----- sign-in -----

/// `GET /signin`: the sign-in form.
pub async fn signin_page(state: &AppState, headers: &HeaderMap, raw: Option<&str>) -> Response {
    let q = parse_once(raw.unwrap_or("")).unwrap_or_default();
    let return_to = safe_return_to(q.get("return_to"));
    let (csrf, set) = csrf_token(state, headers);
    let mut page = Page::new(&SigninPage {
        title: "Sign in",
        error: None,
        csrf: &csrf,
        return_to: return_to.as_deref(),
        username: "",
    });
    page.cookies.extend(set);
    if let Some(r) = &return_to {
        page.form_origin = client_origin(state, r).await;
    }
    page.into_response()
}

/// Where a completed sign-in goes: a cookie for the session, then `return_to`.
pub(super) async fn signed_in(
    state: &AppState,
    r: SignInResponse,
    return_to: Option<String>,
) -> Response {
    let Some(session) = r.session else {
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    };
    if session.scope != SessionScope::Full.as_str() {
        return error_page(
            StatusCode::FORBIDDEN,
            "this account must enrol a second factor first (portcullis mfa enroll totp), then sign in again",
        );
    }
    let c = set_cookie(state, session_cookie(state), &session.token);
    match return_to {
        Some(to) => see_other(&to, vec![c]),
        None => {
            let mut p = Page::new(&MessagePage {
                title: "Signed in",
                error: None,
                message: "You are signed in.",
            });
            p.cookies.push(c);
            p.into_response()
        }
    }
}

/// What every sign-in form carries along: the CSRF token (and its cookie when new), where to
/// go afterwards, and the client origin the CSP must allow for that.
pub(super) struct FormCtx {
    csrf: String,
    set: Option<String>,
    return_to: Option<String>,
    form_origin: Option<String>,
}

impl FormCtx {
    async fn new(state: &AppState, headers: &HeaderMap, f: &HashMap<String, String>) -> Self {
        let return_to = safe_return_to(f.get("return_to"));
        let form_origin = match &return_to {
            Some(r) => client_origin(state, r).await,
            None => None,
        };
        let (csrf, set) = csrf_token(state, headers);
        Self {
            csrf,
            set,
            return_to,
            form_origin,
        }
    }

    fn finish(&self, mut p: Page) -> Response {
        p.cookies.extend(self.set.clone());
        p.form_origin = self.form_origin.clone();
        p.into_response()
    }

    fn signin_again(&self, status: StatusCode, user: &str, msg: &str) -> Response {
        self.finish(
            Page::new(&SigninPage {
                title: "Sign in",
                error: Some(msg),
                csrf: &self.csrf,
                return_to: self.return_to.as_deref(),
                username: user,
            })
            .status(status),
        )
    }
}

pub(super) const STALE_FORM: &str = "this form expired or came from another site; try again";

/// The second-factor page for a pending sign-in: a one-time code form and/or a security-key
/// form (a fresh WebAuthn ceremony), as the account's factors allow.
pub(super) async fn second_factor(
    state: &AppState,
    client: &ClientInfo,
    ctx: &FormCtx,
    signin_id: &str,
    error: Option<(StatusCode, &str)>,
) -> Response {
    let gone = || {
        error_page(
            StatusCode::UNAUTHORIZED,
            "this sign-in has expired or was completed; start again",
        )
    };
    let hash = portcullis_store::crypto::token_hash(signin_id);
    let factors = match state.store.pending_signin(&hash).await {
        Ok(Some((principal_id, _))) => match state.store.factors(&principal_id).await {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "factors");
                return error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
            }
        },
        Ok(None) => return gone(),
        Err(e) => {
            tracing::error!(error = %e, "pending sign-in");
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    let has =
        |k: portcullis_core::factor::FactorKind| factors.iter().any(|f| f.confirmed && f.kind == k);
    let mut webauthn = None;
    if has(portcullis_core::factor::FactorKind::Webauthn) {
        let req = portcullis_core::api::WebauthnSignInRequest {
            signin_id: Some(signin_id.to_owned()),
            username: None,
        };
        match crate::services::webauthn::start_signin(state, client, req).await {
            Ok(c) => {
                webauthn = Some(WebauthnForm {
                    ceremony_id: c.ceremony_id,
                    options: c.options.to_string(),
                })
            }
            Err(e) => return ctx.signin_again(e.status(), "", &e.message),
        }
    }
    let mut page = Page::new(&SecondFactorPage {
        title: "Second factor",
        error: error.map(|(_, m)| m),
        csrf: &ctx.csrf,
        return_to: ctx.return_to.as_deref(),
        signin_id,
        totp: has(portcullis_core::factor::FactorKind::Totp),
        webauthn,
    });
    page.scripts = has(portcullis_core::factor::FactorKind::Webauthn);
    if let Some((status, _)) = error {
        page = page.status(status);
    }
    ctx.finish(page)
}

/// `POST /signin`: user name and password.
pub async fn signin_password(
    state: &AppState,
    client: &ClientInfo,
    headers: &HeaderMap,
    form: &str,
) -> Response {
    let Ok(f) = parse_once(form) else {
        return error_page(StatusCode::BAD_REQUEST, "malformed form");
    };
    let ctx = FormCtx::new(state, headers, &f).await;
    if !csrf_ok(state, headers, &f) {
        return ctx.signin_again(StatusCode::FORBIDDEN, "", STALE_FORM);
    }
    let username = f.get("username").cloned().unwrap_or_default();
    let req = PasswordSignInRequest {
        username: username.clone(),
        password: f.get("password").cloned().unwrap_or_default(),
    };
    match crate::services::signin::password_step(state, client, &PAGE_SIGNIN, req).await {
        Err(e) => ctx.signin_again(e.status(), &username, &e.message),
        Ok(r) if r.status == "mfa_required" => match r.signin_id {
            Some(id) => second_factor(state, client, &ctx, &id, None).await,
            None => error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        },
        Ok(r) => signed_in(state, r, ctx.return_to).await,
    }
}

/// The common start of both second steps: the form, its context, the pending sign-in's id,
/// and the CSRF check (a failure shows the second-factor page again).
pub(super) async fn second_step_form(
    state: &AppState,
    client: &ClientInfo,
    headers: &HeaderMap,
    form: &str,
) -> Result<(HashMap<String, String>, FormCtx, String), Response> {
    let Ok(f) = parse_once(form) else {
        return Err(error_page(StatusCode::BAD_REQUEST, "malformed form"));
    };
    let ctx = FormCtx::new(state, headers, &f).await;
    let signin_id = f.get("signin_id").cloned().unwrap_or_default();
    if !csrf_ok(state, headers, &f) {
        let forbidden = Some((StatusCode::FORBIDDEN, STALE_FORM));
        return Err(second_factor(state, client, &ctx, &signin_id, forbidden).await);
    }
    Ok((f, ctx, signin_id))
}

/// `POST /signin/totp`: the second step with a one-time code.
pub async fn signin_totp(
    state: &AppState,
    client: &ClientInfo,
    headers: &HeaderMap,
    form: &str,
) -> Response {
    let (f, ctx, signin_id) = match second_step_form(state, client, headers, form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let req = TotpSignInRequest {
        signin_id: signin_id.clone(),
        code: f.get("code").cloned().unwrap_or_default(),
    };
    match crate::services::signin::totp_step(state, client, &PAGE_SIGNIN, req).await {
        Err(e) => {
            second_factor(
                state,
                client,
                &ctx,
                &signin_id,
                Some((e.status(), &e.message)),
            )
            .await
        }
        Ok(r) => signed_in(state, r, ctx.return_to).await,
    }
}

/// `POST /signin/webauthn`: the second step with a security key (the assertion that
/// `assets/webauthn.js` obtained from the browser).
pub async fn signin_webauthn(
    state: &AppState,
    client: &ClientInfo,
    headers: &HeaderMap,
    form: &str,
) -> Response {
    let (f, ctx, signin_id) = match second_step_form(state, client, headers, form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let credential = f
        .get("credential")
        .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok());
    let Some(credential) = credential else {
        return second_factor(
            state,
            client,
            &ctx,
            &signin_id,
            Some((
                StatusCode::BAD_REQUEST,
                "the security key's answer is missing or malformed",
            )),
        )
        .await;
    };
    let req = portcullis_core::api::WebauthnFinishRequest {
        ceremony_id: f.get("ceremony_id").cloned().unwrap_or_default(),
        credential,
    };
    match crate::services::webauthn::finish_signin(state, client, &PAGE_SIGNIN, req).await {
        Err(e) => {
            second_factor(
                state,
                client,
                &ctx,
                &signin_id,
                Some((e.status(), &e.message)),
            )
            .await
        }
        Ok(r) => signed_in(state, r, ctx.return_to).await,
    }
}
