//! Client authentication at the OAuth endpoints (token, introspection, revocation): a service
//! account's client secret or signed assertion (`private_key_jwt`), checked against its
//! allowed networks; every failure takes one path (audited with its reason, counted for
//! throttling, answered `invalid_client`, or 429 while the address must wait). An assertion's
//! `jti` is recorded in the same write as the request's outcome, so a replay (also on another
//! replica) turns that outcome into a failure. The wire format (HTTP Basic, form parameters)
//! is parsed in `crate::http::oauth`.

use portcullis_core::audit::{NewAuditEvent, Outcome};
use portcullis_core::client_key::AssertionFailure;
use portcullis_store::{Change, StoreError};
use time::OffsetDateTime;

use crate::services::caller::ClientInfo;
use crate::services::oauth::OAuthError;
use crate::services::tokens::ClientAuthFailure;
use crate::state::AppState;
use crate::time_us::us;

/// What the client presented to authenticate.
pub enum Presented {
    Secret(String),
    Assertion(String),
}

/// The client id recorded for an assertion whose subject cannot be read.
pub const UNIDENTIFIED: &str = "(unidentified)";

/// The counters a client's failures go to: its address, and the client from that address.
/// There is no client-wide counter: failures from elsewhere never refuse a client's correct
/// credential from its own network.
pub fn throttle_keys(client_id: &str, client: &ClientInfo) -> Vec<String> {
    use portcullis_core::throttle::ThrottleKey;
    vec![
        ThrottleKey::Address(client.ip.clone()).render(),
        ThrottleKey::ClientAddress(client_id.to_owned(), client.ip.clone()).render(),
    ]
}

/// The answer to a client whose failures from this address must wait: 429 with
/// `Retry-After` (`slow_down` is the device grant's polling code, not this).
pub fn throttled_client(wait: i64) -> OAuthError {
    OAuthError::throttled(
        "invalid_client",
        format!("too many failed attempts from this address; try again in {wait} seconds"),
        wait,
    )
}

/// A client that authenticated.
pub struct Authenticated {
    pub principal: portcullis_store::accounts::Principal,
    /// The request's throttle keys (for a failure found later, a replayed assertion).
    pub keys: Vec<String>,
    /// For `private_key_jwt`: the assertion whose `jti` must be recorded with the outcome.
    pub assertion: Option<crate::services::client_assertion::VerifiedAssertion>,
}

impl Authenticated {
    pub fn method(&self) -> &'static str {
        if self.assertion.is_some() {
            "private_key_jwt"
        } else {
            "client_secret"
        }
    }

    /// Audit details of how the client authenticated.
    pub fn details(&self) -> serde_json::Value {
        match &self.assertion {
            Some(a) => serde_json::json!({
                "auth_method": self.method(), "key_id": a.key_id, "assertion_jti": a.accepted.jti,
            }),
            None => serde_json::json!({ "auth_method": self.method() }),
        }
    }
}

/// The values of an assertion's `aud` that name this server: the token endpoint and the issuer.
fn assertion_audiences(state: &AppState) -> [String; 2] {
    let iss = &state.tokens.issuer;
    [format!("{iss}/oauth2/token"), iss.clone()]
}

