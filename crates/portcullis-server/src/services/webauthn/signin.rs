//! Signing in with a passkey or security key: as a second factor or passwordless, with decoy challenges for names that have none (nobody learns who has passkeys).

use super::*;

/// The principal a sign-in ceremony is for: from a pending sign-in (second factor) or a
/// user name (passwordless).
pub(super) async fn signin_principal(
    state: &AppState,
    req: &WebauthnSignInRequest,
    now: OffsetDateTime,
) -> Result<(Option<Principal>, String, Option<Vec<u8>>), ApiError> {
    match (&req.signin_id, &req.username) {
        (Some(id), None) => {
            if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ApiError::bad_request("signin_id is malformed"));
            }
            let h = token_hash(id);
            let expired = || {
                ApiError::new(
                    ErrorCode::Unauthenticated,
                    "this sign-in has expired or was completed; start again",
                )
            };
            let (pid, created) = state.store.pending_signin(&h).await?.ok_or_else(expired)?;
            if now - from_us(created) > state.lifetimes.pending_signin {
                return Err(expired());
            }
            let p = state
                .store
                .principal_by_id(&pid)
                .await?
                .ok_or_else(expired)?;
            let name = p.name.clone();
            Ok((Some(p), name, Some(h)))
        }
        (None, Some(u)) => {
            let name = PrincipalName::parse("username", u).map_err(invalid)?;
            let p = state
                .store
                .principal_by_name(name.as_str())
                .await?
                .filter(|p| p.kind == PrincipalKind::User);
            Ok((p, name.to_string(), None))
        }
        _ => Err(ApiError::bad_request(
            "give either signin_id (after the password) or username (passwordless), not both",
        )),
    }
}

/// Starts a WebAuthn sign-in: the second step after the password, or passwordless.
pub async fn start_signin(
    state: &AppState,
    client: &ClientInfo,
    req: WebauthnSignInRequest,
) -> Result<WebauthnChallenge, ApiError> {
    let now = OffsetDateTime::now_utc();
    let (p, name, pending) = signin_principal(state, &req, now).await?;
    // A challenge costs nothing: checked, not reserved (the answer is).
    let attempt = Attempt::check(state, p.as_ref(), &name, "signin.webauthn", client, now).await?;
    let creds = match &p {
        Some(p) => passkeys(state, &p.id).await?,
        None => Vec::new(),
    };
    let Some(p) = p.filter(|_| !creds.is_empty()) else {
        if pending.is_none() {
            // Passwordless for a name with no passkey, or no account at all: a decoy challenge
            // shaped like a real one, so the answer tells nobody who has passkeys (or their
            // credential ids). Its answer is refused like a wrong one.
            return decoy_challenge(state, client, &name, now).await;
        }
        // After the password, for an account without a passkey: counted like a wrong password.
        attempt
            .failed(
                state,
                signin_event(
                    &name,
                    "signin.webauthn",
                    Outcome::Failure,
                    "no_passkey",
                    client,
                    serde_json::json!({}),
                ),
            )
            .await?;
        return Err(invalid_credentials());
    };
    let creds: Vec<Passkey> = creds.into_iter().map(|(_, pk)| pk).collect();
    let (options, auth) = state
        .webauthn
        .start_passkey_authentication(&creds)
        .map_err(|_| ApiError::internal("cannot start a WebAuthn sign-in"))?;
    let (ceremony_id, id_hash) = new_ceremony_id();
    state
        .store
        .write(
            Change::CreateCeremony(portcullis_store::NewCeremony {
                id_hash,
                principal_id: p.id.clone(),
                kind: SIGNIN.into(),
                state: serde_json::to_string(&auth).map_err(ApiError::internal)?,
                factor_name: None,
                pending_signin_hash: pending,
                at_us: us(now),
                client_ip: client.ip.clone(),
                cap: Some(pending_cap(state, now)),
            }),
            vec![],
        )
        .await
        .map_err(too_many_pending)?;
    Ok(WebauthnChallenge {
        ceremony_id,
        options: serde_json::to_value(options).map_err(ApiError::internal)?,
    })
}

/// Unauthenticated WebAuthn challenges (and decoys) one address may have waiting at once.
pub const PENDING_PER_ADDRESS: i64 = 20;

pub(super) fn pending_cap(state: &AppState, now: OffsetDateTime) -> portcullis_store::PendingCap {
    portcullis_store::PendingCap {
        max: PENDING_PER_ADDRESS,
        since_us: us(now - state.lifetimes.pending_signin),
    }
}

/// A capped creation refused: too many challenges waiting from this address.
pub(super) fn too_many_pending(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(m) if m == portcullis_store::TOO_MANY_PENDING => ApiError::new(ErrorCode::TooManyAttempts,
            "too many sign-in challenges are waiting from this address; finish or abandon them and try again",
        )
        .retry_after(30),
        other => other.into(),
    }
}

