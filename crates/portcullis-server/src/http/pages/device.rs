//! The device page (RFC 8628 verification URI): a signed-in person approves or denies a device code after seeing where it came from.

use super::*;

// ----- the device page (RFC 8628 verification URI) -----

/// `GET /device`: where `portcullis login` sends the person; signs them in first.
pub async fn device_page(state: &AppState, headers: &HeaderMap, raw: Option<&str>) -> Response {
    let q = parse_once(raw.unwrap_or("")).unwrap_or_default();
    let user_code: String = q
        .get("user_code")
        .map(|c| c.chars().take(16).collect())
        .unwrap_or_default();
    let now = OffsetDateTime::now_utc();
    let s = match browser_session(state, headers, now).await {
        Ok(Some(s)) if s.scope == SessionScope::Full => s,
        Ok(_) => {
            let back = if user_code.is_empty() {
                "/device".to_owned()
            } else {
                format!(
                    "/device?{}",
                    url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("user_code", &user_code)
                        .finish()
                )
            };
            let to = format!(
                "/signin?{}",
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("return_to", &back)
                    .finish()
            );
            return see_other(&to, vec![]);
        }
        Err(r) => return r,
    };
    let (csrf, set) = csrf_token(state, headers);
    let requested = device_requested(state, &user_code).await;
    let mut page = Page::new(&DevicePage {
        title: "Approve the CLI?",
        error: None,
        user: &s.principal.name,
        csrf: &csrf,
        code: &user_code,
        requested,
    });
    page.cookies.extend(set);
    page.into_response()
}

/// `POST /device`: the person's decision, through the same rule as the API
/// ([`crate::services::device::decide`]: a full session with a second factor, a pending code).
pub async fn device_decide(state: &AppState, headers: &HeaderMap, form: &str) -> Response {
    let Ok(f) = parse_once(form) else {
        return error_page(StatusCode::BAD_REQUEST, "malformed form");
    };
    let now = OffsetDateTime::now_utc();
    let s = match browser_session(state, headers, now).await {
        Ok(Some(s)) if s.scope == SessionScope::Full => s,
        Ok(_) => {
            return error_page(
                StatusCode::UNAUTHORIZED,
                "your session has ended; open the link from your terminal again",
            );
        }
        Err(r) => return r,
    };
    let user_code = f.get("user_code").cloned().unwrap_or_default();
    let (csrf, set) = csrf_token(state, headers);
    let requested = device_requested(state, &user_code).await;
    let again = |status: StatusCode, msg: &str, s: &SessionCaller| {
        let mut p = Page::new(&DevicePage {
            title: "Approve the CLI?",
            error: Some(msg),
            user: &s.principal.name,
            csrf: &csrf,
            code: &user_code,
            requested: requested.as_ref().map(|r| DeviceRequested {
                address: r.address.clone(),
                at: r.at.clone(),
                client: r.client.clone(),
                user_agent: r.user_agent.clone(),
            }),
        })
        .status(status);
        p.cookies.extend(set.clone());
        p.into_response()
    };
    if !csrf_ok(state, headers, &f) {
        return again(
            StatusCode::FORBIDDEN,
            "this form expired or came from another site; try again",
            &s,
        );
    }
    let approve = match f.get("decision").map(String::as_str) {
        Some("approve") => true,
        Some("deny") => false,
        _ => return again(StatusCode::BAD_REQUEST, "choose Approve or Deny", &s),
    };
    // Approving hands a terminal your identity: the person confirms they started it.
    if approve && f.get("started_by_me").map(String::as_str) != Some("yes") {
        return again(
            StatusCode::BAD_REQUEST,
            "tick the box to confirm that you started portcullis login yourself; if you did not, deny",
            &s,
        );
    }
    let caller = crate::services::caller::Caller::Session(Box::new(s.clone()));
    match crate::services::device::decide(state, &caller, &user_code, approve).await {
        Ok(()) => Page::new(&MessagePage {
            title: if approve { "Approved" } else { "Denied" },
            error: None,
            message: if approve {
                "The CLI is signed in. You can close this page and return to your terminal."
            } else {
                "The request was denied; the terminal gets no tokens."
            },
        })
        .into_response(),
        Err(e) => again(e.status(), &e.message, &s),
    }
}
