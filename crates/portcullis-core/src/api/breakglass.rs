//! Break-glass accounts and their drills.

use serde::{Deserialize, Serialize};

use super::health::TenantReadiness;

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
