//! Token signing keys and the device grant.

use serde::{Deserialize, Serialize};

api_type! {
    /// A token signing key (public facts only).
    pub struct SigningKeyView {
        pub key_id: String,
        /// `EdDSA`, `ES256` or `RS256`; one key of each is active.
        #[serde(default)]
        pub algorithm: String,
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
    /// `POST /api/v1/device/approve|deny`: the code `portcullis login` showed.
    pub struct DeviceDecisionRequest {
        pub user_code: String,
    }
}
