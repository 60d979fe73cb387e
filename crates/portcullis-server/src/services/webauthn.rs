//! WebAuthn/FIDO2 with `webauthn-rs`: passkeys and security keys, as a second factor after the
//! password or alone (passwordless).
//!
//! Invariants:
//! - Every credential is registered and used with **user verification required** (a PIN or
//!   biometric on the authenticator), so every WebAuthn sign-in has the `phishing_resistant`
//!   strength: the signature is bound to this server's origin and proves possession plus a
//!   second factor held by the authenticator. Security keys that cannot verify the user are
//!   refused at registration rather than registered as something weaker.
//! - The relying-party id is the host of `public_url`; an assertion made for another
//!   origin (another host, scheme or port) is refused.
//! - Ceremonies (the challenge and its server-side state) are stored in the database so any
//!   replica can finish them, expire after `signin_step_seconds`, belong to one principal and
//!   are consumed by their first finish, successful or not: a replayed answer finds nothing.
//! - The signature counter must move forward (unless the authenticator keeps none, i.e. 0);
//!   `webauthn-rs` checks it against the credential as it was when the ceremony started, and
//!   the store's conditional update checks it against the stored value, so two answers racing
//!   from a cloned authenticator cannot both win.
//! - Credentials are sealed at rest under the master key like TOTP seeds.
//! - Every sign-in attempt is an audit event with its reason; failures count towards the
//!   throttle like wrong passwords.

use portcullis_core::api::{
    FactorView, Reauthenticated, SignInResponse, WebauthnChallenge, WebauthnFinishRequest,
    WebauthnRegisterRequest, WebauthnSignInRequest,
};
use portcullis_core::audit::Outcome;
use portcullis_core::error::ErrorCode;
use portcullis_core::principal::{PrincipalKind, PrincipalName};
use portcullis_core::session::{AuthStrength, SessionScope};
use portcullis_store::accounts::Principal;
use portcullis_store::crypto::token_hash;
use portcullis_store::{Change, StoreError};
use rand::RngCore;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, WebauthnError,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

use crate::error::ApiError;
use crate::services::accounts::{invalid, new_id};
use crate::services::caller::{Caller, ClientInfo, event};
use crate::services::signin::{
    Attempt, factor_name, factor_view, invalid_credentials, signin_event,
};
use crate::state::AppState;
use crate::time_us::{from_us, us};

const REGISTER: &str = "register";
const SIGNIN: &str = "signin";
const REAUTH: &str = "reauth";

/// The relying party for `origin` (its host is the relying-party id).
pub fn relying_party(origin: &Url) -> Result<Webauthn, WebauthnError> {
    let rp_id = origin.host_str().ok_or(WebauthnError::Configuration)?;
    WebauthnBuilder::new(rp_id, origin)?
        .rp_name("Portcullis")
        .build()
}

/// The WebAuthn user handle: derived from the principal id, so it is stable, reveals neither
/// name nor email, and differs between tenants.
fn user_handle(principal_id: &str) -> Uuid {
    let d = Sha256::digest(format!("portcullis-webauthn-user:{principal_id}"));
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    Uuid::from_bytes(b)
}

fn webauthn_failed(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::WebauthnFailed, msg)
}

fn ceremony_gone() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthenticated,
        "this WebAuthn ceremony has expired or was already finished; start again",
    )
}

/// Why an assertion or attestation was refused, in words safe to show and to audit.
fn describe(e: &WebauthnError) -> &'static str {
    match e {
        WebauthnError::InvalidRPOrigin => "origin_mismatch",
        WebauthnError::InvalidRPIDHash => "rp_id_mismatch",
        WebauthnError::MismatchedChallenge => "challenge_mismatch",
        WebauthnError::UserNotVerified => "user_not_verified",
        WebauthnError::UserNotPresent => "user_not_present",
        WebauthnError::CredentialPossibleCompromise => "counter_did_not_advance",
        WebauthnError::AuthenticationFailure => "bad_signature",
        WebauthnError::InvalidClientDataType => "wrong_ceremony_type",
        WebauthnError::CredentialNotFound => "credential_not_allowed",
        _ => "verification_failed",
    }
}

fn check_ceremony_id(id: &str) -> Result<(), ApiError> {
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request("ceremony_id is malformed"));
    }
    Ok(())
}

/// The confirmed WebAuthn credentials of a principal with their factor ids.
async fn passkeys(
    state: &AppState,
    principal_id: &str,
) -> Result<Vec<(String, Passkey)>, ApiError> {
    let mut out = Vec::new();
    for f in state.store.factors(principal_id).await? {
        if f.kind != "webauthn" || !f.confirmed {
            continue;
        }
        let raw = state
            .master
            .open(&format!("mfa_factor:{}", f.id), &f.sealed_secret)
            .map_err(ApiError::internal)?;
        let pk: Passkey = serde_json::from_slice(&raw)
            .map_err(|_| ApiError::internal("stored WebAuthn credential unreadable"))?;
        out.push((f.id, pk));
    }
    Ok(out)
}