/// The decoy credential ids for `name`: one or two, stable per name and tenant (a repeated
/// start shows the same ones, as a real account's would).
pub(super) fn decoy_credential_ids(state: &AppState, name: &str) -> Vec<String> {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let id = |i: u8| {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(state.master.as_bytes()) else {
            return String::new();
        };
        mac.update(b"portcullis-webauthn-decoy\0");
        mac.update(name.as_bytes());
        mac.update(&[0, i]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    };
    let first = id(0);
    let two = first.as_bytes().first().is_some_and(|b| b % 2 == 0);
    let mut ids = vec![first];
    if two {
        ids.push(id(1));
    }
    ids
}

/// A passwordless challenge for a name without a passkey: the options webauthn-rs makes for a
/// real account (same fields, same timeout and policy), with decoy credential ids.
pub(super) async fn decoy_challenge(
    state: &AppState,
    client: &ClientInfo,
    name: &str,
    now: OffsetDateTime,
) -> Result<WebauthnChallenge, ApiError> {
    let (options, _) = state
        .webauthn
        .start_passkey_authentication(&[])
        .map_err(|_| ApiError::internal("cannot start a WebAuthn sign-in"))?;
    let mut options = serde_json::to_value(options).map_err(ApiError::internal)?;
    if let Some(list) = options
        .get_mut("publicKey")
        .and_then(|p| p.get_mut("allowCredentials"))
        .and_then(serde_json::Value::as_array_mut)
    {
        for id in decoy_credential_ids(state, name) {
            list.push(serde_json::json!({ "type": "public-key", "id": id }));
        }
    }
    let (ceremony_id, id_hash) = new_ceremony_id();
    state
        .store
        .write(
            Change::CreateDecoy {
                id_hash,
                name: name.to_owned(),
                client_ip: client.ip.clone(),
                at_us: us(now),
                cap: pending_cap(state, now),
            },
            vec![],
        )
        .await
        .map_err(too_many_pending)?;
    Ok(WebauthnChallenge {
        ceremony_id,
        options,
    })
}

/// The answer to a decoy challenge: refused like a wrong answer to a real one (counted, audited,
/// `webauthn_failed`), or `gone` when there is no such decoy either.
pub(super) async fn finish_decoy(
    state: &AppState,
    client: &ClientInfo,
    req: &WebauthnFinishRequest,
    gone: ApiError,
    now: OffsetDateTime,
) -> Result<SignInResponse, ApiError> {
    let id_hash = token_hash(&req.ceremony_id);
    let Some((name, created)) = state.store.decoy(&id_hash).await? else {
        return Err(gone);
    };
    if now - from_us(created) > state.lifetimes.pending_signin {
        return Err(gone);
    }
    let _: PublicKeyCredential = serde_json::from_value(req.credential.clone())
        .map_err(|_| ApiError::bad_request("credential is not a WebAuthn assertion"))?;
    let p = state.store.principal_by_name(&name).await?;
    let attempt =
        Attempt::reserve(state, p.as_ref(), &name, "signin.webauthn", client, now).await?;
    let ev = signin_event(
        &name,
        "signin.webauthn",
        Outcome::Failure,
        "no_passkey_or_unknown_user",
        client,
        serde_json::json!({ "mode": "passwordless_webauthn" }),
    );
    attempt
        .failed_with(state, Change::ConsumeDecoy { id_hash }, ev)
        .await
        .map_err(|e| match e.code {
            ErrorCode::Conflict => ceremony_gone(),
            _ => e,
        })?;
    Err(webauthn_failed(
        "the authenticator's answer was refused (credential_not_allowed)",
    ))
}

/// Finishes a WebAuthn sign-in: a session of strength `phishing_resistant`.
pub async fn finish_signin(
    state: &AppState,
    client: &ClientInfo,
    app: &portcullis_core::conditional_access::Application,
    req: WebauthnFinishRequest,
) -> Result<SignInResponse, ApiError> {
    let now = OffsetDateTime::now_utc();
    let c = match load_ceremony(state, &req.ceremony_id, SIGNIN, now).await {
        Ok(c) => c,
        Err(gone) => return finish_decoy(state, client, &req, gone, now).await,
    };
    let credential: PublicKeyCredential = serde_json::from_value(req.credential)
        .map_err(|_| ApiError::bad_request("credential is not a WebAuthn assertion"))?;
    let p = state
        .store
        .principal_by_id(&c.principal_id)
        .await?
        .ok_or_else(ceremony_gone)?;
    let attempt =
        Attempt::reserve(state, Some(&p), &p.name, "signin.webauthn", client, now).await?;
    let mode = if c.pending_signin_hash.is_some() {
        "password_and_webauthn"
    } else {
        "passwordless_webauthn"
    };
    let failure = |reason: &str| {
        signin_event(
            &p.name,
            "signin.webauthn",
            Outcome::Failure,
            reason,
            client,
            serde_json::json!({ "mode": mode }),
        )
    };
    let Asserted {
        factor_id,
        sealed,
        counter,
    } = check_assertion(state, &c, &p, &credential, &attempt, &failure).await?;
    if !p.enabled {
        state
            .store
            .write(
                Change::ConsumeCeremony { id_hash: c.id_hash },
                vec![failure("account_disabled")],
            )
            .await?;
        return Err(ApiError::new(
            ErrorCode::AccountDisabled,
            "this account is disabled",
        ));
    }
    let (ca, frequency) = crate::services::conditional_access::at_signin(
        state,
        &p,
        app,
        client,
        AuthStrength::PhishingResistant,
        "signin.webauthn",
    )
    .await?;
    let mut changes = vec![Change::ConsumeCeremony {
        id_hash: c.id_hash.clone(),
    }];
    if let Some(h) = c.pending_signin_hash {
        changes.push(Change::ConsumePendingSignIn { id_hash: h });
    }
    changes.push(Change::UpdateWebauthnFactor {
        id: factor_id.clone(),
        sealed_credential: sealed,
        counter,
        at_us: us(now),
    });
    let completion = crate::services::identity::Completion {
        principal: &p,
        client,
        strength: AuthStrength::PhishingResistant,
        scope: SessionScope::Full,
        frequency,
        reason: mode,
        details: serde_json::json!({ "strength": "phishing_resistant", "factor_id": factor_id, "conditional_access": ca }),
        changes,
        succeeded: Some(attempt.succeeded()),
    };
    match crate::services::identity::complete_signin(state, completion, now).await {
        Ok(issued) => Ok(crate::services::identity::signed_in_response(issued)),
        // Lost a race: the ceremony or sign-in was finished by another request, or another
        // answer with a higher counter was accepted first (a cloned authenticator).
        Err(StoreError::Conflict(_)) => {
            attempt
                .failed(state, failure("replayed_or_counter_did_not_advance"))
                .await?;
            // Spend the ceremony if it is still there, so the same answer cannot be retried.
            let _ = state
                .store
                .write(Change::ConsumeCeremony { id_hash: c.id_hash }, vec![])
                .await;
            Err(webauthn_failed(
                "this answer was already used, or the authenticator's counter did not advance",
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// An authenticator's answer that passed: the factor it came from, the credential to store back
/// (its counter moved on) and the counter.
pub(super) struct Asserted {
    pub(super) factor_id: String,
    pub(super) sealed: Vec<u8>,
    pub(super) counter: i64,
}

/// Checks an answer to ceremony `c` of `p`. On refusal the ceremony is spent (a refused answer
/// cannot be retried), the failure is counted on `keys` and audited as `failure(reason)`.
pub(super) async fn check_assertion(
    state: &AppState,
    c: &Ceremony,
    p: &Principal,
    credential: &PublicKeyCredential,
    attempt: &Attempt,
    failure: &(dyn Fn(&str) -> portcullis_core::audit::NewAuditEvent + Sync),
) -> Result<Asserted, ApiError> {
    let auth: PasskeyAuthentication = serde_json::from_str(&c.state)
        .map_err(|_| ApiError::internal("stored WebAuthn ceremony unreadable"))?;
    let result = match state
        .webauthn
        .finish_passkey_authentication(credential, &auth)
    {
        Ok(r) => r,
        Err(e) => {
            let reason = describe(&e);
            let spent = Change::ConsumeCeremony {
                id_hash: c.id_hash.clone(),
            };
            attempt
                .failed_with(state, spent, failure(reason))
                .await
                .map_err(|e| match e.code {
                    // Another request finished this ceremony meanwhile.
                    ErrorCode::Conflict => ceremony_gone(),
                    _ => e,
                })?;
            return Err(webauthn_failed(format!(
                "the authenticator's answer was refused ({reason})"
            )));
        }
    };
    if !result.user_verified() {
        // Unreachable with the passkey policy (webauthn-rs refuses first); kept as a guard
        // because the strength that follows depends on it.
        attempt.failed(state, failure("user_not_verified")).await?;
        return Err(webauthn_failed("the authenticator did not verify the user"));
    }
    let Some((factor_id, mut passkey)) = passkeys(state, &p.id)
        .await?
        .into_iter()
        .find(|(_, pk)| pk.cred_id() == result.cred_id())
    else {
        // Removed between start and finish.
        attempt.failed(state, failure("credential_removed")).await?;
        return Err(webauthn_failed("that credential is no longer registered"));
    };
    passkey.update_credential(&result);
    let sealed = state.master.seal(
        &format!("mfa_factor:{factor_id}"),
        &serde_json::to_vec(&passkey).map_err(ApiError::internal)?,
    );
    Ok(Asserted {
        factor_id,
        sealed,
        counter: i64::from(result.counter()),
    })
}
