//! Refresh tokens (rotation with reuse detection, revocation) and the token issuance shared
//! with the device poll and OpenID Connect: every refresh rotates within its family, and any
//! reuse or foreign presentation revokes the whole family.

use portcullis_core::audit::Outcome;
use portcullis_core::device::RefreshLifetimes;
use portcullis_core::session::AuthStrength;
use portcullis_core::token::{AccessClaims, amr_for};
use portcullis_store::accounts::Principal;
use portcullis_store::crypto::{random_token, token_hash};
use portcullis_store::{Change, NewRefreshToken, StoreError};
use time::OffsetDateTime;

use super::{UserTokens, event, invalid_grant};
use crate::services::caller::ClientInfo;
use crate::services::oauth::OAuthError;
use crate::services::support::new_id;
use crate::state::AppState;
use crate::state::signer::SigningAlg;
use crate::time_us::{from_us, us};

/// A refresh by `client_id` (authenticated by the caller: the CLI as a public client, a
/// registered client by its own rules): rotates the token and issues a new access token, or
/// refuses (see the module's invariants for when a whole family is revoked).
pub async fn refresh(
    state: &AppState,
    client: &ClientInfo,
    client_id: &str,
    presented: Option<&str>,
    now: OffsetDateTime,
) -> Result<UserTokens, OAuthError> {
    let presented =
        presented.ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    if presented.len() > 256 {
        return Err(invalid_grant("unknown refresh token"));
    }
    let Some(t) = state
        .store
        .refresh_token_by_hash(&token_hash(presented))
        .await?
    else {
        return Err(invalid_grant("unknown refresh token"));
    };
    let p = crate::services::tokens::principal(state, &t.principal_id).await?;
    let who = p
        .as_ref()
        .map_or_else(|| t.principal_id.clone(), |p| format!("user:{}", p.name));
    let refuse = |reason: &'static str, revoke: bool, alert: bool| {
        let family = t.family_id.clone();
        let who = who.clone();
        let ip = client.ip.clone();
        async move {
            let change = if revoke {
                Change::RevokeRefreshFamily {
                    family_id: family.clone(),
                    at_us: us(now),
                }
            } else {
                Change::None
            };
            let action = if reason == "reused" {
                "token.refresh_reuse"
            } else {
                "token.refresh"
            };
            let ev = event(
                &who,
                action,
                &who,
                Outcome::Failure,
                serde_json::json!({
                    "reason": reason, "family": family, "client_id": client_id, "client_ip": ip,
                    "family_revoked": revoke, "alert": alert,
                }),
            );
            match state.store.write(change, vec![ev]).await {
                Ok(_) => invalid_grant("the refresh token is not valid"),
                Err(e) => e.into(),
            }
        }
    };
    if t.client_id != client_id {
        return Err(refuse("other_client", true, true).await);
    }
    if t.revoked_at_us.is_some() {
        return Err(refuse("revoked", false, false).await);
    }
    if t.used_at_us.is_some() {
        return Err(refuse("reused", true, true).await);
    }
    if now >= from_us(t.expires_at_us) || now >= from_us(t.family_expires_at_us) {
        return Err(refuse("expired", false, false).await);
    }
    let Some(p) = p.filter(|p| p.enabled) else {
        return Err(refuse("account_disabled", true, false).await);
    };
    let session_revoked = state
        .store
        .session_by_id(&t.session_id)
        .await?
        .is_none_or(|s| s.revoked_at_us.is_some());
    if session_revoked {
        return Err(refuse("approving_session_revoked", true, false).await);
    }
    // Conditional access at every refresh (a refused refresh leaves the family as it is:
    // the person may come back from an allowed network), by the flow the family started with
    // and the person's address recorded with it (an OIDC client's family).
    let origin = crate::services::conditional_access::TokenOrigin {
        client_id,
        strength: t.strength,
        auth_time_us: t.auth_time_us,
        flow: crate::services::conditional_access::flow_of_family(t.flow.as_deref()),
        person_ip: t.person_ip.as_deref(),
    };
    let ca =
        crate::services::conditional_access::at_token(state, &p, &origin, client, "token.refresh")
            .await?;
    let (next, new_refresh) = new_refresh_token(
        state,
        &p,
        &origin,
        &t.session_id,
        (t.family_id.clone(), from_us(t.family_expires_at_us)),
        &t.scope,
        now,
    );
    let scope = (!t.scope.is_empty()).then(|| t.scope.clone());
    let tokens = access_for(state, &p, client_id, t.strength, t.auth_time_us, scope, now).await?;
    let mut new_refresh = new_refresh;
    new_refresh.access = Some((tokens.1.jti.clone(), tokens.1.exp.saturating_mul(1_000_000)));
    let ev = event(
        &format!("user:{}", p.name),
        "token.refresh",
        &format!("user:{}", p.name),
        Outcome::Success,
        serde_json::json!({
            "family": t.family_id, "client_id": client_id, "client_ip": client.ip,
            "person_ip": t.person_ip.as_deref().unwrap_or(&client.ip), "flow": t.flow,
            "jti": tokens.1.jti, "exp": tokens.1.exp, "conditional_access": ca,
        }),
    );
    let change = Change::Many(vec![
        Change::UseRefreshToken {
            id: t.id.clone(),
            at_us: us(now),
        },
        Change::IssueRefreshToken(new_refresh),
    ]);
    match state.store.write(change, vec![ev]).await {
        Ok(_) => Ok(UserTokens {
            access_token: tokens.0,
            claims: tokens.1,
            refresh_token: next,
            principal: p,
            session_id: t.session_id.clone(),
            scope: t.scope.clone(),
        }),
        // Someone else rotated this token at the same moment: one of the two is not the
        // legitimate client.
        Err(StoreError::Conflict(_)) => Err(refuse("reused", true, true).await),
        Err(e) => Err(e.into()),
    }
}

