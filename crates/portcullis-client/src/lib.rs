//! Typed HTTP client of the Portcullis API, used by the CLI and by the end-to-end tests.
//!
//! Every API error comes back as [`ClientError::Api`] with the server's stable code, so callers
//! match on codes, never on messages. The bearer credential is a `SecretString` and is never
//! printed.

#![deny(clippy::unwrap_used)]

use portcullis_core::api::{
    ActivationRequestView, AssignmentView, CreateActivationRequest, CreateAssignmentRequest,
    CreateRoleRequest, DecisionRequest, DeviceDecisionRequest, RoleSettingsUpdate,
    RoleSettingsView, RoleView, SigningKeyRotated, SigningKeyView,
};
use portcullis_core::api::{
    AddClientKeyRequest, ClientKeyView, ClientSecretIssued, ConsentRequest, NetworksRequest,
    ServiceAccountDetail,
};
use portcullis_core::api::{
    AlertChannelView, AlertRuleView, AlertView, CreateAlertChannelRequest, CreateAlertRuleRequest,
};
use portcullis_core::api::{
    BootstrapRequest, CheckpointCreated, CheckpointRequest, CreateGroupRequest,
    CreateServiceAccountRequest, CreateUserRequest, ErrorBody, EventPage, FactorView,
    GroupMemberRequest, GroupView, Health, PasswordChangeRequest, PasswordSignInRequest, Ready,
    ServiceAccountView, SessionView, SignInResponse, TotpConfirmRequest, TotpEnrolRequest,
    TotpEnrolment, TotpSignInRequest, UserView, VerifyResult, WebauthnChallenge,
    WebauthnFinishRequest, WebauthnRegisterRequest, WebauthnSignInRequest, WhoAmI,
};
use portcullis_core::api::{
    BreakGlassCreated, BreakGlassEnrolment, BreakGlassFailedRecovery, BreakGlassView,
    CreateBreakGlassRequest, DrillRecorded, RotateBreakGlassRequest,
};
use portcullis_core::api::{
    CaImportRequest, CaImportResult, CaLocationRequest, CaLocationView, CaPolicyView,
    CaStateRequest, WhatIfRequest,
};
use portcullis_core::api::{ClientCreated, ClientView, CreateClientRequest};
use portcullis_core::api::{MakeEligibleRequest, ReauthRequest, Reauthenticated};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error body.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The server could not be reached or the connection failed.
    #[error("cannot reach the server at {url}: {reason}")]
    Transport { url: String, reason: String },
    /// The server answered something that is not the API.
    #[error("unexpected answer from the server (HTTP {status})")]
    Unexpected { status: u16 },
    #[error("invalid server URL {0:?}")]
    InvalidUrl(String),
}

impl ClientError {
    /// The stable error code, for API errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, for API errors and unexpected answers.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Unexpected { status } => Some(*status),
            _ => None,
        }
    }
}

/// Filters for [`Client::audit_events`].
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub outcome: Option<String>,
    /// RFC 3339.
    pub since: Option<String>,
    /// RFC 3339.
    pub until: Option<String>,
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<SecretString>,
    /// For a client that keeps its own tokens fresh ([`Client::with_refresh_token`]).
    refreshing: Option<std::sync::Arc<Refreshing>>,
}

/// Tokens a long-running client keeps fresh by itself: the access token is refreshed
/// [`REFRESH_AHEAD`] before it expires, and once more after a `401`; the refresh token rotates
/// on every use and the newest is handed to `on_rotate` so it can be persisted.
struct Refreshing {
    state: tokio::sync::Mutex<TokenState>,
    on_rotate: Option<OnRotate>,
}

struct TokenState {
    access: SecretString,
    refresh: SecretString,
    expires_at: std::time::Instant,
}

/// The first `Portcullis-Setup` notice any client of this process received.
static SETUP_NOTICE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The server's setup notice (the tenant lacks its two break-glass accounts), if any answer in
/// this process carried one; the CLI prints it after every command.
pub fn setup_notice() -> Option<&'static str> {
    SETUP_NOTICE.get().map(String::as_str)
}

/// Called with each new refresh token, to persist it (the one before is used up).
pub type OnRotate = Box<dyn Fn(&str) + Send + Sync>;

