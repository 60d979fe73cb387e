//! Conditional-access policies, named locations and what-if.

use serde::{Deserialize, Serialize};

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
