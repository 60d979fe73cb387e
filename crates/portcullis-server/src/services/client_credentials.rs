//! The client-credentials grant (RFC 6749 §4.4) for service accounts, after
//! [`crate::services::client_auth`] has authenticated the client.

use portcullis_core::audit::Outcome;
use portcullis_core::token::AccessClaims;
use portcullis_store::Change;
use time::OffsetDateTime;

use crate::services::caller::ClientInfo;
use crate::state::AppState;

/// The client-credentials grant for an authenticated service account: conditional access for
/// workloads (application `api`; client credentials count as `mfa`), then an access token
/// whose roles are the account's grants now, written with its audit event (and the
/// assertion's `jti`, so a replay fails), clearing the client's failures from this address.
pub async fn client_credentials_grant(
    state: &AppState,
    client: &ClientInfo,
    auth: &crate::services::client_auth::Authenticated,
    now: OffsetDateTime,
) -> Result<(String, AccessClaims), crate::services::oauth::OAuthError> {
    use crate::services::oauth::OAuthError;
    let sa = &auth.principal;
    let ca = crate::services::conditional_access::enforce(
        state,
        sa,
        portcullis_core::conditional_access::Application::Api,
        &client.ip,
        portcullis_core::session::AuthStrength::Mfa,
        None,
    )
    .await?;
    if let Some(r) = ca.refusal {
        let who = format!("service_account:{}", sa.name);
        let base = portcullis_core::audit::NewAuditEvent::new(who.clone(), "token", who).details(
            serde_json::json!({ "grant_type": "client_credentials", "client_ip": client.ip }),
        );
        state
            .store
            .append(crate::services::conditional_access::refused_event(
                base,
                &ca.details,
            ))
            .await?;
        return Err(OAuthError::new("unauthorized_client", r.message));
    }
    let (token, claims) =
        crate::services::tokens::issue_for_service_account(state, sa, now).await?;
    let roles: Vec<&str> = claims.roles.iter().map(|r| r.role.as_str()).collect();
    let mut details = serde_json::json!({
        "jti": claims.jti, "exp": claims.exp, "roles": roles, "permissions": claims.permissions,
        "conditional_access": ca.details,
    });
    if let (Some(d), Some(more)) = (details.as_object_mut(), auth.details().as_object()) {
        d.extend(more.clone());
    }
    crate::services::client_auth::commit(
        state,
        client,
        auth,
        "token",
        // A success clears this client's failures from this address (a daemon that once had a
        // stale secret is not punished later); the address's own counter stays.
        Change::ResetThrottle {
            keys: auth
                .keys
                .iter()
                .filter(|k| k.starts_with("client_ip:"))
                .cloned()
                .collect(),
        },
        vec![crate::services::tokens::client_event(
            &sa.name,
            Outcome::Success,
            "issued",
            &client.ip,
            details,
        )],
    )
    .await?;
    Ok((token, claims))
}
