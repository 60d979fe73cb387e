//! Stable error codes shared by every layer.
//!
//! An [`ErrorCode`] is what API callers and scripts match on; its string form never changes once
//! released. Messages are for people and may change; they never carry internals or secrets.

use serde::{Deserialize, Serialize};

/// Declares the codes once: the enum, its wire strings and the list of all of them.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident => $wire:literal,)+) => {
        /// A stable, machine-readable error code (`snake_case` on the wire).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ErrorCode {
            $($(#[$doc])* #[serde(rename = $wire)] $variant,)+
        }

        impl ErrorCode {
            /// Every code, in declaration order (tests walk it: one HTTP status per code).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The wire form, e.g. `invalid_json`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $wire,)+
                }
            }
        }
    };
}

error_codes! {
    NotFound => "not_found",
    MethodNotAllowed => "method_not_allowed",
    Unauthenticated => "unauthenticated",
    Forbidden => "forbidden",
    InvalidJson => "invalid_json",
    UnsupportedMediaType => "unsupported_media_type",
    PayloadTooLarge => "payload_too_large",
    InvalidRequest => "invalid_request",
    Conflict => "conflict",
    Unavailable => "unavailable",
    Internal => "internal",
    InvalidCredentials => "invalid_credentials",
    AccountDisabled => "account_disabled",
    TooManyAttempts => "too_many_attempts",
    InvalidCode => "invalid_code",
    CodeReplayed => "code_replayed",
    PasswordPolicy => "password_policy",
    AlreadyExists => "already_exists",
    MfaEnrolmentRequired => "mfa_enrolment_required",
    LastFactor => "last_factor",
    BootstrapUnavailable => "bootstrap_unavailable",
    WebauthnFailed => "webauthn_failed",
    StepUpRequired => "step_up_required",
    JustificationRequired => "justification_required",
    TicketRequired => "ticket_required",
    DurationTooLong => "duration_too_long",
    SelfApproval => "self_approval",
    /// A reviewer decided an access-review item of their own access (`403`).
    SelfReview => "self_review",
    AlreadyDecided => "already_decided",
    NotEligible => "not_eligible",
    InvalidPublicKey => "invalid_public_key",
    BreakGlassMinimum => "breakglass_minimum",
    BreakGlassCredential => "breakglass_credential",
    CaLockout => "ca_lockout",
    CaBlocked => "ca_blocked",
    CaRequirement => "ca_requirement",
    SelfAssignment => "self_assignment",
    EligibleOnly => "eligible_only",
    PrivilegedPrincipal => "privileged_principal",
    LastGlobalAdministrator => "last_global_administrator",
    ReauthRequired => "reauth_required",
    NotGrantable => "not_grantable",
    /// The caller holds no active grant where one is needed (an SSH certificate, `403`).
    NoActiveGrant => "no_active_grant",
    /// The change weakens the PAM's protection: it was not applied but recorded as a change
    /// request that another top-tier person approves, or that takes effect after the
    /// cooling-off (`403`; the message names the request).
    ChangePending => "change_pending",
    /// A request rate limit or connection cap (`429`, with `Retry-After`).
    RateLimited => "rate_limited",
    /// The request body did not arrive in time (`408`).
    RequestTimeout => "request_timeout",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn wire_forms_are_unique_and_match_serde() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code:?} repeats a wire form");
            let json = serde_json::to_string(code).expect("json");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
