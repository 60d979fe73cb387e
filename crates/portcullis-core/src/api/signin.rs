//! Bootstrap, sign-in, sessions, second factors and WebAuthn ceremonies.

use serde::{Deserialize, Serialize};

use super::accounts::UserView;
use super::roles::ActiveRoleView;

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