/// How long before its expiry an access token is refreshed.
pub const REFRESH_AHEAD: std::time::Duration = std::time::Duration::from_secs(60);

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(base_url: &str, token: Option<SecretString>) -> Result<Self, ClientError> {
        let base = base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::InvalidUrl(base_url.to_owned()));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("portcullis-client/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .map_err(|e| ClientError::Transport {
                url: base.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            base,
            http,
            token,
            refreshing: None,
        })
    }

    /// A client that keeps its tokens fresh by itself, for scripts that run for hours:
    /// `access` (valid `expires_in` seconds more) is refreshed with `refresh` before it
    /// expires and after a `401`; every rotated refresh token is passed to `on_rotate`.
    pub fn with_refresh_token(
        base_url: &str,
        access: SecretString,
        expires_in: std::time::Duration,
        refresh: SecretString,
        on_rotate: Option<OnRotate>,
    ) -> Result<Self, ClientError> {
        let mut c = Self::new(base_url, None)?;
        c.refreshing = Some(std::sync::Arc::new(Refreshing {
            state: tokio::sync::Mutex::new(TokenState {
                access,
                refresh,
                expires_at: std::time::Instant::now() + expires_in,
            }),
            on_rotate,
        }));
        Ok(c)
    }

    /// The access token to send now, refreshed first when it is due (or `force`d, after a
    /// 401 with `stale` as the token that was refused).
    async fn fresh_access(
        &self,
        r: &Refreshing,
        stale: Option<&str>,
    ) -> Result<SecretString, ClientError> {
        let mut st = r.state.lock().await;
        let refused_now = stale.is_some_and(|s| s == st.access.expose_secret());
        let due = st
            .expires_at
            .saturating_duration_since(std::time::Instant::now())
            <= REFRESH_AHEAD;
        if due || refused_now {
            let t = self.refresh(st.refresh.expose_secret()).await?;
            let next = t
                .refresh_token
                .ok_or(ClientError::Unexpected { status: 200 })?;
            if let Some(cb) = &r.on_rotate {
                cb(&next);
            }
            st.access = SecretString::from(t.access_token);
            st.refresh = SecretString::from(next);
            st.expires_at = std::time::Instant::now()
                + std::time::Duration::from_secs(t.expires_in.max(0) as u64);
        }
        Ok(st.access.clone())
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, format!("{}{}", self.base, path));
        match &self.token {
            Some(t) => rb.bearer_auth(t.expose_secret()),
            None => rb,
        }
    }

    /// The same client with another bearer credential.
    pub fn with_token(&self, token: Option<SecretString>) -> Self {
        Self {
            base: self.base.clone(),
            http: self.http.clone(),
            token,
            refreshing: None,
        }
    }

    /// Sends and decodes; an empty success body (204) decodes as JSON `null`, i.e. `()`.
    async fn send<T: DeserializeOwned>(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let transport = |e: reqwest::Error| ClientError::Transport {
            url: self.base.clone(),
            reason: transport_reason(&e),
        };
        let resp = match &self.refreshing {
            None => rb.send().await.map_err(transport)?,
            Some(r) => {
                let mut req = rb.build().map_err(transport)?;
                let access = self.fresh_access(r, None).await?;
                set_bearer(&mut req, &access)?;
                let retry = req.try_clone();
                let resp = self.http.execute(req).await.map_err(transport)?;
                match retry {
                    // Refused although fresh (revoked, key rotated): refresh once and retry.
                    Some(mut again) if resp.status() == reqwest::StatusCode::UNAUTHORIZED => {
                        let access = self.fresh_access(r, Some(access.expose_secret())).await?;
                        set_bearer(&mut again, &access)?;
                        self.http.execute(again).await.map_err(transport)?
                    }
                    _ => resp,
                }
            }
        };
        let status = resp.status();
        if let Some(n) = resp
            .headers()
            .get("portcullis-setup")
            .and_then(|v| v.to_str().ok())
        {
            let _ = SETUP_NOTICE.set(n.to_owned());
        }
        let bytes = resp.bytes().await.map_err(|e| ClientError::Transport {
            url: self.base.clone(),
            reason: transport_reason(&e),
        })?;
        if status.is_success() {
            if bytes.is_empty() {
                return serde_json::from_value(serde_json::Value::Null).map_err(|_| {
                    ClientError::Unexpected {
                        status: status.as_u16(),
                    }
                });
            }
            return serde_json::from_slice(&bytes).map_err(|_| ClientError::Unexpected {
                status: status.as_u16(),
            });
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => Err(ClientError::Api {
                status: status.as_u16(),
                code: b.error.code,
                message: b.error.message,
            }),
            Err(_) => Err(ClientError::Unexpected {
                status: status.as_u16(),
            }),
        }
    }

    pub async fn health(&self) -> Result<Health, ClientError> {
        self.send(self.request(reqwest::Method::GET, "/healthz"))
            .await
    }

    pub async fn ready(&self) -> Result<Ready, ClientError> {
        self.send(self.request(reqwest::Method::GET, "/readyz"))
            .await
    }

    pub async fn audit_events(&self, f: &EventFilter) -> Result<EventPage, ClientError> {
        let mut q: Vec<(&str, String)> = Vec::new();
        let opts = [
            ("actor", &f.actor),
            ("action", &f.action),
            ("target", &f.target),
            ("outcome", &f.outcome),
            ("since", &f.since),
            ("until", &f.until),
        ];
        for (k, v) in opts {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        }
        if let Some(a) = f.after {
            q.push(("after", a.to_string()));
        }
        if let Some(l) = f.limit {
            q.push(("limit", l.to_string()));
        }
        self.send(
            self.request(reqwest::Method::GET, "/api/v1/audit/events")
                .query(&q),
        )
        .await
    }

    pub async fn audit_verify(&self) -> Result<VerifyResult, ClientError> {
        self.send(self.request(reqwest::Method::GET, "/api/v1/audit/verify"))
            .await
    }

    /// Verifies the chain and that the server's database holds these anchored checkpoints
    /// (at most [`portcullis_core::api::MAX_VERIFY_ANCHORS`]).
    pub async fn audit_verify_anchored(
        &self,
        anchors: Vec<portcullis_core::audit::AnchorRecord>,
    ) -> Result<VerifyResult, ClientError> {
        let body = portcullis_core::api::VerifyRequest { anchors };
        self.send(
            self.request(reqwest::Method::POST, "/api/v1/audit/verify")
                .json(&body),
        )
        .await
    }

    pub async fn audit_checkpoint(&self, reason: &str) -> Result<CheckpointCreated, ClientError> {
        let body = CheckpointRequest {
            reason: reason.to_owned(),
        };
        self.send(
            self.request(reqwest::Method::POST, "/api/v1/audit/checkpoints")
                .json(&body),
        )
        .await
    }
}

