//! A fresh proof with a passkey or security key inside a session (re-authentication and step-up).

use super::*;

/// `POST /api/v1/me/reauth/webauthn`: a challenge for a fresh proof with one of the caller's
/// passkeys or security keys (finished by `POST /api/v1/me/reauth`).
pub async fn start_reauth(
    state: &AppState,
    caller: &Caller,
) -> Result<WebauthnChallenge, ApiError> {
    let me = crate::services::privilege::require_signed_in_session(caller)?;
    let creds: Vec<Passkey> = passkeys(state, &me.principal.id)
        .await?
        .into_iter()
        .map(|(_, pk)| pk)
        .collect();
    if creds.is_empty() {
        return Err(ApiError::bad_request(
            "you have no passkey or security key; re-authenticate with your password and TOTP code",
        ));
    }
    let (options, auth) = state
        .webauthn
        .start_passkey_authentication(&creds)
        .map_err(|_| ApiError::internal("cannot start a WebAuthn re-authentication"))?;
    let (ceremony_id, id_hash) = new_ceremony_id();
    state
        .store
        .write(
            Change::CreateCeremony(portcullis_store::NewCeremony {
                id_hash,
                principal_id: me.principal.id.clone(),
                kind: REAUTH.into(),
                state: serde_json::to_string(&auth).map_err(ApiError::internal)?,
                factor_name: None,
                pending_signin_hash: None,
                at_us: us(OffsetDateTime::now_utc()),
                client_ip: String::new(),
                cap: None,
            }),
            vec![],
        )
        .await?;
    Ok(WebauthnChallenge {
        ceremony_id,
        options: serde_json::to_value(options).map_err(ApiError::internal)?,
    })
}

/// Finishes a WebAuthn re-authentication: the session's factor is proven now, at the
/// `phishing_resistant` strength.
pub async fn finish_reauth(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    ceremony_id: Option<String>,
    credential: Option<serde_json::Value>,
) -> Result<Reauthenticated, ApiError> {
    let me = caller.require_session()?;
    let (Some(ceremony_id), Some(credential)) = (ceremony_id, credential) else {
        return Err(ApiError::bad_request(
            "give ceremony_id and credential together",
        ));
    };
    let now = OffsetDateTime::now_utc();
    let c = load_ceremony(state, &ceremony_id, REAUTH, now).await?;
    if c.principal_id != me.principal.id {
        // Somebody else's ceremony looks like no ceremony at all.
        return Err(ceremony_gone());
    }
    let credential: PublicKeyCredential = serde_json::from_value(credential)
        .map_err(|_| ApiError::bad_request("credential is not a WebAuthn assertion"))?;
    let p = &me.principal;
    let attempt = Attempt::reserve(
        state,
        Some(p),
        &p.name,
        "session.reauthenticated",
        client,
        now,
    )
    .await?;
    let target = format!("user:{}", p.name);
    let failure = |reason: &str| {
        event(caller, "session.reauthenticated", target.clone())
            .outcome(Outcome::Failure)
            .details(serde_json::json!({ "reason": reason, "method": "webauthn", "session_id": me.session.id, "client_ip": client.ip }))
    };
    let a = check_assertion(state, &c, p, &credential, &attempt, &failure).await?;
    let change = Change::Many(vec![
        Change::ConsumeCeremony { id_hash: c.id_hash },
        Change::UpdateWebauthnFactor {
            id: a.factor_id.clone(),
            sealed_credential: a.sealed,
            counter: a.counter,
            at_us: us(now),
        },
        Change::StampSession {
            id: me.session.id.clone(),
            strength: AuthStrength::PhishingResistant,
            at_us: us(now),
        },
        attempt.succeeded(),
    ]);
    let ev = event(caller, "session.reauthenticated", target.clone()).details(serde_json::json!({
        "session_id": me.session.id, "factor_id": a.factor_id, "method": "webauthn", "client_ip": client.ip,
    }));
    match state.store.write(change, vec![ev]).await {
        Ok(_) => Ok(crate::services::identity::reauthenticated(
            AuthStrength::PhishingResistant,
            now,
        )),
        Err(StoreError::Conflict(_)) => {
            attempt
                .failed(state, failure("replayed_or_counter_did_not_advance"))
                .await?;
            Err(webauthn_failed(
                "this answer was already used, or the authenticator's counter did not advance",
            ))
        }
        Err(e) => Err(e.into()),
    }
}