/// Records a failed client authentication: the audit event with its reason and one more
/// failure on each throttle key, in one write. The caller sees `invalid_client`.
async fn refuse(
    state: &AppState,
    client: &ClientInfo,
    id: &str,
    keys: Vec<String>,
    failure: ClientAuthFailure,
    purpose: &str,
) -> OAuthError {
    // A person's account used as a client is worth an alert (interactive identities have no
    // client credentials), and so are right credentials from the wrong network (a stolen one?).
    let alert = matches!(
        failure,
        ClientAuthFailure::NotAServiceAccount | ClientAuthFailure::NetworkNotAllowed
    );
    let now = OffsetDateTime::now_utc();
    // Checked after the credential (which is cheap to check, and a correct one is never
    // refused for failures): while this address must wait, a failure is audited but not
    // counted further, and answered 429.
    let wait = match crate::services::signin::throttle_wait(state, &keys, now).await {
        Ok(w) => w,
        Err(e) => return e.into(),
    };
    let change = if wait > 0 {
        Change::None
    } else {
        Change::RecordFailures {
            keys,
            at_us: us(now),
        }
    };
    let reason = if wait > 0 {
        "throttled"
    } else {
        failure.reason()
    };
    let written = state
        .store
        .write(
            change,
            vec![crate::services::tokens::client_event(
                id,
                Outcome::Failure,
                reason,
                &client.ip,
                serde_json::json!({ "purpose": purpose, "alert": alert, "failure": failure.reason() }),
            )],
        )
        .await;
    match written {
        Ok(_) if wait > 0 => throttled_client(wait),
        Ok(_) => match failure {
            // How to fix an assertion the client made wrong; never who or which key exists.
            ClientAuthFailure::Assertion(f) => match f.public_description() {
                Some(d) => OAuthError::new("invalid_client", d),
                None => OAuthError::invalid_client(),
            },
            _ => OAuthError::invalid_client(),
        },
        Err(e) => e.into(),
    }
}

/// The key a verified client secret is cached under: SHA-256 over the client id and the
/// secret's own SHA-256, so neither the secret nor its stored hash is held as a key.
fn verified_secret_key(client_id: &str, secret: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(
        u64::try_from(client_id.len())
            .unwrap_or(u64::MAX)
            .to_be_bytes(),
    );
    h.update(client_id.as_bytes());
    h.update(portcullis_store::crypto::token_hash(secret));
    h.finalize().into()
}

/// Authenticates the calling client, auditing and throttling failures.
pub async fn authenticate(
    state: &AppState,
    client: &ClientInfo,
    id: String,
    presented: Presented,
    purpose: &str,
) -> Result<Authenticated, OAuthError> {
    let too_long = match &presented {
        Presented::Secret(s) => s.len() > 512,
        Presented::Assertion(a) => a.len() > portcullis_core::client_key::MAX_ASSERTION_LEN,
    };
    if id.is_empty() || id.len() > 128 || too_long {
        return Err(OAuthError::invalid_client());
    }
    // A client id from the request is an identifier: refused before anything is written (a
    // NUL once failed a whole group-commit batch on PostgreSQL).
    if portcullis_core::text::has_invisible(&id) {
        return Err(OAuthError::invalid_request(
            "client_id must not contain control, bidirectional or invisible characters",
        ));
    }
    let now = OffsetDateTime::now_utc();
    let keys = throttle_keys(&id, client);
    let outcome = match &presented {
        Presented::Secret(secret) => state
            .caches
            .client_secrets
            .get_or_load(
                &verified_secret_key(&id, secret),
                crate::services::tokens::authenticate_client(&state.store, &id, secret),
            )
            .await
            .map(|principal| (principal, None)),
        Presented::Assertion(_) if id == UNIDENTIFIED => {
            Err(ClientAuthFailure::Assertion(AssertionFailure::Malformed))
        }
        Presented::Assertion(assertion) => {
            let [endpoint, issuer] = assertion_audiences(state);
            crate::services::client_assertion::verify(
                &state.store,
                &id,
                assertion,
                &[endpoint.as_str(), issuer.as_str()],
                now,
            )
            .await
            .map(|v| (v.principal.clone(), Some(v)))
        }
    };
    // Right credentials from outside the account's networks are refused like wrong ones (the
    // caller learns nothing), after the credential check so the answer takes the same path.
    let outcome = match outcome {
        Ok((principal, assertion)) => {
            let networks = state
                .caches
                .networks
                .get_or_load(
                    &principal.id,
                    crate::services::service_accounts::allowed_networks(state, &principal.id),
                )
                .await?;
            let from = client.ip.parse::<std::net::IpAddr>().ok();
            if from.is_some_and(|ip| networks.allows(ip)) {
                Ok((principal, assertion))
            } else {
                Err(ClientAuthFailure::NetworkNotAllowed)
            }
        }
        Err(f) => Err(f),
    };
    match outcome {
        Ok((principal, assertion)) => Ok(Authenticated {
            principal,
            keys,
            assertion,
        }),
        Err(f) => Err(refuse(state, client, &id, keys, f, purpose).await),
    }
}

