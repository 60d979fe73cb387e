//! Registering a passkey or security key for the caller, and its confirmation.

use super::*;
use crate::services::support::ConflictExt;

/// Starts registering a passkey or security key for the caller (works in a registration-only
/// session, so a privileged account can make WebAuthn its first factor).
pub async fn start_registration(
    state: &AppState,
    caller: &Caller,
    req: WebauthnRegisterRequest,
) -> Result<WebauthnChallenge, ApiError> {
    let me = caller.require_session()?;
    crate::services::privilege::require_person(caller, "register a passkey or security key")?;
    crate::services::breakglass::guard_own_credential(state, &me.principal, true).await?;
    let name = factor_name(&req.name)?;
    let factors = state.store.factors(&me.principal.id).await?;
    if factors.iter().any(|f| f.name == name) {
        return Err(ApiError::new(
            ErrorCode::AlreadyExists,
            "you already have a factor with that name",
        ));
    }
    // A new credential needs a fresh proof, never an access token (privilege model rule 7).
    crate::services::privilege::require_fresh_proof(state, caller).await?;
    let exclude = passkeys(state, &me.principal.id)
        .await?
        .iter()
        .map(|(_, pk)| pk.cred_id().clone())
        .collect::<Vec<_>>();
    let (options, reg) = state
        .webauthn
        .start_passkey_registration(
            user_handle(&me.principal.id),
            &me.principal.name,
            &me.principal.display_name,
            Some(exclude),
        )
        .map_err(|_| ApiError::internal("cannot start a WebAuthn registration"))?;
    let (ceremony_id, id_hash) = new_ceremony_id();
    let now = OffsetDateTime::now_utc();
    let change = Change::CreateCeremony(portcullis_store::NewCeremony {
        id_hash,
        principal_id: me.principal.id.clone(),
        kind: REGISTER.into(),
        state: serde_json::to_string(&reg).map_err(ApiError::internal)?,
        factor_name: Some(name.clone()),
        pending_signin_hash: None,
        at_us: us(now),
        client_ip: String::new(),
        cap: None,
    });
    let ev = event(
        caller,
        "mfa.webauthn_registration_started",
        format!("user:{}", me.principal.name),
    )
    .details(serde_json::json!({ "name": name }));
    state.store.write(change, vec![ev]).await?;
    Ok(WebauthnChallenge {
        ceremony_id,
        options: serde_json::to_value(options).map_err(ApiError::internal)?,
    })
}

/// Finishes a registration: the credential becomes a confirmed factor.
pub async fn finish_registration(
    state: &AppState,
    caller: &Caller,
    req: WebauthnFinishRequest,
) -> Result<FactorView, ApiError> {
    let me = caller.require_session()?;
    crate::services::privilege::require_person(caller, "register a passkey or security key")?;
    crate::services::privilege::require_fresh_proof(state, caller).await?;
    let now = OffsetDateTime::now_utc();
    let c = load_ceremony(state, &req.ceremony_id, REGISTER, now).await?;
    if c.principal_id != me.principal.id {
        // Somebody else's ceremony looks like no ceremony at all.
        return Err(ceremony_gone());
    }
    let credential: RegisterPublicKeyCredential = serde_json::from_value(req.credential)
        .map_err(|_| ApiError::bad_request("credential is not a WebAuthn registration response"))?;
    let reg: PasskeyRegistration = serde_json::from_str(&c.state)
        .map_err(|_| ApiError::internal("stored WebAuthn ceremony unreadable"))?;
    let target = format!("user:{}", me.principal.name);
    let passkey = match state
        .webauthn
        .finish_passkey_registration(&credential, &reg)
    {
        Ok(pk) => pk,
        Err(e) => {
            let ev = event(caller, "mfa.webauthn_registered", target)
                .outcome(Outcome::Failure)
                .details(serde_json::json!({ "reason": describe(&e) }));
            // The ceremony is spent either way, so an answer cannot be retried against it.
            let _ = state
                .store
                .write(Change::ConsumeCeremony { id_hash: c.id_hash }, vec![ev])
                .await;
            return Err(webauthn_failed(format!(
                "the authenticator's answer was refused ({})",
                describe(&e)
            )));
        }
    };
    let id = new_id("f");
    let name = c.factor_name.unwrap_or_else(|| "security key".into());
    let sealed = state.master.seal(
        &format!("mfa_factor:{id}"),
        &serde_json::to_vec(&passkey).map_err(ApiError::internal)?,
    );
    let change = Change::Many(vec![
        Change::ConsumeCeremony { id_hash: c.id_hash },
        Change::AddWebauthnFactor(portcullis_store::NewWebauthnFactor {
            id: id.clone(),
            principal_id: me.principal.id.clone(),
            name: name.clone(),
            credential_id: AsRef::<[u8]>::as_ref(passkey.cred_id()).to_vec(),
            sealed_credential: sealed,
            counter: 0,
            at_us: us(now),
        }),
        crate::services::privilege::credential_notice(
            &me.principal,
            "webauthn_registered",
            serde_json::json!({ "name": name }),
        ),
    ]);
    // A new credential: alert-worthy, and its owner is told by email (rule 7).
    let ev = event(caller, "mfa.webauthn_registered", target).details(
        serde_json::json!({ "factor_id": id, "name": name, "user_verification": "required", "alert": true }),
    );
    state.store.write(change, vec![ev]).await.on_conflict(|| {
        ApiError::new(
            ErrorCode::Conflict,
            "this ceremony was already finished, or the credential or name is registered already",
        )
    })?;
    let f = state
        .store
        .factors(&me.principal.id)
        .await?
        .into_iter()
        .find(|f| f.id == id)
        .ok_or_else(|| ApiError::internal("registered factor vanished"))?;
    Ok(factor_view(&f))
}
