//! Who is calling: the bearer credential of a request.
//!
//! Three kinds of credential exist: the tenant's bootstrap token (until it is redeemed; it may
//! read and verify the audit log), session tokens from sign-in (both 256-bit random values
//! looked up by their SHA-256), and access tokens (EdDSA JWTs from the token endpoint, for
//! the CLI after the device grant and for service accounts). A session is accepted only while
//! it is unrevoked, within its idle and absolute lifetimes, and its user is enabled; a
//! registration-only session is accepted only where [`Caller::require_full`] is not asked.
//! An access token is accepted only with a valid signature of a current key, unexpired,
//! unrevoked, and while its subject is enabled; its permissions come from the subject's grants
//! *now* (read from the store), never from the roles written in the token, so ending a grant
//! takes effect at once. Its strength is its `acr`; a service account's client credentials
//! count as `mfa` (a non-human credential with no weaker form), and `auth_time` feeds step-up.

use portcullis_core::audit::NewAuditEvent;
use portcullis_core::error::ErrorCode;
use portcullis_core::roles::{Grant, Scope, permits};
use portcullis_core::session::{AuthStrength, SessionScope};
use portcullis_store::Change;
use portcullis_store::accounts::{Principal, Session};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::state::AppState;
use crate::time_us::{from_us, us};

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Caller {
    Bootstrap,
    Session(Box<SessionCaller>),
}

#[derive(Debug, Clone)]
pub struct SessionCaller {
    pub session: Session,
    pub principal: Principal,
    pub strength: AuthStrength,
    pub scope: SessionScope,
    /// The grants in effect when the request arrived (active assignments and activations).
    pub grants: Vec<Grant>,
    /// The assignments that applied when the request arrived, eligible and active, direct or
    /// through a role-assignable group (the grants above come from these and the active
    /// requests); an activation finds its eligibility here instead of reading it again.
    pub assignments: Vec<portcullis_store::roles::Assignment>,
}

impl SessionCaller {
    /// Whether the caller presented an access token (a JWT) rather than a session token.
    pub fn is_access_token(&self) -> bool {
        self.session.id.starts_with(ACCESS_TOKEN_SESSION)
    }
}

/// The prefix of the session id given to callers with an access token.
const ACCESS_TOKEN_SESSION: &str = "at:";

/// Where a request came from.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// The client address after trusted-proxy resolution (crate::http::edge::client).
    pub ip: String,
    pub user_agent: String,
}

impl Caller {
    /// The actor name written in audit events.
    pub fn actor(&self) -> String {
        match self {
            Caller::Bootstrap => "bootstrap-token".to_owned(),
            Caller::Session(s)
                if s.principal.kind == portcullis_core::principal::PrincipalKind::User =>
            {
                format!("user:{}", s.principal.name)
            }
            Caller::Session(s) => format!("{}:{}", s.principal.kind, s.principal.name),
        }
    }

    /// A signed-in user with a full (not registration-only) session.
    pub fn require_full(&self) -> Result<&SessionCaller, ApiError> {
        match self {
            Caller::Session(s) if s.scope == SessionScope::Full => Ok(s),
            Caller::Session(_) => Err(ApiError::new(
                ErrorCode::MfaEnrolmentRequired,
                "enrol a second factor (portcullis mfa enroll totp) and sign in again",
            )),
            Caller::Bootstrap => Err(ApiError::new(
                ErrorCode::Forbidden,
                "the bootstrap token cannot do this; sign in",
            )),
        }
    }

    /// Any signed-in user (registration-only sessions included).
    pub fn require_session(&self) -> Result<&SessionCaller, ApiError> {
        match self {
            Caller::Session(s) => Ok(s),
            Caller::Bootstrap => Err(ApiError::new(
                ErrorCode::Forbidden,
                "the bootstrap token cannot do this; sign in",
            )),
        }
    }

    /// A caller holding `permission` at the tenant scope, signed in with a second factor.
    pub fn require(&self, permission: &str) -> Result<&SessionCaller, ApiError> {
        self.require_at(permission, &Scope::tenant())
    }

    /// A caller holding `permission` at `scope` (or above), signed in with a second factor.
    pub fn require_at(&self, permission: &str, scope: &Scope) -> Result<&SessionCaller, ApiError> {
        let s = self.require_full()?;
        if s.strength < AuthStrength::Mfa {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "this needs a session signed in with a second factor",
            ));
        }
        if permits(&s.grants, permission, scope) {
            Ok(s)
        } else {
            Err(forbidden(permission, scope))
        }
    }

    /// Whether the caller holds `permission` at the tenant scope (no error).
    pub fn holds(&self, permission: &str) -> bool {
        self.require(permission).is_ok()
    }

    /// The bootstrap token (before it is redeemed) or a holder of `permission`: the audit log.
    pub fn require_bootstrap_or(&self, permission: &str) -> Result<(), ApiError> {
        match self {
            Caller::Bootstrap => Ok(()),
            other => other.require(permission).map(|_| ()),
        }
    }
}

/// The refusal for a missing permission: names it, and how to get it.
pub fn forbidden(permission: &str, scope: &Scope) -> ApiError {
    ApiError::new(
        ErrorCode::Forbidden,
        format!(
            "this needs the permission {permission} at {scope}; activate an eligible role that has it (portcullis request ROLE)",
            scope = scope.as_str()
        ),
    )
}

