//! Token introspection (RFC 7662) and revocation (RFC 7009) for authenticated clients.

use super::*;

/// Token introspection (RFC 7662) for authenticated clients: `active` only for the token's own
/// audience, or for a service account holding `tokens.introspect`.
#[utoipa::path(post, path = "/oauth2/introspect", tag = "oauth2",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = Object), (status = 400, body = OAuthErrorBody), (status = 401, body = OAuthErrorBody)))]
pub async fn introspect(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Result<Response, OAuthError> {
    let p = params(form)?;
    // A registered confidential client (a relying party's resource server) may introspect
    // too; public clients have nothing to authenticate with and may not. Either way the
    // answer is `active` only for tokens whose audience is the caller (or, for a service
    // account holding `tokens.introspect`, any token): a client never reads another's tokens.
    let audience = if let Some(id) = named_client(&headers, &p).filter(|id| id.len() <= 128)
        && crate::services::tokens::oauth_client(&state, &id)
            .await?
            .is_some()
    {
        let oc = registered_client(&state, &client, &headers, &p).await?;
        if oc.kind != portcullis_core::oidc::ClientKind::Confidential.as_str() {
            return Err(OAuthError::invalid_client());
        }
        Some(oc.client_id)
    } else {
        let auth = authenticate(&state, &client, &headers, &p, "introspect").await?;
        commit_assertion_use(&state, &client, &auth, "introspect").await?;
        let now = OffsetDateTime::now_utc();
        let grants = crate::services::roles::grants(&state, &auth.principal.id, now).await?;
        let any = portcullis_core::roles::permits(
            &grants,
            perm::TOKENS_INTROSPECT,
            &portcullis_core::roles::Scope::tenant(),
        );
        (!any).then(|| auth.principal.name.clone())
    };
    let token = p
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let inactive = || {
        let mut r = Json(serde_json::json!({ "active": false })).into_response();
        no_store(r.headers_mut());
        r
    };
    let Some(claims) = state.tokens.verify(token) else {
        return Ok(inactive());
    };
    // Another client's token looks like no token at all (RFC 7662 §2.2 allows it).
    if audience.is_some_and(|a| a != claims.aud) {
        return Ok(inactive());
    }
    if crate::services::tokens::live_subject(&state, &claims)
        .await?
        .is_none()
    {
        return Ok(inactive());
    }
    // Tokens of an OpenID Connect client (they carry a scope) die with their client.
    if claims.scope.is_some()
        && crate::services::tokens::oauth_client(&state, &claims.client_id)
            .await?
            .is_none()
    {
        return Ok(inactive());
    }
    let mut body = serde_json::to_value(&claims).map_err(|_| OAuthError::server_error())?;
    if let Some(o) = body.as_object_mut() {
        o.insert("active".into(), true.into());
        o.insert("token_type".into(), "Bearer".into());
    }
    let mut r = Json(body).into_response();
    no_store(r.headers_mut());
    Ok(r)
}

/// Token revocation (RFC 7009): a client revokes a token issued to it (service accounts,
/// registered OpenID Connect clients, the CLI). Always 200 once the client is authenticated.
#[utoipa::path(post, path = "/oauth2/revoke", tag = "oauth2",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200), (status = 400, body = OAuthErrorBody), (status = 401, body = OAuthErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Result<Response, OAuthError> {
    let p = params(form)?;
    // The CLI is a public client: it revokes its own tokens without client authentication.
    if cli_public(&headers, &p) {
        let token = p
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        crate::services::device::revoke(
            &state,
            &client,
            crate::services::device::CLI_CLIENT_ID,
            token,
            OffsetDateTime::now_utc(),
        )
        .await?;
        let mut r = StatusCode::OK.into_response();
        no_store(r.headers_mut());
        return Ok(r);
    }
    // A registered OpenID Connect client revokes the tokens it was given.
    if let Some(id) = named_client(&headers, &p).filter(|id| id.len() <= 128)
        && state.store.oauth_client(&id).await?.is_some()
    {
        let oc = registered_client(&state, &client, &headers, &p).await?;
        let token = p
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        crate::services::device::revoke(
            &state,
            &client,
            &oc.client_id,
            token,
            OffsetDateTime::now_utc(),
        )
        .await?;
        let mut r = StatusCode::OK.into_response();
        no_store(r.headers_mut());
        return Ok(r);
    }
    let auth = authenticate(&state, &client, &headers, &p, "revoke").await?;
    commit_assertion_use(&state, &client, &auth, "revoke").await?;
    let sa = &auth.principal;
    let token = p
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    // Unknown, expired or foreign tokens: answered the same (RFC 7009 §2.2), nothing changes.
    if let Some(claims) = state.tokens.verify(token)
        && claims.client_id == sa.name
    {
        let now = OffsetDateTime::now_utc();
        state
            .store
            .write(
                Change::RevokeToken {
                    jti: claims.jti.clone(),
                    expires_at_us: claims.exp * 1_000_000,
                    at_us: us(now),
                },
                vec![tokens::client_event(
                    &sa.name,
                    Outcome::Success,
                    "token_revoked",
                    &client.ip,
                    serde_json::json!({ "jti": claims.jti }),
                )],
            )
            .await?;
    }
    let mut r = StatusCode::OK.into_response();
    no_store(r.headers_mut());
    Ok(r)
}
