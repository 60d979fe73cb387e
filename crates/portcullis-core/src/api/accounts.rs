//! Users, groups, service accounts (with their credentials) and OpenID Connect clients.

use serde::{Deserialize, Serialize};

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
        /// The person's manager (their reviewer in a `managers` access review).
        #[serde(default)]
        pub manager: Option<String>,
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
        /// The algorithm its ID tokens are signed with: `EdDSA` (the default), `ES256` or
        /// `RS256` (OpenID Connect Dynamic Client Registration's name).
        #[serde(default)]
        pub id_token_signed_response_alg: Option<String>,
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
        /// The algorithm its ID tokens are signed with (`EdDSA`, `ES256` or `RS256`).
        #[serde(default)]
        pub id_token_signed_response_alg: String,
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
    /// `POST /api/v1/principals/{name}/contain`.
    pub struct ContainRequest {
        /// Why (recorded and sent with the alert).
        pub reason: String,
        /// Contain a break-glass account even if fewer than two usable would remain (audited).
        #[serde(default)]
        pub force: bool,
    }
}

api_type! {
    /// `POST /api/v1/principals/{name}/release`: ends a containment (the account only).
    pub struct ReleaseRequest {
        /// Why (recorded).
        pub reason: String,
    }
}

api_type! {
    /// A containment and what it cut.
    pub struct ContainmentView {
        pub principal: String,
        /// `user` or `service_account`.
        pub kind: String,
        /// Whether the principal is contained now.
        pub contained: bool,
        /// RFC 3339: when it was contained or released.
        pub at: String,
        /// What was cut (zero on a release: nothing comes back).
        pub sessions: i64,
        pub refresh_tokens: i64,
        /// A service account's client secrets and keys (revoked: issue new ones after a
        /// release).
        pub client_credentials: i64,
        pub pending_requests: i64,
        pub active_requests: i64,
        pub active_assignments: i64,
        /// Target grants whose revoke was written (the target worker applies them).
        pub target_grants: i64,
        pub ssh_certificates: i64,
    }
}
