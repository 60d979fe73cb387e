//! Stable error codes shared by every layer.
//!
//! An [`ErrorCode`] is what API callers and scripts match on; its string form never changes once
//! released. Messages are for people and may change; they never carry internals or secrets.

use serde::{Deserialize, Serialize};

/// A stable, machine-readable error code (`snake_case` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    NotFound,
    MethodNotAllowed,
    Unauthenticated,
    Forbidden,
    InvalidJson,
    UnsupportedMediaType,
    PayloadTooLarge,
    InvalidRequest,
    Conflict,
    Unavailable,
    Internal,
    InvalidCredentials,
    AccountDisabled,
    TooManyAttempts,
    InvalidCode,
    CodeReplayed,
    PasswordPolicy,
    AlreadyExists,
    MfaEnrolmentRequired,
    LastFactor,
    BootstrapUnavailable,
    WebauthnFailed,
    StepUpRequired,
    JustificationRequired,
    TicketRequired,
    DurationTooLong,
    SelfApproval,
    AlreadyDecided,
    NotEligible,
    InvalidPublicKey,
    BreakGlassMinimum,
    BreakGlassCredential,
    CaLockout,
    CaBlocked,
    CaRequirement,
    SelfAssignment,
    EligibleOnly,
    PrivilegedPrincipal,
    LastGlobalAdministrator,
    ReauthRequired,
    NotGrantable,
    /// A request rate limit or connection cap (`429`, with `Retry-After`).
    RateLimited,
    /// The request body did not arrive in time (`408`).
    RequestTimeout,
}

impl ErrorCode {
    /// The wire form, e.g. `invalid_json`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::AccountDisabled => "account_disabled",
            ErrorCode::TooManyAttempts => "too_many_attempts",
            ErrorCode::InvalidCode => "invalid_code",
            ErrorCode::CodeReplayed => "code_replayed",
            ErrorCode::PasswordPolicy => "password_policy",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::MfaEnrolmentRequired => "mfa_enrolment_required",
            ErrorCode::LastFactor => "last_factor",
            ErrorCode::BootstrapUnavailable => "bootstrap_unavailable",
            ErrorCode::WebauthnFailed => "webauthn_failed",
            ErrorCode::StepUpRequired => "step_up_required",
            ErrorCode::JustificationRequired => "justification_required",
            ErrorCode::TicketRequired => "ticket_required",
            ErrorCode::DurationTooLong => "duration_too_long",
            ErrorCode::SelfApproval => "self_approval",
            ErrorCode::AlreadyDecided => "already_decided",
            ErrorCode::NotEligible => "not_eligible",
            ErrorCode::InvalidPublicKey => "invalid_public_key",
            ErrorCode::BreakGlassMinimum => "breakglass_minimum",
            ErrorCode::BreakGlassCredential => "breakglass_credential",
            ErrorCode::CaLockout => "ca_lockout",
            ErrorCode::CaBlocked => "ca_blocked",
            ErrorCode::CaRequirement => "ca_requirement",
            ErrorCode::SelfAssignment => "self_assignment",
            ErrorCode::EligibleOnly => "eligible_only",
            ErrorCode::PrivilegedPrincipal => "privileged_principal",
            ErrorCode::LastGlobalAdministrator => "last_global_administrator",
            ErrorCode::ReauthRequired => "reauth_required",
            ErrorCode::NotGrantable => "not_grantable",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::RequestTimeout => "request_timeout",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
