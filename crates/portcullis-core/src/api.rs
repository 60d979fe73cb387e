//! Shapes of the HTTP API shared by the server (which serialises them and describes them in
//! OpenAPI with the `openapi` feature) and the client (which deserialises them), so the two
//! can never drift apart.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

use crate::audit::{AnchorRecord, AuditEvent, ChainFault, ChainReport, Verification};

/// The one error body of the API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable, machine-readable code.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ready {
    pub status: String,
    pub database: String,
    pub backend: String,
    pub schema_version: i64,
    /// Whether the tenant is fully set up (absent before the tenant exists).
    #[serde(default)]
    pub tenant: Option<TenantReadiness>,
}

/// The tenant's setup state: it stays `setup` until at least two usable break-glass accounts
/// exist; drills older than the configured age are listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantReadiness {
    /// `setup` or `ready`.
    pub state: String,
    /// Usable break-glass accounts (enabled, with their credential and Global Administrator).
    pub breakglass_accounts: i64,
    pub breakglass_required: i64,
    /// How many break-glass accounts' last drill (or creation) is older than the drill age
    /// (their names: `GET /api/v1/breakglass`, for holders of `breakglass.read`).
    pub drills_overdue: i64,
    /// What to do, for people (absent when nothing is to do).
    #[serde(default)]
    pub notice: Option<String>,
}