/// RFC 7009 for people's tokens, by the client they were issued to (the CLI, a public client
/// without authentication; a registered client after its own authentication): a refresh
/// token ends its whole family, an access token its `jti`. Unknown and foreign tokens change
/// nothing; the answer is the same either way.
pub async fn revoke(
    state: &AppState,
    client: &ClientInfo,
    client_id: &str,
    token: &str,
    now: OffsetDateTime,
) -> Result<(), OAuthError> {
    if token.len() > 8192 {
        return Ok(());
    }
    if let Some(t) = state
        .store
        .refresh_token_by_hash(&token_hash(token))
        .await?
    {
        if t.client_id == client_id && t.revoked_at_us.is_none() {
            let who = match state.store.principal_by_id(&t.principal_id).await? {
                Some(p) => format!("user:{}", p.name),
                None => t.principal_id.clone(),
            };
            let ev = event(
                &who,
                "token.refresh_revoked",
                &who,
                Outcome::Success,
                serde_json::json!({ "family": t.family_id, "client_id": client_id, "client_ip": client.ip }),
            );
            state
                .store
                .write(
                    Change::RevokeRefreshFamily {
                        family_id: t.family_id.clone(),
                        at_us: us(now),
                    },
                    vec![ev],
                )
                .await?;
        }
        return Ok(());
    }
    if let Some(claims) = state.tokens.verify(token)
        && claims.client_id == client_id
    {
        let who = match state.store.principal_by_id(&claims.sub).await? {
            Some(p) => format!("user:{}", p.name),
            None => claims.sub.clone(),
        };
        let ev = event(
            &who,
            "token.revoked",
            &who,
            Outcome::Success,
            serde_json::json!({ "jti": claims.jti, "client_id": client_id, "client_ip": client.ip }),
        );
        state
            .store
            .write(
                Change::RevokeToken {
                    jti: claims.jti.clone(),
                    expires_at_us: claims.exp.saturating_mul(1_000_000),
                    at_us: us(now),
                },
                vec![ev],
            )
            .await?;
    }
    Ok(())
}

pub(crate) async fn enabled_principal(
    state: &AppState,
    id: &str,
) -> Result<Option<Principal>, OAuthError> {
    Ok(crate::services::tokens::principal(state, id)
        .await?
        .filter(|p| p.enabled))
}

/// `origin`: the client, strength, auth time, flow and person's address the family comes
/// from (kept on every token of it, so each refresh is judged as the first issuance was);
/// `session_id`: the approving session; `family`: its id and absolute end.
pub(crate) fn new_refresh_token(
    state: &AppState,
    p: &Principal,
    origin: &crate::services::conditional_access::TokenOrigin<'_>,
    session_id: &str,
    family: (String, OffsetDateTime),
    scope: &str,
    now: OffsetDateTime,
) -> (String, NewRefreshToken) {
    let (family_id, family_end) = family;
    let value = format!("pcr_{}", random_token().as_str());
    let lifetimes: RefreshLifetimes = state.device.refresh;
    let t = NewRefreshToken {
        id: new_id("rt"),
        token_hash: token_hash(&value),
        family_id,
        principal_id: p.id.clone(),
        client_id: origin.client_id.to_owned(),
        strength: origin.strength,
        auth_time_us: origin.auth_time_us,
        session_id: session_id.to_owned(),
        created_at_us: us(now),
        expires_at_us: us(lifetimes.token_expiry(now, family_end)),
        family_expires_at_us: us(family_end),
        scope: scope.to_owned(),
        access: None,
        flow: origin.flow.map(|f| f.as_str().to_owned()),
        person_ip: origin.person_ip.map(str::to_owned),
    };
    (value, t)
}

pub(crate) async fn access_for(
    state: &AppState,
    p: &Principal,
    client_id: &str,
    strength: AuthStrength,
    auth_time_us: i64,
    scope: Option<String>,
    now: OffsetDateTime,
) -> Result<(String, AccessClaims), OAuthError> {
    // A relying party's tokens are signed in the algorithm it registered; the CLI's in EdDSA.
    let alg = match &scope {
        Some(_) => crate::services::tokens::oauth_client(state, client_id)
            .await?
            .map_or(SigningAlg::EdDSA, |c| {
                crate::services::clients::id_token_alg(&c.id_token_alg)
            }),
        None => SigningAlg::EdDSA,
    };
    Ok(crate::services::tokens::issue(
        state,
        p,
        crate::services::tokens::Issue {
            auth_time: Some(auth_time_us.div_euclid(1_000_000)),
            client_id: client_id.to_owned(),
            permissions: vec![],
            amr: amr_for(strength),
            acr: strength.as_str().to_owned(),
            scope,
            alg,
        },
        now,
    )
    .await?)
}