/// How often a session's last-seen time is written at most.
const TOUCH_EVERY_US: i64 = 60_000_000;

/// The caller behind a bearer token (already taken from the `Authorization` header, trimmed,
/// non-empty and at most 8 KiB): an access token, a session token or the bootstrap token.
pub async fn caller_from_bearer(
    state: &AppState,
    token: &str,
    client_ip: &str,
    now: OffsetDateTime,
) -> Result<Caller, ApiError> {
    if token.contains('.') {
        return access_token_caller(state, token, client_ip, now).await;
    }
    if token.len() > 512 {
        return Err(ApiError::unauthenticated());
    }
    if let Some(s) = session_caller(state, token, now).await? {
        return Ok(Caller::Session(Box::new(s)));
    }
    if state.store.bootstrap_token_valid(token, now).await? {
        return Ok(Caller::Bootstrap);
    }
    Err(ApiError::unauthenticated())
}

/// The caller behind a session token: `None` when no session has this token, an
/// `unauthenticated` error when it has ended (revoked, idle, too old, user disabled).
pub async fn session_caller(
    state: &AppState,
    token: &str,
    now: OffsetDateTime,
) -> Result<Option<SessionCaller>, ApiError> {
    let hash = portcullis_store::crypto::token_hash(token);
    let Some((session, principal)) = state.store.session_by_token_hash(&hash).await? else {
        return Ok(None);
    };
    let scope = SessionScope::parse(&session.scope).ok_or_else(ApiError::unauthenticated)?;
    let strength = session.strength;
    let alive = session.revoked_at_us.is_none()
        && session.ends_at_us.is_none_or(|end| us(now) < end)
        && principal.enabled
        && state.lifetimes.alive(
            from_us(session.created_at_us),
            from_us(session.last_seen_us),
            scope,
            now,
        );
    if !alive {
        return Err(ApiError::new(
            ErrorCode::Unauthenticated,
            "the session has ended; sign in again",
        ));
    }
    if us(now) - session.last_seen_us > TOUCH_EVERY_US {
        let store = state.store.clone();
        let id = session.id.clone();
        tokio::spawn(async move {
            let _ = store
                .write(Change::TouchSession { id, at_us: us(now) }, vec![])
                .await;
        });
    }
    let (grants, assignments) =
        crate::services::grants::grants_and_assignments(state, &principal.id, now).await?;
    Ok(Some(SessionCaller {
        session,
        principal,
        strength,
        scope,
        grants,
        assignments,
    }))
}

/// A caller from an access token (see the module's invariants).
async fn access_token_caller(
    state: &AppState,
    token: &str,
    client_ip: &str,
    now: OffsetDateTime,
) -> Result<Caller, ApiError> {
    let ended = || {
        ApiError::new(
            ErrorCode::Unauthenticated,
            "the access token is not valid (expired, revoked or unknown); get a new one",
        )
    };
    let claims = state.tokens.verify(token).ok_or_else(ended)?;
    let principal = crate::services::tokens::live_subject(state, &claims)
        .await?
        .ok_or_else(ended)?;
    // Tokens of OpenID Connect clients are for userinfo and the client's own resource
    // servers: an application a person signed in to must not act as them here.
    let own = claims.client_id == portcullis_core::device::CLI_CLIENT_ID
        || (principal.kind == portcullis_core::principal::PrincipalKind::ServiceAccount
            && claims.client_id == principal.name);
    if !own {
        return Err(ApiError::new(
            ErrorCode::Unauthenticated,
            "this access token was issued to an application; the Portcullis API accepts only tokens of the CLI and service accounts",
        ));
    }
    let strength = match claims.acr.as_str() {
        "client_credentials"
            if principal.kind == portcullis_core::principal::PrincipalKind::ServiceAccount =>
        {
            AuthStrength::Mfa
        }
        other => AuthStrength::parse(other).ok_or_else(ended)?,
    };
    let session = Session {
        id: format!("{ACCESS_TOKEN_SESSION}{}", claims.jti),
        principal_id: principal.id.clone(),
        strength,
        scope: "full".to_owned(),
        created_at_us: claims.iat.saturating_mul(1_000_000),
        last_seen_us: us(now),
        strong_auth_at_us: Some(
            claims
                .auth_time
                .unwrap_or(claims.iat)
                .saturating_mul(1_000_000),
        ),
        client_ip: client_ip.to_owned(),
        user_agent: String::new(),
        revoked_at_us: None,
        ends_at_us: Some(claims.exp.saturating_mul(1_000_000)),
    };
    let (grants, assignments) =
        crate::services::grants::grants_and_assignments(state, &principal.id, now).await?;
    Ok(Caller::Session(Box::new(SessionCaller {
        session,
        principal,
        strength,
        scope: SessionScope::Full,
        grants,
        assignments,
    })))
}

/// An audit event for an action by `caller`.
pub fn event(caller: &Caller, action: &str, target: impl Into<String>) -> NewAuditEvent {
    NewAuditEvent::new(caller.actor(), action, target)
}