/// A stored ceremony, checked for kind and age.
struct Ceremony {
    id_hash: Vec<u8>,
    principal_id: String,
    state: String,
    factor_name: Option<String>,
    pending_signin_hash: Option<Vec<u8>>,
}

async fn load_ceremony(
    state: &AppState,
    ceremony_id: &str,
    kind: &str,
    now: OffsetDateTime,
) -> Result<Ceremony, ApiError> {
    check_ceremony_id(ceremony_id)?;
    let id_hash = token_hash(ceremony_id);
    let (principal_id, k, st, factor_name, pending_signin_hash, created) = state
        .store
        .ceremony(&id_hash)
        .await?
        .ok_or_else(ceremony_gone)?;
    if k != kind || now - from_us(created) > state.lifetimes.pending_signin {
        return Err(ceremony_gone());
    }
    Ok(Ceremony {
        id_hash,
        principal_id,
        state: st,
        factor_name,
        pending_signin_hash,
    })
}

/// A fresh ceremony id (256 random bits, hex) and the hash it is stored under.
fn new_ceremony_id() -> (String, Vec<u8>) {
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(raw.as_mut());
    let id = hex::encode(raw.as_ref());
    let h = token_hash(&id);
    (id, h)
}

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
    let change = Change::CreateCeremony {
        id_hash,
        principal_id: me.principal.id.clone(),
        kind: REGISTER.into(),
        state: serde_json::to_string(&reg).map_err(ApiError::internal)?,
        factor_name: Some(name.clone()),
        pending_signin_hash: None,
        at_us: us(now),
        client_ip: String::new(),
        cap: None,
    };
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
        Change::AddWebauthnFactor {
            id: id.clone(),
            principal_id: me.principal.id.clone(),
            name: name.clone(),
            credential_id: AsRef::<[u8]>::as_ref(passkey.cred_id()).to_vec(),
            sealed_credential: sealed,
            counter: 0,
            at_us: us(now),
        },
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
    state
        .store
        .write(change, vec![ev])
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::new(ErrorCode::Conflict,
                "this ceremony was already finished, or the credential or name is registered already",
            ),
            other => other.into(),
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

/// The principal a sign-in ceremony is for: from a pending sign-in (second factor) or a
/// user name (passwordless).
async fn signin_principal(
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
                .filter(|p| p.kind == PrincipalKind::User.as_str());
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
            Change::CreateCeremony {
                id_hash,
                principal_id: p.id.clone(),
                kind: SIGNIN.into(),
                state: serde_json::to_string(&auth).map_err(ApiError::internal)?,
                factor_name: None,
                pending_signin_hash: pending,
                at_us: us(now),
                client_ip: client.ip.clone(),
                cap: Some(pending_cap(state, now)),
            },
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

fn pending_cap(state: &AppState, now: OffsetDateTime) -> portcullis_store::PendingCap {
    portcullis_store::PendingCap {
        max: PENDING_PER_ADDRESS,
        since_us: us(now - state.lifetimes.pending_signin),
    }
}

/// A capped creation refused: too many challenges waiting from this address.
fn too_many_pending(e: StoreError) -> ApiError {
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
fn decoy_credential_ids(state: &AppState, name: &str) -> Vec<String> {
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
async fn decoy_challenge(
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
async fn finish_decoy(
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
    let completion = crate::services::signin::Completion {
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
    match crate::services::signin::complete_signin(state, completion, now).await {
        Ok(issued) => Ok(crate::services::signin::signed_in_response(issued)),
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
struct Asserted {
    factor_id: String,
    sealed: Vec<u8>,
    counter: i64,
}

/// Checks an answer to ceremony `c` of `p`. On refusal the ceremony is spent (a refused answer
/// cannot be retried), the failure is counted on `keys` and audited as `failure(reason)`.
async fn check_assertion(
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
            Change::CreateCeremony {
                id_hash,
                principal_id: me.principal.id.clone(),
                kind: REAUTH.into(),
                state: serde_json::to_string(&auth).map_err(ApiError::internal)?,
                factor_name: None,
                pending_signin_hash: None,
                at_us: us(OffsetDateTime::now_utc()),
                client_ip: String::new(),
                cap: None,
            },
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
            strength: AuthStrength::PhishingResistant.as_str().to_owned(),
            at_us: us(now),
        },
        attempt.succeeded(),
    ]);
    let ev = event(caller, "session.reauthenticated", target.clone()).details(serde_json::json!({
        "session_id": me.session.id, "factor_id": a.factor_id, "method": "webauthn", "client_ip": client.ip,
    }));
    match state.store.write(change, vec![ev]).await {
        Ok(_) => Ok(crate::services::signin::reauthenticated(
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