macro_rules! endpoints {
    ($( $(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $method:ident $path:expr $(, body $body:expr)? ;)*) => {
        impl Client {
            $(
                $(#[$m])*
                pub async fn $name(&self, $($arg: $ty),*) -> Result<$ret, ClientError> {
                    #[allow(unused_mut)]
                    let mut rb = self.request(reqwest::Method::$method, &$path);
                    $( rb = rb.json(&$body); )?
                    endpoints!(@send self, rb, $ret)
                }
            )*
        }
    };
    (@send $self:ident, $rb:ident, $ret:ty) => { $self.send($rb).await };
}

/// A path segment, percent-encoded.
fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

endpoints! {
    /// Redeem the bootstrap token and create the first administrator.
    fn bootstrap(req: &BootstrapRequest) -> UserView = POST "/api/v1/bootstrap", body req;
    /// Sign in, first step.
    fn signin_password(req: &PasswordSignInRequest) -> SignInResponse = POST "/api/v1/signin", body req;
    /// Sign in, second step.
    fn signin_totp(req: &TotpSignInRequest) -> SignInResponse = POST "/api/v1/signin/totp", body req;
    /// Start a WebAuthn sign-in (after the password, or passwordless).
    fn signin_webauthn(req: &WebauthnSignInRequest) -> WebauthnChallenge = POST "/api/v1/signin/webauthn", body req;
    /// Finish a WebAuthn sign-in with the authenticator's answer.
    fn signin_webauthn_finish(req: &WebauthnFinishRequest) -> SignInResponse = POST "/api/v1/signin/webauthn/finish", body req;
    fn signout() -> () = POST "/api/v1/signout";
    fn whoami() -> WhoAmI = GET "/api/v1/me";
    fn mfa_list() -> Vec<FactorView> = GET "/api/v1/me/mfa";
    fn mfa_enrol_totp(req: &TotpEnrolRequest) -> TotpEnrolment = POST "/api/v1/me/mfa/totp", body req;
    fn mfa_confirm_totp(id: &str, req: &TotpConfirmRequest) -> FactorView = POST format!("/api/v1/me/mfa/totp/{}/confirm", seg(id)), body req;
    fn mfa_webauthn_register(req: &WebauthnRegisterRequest) -> WebauthnChallenge = POST "/api/v1/me/mfa/webauthn", body req;
    fn mfa_webauthn_register_finish(req: &WebauthnFinishRequest) -> FactorView = POST "/api/v1/me/mfa/webauthn/finish", body req;
    fn mfa_remove(id: &str) -> () = DELETE format!("/api/v1/me/mfa/{}", seg(id));
    fn change_password(req: &PasswordChangeRequest) -> () = POST "/api/v1/me/password", body req;
    /// A fresh proof in this session (password and TOTP code, or a WebAuthn answer).
    fn reauth(req: &ReauthRequest) -> Reauthenticated = POST "/api/v1/me/reauth", body req;
    /// A WebAuthn challenge for [`Client::reauth`].
    fn reauth_webauthn() -> WebauthnChallenge = POST "/api/v1/me/reauth/webauthn";
    fn sessions() -> Vec<SessionView> = GET "/api/v1/sessions";
    fn revoke_session(id: &str) -> () = DELETE format!("/api/v1/sessions/{}", seg(id));
    fn create_user(req: &CreateUserRequest) -> UserView = POST "/api/v1/users", body req;
    fn users() -> Vec<UserView> = GET "/api/v1/users";
    fn user(name: &str) -> UserView = GET format!("/api/v1/users/{}", seg(name));
    fn disable_user(name: &str) -> UserView = POST format!("/api/v1/users/{}/disable", seg(name));
    fn enable_user(name: &str) -> UserView = POST format!("/api/v1/users/{}/enable", seg(name));
    fn user_sessions(name: &str) -> Vec<SessionView> = GET format!("/api/v1/users/{}/sessions", seg(name));
    fn create_group(req: &CreateGroupRequest) -> GroupView = POST "/api/v1/groups", body req;
    fn groups() -> Vec<GroupView> = GET "/api/v1/groups";
    fn add_group_member(group: &str, req: &GroupMemberRequest) -> GroupView = POST format!("/api/v1/groups/{}/members", seg(group)), body req;
    fn remove_group_member(group: &str, member: &str) -> GroupView = DELETE format!("/api/v1/groups/{}/members/{}", seg(group), seg(member));
    fn create_service_account(req: &CreateServiceAccountRequest) -> ServiceAccountView = POST "/api/v1/service-accounts", body req;
    fn service_accounts() -> Vec<ServiceAccountView> = GET "/api/v1/service-accounts";
    fn service_account(name: &str) -> ServiceAccountDetail = GET format!("/api/v1/service-accounts/{}", seg(name));
    fn add_client_secret(name: &str) -> ClientSecretIssued = POST format!("/api/v1/service-accounts/{}/secrets", seg(name));
    fn remove_client_secret(name: &str, id: &str) -> () = DELETE format!("/api/v1/service-accounts/{}/secrets/{}", seg(name), seg(id));
    fn set_networks(name: &str, req: &NetworksRequest) -> ServiceAccountDetail = PUT format!("/api/v1/service-accounts/{}/networks", seg(name)), body req;
    fn consent(name: &str, req: &ConsentRequest) -> ServiceAccountDetail = POST format!("/api/v1/service-accounts/{}/consent", seg(name)), body req;
    fn add_client_key(name: &str, req: &AddClientKeyRequest) -> ClientKeyView = POST format!("/api/v1/service-accounts/{}/keys", seg(name)), body req;
    fn remove_client_key(name: &str, key_id: &str) -> () = DELETE format!("/api/v1/service-accounts/{}/keys/{}", seg(name), seg(key_id));
    /// Register an OpenID Connect client; a confidential one's first secret is in the answer, once.
    fn create_oidc_client(req: &CreateClientRequest) -> ClientCreated = POST "/api/v1/clients", body req;
    fn oidc_clients() -> Vec<ClientView> = GET "/api/v1/clients";
    /// One OpenID Connect client, by client id or name.
    fn oidc_client(id: &str) -> ClientView = GET format!("/api/v1/clients/{}", seg(id));
    fn delete_oidc_client(id: &str) -> () = DELETE format!("/api/v1/clients/{}", seg(id));
    /// Add a secret to a confidential OpenID Connect client (shown once; at most two live).
    fn add_oidc_client_secret(id: &str) -> ClientSecretIssued = POST format!("/api/v1/clients/{}/secrets", seg(id));
    fn remove_oidc_client_secret(id: &str, secret_id: &str) -> () = DELETE format!("/api/v1/clients/{}/secrets/{}", seg(id), seg(secret_id));
    fn signing_keys() -> Vec<SigningKeyView> = GET "/api/v1/keys";
    /// Rotate the signing key; with `previous`, only if that key is still the active one.
    fn rotate_signing_key(previous: Option<&str>) -> SigningKeyRotated = POST match previous {
        Some(p) => format!("/api/v1/keys/rotate?previous={}", seg(p)),
        None => "/api/v1/keys/rotate".to_owned(),
    };
    /// Approve the device code a CLI showed (`portcullis login` elsewhere).
    fn approve_device(req: &DeviceDecisionRequest) -> () = POST "/api/v1/device/approve", body req;
    fn deny_device(req: &DeviceDecisionRequest) -> () = POST "/api/v1/device/deny", body req;
    fn roles() -> Vec<RoleView> = GET "/api/v1/roles";
    fn role(slug: &str) -> RoleView = GET format!("/api/v1/roles/{}", seg(slug));
    fn create_role(req: &CreateRoleRequest) -> RoleView = POST "/api/v1/roles", body req;
    fn delete_role(slug: &str) -> () = DELETE format!("/api/v1/roles/{}", seg(slug));
    fn role_settings(slug: &str) -> RoleSettingsView = GET format!("/api/v1/roles/{}/settings", seg(slug));
    fn update_role_settings(slug: &str, req: &RoleSettingsUpdate) -> RoleSettingsView = PUT format!("/api/v1/roles/{}/settings", seg(slug)), body req;
    fn assignments() -> Vec<AssignmentView> = GET "/api/v1/assignments";
    /// Live assignments of one principal (`NAME`, `user:NAME`, `group:NAME`, …).
    fn assignments_of(principal: &str) -> Vec<AssignmentView> = GET format!("/api/v1/assignments?principal={}", seg(principal));
    fn create_assignment(req: &CreateAssignmentRequest) -> AssignmentView = POST "/api/v1/assignments", body req;
    fn delete_assignment(id: &str) -> () = DELETE format!("/api/v1/assignments/{}", seg(id));
    /// Turn a live active assignment into an eligible one (the holder may do it themselves).
    fn make_eligible(id: &str, req: &MakeEligibleRequest) -> AssignmentView = POST format!("/api/v1/assignments/{}/make-eligible", seg(id)), body req;
    fn request_activation(req: &CreateActivationRequest) -> ActivationRequestView = POST "/api/v1/requests", body req;
    /// `view` is `mine`, `to_approve` or `all`.
    fn requests(view: &str, state: Option<&str>) -> Vec<ActivationRequestView> = GET match state {
        Some(st) => format!("/api/v1/requests?view={}&state={}", seg(view), seg(st)),
        None => format!("/api/v1/requests?view={}", seg(view)),
    };
    fn activation_request(id: &str) -> ActivationRequestView = GET format!("/api/v1/requests/{}", seg(id));
    fn approve(id: &str, req: &DecisionRequest) -> ActivationRequestView = POST format!("/api/v1/requests/{}/approve", seg(id)), body req;
    fn deny(id: &str, req: &DecisionRequest) -> ActivationRequestView = POST format!("/api/v1/requests/{}/deny", seg(id)), body req;
    fn cancel_request(id: &str, req: &DecisionRequest) -> ActivationRequestView = POST format!("/api/v1/requests/{}/cancel", seg(id)), body req;
    fn deactivate(id: &str, req: &DecisionRequest) -> ActivationRequestView = POST format!("/api/v1/requests/{}/deactivate", seg(id)), body req;
    fn revoke_grant(id: &str, req: &DecisionRequest) -> ActivationRequestView = POST format!("/api/v1/requests/{}/revoke", seg(id)), body req;
    /// Add an alert channel (email, webhook or SMS); the answer never holds a secret.
    fn create_alert_channel(req: &CreateAlertChannelRequest) -> AlertChannelView = POST "/api/v1/alerts/channels", body req;
    fn alert_channels() -> Vec<AlertChannelView> = GET "/api/v1/alerts/channels";
    /// Remove an alert channel; its undelivered messages are dead-lettered.
    fn remove_alert_channel(name: &str) -> () = DELETE format!("/api/v1/alerts/channels/{}", seg(name));
    /// Queue a test message on a channel (follow it with [`Client::alert`]).
    fn test_alert_channel(name: &str) -> AlertView = POST format!("/api/v1/alerts/channels/{}/test", seg(name));
    /// Alerts and notifications, newest first; `state` is `pending`, `delivered` or `dead`.
    fn alerts(state: Option<&str>) -> Vec<AlertView> = GET match state {
        Some(st) => format!("/api/v1/alerts?state={}", seg(st)),
        None => "/api/v1/alerts".to_owned(),
    };
    /// One alert with every delivery attempt.
    fn alert(id: &str) -> AlertView = GET format!("/api/v1/alerts/{}", seg(id));
    /// Put a dead-lettered alert back in the queue.
    fn retry_alert(id: &str) -> AlertView = POST format!("/api/v1/alerts/{}/retry", seg(id));
    /// Alert rules: the built-in ones (`builtin`) and the custom ones (`custom:NAME`).
    fn alert_rules() -> Vec<AlertRuleView> = GET "/api/v1/alerts/rules";
    /// Add a custom alert rule; the server validates every field.
    fn create_alert_rule(req: &CreateAlertRuleRequest) -> AlertRuleView = POST "/api/v1/alerts/rules", body req;
    /// Remove a custom rule (`NAME` or `custom:NAME`); built-in rules cannot be removed.
    fn remove_alert_rule(name: &str) -> () = DELETE format!("/api/v1/alerts/rules/{}", seg(name));
    /// Conditional-access policies, by name.
    fn ca_policies() -> Vec<CaPolicyView> = GET "/api/v1/ca/policies";
    fn ca_policy(name: &str) -> CaPolicyView = GET format!("/api/v1/ca/policies/{}", seg(name));
    /// Create or replace policies by name, all or nothing (validated and lockout-guarded).
    fn ca_import(req: &CaImportRequest) -> CaImportResult = POST "/api/v1/ca/policies", body req;
    /// Enable, disable or switch a policy to report-only.
    fn ca_set_state(name: &str, req: &CaStateRequest) -> CaPolicyView = POST format!("/api/v1/ca/policies/{}/state", seg(name)), body req;
    fn ca_delete(name: &str) -> () = DELETE format!("/api/v1/ca/policies/{}", seg(name));
    fn ca_locations() -> Vec<CaLocationView> = GET "/api/v1/ca/locations";
    /// Create or replace a named location.
    fn ca_set_location(req: &CaLocationRequest) -> CaLocationView = POST "/api/v1/ca/locations", body req;
    /// Remove a named location (refused while a policy uses it).
    fn ca_remove_location(name: &str) -> () = DELETE format!("/api/v1/ca/locations/{}", seg(name));
    /// How the policies would decide a sign-in, with an explanation per policy.
    fn ca_whatif(req: &WhatIfRequest) -> serde_json::Value = POST "/api/v1/ca/whatif", body req;
    /// Create a break-glass account (see `CreateBreakGlassRequest`).
    fn create_breakglass(req: &CreateBreakGlassRequest) -> BreakGlassCreated = POST "/api/v1/breakglass", body req;
    fn breakglass_accounts() -> Vec<BreakGlassView> = GET "/api/v1/breakglass";
    /// Re-split a password account; its old shares stop working and its sessions end.
    fn rotate_breakglass(name: &str, req: &RotateBreakGlassRequest) -> BreakGlassView = POST format!("/api/v1/breakglass/{}/rotate", seg(name)), body req;
    /// A new enrolment token for a FIDO2 account without a security key (earlier ones end).
    fn breakglass_enrolment(name: &str) -> BreakGlassEnrolment = POST format!("/api/v1/breakglass/{}/enrolment", seg(name));
    /// Record a drill with this client's token (the break-glass account's fresh session).
    fn record_drill() -> DrillRecorded = POST "/api/v1/breakglass/drill";
    /// Report a failed recovery of an account's password from shares (it alerts).
    fn report_breakglass_failure(name: &str, req: &BreakGlassFailedRecovery) -> () = POST format!("/api/v1/breakglass/{}/failed-recovery", seg(name)), body req;
}

fn set_bearer(req: &mut reqwest::Request, token: &SecretString) -> Result<(), ClientError> {
    let value =
        reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| ClientError::Unexpected { status: 0 })?;
    req.headers_mut()
        .insert(reqwest::header::AUTHORIZATION, value);
    Ok(())
}

fn transport_reason(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connection refused or unreachable".to_owned()
    } else if e.is_timeout() {
        "timed out".to_owned()
    } else {
        "connection error".to_owned()
    }
}