/// Writes the outcome of an authenticated request (`change` and `events`) together with the
/// record of its assertion's `jti`, if any. A `jti` recorded already is a replay: nothing of the
/// outcome is written, the failure is recorded instead, and the caller sees `invalid_client`.
pub async fn commit(
    state: &AppState,
    client: &ClientInfo,
    auth: &Authenticated,
    purpose: &str,
    change: Change,
    events: Vec<NewAuditEvent>,
) -> Result<(), OAuthError> {
    let Some(a) = &auth.assertion else {
        state.store.write(change, events).await?;
        return Ok(());
    };
    let used = Change::UseClientAssertion {
        principal_id: auth.principal.id.clone(),
        jti: a.accepted.jti.clone(),
        expires_at_us: us(a.accepted.keep_until),
        at_us: us(OffsetDateTime::now_utc()),
    };
    match state
        .store
        .write(Change::Many(vec![used, change]), events)
        .await
    {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict(_)) => Err(refuse(
            state,
            client,
            &auth.principal.name,
            auth.keys.clone(),
            ClientAuthFailure::Assertion(AssertionFailure::Replayed),
            purpose,
        )
        .await),
        Err(e) => Err(e.into()),
    }
}

/// For introspection and revocation: an assertion is used up like at the token endpoint, with
/// an event saying what it was used for. A client secret needs no write.
pub async fn commit_assertion_use(
    state: &AppState,
    client: &ClientInfo,
    auth: &Authenticated,
    purpose: &str,
) -> Result<(), OAuthError> {
    if auth.assertion.is_none() {
        return Ok(());
    }
    let mut details = auth.details();
    if let Some(d) = details.as_object_mut() {
        d.insert("purpose".into(), purpose.into());
    }
    let ev = crate::services::tokens::client_event(
        &auth.principal.name,
        Outcome::Success,
        "authenticated",
        &client.ip,
        details,
    );
    commit(state, client, auth, purpose, Change::None, vec![ev]).await
}

/// Authenticates a registered OpenID Connect client by its secret (or none, for a public
/// client). Failures are audited and counted against the caller's address and the client at
/// that address; not against the client id alone, which anyone may present, so that nobody can
/// throttle a public client away from its users.
pub async fn authenticate_registered(
    state: &AppState,
    client: &ClientInfo,
    id: String,
    secret: Option<String>,
) -> Result<portcullis_store::oidc::OAuthClient, OAuthError> {
    if id.is_empty() || id.len() > 128 || secret.as_ref().is_some_and(|s| s.len() > 512) {
        return Err(OAuthError::invalid_client());
    }
    if portcullis_core::text::has_invisible(&id) {
        return Err(OAuthError::invalid_request(
            "client_id must not contain control, bidirectional or invisible characters",
        ));
    }
    let now = OffsetDateTime::now_utc();
    let keys = throttle_keys(&id, client);
    let event = |reason: &str| {
        NewAuditEvent::new(
            format!("client:{id}"),
            "oauth.client_authentication",
            format!("client:{id}"),
        )
        .outcome(Outcome::Failure)
        .details(serde_json::json!({ "reason": reason, "client_ip": client.ip }))
    };
    // The credential first (cheap, and a correct one is never refused for failures); a
    // failure from an address that must wait is audited and answered 429.
    match crate::services::clients::authenticate(state, &id, secret.as_deref()).await {
        Ok(c) => Ok(c),
        Err(f) => {
            let wait = crate::services::signin::throttle_wait(state, &keys, now).await?;
            if wait > 0 {
                state.store.append(event("throttled")).await?;
                return Err(throttled_client(wait));
            }
            state
                .store
                .write(
                    Change::RecordFailures {
                        keys,
                        at_us: us(now),
                    },
                    vec![event(f.reason())],
                )
                .await?;
            Err(OAuthError::invalid_client())
        }
    }
}