/// One audit event as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEventView {
    pub seq: i64,
    /// RFC 3339, UTC, microsecond precision.
    pub time: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl From<AuditEvent> for AuditEventView {
    fn from(e: AuditEvent) -> Self {
        Self {
            seq: e.seq,
            time: e.time().format(&Rfc3339).unwrap_or_default(),
            actor: e.actor,
            action: e.action,
            target: e.target,
            outcome: e.outcome.as_str().to_owned(),
            details: e.details,
            prev_hash: hex::encode(e.prev_hash),
            hash: hex::encode(e.hash),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventPage {
    pub events: Vec<AuditEventView>,
    /// Pass as `after` to get the next page; absent at the end.
    pub next_after: Option<i64>,
}

/// Result of walking the chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyResult {
    /// True when every link and checkpoint is intact.
    pub ok: bool,
    /// Events walked (when ok).
    pub events: Option<i64>,
    pub last_hash: Option<String>,
    /// Signed checkpoints matched along the way (when not ok: before the fault).
    pub checkpoints: Option<usize>,
    /// First bad sequence number (when not ok).
    pub first_bad_seq: Option<i64>,
    /// What is wrong there.
    pub problem: Option<String>,
    /// Stable code of what is wrong (when not ok), e.g. `checkpoint_gap`,
    /// `too_many_uncheckpointed_events`, `anchored_checkpoint_missing`.
    #[serde(default)]
    pub reason: Option<String>,
    /// Checkpoints written before chaining (schema 0016), verified as a legacy prefix.
    #[serde(default)]
    pub legacy_checkpoints: Option<usize>,
    /// Sequence number of the newest checkpoint.
    #[serde(default)]
    pub last_checkpoint_seq: Option<i64>,
    /// Events after the newest checkpoint.
    #[serde(default)]
    pub events_after_last_checkpoint: Option<i64>,
    /// Anchored checkpoints given and found identical in the database.
    #[serde(default)]
    pub anchors_matched: Option<usize>,
    /// The newest of them: the database provably holds everything up to it.
    #[serde(default)]
    pub anchored_seq: Option<i64>,
}

impl VerifyResult {
    pub fn from_outcome(r: Result<ChainReport, ChainFault>) -> Self {
        match r {
            Ok(report) => Self::from_verification(Verification {
                report,
                fault: None,
            }),
            Err(f) => Self {
                ok: false,
                events: None,
                last_hash: None,
                checkpoints: None,
                first_bad_seq: Some(f.seq()),
                reason: Some(f.code().to_owned()),
                problem: Some(f.to_string()),
                legacy_checkpoints: None,
                last_checkpoint_seq: None,
                events_after_last_checkpoint: None,
                anchors_matched: None,
                anchored_seq: None,
            },
        }
    }

    pub fn from_verification(v: Verification) -> Self {
        let r = v.report;
        let ok = v.fault.is_none();
        Self {
            ok,
            events: ok.then_some(r.events),
            last_hash: ok.then_some(r.last_hash),
            checkpoints: Some(r.checkpoints),
            first_bad_seq: v.fault.as_ref().map(ChainFault::seq),
            problem: v.fault.as_ref().map(ToString::to_string),
            reason: v.fault.as_ref().map(|f| f.code().to_owned()),
            legacy_checkpoints: Some(r.legacy_checkpoints),
            last_checkpoint_seq: r.last_checkpoint_seq,
            events_after_last_checkpoint: ok.then_some(r.events_after_last_checkpoint),
            anchors_matched: Some(r.anchors_matched),
            anchored_seq: r.anchored_seq,
        }
    }
}

/// Most anchor records one `POST /api/v1/audit/verify` takes. The newest anchored checkpoint
/// alone pins the whole chain before it (events through the hash chain, checkpoints through
/// their links), so the CLI sends the newest ones.
pub const MAX_VERIFY_ANCHORS: usize = 100;

/// Body of `POST /api/v1/audit/verify`: verify the chain and prove that the database still
/// holds these anchored checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// Lines of an `audit_anchor_file` (at most 100).
    pub anchors: Vec<AnchorRecord>,
}

/// Body of `POST /api/v1/audit/checkpoints`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CheckpointRequest {
    /// Why (recorded in the audit event), e.g. "before backup".
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckpointCreated {
    /// Sequence number of the audit event recording the request; the checkpoint covers it.
    pub seq: i64,
    pub hash: String,
}

macro_rules! api_type {
    ($(#[$m:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(deny_unknown_fields)]
        pub struct $name { $($body)* }
    };
}

api_type! {
    /// `POST /api/v1/bootstrap`: redeem the bootstrap token and create the first administrator.
    /// The client generates the TOTP secret, shows it to the person, and sends it with a code
    /// that proves their authenticator has it.
    pub struct BootstrapRequest {
        pub token: String,
        pub username: String,
        pub display_name: String,
        #[serde(default)]
        pub email: Option<String>,
        pub password: String,
        /// Base32 (RFC 4648), at least 128 bits.
        pub totp_secret: String,
        pub totp_code: String,
    }
}

api_type! {
    /// `POST /api/v1/users`.
    pub struct CreateUserRequest {
        pub name: String,
        pub display_name: String,
        #[serde(default)]
        pub email: Option<String>,
        #[serde(default)]
        pub phone: Option<String>,
        /// Set for a guest (partner or MSP staff): their home organisation.
        #[serde(default)]
        pub guest_organisation: Option<String>,
        /// May become privileged: needs a 15+ character password and MFA before full sign-in.
        #[serde(default)]
        pub privileged: bool,
        pub password: String,
    }
}

api_type! {
    pub struct UserView {
        pub id: String,
        pub name: String,
        pub display_name: String,
        pub email: Option<String>,
        pub phone: Option<String>,
        /// `member` or `guest`.
        pub kind: String,
        pub guest_organisation: Option<String>,
        pub privileged: bool,
        pub emergency: bool,
        /// Holds Global Administrator from bootstrap (until role assignments exist).
        pub first_admin: bool,
        pub enabled: bool,
        pub created_at: String,
        pub last_sign_in: Option<String>,
        /// Confirmed second factors, by kind.
        pub mfa: Vec<String>,
        /// Groups this user belongs to directly.
        pub groups: Vec<String>,
    }
}

api_type! {
    /// `POST /api/v1/groups`.
    pub struct CreateGroupRequest {
        pub name: String,
        #[serde(default)]
        pub display_name: Option<String>,
        /// Membership changes need a privileged administrator.
        #[serde(default)]
        pub role_assignable: bool,
    }
}

api_type! {
    pub struct GroupView {
        pub id: String,
        pub name: String,
        pub display_name: String,
        pub role_assignable: bool,
        pub members: Vec<String>,
    }
}

api_type! {
    /// `POST /api/v1/groups/{name}/members`.
    pub struct GroupMemberRequest {
        pub member: String,
    }
}

api_type! {
    /// `POST /api/v1/service-accounts`.
    pub struct CreateServiceAccountRequest {
        pub name: String,
        #[serde(default)]
        pub display_name: Option<String>,
        /// A public key (PEM SubjectPublicKeyInfo, Ed25519 or P-256) registered with the
        /// account in the same step, for `private_key_jwt`. Needs `service_accounts.credentials`.
        #[serde(default)]
        pub public_key: Option<String>,
        /// Its key id (the JWT header's `kid`); the RFC 7638 thumbprint when absent.
        #[serde(default)]
        pub key_id: Option<String>,
    }
}

api_type! {
    pub struct ServiceAccountView {
        pub id: String,
        pub name: String,
        pub display_name: String,
        pub enabled: bool,
        pub created_at: String,
    }
}

api_type! {
    /// `POST /api/v1/signin`: first step, the password.
    pub struct PasswordSignInRequest {
        pub username: String,
        pub password: String,
    }
}

api_type! {
    /// `POST /api/v1/signin/totp`: second step.
    pub struct TotpSignInRequest {
        pub signin_id: String,
        pub code: String,
    }
}

api_type! {
    /// The answer to a sign-in step. `status` is `mfa_required` (then `signin_id` and
    /// `factors` are set) or `signed_in` (then `session` is set; its `scope` is
    /// `registration_only` when the account must enrol a second factor first).
    pub struct SignInResponse {
        pub status: String,
        pub signin_id: Option<String>,
        pub factors: Vec<String>,
        pub session: Option<SessionIssued>,
    }
}

api_type! {
    /// A new session. The token is shown once and stored only as a hash.
    pub struct SessionIssued {
        pub token: String,
        pub session_id: String,
        pub strength: String,
        pub scope: String,
        pub expires_at: String,
    }
}

api_type! {
    pub struct SessionView {
        pub id: String,
        pub user: String,
        pub strength: String,
        pub scope: String,
        pub created_at: String,
        pub last_seen: String,
        pub client_ip: String,
        pub user_agent: String,
        /// The session making this request.
        pub current: bool,
    }
}

api_type! {
    /// `GET /api/v1/me`.
    pub struct WhoAmI {
        pub user: UserView,
        pub session: SessionView,
        /// Roles held now, with the time left on each.
        pub roles: Vec<ActiveRoleView>,
        /// Things that need attention, e.g. a standing administrator role.
        pub warnings: Vec<String>,
    }
}

api_type! {
    pub struct FactorView {
        pub id: String,
        pub kind: String,
        pub name: String,
        pub confirmed: bool,
        pub created_at: String,
        pub last_used: Option<String>,
    }
}

api_type! {
    /// `POST /api/v1/me/mfa/totp`.
    pub struct TotpEnrolRequest {
        pub name: String,
    }
}

api_type! {
    /// Shown once: put it in an authenticator app, then confirm with a code.
    pub struct TotpEnrolment {
        pub factor_id: String,
        pub secret: String,
        pub otpauth_uri: String,
    }
}

api_type! {
    /// `POST /api/v1/me/mfa/totp/{id}/confirm`.
    pub struct TotpConfirmRequest {
        pub code: String,
    }
}

api_type! {
    /// `POST /api/v1/me/password`: needs the current password and a fresh second factor:
    /// a TOTP `code`, or (without a code) a session signed in with WebAuthn in the last five
    /// minutes.
    pub struct PasswordChangeRequest {
        pub current_password: String,
        pub new_password: String,
        #[serde(default)]
        pub code: Option<String>,
    }
}

api_type! {
    /// `POST /api/v1/me/reauth`: a fresh proof in the current session, with the password and a
    /// TOTP `code`, or with a WebAuthn answer (`ceremony_id` from
    /// `POST /api/v1/me/reauth/webauthn`, and `credential`). Credential changes need one within
    /// five minutes; it also steps the session up to the strength proven.
    pub struct ReauthRequest {
        #[serde(default)]
        pub password: Option<String>,
        #[serde(default)]
        pub code: Option<String>,
        #[serde(default)]
        pub ceremony_id: Option<String>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        pub credential: Option<serde_json::Value>,
    }
}

api_type! {
    /// The answer to a re-authentication.
    pub struct Reauthenticated {
        /// The session's strength now.
        pub strength: String,
        /// Until when credential changes are allowed without another proof (RFC 3339).
        pub fresh_until: String,
    }
}

api_type! {
    /// `POST /api/v1/me/mfa/webauthn`: start registering a passkey or security key.
    pub struct WebauthnRegisterRequest {
        pub name: String,
    }
}

api_type! {
    /// A WebAuthn ceremony in progress: pass `options` to `navigator.credentials.create()`
    /// (registration) or `.get()` (sign-in) and send the result back with `ceremony_id`
    /// within five minutes. A ceremony can be finished once.
    pub struct WebauthnChallenge {
        pub ceremony_id: String,
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub options: serde_json::Value,
    }
}

api_type! {
    /// `POST /api/v1/me/mfa/webauthn/finish` and `POST /api/v1/signin/webauthn/finish`: the
    /// authenticator's answer (the `PublicKeyCredential` as JSON, binary fields base64url).
    pub struct WebauthnFinishRequest {
        pub ceremony_id: String,
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub credential: serde_json::Value,
    }
}

api_type! {
    /// `POST /api/v1/signin/webauthn`: either `signin_id` (second factor after the password)
    /// or `username` (passwordless), not both.
    pub struct WebauthnSignInRequest {
        #[serde(default)]
        pub signin_id: Option<String>,
        #[serde(default)]
        pub username: Option<String>,
    }
}

api_type! {
    /// A role: built-in or custom, with its permissions.
    pub struct RoleView {
        pub slug: String,
        pub display_name: String,
        pub description: String,
        pub builtin: bool,
        pub permissions: Vec<String>,
    }
}

api_type! {
    /// `POST /api/v1/roles`: a custom role.
    pub struct CreateRoleRequest {
        pub slug: String,
        #[serde(default)]
        pub display_name: Option<String>,
        #[serde(default)]
        pub description: String,
        pub permissions: Vec<String>,
    }
}

api_type! {
    /// A role's settings. Durations in seconds.
    pub struct RoleSettingsView {
        pub role: String,
        pub max_activation_seconds: i64,
        pub required_strength: String,
        pub require_justification: bool,
        pub require_ticket: bool,
        pub require_approval: bool,
        pub approvers: Vec<String>,
        pub approvals_required: u32,
        pub max_eligible_seconds: Option<i64>,
        pub max_active_seconds: Option<i64>,
        pub allow_permanent_active: bool,
        pub notify: Vec<String>,
    }
}

api_type! {
    /// `PUT /api/v1/roles/{role}/settings`: only the fields given change.
    #[derive(Default)]
    pub struct RoleSettingsUpdate {
        #[serde(default)]
        pub max_activation_seconds: Option<i64>,
        #[serde(default)]
        pub required_strength: Option<String>,
        #[serde(default)]
        pub require_justification: Option<bool>,
        #[serde(default)]
        pub require_ticket: Option<bool>,
        #[serde(default)]
        pub require_approval: Option<bool>,
        #[serde(default)]
        pub approvers: Option<Vec<String>>,
        #[serde(default)]
        pub approvals_required: Option<u32>,
        #[serde(default)]
        pub notify: Option<Vec<String>>,
    }
}

api_type! {
    /// An assignment: principal × role × scope, eligible or active, with its time window.
    pub struct AssignmentView {
        pub id: String,
        /// `user:NAME`, `group:NAME` or `service_account:NAME`.
        pub principal: String,
        pub role: String,
        pub scope: String,
        /// `eligible` or `active`.
        pub kind: String,
        pub starts_at: String,
        /// Absent: permanent.
        pub ends_at: Option<String>,
        pub created_by: String,
        pub ended_at: Option<String>,
        pub end_reason: Option<String>,
    }
}

api_type! {
    /// `POST /api/v1/assignments`. `principal` is `NAME` (a user), or `user:NAME`,
    /// `group:NAME`, `service_account:NAME`; `duration_seconds` or `ends_at` (RFC 3339) bound
    /// it, neither means permanent (if the role's settings allow it).
    pub struct CreateAssignmentRequest {
        pub principal: String,
        pub role: String,
        #[serde(default)]
        pub scope: Option<String>,
        /// `eligible` (the default) or `active`.
        #[serde(default)]
        pub kind: Option<String>,
        #[serde(default)]
        pub duration_seconds: Option<i64>,
        #[serde(default)]
        pub ends_at: Option<String>,
    }
}

api_type! {
    /// `POST /api/v1/assignments/{id}/make-eligible`: turn a live active assignment into an
    /// eligible one for the same principal, role and scope (the active one ends in the same
    /// step). `duration_seconds` bounds the eligible assignment; none means permanent, where
    /// the role's settings allow it.
    pub struct MakeEligibleRequest {
        #[serde(default)]
        pub duration_seconds: Option<i64>,
    }
}

api_type! {
    /// `POST /api/v1/requests`: activate an eligible role.
    pub struct CreateActivationRequest {
        pub role: String,
        #[serde(default)]
        pub scope: Option<String>,
        pub duration_seconds: i64,
        #[serde(default)]
        pub justification: Option<String>,
        #[serde(default)]
        pub ticket: Option<String>,
    }
}

api_type! {
    /// An activation request and where it stands.
    pub struct ActivationRequestView {
        pub id: String,
        pub requester: String,
        pub role: String,
        pub scope: String,
        /// `pending_approval`, `active`, `denied`, `cancelled`, `timed_out`, `expired`,
        /// `deactivated` or `revoked`.
        pub state: String,
        pub duration_seconds: i64,
        pub justification: Option<String>,
        pub ticket: Option<String>,
        pub approvals_required: i64,
        pub approvals: Vec<String>,
        pub created_at: String,
        pub times_out_at: Option<String>,
        pub activated_at: Option<String>,
        pub ends_at: Option<String>,
        pub closed_at: Option<String>,
        pub closed_by: Option<String>,
        pub close_reason: Option<String>,
    }
}

api_type! {
    /// `POST /api/v1/requests/{id}/approve|deny|cancel|deactivate|revoke`.
    #[derive(Default)]
    pub struct DecisionRequest {
        #[serde(default)]
        pub reason: Option<String>,
    }
}

api_type! {
    /// A token signing key (public facts only).
    pub struct SigningKeyView {
        pub key_id: String,
        pub created_at: String,
        /// Whether it signs new tokens now.
        pub active: bool,
        /// For a retired key: when it leaves JWKS (its last token has expired by then).
        #[serde(default)]
        pub published_until: Option<String>,
        /// Whether verifiers may meet it now (in JWKS).
        pub published: bool,
    }
}

api_type! {
    /// The answer to a rotation.
    pub struct SigningKeyRotated {
        pub key_id: String,
        pub previous_key_id: String,
        /// When the previous key leaves JWKS.
        pub previous_published_until: String,
    }
}

api_type! {
    /// An active role of the caller, for `whoami`.
    pub struct ActiveRoleView {
        pub role: String,
        pub scope: String,
        /// Absent: permanent.
        pub ends_at: Option<String>,
        pub seconds_left: Option<i64>,
        /// `assignment:ID` or `request:ID`.
        pub source: String,
    }
}

api_type! {
    /// A live client secret (never the secret itself).
    pub struct ClientSecretView {
        pub id: String,
        pub created_at: String,
        pub created_by: String,
    }
}

api_type! {
    /// Consent to one application permission, with who gave it.
    pub struct ConsentView {
        pub permission: String,
        pub granted_by: String,
        pub granted_at: String,
    }
}

api_type! {
    /// A service account with its credentials and consents.
    pub struct ServiceAccountDetail {
        pub account: ServiceAccountView,
        /// The OAuth `client_id`: the account's name.
        pub client_id: String,
        pub secrets: Vec<ClientSecretView>,
        /// Live public keys for `private_key_jwt`.
        pub keys: Vec<ClientKeyView>,
        pub consents: Vec<ConsentView>,
        /// Networks it may authenticate from (CIDRs); empty: any.
        #[serde(default)]
        pub allowed_networks: Vec<String>,
    }
}

api_type! {
    /// A public key of a service account (`private_key_jwt`).
    pub struct ClientKeyView {
        /// The `kid` its assertions carry.
        pub key_id: String,
        /// `EdDSA` or `ES256`.
        pub algorithm: String,
        /// RFC 7638 JWK thumbprint (SHA-256).
        pub thumbprint: String,
        pub created_at: String,
        pub created_by: String,
    }
}

api_type! {
    /// `POST /api/v1/service-accounts/{name}/keys`.
    pub struct AddClientKeyRequest {
        /// PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`), Ed25519 or P-256.
        pub public_key: String,
        /// The `kid`; the RFC 7638 thumbprint when absent.
        #[serde(default)]
        pub key_id: Option<String>,
    }
}

api_type! {
    /// A new client secret: shown once, stored only as a hash.
    pub struct ClientSecretIssued {
        pub id: String,
        pub client_id: String,
        pub client_secret: String,
    }
}

api_type! {
    /// `POST /api/v1/service-accounts/{name}/consent`.
    pub struct ConsentRequest {
        pub permissions: Vec<String>,
    }
}

api_type! {
    /// `POST /api/v1/device/approve|deny`: the code `portcullis login` showed.
    pub struct DeviceDecisionRequest {
        pub user_code: String,
    }
}

api_type! {
    /// `PUT /api/v1/service-accounts/{name}/networks`: the CIDRs (IPv4 or IPv6) the account may
    /// authenticate from; an empty list lifts the restriction.
    pub struct NetworksRequest {
        pub cidrs: Vec<String>,
    }
}

api_type! {
    /// `POST /api/v1/clients`: register an OpenID Connect client (relying party).
    pub struct CreateClientRequest {
        /// A unique name shown on the consent page (letters, digits, `-`, `_`, `.`, spaces).
        pub name: String,
        /// Exact redirect URIs: https, or http on a loopback address only.
        pub redirect_uris: Vec<String>,
        /// A public client (single-page or native app) gets no secret; PKCE binds its codes.
        #[serde(default)]
        pub public: bool,
    }
}

api_type! {
    /// A registered OpenID Connect client.
    pub struct ClientView {
        pub client_id: String,
        pub name: String,
        /// `confidential` or `public`.
        pub kind: String,
        pub redirect_uris: Vec<String>,
        pub created_by: String,
        pub created_at: String,
        /// Live client secrets (ids only; confidential clients).
        pub secrets: Vec<ClientSecretView>,
    }
}

api_type! {
    /// A client as registered, with its first secret shown once (confidential clients).
    pub struct ClientCreated {
        pub client: ClientView,
        #[serde(default)]
        pub client_secret: Option<String>,
    }
}

api_type! {
    /// `POST /api/v1/alerts/channels`: a channel alerts are delivered through. Which fields
    /// apply depends on `kind`; secrets never appear here except the webhook's HMAC key,
    /// which is sealed at rest and never shown again.
    pub struct CreateAlertChannelRequest {
        pub name: String,
        /// `email`, `webhook` or `sms`.
        pub kind: String,
        /// The least severity delivered (`info`, `warning`, `critical`; default `info`).
        /// Critical alerts go to every channel whatever its threshold.
        #[serde(default)]
        pub min_severity: Option<String>,
        /// email: `smtp://HOST:PORT` (plain, for a local relay), `smtp://HOST:PORT?tls=required`
        /// (STARTTLS) or `smtps://HOST:PORT` (implicit TLS). No credentials in the URL.
        #[serde(default)]
        pub smtp_url: Option<String>,
        /// email: the SMTP user; the password is read from the environment variable
        /// `password_env` names, at delivery time.
        #[serde(default)]
        pub smtp_username: Option<String>,
        #[serde(default)]
        pub password_env: Option<String>,
        /// email: the sender address.
        #[serde(default)]
        pub from: Option<String>,
        /// email: addresses; sms: E.164 numbers.
        #[serde(default)]
        pub to: Vec<String>,
        /// email: this channel also carries notifications to people (requests to approvers,
        /// decisions to requesters), to the addresses on their accounts.
        #[serde(default)]
        pub notifications: bool,
        /// webhook, sms: the URL (https, or http on loopback).
        #[serde(default)]
        pub url: Option<String>,
        /// webhook: `generic` (the default; the alert and its event as JSON) or `slack`
        /// (`{"text": …}`, also accepted by Teams incoming webhooks).
        #[serde(default)]
        pub shape: Option<String>,
        /// webhook: a key for the `X-Portcullis-Signature` HMAC-SHA256 header.
        #[serde(default)]
        pub secret: Option<String>,
        /// sms: `POST` (default) or `GET`.
        #[serde(default)]
        pub method: Option<String>,
        /// sms: request headers; a value `env:NAME` is read from the environment at delivery.
        #[serde(default)]
        pub headers: std::collections::BTreeMap<String, String>,
        /// sms: the body, with `{to}` and `{message}` (escaped for the content type).
        #[serde(default)]
        pub template: Option<String>,
    }
}

api_type! {
    /// An alert channel (no secret values).
    pub struct AlertChannelView {
        pub name: String,
        pub kind: String,
        pub min_severity: String,
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub config: serde_json::Value,
        /// Whether a webhook signing key is set.
        pub signed: bool,
        pub created_by: String,
        pub created_at: String,
    }
}

api_type! {
    /// One delivery attempt of an alert.
    pub struct AlertAttemptView {
        pub attempt: i64,
        pub worker: String,
        pub started_at: String,
        pub finished_at: String,
        /// `delivered` or `failed`.
        pub outcome: String,
        #[serde(default)]
        pub detail: Option<String>,
    }
}

api_type! {
    /// An alert (or notification) message and its delivery state.
    pub struct AlertView {
        pub id: String,
        /// `alert` or `notification`.
        pub kind: String,
        /// The rule (alerts) or topic (notifications).
        pub topic: String,
        #[serde(default)]
        pub severity: Option<String>,
        #[serde(default)]
        pub channel: Option<String>,
        pub recipient: String,
        /// `pending`, `delivered`, `dead`, or `suppressed` (an SMS over the channel's hourly
        /// cap: not sent, and counted in the next one that is).
        pub state: String,
        pub attempts: i64,
        pub created_at: String,
        pub next_attempt_at: String,
        #[serde(default)]
        pub delivered_at: Option<String>,
        #[serde(default)]
        pub last_error: Option<String>,
        /// The human text of the alert.
        pub text: String,
        /// With `show`: every attempt.
        #[serde(default)]
        pub history: Vec<AlertAttemptView>,
        /// For a summary (due when its window closes): the alerts it stands for.
        #[serde(default)]
        pub summary: Option<AlertSummaryView>,
    }
}

api_type! {
    /// The alerts of one rule and key that came after the first within a window and are
    /// delivered as one summary when the window closes. Lists are bounded.
    pub struct AlertSummaryView {
        pub rule: String,
        /// The target (or a custom rule's group-by key) the alerts are about.
        pub key: String,
        /// `failure` or `success`: the two are summarised apart.
        pub outcome: String,
        /// How many alerts the summary stands for (after the first, delivered at once).
        pub count: i64,
        /// Distinct client addresses among them (at most 100 listed).
        pub addresses: Vec<String>,
        /// More addresses were seen than are listed.
        pub more_addresses: bool,
        pub actors: Vec<String>,
        /// Events per audit action.
        pub actions: std::collections::BTreeMap<String, i64>,
        pub window_start: String,
        pub window_end: String,
    }
}

api_type! {
    /// `POST /api/v1/alerts/rules`: a custom rule — `count` events of `action` (optionally
    /// only with this outcome, actor or target) for one target (or actor) within `window`
    /// raise an alert, at most once per target per window.
    pub struct CreateAlertRuleRequest {
        pub name: String,
        /// An audit action, e.g. `signin.password`.
        pub action: String,
        /// `success` or `failure`; any when absent.
        #[serde(default)]
        pub outcome: Option<String>,
        #[serde(default)]
        pub actor: Option<String>,
        #[serde(default)]
        pub target: Option<String>,
        /// `target` (default) or `actor`.
        #[serde(default)]
        pub group_by: Option<String>,
        pub count: u32,
        /// Like `90s`, `5m`, `8h`, `1d` (at most 7 days).
        pub window: String,
        /// `info`, `warning` (default) or `critical`.
        #[serde(default)]
        pub severity: Option<String>,
    }
}

api_type! {
    /// An alert rule: built-in (cannot be removed) or custom.
    pub struct AlertRuleView {
        pub name: String,
        pub builtin: bool,
        pub severity: String,
        pub description: String,
        #[serde(default)]
        pub created_by: Option<String>,
        #[serde(default)]
        pub created_at: Option<String>,
    }
}

api_type! {
    /// `POST /api/v1/breakglass`: create a break-glass account. For `password`, the client
    /// generated the password (at least 100 characters) and split it among the custodians; the
    /// server keeps only its Argon2id hash and the custody record. For `fido2`, the answer
    /// carries a one-time enrolment token with which the key holder registers the key.
    pub struct CreateBreakGlassRequest {
        pub name: String,
        #[serde(default)]
        pub display_name: Option<String>,
        /// `password` or `fido2`.
        pub credential: String,
        #[serde(default)]
        pub password: Option<String>,
        /// For `password`: the custodians in share order.
        #[serde(default)]
        pub custodians: Vec<String>,
        #[serde(default)]
        pub threshold: Option<u32>,
        /// Allow a threshold of 1 with several custodians (each alone holds the account).
        #[serde(default)]
        pub force: bool,
        /// For `fido2`: who holds the key, and who holds its PIN (two different people).
        #[serde(default)]
        pub key_holder: Option<String>,
        #[serde(default)]
        pub pin_holder: Option<String>,
    }
}

api_type! {
    /// `POST /api/v1/breakglass/{name}/rotate`: a new split password and custody for a
    /// password account (after a use, or when a custodian leaves). Ends its sessions.
    pub struct RotateBreakGlassRequest {
        pub password: String,
        pub custodians: Vec<String>,
        pub threshold: u32,
        #[serde(default)]
        pub force: bool,
    }
}

api_type! {
    /// A break-glass account as `portcullis breakglass list` shows it.
    pub struct BreakGlassView {
        pub name: String,
        pub display_name: String,
        /// `password` or `fido2`.
        pub credential: String,
        pub custodians: Vec<String>,
        /// Shares needed (0 for `fido2`).
        pub threshold: u32,
        #[serde(default)]
        pub key_holder: Option<String>,
        #[serde(default)]
        pub pin_holder: Option<String>,
        pub enabled: bool,
        /// Enabled, holding its credential and its permanent Global Administrator assignment.
        pub usable: bool,
        pub created_by: String,
        pub created_at: String,
        #[serde(default)]
        pub last_drill: Option<String>,
        /// The last sign-in that was not a drill.
        #[serde(default)]
        pub last_use: Option<String>,
        /// The last drill (or the creation, if never drilled) is older than the drill age.
        pub drill_overdue: bool,
    }
}

api_type! {
    /// The answer to creating a break-glass account.
    pub struct BreakGlassCreated {
        pub account: BreakGlassView,
        /// `fido2` only: a registration-only session token for the account, shown once, with
        /// which the key holder registers the security key (`/api/v1/me/mfa/webauthn`).
        #[serde(default)]
        pub enrolment_token: Option<String>,
        pub tenant: TenantReadiness,
    }
}

api_type! {
    /// `POST /api/v1/breakglass/{name}/enrolment`: a new one-time enrolment token for a FIDO2
    /// account without a security key (a registration-only session; earlier ones end).
    pub struct BreakGlassEnrolment {
        pub account: String,
        pub enrolment_token: String,
        pub expires_at: String,
    }
}

api_type! {
    /// `POST /api/v1/breakglass/{name}/failed-recovery`: the CLI could not rebuild the password
    /// from the shares it was given. Recorded as a failed sign-in attempt (and so alerted).
    pub struct BreakGlassFailedRecovery {
        /// `corrupted_share`, `foreign_share`, `wrong_shares`, `too_few_shares` or
        /// `inconsistent_shares`.
        pub reason: String,
    }
}

api_type! {
    /// A drill recorded by `POST /api/v1/breakglass/drill`.
    pub struct DrillRecorded {
        pub account: String,
        pub drill_id: String,
        pub at: String,
    }
}

api_type! {
    /// A conditional-access policy as stored, in the file format of
    /// `portcullis_core::conditional_access::PolicySpec`.
    pub struct CaPolicyView {
        pub name: String,
        /// `enabled`, `report_only` or `disabled`.
        pub state: String,
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub policy: serde_json::Value,
        pub updated_by: String,
        pub updated_at: String,
        /// Why part of the stored policy does not apply as written (an exclusion group that is
        /// not role-assignable: that exclusion is ignored); empty almost always.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub warnings: Vec<String>,
    }
}

api_type! {
    /// `POST /api/v1/ca/policies`: create or replace policies (by name), all or nothing. The
    /// whole resulting set is validated (every problem reported at once) and must pass the
    /// lockout guard; `force` overrides only "you would lock yourself out", and is audited.
    pub struct CaImportRequest {
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
        pub policies: Vec<serde_json::Value>,
        #[serde(default)]
        pub force: bool,
    }
}

api_type! {
    /// What an import changed.
    pub struct CaImportResult {
        pub created: Vec<String>,
        pub updated: Vec<String>,
        pub unchanged: Vec<String>,
    }
}

api_type! {
    /// `POST /api/v1/ca/policies/{name}/state`.
    pub struct CaStateRequest {
        /// `enabled`, `report_only` or `disabled`.
        pub state: String,
        #[serde(default)]
        pub force: bool,
    }
}

api_type! {
    /// `POST /api/v1/ca/locations`: create or replace a named location.
    pub struct CaLocationRequest {
        pub name: String,
        /// IPv4 and IPv6 CIDRs; no overlaps, no host bits.
        pub cidrs: Vec<String>,
        #[serde(default)]
        pub trusted: bool,
        #[serde(default)]
        pub force: bool,
    }
}

api_type! {
    /// A named location and the policies that use it.
    pub struct CaLocationView {
        pub name: String,
        pub cidrs: Vec<String>,
        pub trusted: bool,
        pub used_by: Vec<String>,
        pub updated_by: String,
        pub updated_at: String,
    }
}

api_type! {
    /// `POST /api/v1/ca/whatif`: how the policies would decide a sign-in.
    pub struct WhatIfRequest {
        /// A user or service account name.
        pub user: String,
        /// The client address (IPv4 or IPv6).
        pub ip: String,
        /// `api` (default), `cli` or `client:CLIENT_ID`.
        #[serde(default)]
        pub app: Option<String>,
        /// `password`, `mfa` or `phishing_resistant` (default: the strongest the account has).
        #[serde(default)]
        pub strength: Option<String>,
        /// Hours since the account last authenticated (for sign-in frequency; default 0).
        #[serde(default)]
        pub hours_since_sign_in: Option<u32>,
        /// The authentication flow: `device_code` (default: the one the application is
        /// reached by — the device flow for `cli`, none otherwise; `device_code` alone means
        /// `cli`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub flow: Option<String>,
    }
}