/// The answer of the device authorization endpoint (RFC 8628 §3.2).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct DeviceStart {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: i64,
    pub interval: i64,
}

/// Tokens from the token endpoint.
#[derive(Clone, serde::Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: String,
}

/// The CLI's public client id.
pub const CLI_CLIENT_ID: &str = "portcullis-cli";
/// The device grant's `grant_type`.
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

impl Client {
    /// `POST /oauth2/...` with a form; OAuth errors become [`ClientError::Api`] whose code is
    /// the OAuth `error` (`authorization_pending`, `slow_down`, `invalid_grant`, …).
    async fn oauth_form<T: DeserializeOwned>(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<T, ClientError> {
        let resp = self
            .http
            .post(format!("{}{}", self.base, path))
            .form(form)
            .send()
            .await
            .map_err(|e| ClientError::Transport {
                url: self.base.clone(),
                reason: transport_reason(&e),
            })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| ClientError::Transport {
            url: self.base.clone(),
            reason: transport_reason(&e),
        })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|_| ClientError::Unexpected {
                status: status.as_u16(),
            });
        }
        match serde_json::from_slice::<OAuthErrorBody>(&bytes) {
            Ok(b) => Err(ClientError::Api {
                status: status.as_u16(),
                code: b.error,
                message: b.error_description,
            }),
            Err(_) => Err(ClientError::Unexpected {
                status: status.as_u16(),
            }),
        }
    }

    /// Starts the device grant for the CLI.
    pub async fn device_authorize(&self) -> Result<DeviceStart, ClientError> {
        self.oauth_form(
            "/oauth2/device_authorization",
            &[("client_id", CLI_CLIENT_ID)],
        )
        .await
    }

    /// One poll for the device grant's tokens.
    pub async fn device_token(&self, device_code: &str) -> Result<Tokens, ClientError> {
        self.oauth_form(
            "/oauth2/token",
            &[
                ("grant_type", DEVICE_GRANT),
                ("client_id", CLI_CLIENT_ID),
                ("device_code", device_code),
            ],
        )
        .await
    }

    /// Revokes one of the CLI's tokens (RFC 7009; a refresh token ends its whole family).
    pub async fn revoke_cli_token(&self, token: &str) -> Result<(), ClientError> {
        let resp = self
            .http
            .post(format!("{}/oauth2/revoke", self.base))
            .form(&[("client_id", CLI_CLIENT_ID), ("token", token)])
            .send()
            .await
            .map_err(|e| ClientError::Transport {
                url: self.base.clone(),
                reason: transport_reason(&e),
            })?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(ClientError::Unexpected {
                status: resp.status().as_u16(),
            })
        }
    }

    /// Trades a refresh token for new tokens (the refresh token rotates: keep the new one).
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, ClientError> {
        self.oauth_form(
            "/oauth2/token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", CLI_CLIENT_ID),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }
}
