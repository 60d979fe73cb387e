//! Break-glass accounts in the console (`/console/breakglass`, for holders of
//! `breakglass.read`): every account with its custody (who holds what, never a secret), last
//! drill, last use, whether its drill is overdue and whether it is usable, and the tenant's
//! count of usable accounts against the minimum. Read-only: credentials are only ever made,
//! split and rotated by the CLI. Everything through [`crate::services::breakglass`], exactly as
//! the API reads it.

use portcullis_core::api::{BreakGlassView, TenantReadiness};

use super::*;
use crate::services::breakglass as svc;

#[derive(askama::Template)]
#[template(path = "console/breakglass.html")]
struct BreakGlassPage<'a> {
    title: &'a str,
    error: Option<&'a str>,
    done: Option<&'a str>,
    nav: &'a Nav,
    accounts: Vec<Account>,
    tenant: TenantReadiness,
}

/// One account as the page shows it.
struct Account {
    a: BreakGlassView,
    /// Who holds the credential, in words.
    custody: String,
}

/// Who holds an account's credential, in words (names only: the server never has a share).
fn custody(a: &BreakGlassView) -> String {
    if a.credential == "fido2" {
        format!(
            "security key held by {}, its PIN by {}",
            a.key_holder.as_deref().unwrap_or("nobody"),
            a.pin_holder.as_deref().unwrap_or("nobody"),
        )
    } else {
        format!(
            "password split {} of {} among {}",
            a.threshold,
            a.custodians.len(),
            a.custodians.join(", "),
        )
    }
}

/// `GET /console/breakglass`.
pub async fn console_breakglass(state: &AppState, headers: &HeaderMap) -> Response {
    let path = "/console/breakglass";
    let v = match visit(state, headers, path, path).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let accounts = match svc::list(state, &v.caller).await {
        Ok(a) => a,
        Err(e) => {
            audit_refusal(state, &v, "GET", path, &e).await;
            return error_page(e.status(), &e.message);
        }
    };
    let tenant = match svc::readiness(state).await {
        Ok(t) => t,
        Err(e) => return error_page(e.status(), &e.message),
    };
    render(
        &v,
        &BreakGlassPage {
            title: "Break-glass accounts",
            error: None,
            done: None,
            nav: &v.nav,
            accounts: accounts
                .into_iter()
                .map(|a| Account {
                    custody: custody(&a),
                    a,
                })
                .collect(),
            tenant,
        },
        StatusCode::OK,
    )
}

/// Break-glass accounts: custody, last drill and use, overdue drills, the minimum of usable
/// accounts (`breakglass.read`).
#[utoipa::path(get, path = "/console/breakglass", tag = "console",
    responses((status = 200, description = "page", content_type = "text/html"), (status = 303, description = "to sign-in first"), (status = 403, description = "no breakglass.read", content_type = "text/html")))]
pub async fn console_breakglass_get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    console_breakglass(&state, &headers).await
}
