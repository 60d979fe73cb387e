//! Targets (where grants become real access), role bindings, target operations, observation
//! and reconciliation.

use serde::{Deserialize, Serialize};

api_type! {
    /// `POST /api/v1/targets`: a system where grants are materialised. Which fields apply
    /// depends on `kind`; the secret is sealed under the master key and never shown again.
    pub struct CreateTargetRequest {
        pub name: String,
        /// `postgres`, `webhook` or `ssh-ca`.
        pub kind: String,
        /// postgres: `postgres://USER@HOST:PORT/DB` (no password in it); webhook: where
        /// operations are POSTed (https, or http on loopback); ssh-ca: none.
        #[serde(default)]
        pub url: String,
        /// webhook: where the receiver answers the grants it holds (for drift).
        #[serde(default)]
        pub observe_url: Option<String>,
        /// postgres: the database login of a person, `{user}` for their name (default `{user}`).
        #[serde(default)]
        pub login: Option<String>,
        /// postgres: the connector's password; webhook: the HMAC key (generated when absent and
        /// shown once). Sealed under the master key.
        #[serde(default)]
        pub secret: Option<String>,
        /// Instead of `secret`: a `PORTCULLIS_TARGET_SECRET_*` environment variable that holds it,
        /// read when the connector is used.
        #[serde(default)]
        pub secret_env: Option<String>,
        /// `report` (default): drift is audited and alerted; `revert`: it is also removed.
        #[serde(default)]
        pub drift: Option<String>,
        /// How often the target is reconciled, e.g. `60s` (the default) or `5m`.
        #[serde(default)]
        pub reconcile_interval: Option<String>,
        /// ssh-ca: how certificates are made (a CA key is generated and sealed).
        #[serde(default)]
        pub ssh: Option<SshCaSettings>,
        /// msgraph: the tenant and the app registration (its client secret or certificate is
        /// `secret`; `url` is Graph's base, `https://graph.microsoft.com` when empty; `login`
        /// gives each person's UPN, e.g. `{user}@contoso.onmicrosoft.com`).
        #[serde(default)]
        pub msgraph: Option<MsGraphSettings>,
    }
}

api_type! {
    /// An `msgraph` target's tenant and app registration.
    pub struct MsGraphSettings {
        /// The tenant's id (a GUID) or primary domain.
        pub tenant_id: String,
        /// The app registration's application (client) id.
        pub client_id: String,
        /// The sign-in authority, `https://login.microsoftonline.com` when absent (another for
        /// a sovereign cloud).
        #[serde(default)]
        pub login_base: Option<String>,
        /// The tenant's own break-glass accounts (UPNs): their sign-ins are alerted on, and
        /// the tenant is checked for what Microsoft's guidance asks of them.
        #[serde(default)]
        pub emergency_accounts: Vec<String>,
    }
}

api_type! {
    /// Something about a connected tenant to fix (its emergency accounts, its policies).
    pub struct TenantFindingView {
        /// Stable, e.g. `emergency.not_excluded`.
        pub code: String,
        pub message: String,
    }
}

api_type! {
    /// What every certificate of an `ssh-ca` target carries.
    #[derive(Default)]
    pub struct SshCaSettings {
        /// The longest certificate, e.g. `8h` (the default; at most `24h`). A certificate also
        /// ends with the earliest grant it was made from.
        #[serde(default)]
        pub max_validity: Option<String>,
        /// `source-address`: the addresses or CIDR blocks a certificate may be used from.
        #[serde(default)]
        pub source_address: Vec<String>,
    }
}

api_type! {
    /// `PUT /api/v1/targets/{name}/bindings/{role}` at an `ssh-ca` target: what a certificate
    /// made from the role's grant may do besides log in as its principals.
    #[derive(Default)]
    pub struct SshBindingOptions {
        /// Certificate extensions, e.g. `permit-pty`, `permit-port-forwarding` (default: only
        /// `permit-pty`). A certificate made from several grants gets those all allow.
        #[serde(default)]
        pub extensions: Option<Vec<String>>,
        /// `force-command`: the only command the certificate may run.
        #[serde(default)]
        pub force_command: Option<String>,
    }
}

api_type! {
    /// One CA key of an `ssh-ca` target.
    pub struct SshCaKeyView {
        /// The OpenSSH public key line (for `TrustedUserCAKeys`).
        pub public_key: String,
        /// `SHA256:…`.
        pub fingerprint: String,
        pub created_at: String,
        /// Whether new certificates are signed with it.
        pub signing: bool,
        /// After a rotation: when servers may stop trusting it.
        #[serde(default)]
        pub trusted_until: Option<String>,
    }
}

api_type! {
    /// The CA of an `ssh-ca` target and how servers trust it.
    pub struct SshCaView {
        pub keys: Vec<SshCaKeyView>,
        pub max_validity_seconds: i64,
        pub source_address: Vec<String>,
        /// The lines to add to `sshd_config`, with the files they name.
        pub sshd_config: String,
    }
}

api_type! {
    /// `POST /api/v1/targets/{name}/ssh/rotate`: a new signing key; the old one stays trusted
    /// for `overlap` (default `24h`, at least the longest certificate).
    pub struct RotateSshCaRequest {
        #[serde(default)]
        pub overlap: Option<String>,
    }
}

api_type! {
    /// `POST /api/v1/targets/{name}/ssh/sign`: certify the caller's public key for the
    /// principals of their active grants at the target.
    pub struct SignSshRequest {
        /// An OpenSSH public key line (Ed25519, ECDSA, their FIDO forms, RSA ≥ 3072 bits).
        pub public_key: String,
        /// Only the grants of this role (when two roles' bindings disagree on a force command).
        #[serde(default)]
        pub role: Option<String>,
    }
}

api_type! {
    /// A user certificate made from the caller's active grants.
    pub struct SshCertificateView {
        pub target: String,
        /// The OpenSSH certificate line (`ssh-ed25519-cert-v01@openssh.com AAAA…`).
        pub certificate: String,
        /// The certificate's serial (what the KRL lists once it is revoked).
        pub serial: u64,
        pub key_id: String,
        pub principals: Vec<String>,
        pub valid_after: String,
        pub valid_before: String,
        pub extensions: Vec<String>,
        #[serde(default)]
        pub force_command: Option<String>,
        /// The grants it was made from; the certificate is revoked when any of them ends.
        pub grant_ids: Vec<String>,
        pub ca_fingerprint: String,
    }
}

api_type! {
    /// A target (no secret value).
    pub struct TargetView {
        pub name: String,
        pub kind: String,
        /// The configuration, without any secret.
        pub config: serde_json::Value,
        /// `sealed`, `env:NAME` or `none`.
        pub secret: String,
        pub drift: String,
        pub reconcile_interval_seconds: i64,
        pub created_by: String,
        pub created_at: String,
        pub bindings: Vec<TargetBindingView>,
        /// The webhook HMAC key Portcullis generated, shown only in the answer that created it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub generated_secret: Option<String>,
        /// ssh-ca: the CA keys and the `sshd_config` lines that trust them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ssh: Option<SshCaView>,
    }
}

api_type! {
    /// `PUT /api/v1/targets/{name}/bindings/{role}`: what the role means at the target.
    pub struct BindRoleRequest {
        /// Target-side rights: PostgreSQL roles, or the names a webhook receiver understands.
        pub grants: Vec<String>,
        /// PostgreSQL: `grant` (default; the person's own login gets the roles) or `dynamic` (a
        /// login is created for each grant, handed to its holder once with
        /// `POST /api/v1/targets/{name}/credentials`, and dropped when the grant ends).
        #[serde(default)]
        pub mode: Option<String>,
        /// ssh-ca: extensions and force command of the certificates this role yields
        /// (`grants` are then the SSH principals, e.g. `deploy`).
        #[serde(default)]
        pub ssh: Option<SshBindingOptions>,
    }
}

api_type! {
    /// A role bound to a target.
    pub struct TargetBindingView {
        pub role: String,
        pub target: String,
        pub grants: Vec<String>,
        /// `grant` or `dynamic`.
        pub mode: String,
        /// ssh-ca: extensions and force command.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ssh: Option<SshBindingOptions>,
        pub created_by: String,
        pub created_at: String,
    }
}

api_type! {
    /// One attempt at a target operation.
    pub struct TargetOpAttemptView {
        pub attempt: i64,
        pub worker: String,
        pub started_at: String,
        pub finished_at: String,
        /// `applied` or `failed`.
        pub outcome: String,
        pub detail: Option<String>,
    }
}

api_type! {
    /// A target operation: a grant or revoke to apply at a target.
    pub struct TargetOpView {
        pub id: i64,
        pub target: String,
        /// `grant` or `revoke`.
        pub op: String,
        /// The request or assignment this grant is.
        pub grant_id: String,
        pub person: String,
        /// The person's own account at the target it acts on, where one was set when the
        /// grant was written (else the target's login template applies).
        #[serde(default)]
        pub account: Option<String>,
        pub role: String,
        pub target_grants: Vec<String>,
        /// What caused it (`request.activated`, `request.expired`, `principal.disabled`, …).
        pub reason: String,
        /// `pending`, `applied`, `dead` or `superseded` (a grant whose revoke came before it
        /// was applied).
        pub state: String,
        pub attempts: i64,
        pub created_at: String,
        pub due_at: String,
        pub next_attempt_at: Option<String>,
        pub applied_at: Option<String>,
        pub last_error: Option<String>,
        /// Every attempt (in `show`; empty in lists).
        #[serde(default)]
        pub history: Vec<TargetOpAttemptView>,
    }
}

api_type! {
    /// The result of `POST /api/v1/targets/{name}/test`.
    pub struct TargetTestView {
        pub target: String,
        pub ok: bool,
        /// What stops the target from working (unreachable, a mapped role missing, a missing
        /// privilege); empty when it is ready.
        pub problems: Vec<String>,
    }
}

api_type! {
    /// One right held at a target.
    pub struct HeldRightView {
        /// The target-side principal (a database login, the receiver's person).
        pub holder: String,
        /// The target-side right (a database role).
        pub right: String,
        /// The Portcullis grant that means it, if any.
        #[serde(default)]
        pub grant_id: Option<String>,
    }
}

api_type! {
    /// What a target holds now against what Portcullis says it must.
    pub struct TargetObservationView {
        pub target: String,
        /// False for a target that cannot be observed (a webhook without `observe_url`).
        pub observable: bool,
        /// What the target holds of the rights Portcullis manages there.
        pub held: Vec<HeldRightView>,
        /// Granted by Portcullis, not held there.
        pub missing: Vec<HeldRightView>,
        /// Held there, not granted by Portcullis: drift.
        pub drift: Vec<HeldRightView>,
        /// msgraph with emergency accounts: what the tenant should fix.
        #[serde(default)]
        pub findings: Vec<TenantFindingView>,
    }
}

api_type! {
    /// The result of `POST /api/v1/targets/{name}/reconcile`.
    pub struct TargetReconcileView {
        pub target: String,
        pub observable: bool,
        /// Grants written again because the target no longer held them.
        pub reapplied: Vec<HeldRightView>,
        /// Drift found (audited and alerted).
        pub drift: Vec<HeldRightView>,
        /// Drift removed (`drift = "revert"`).
        pub reverted: Vec<HeldRightView>,
    }
}

api_type! {
    /// `POST /api/v1/targets/{name}/credentials`: the login a dynamic grant created, handed to
    /// its holder once (a fresh proof of identity required; audited, the password never).
    pub struct TargetCredentialsView {
        pub target: String,
        /// The grant (activation request or assignment) the login is for.
        pub grant_id: String,
        pub login: String,
        pub password: String,
        /// `postgres://LOGIN:PASSWORD@HOST:PORT/DB`.
        pub connection_string: String,
        /// When the login stops working (the grant's end), RFC 3339.
        pub valid_until: Option<String>,
    }
}

api_type! {
    /// `PUT /api/v1/targets/{name}/accounts/{principal}`: the principal's own account at the
    /// target, used instead of the target's login template.
    pub struct SetTargetAccountRequest {
        /// msgraph: the Entra user's UPN or object id (resolved and checked when set);
        /// postgres: the database login.
        pub account: String,
    }
}

api_type! {
    /// A principal's own account at a target.
    pub struct TargetAccountView {
        pub target: String,
        pub principal: String,
        /// The account as the target names it (an Entra UPN, a database login).
        pub account: String,
        /// Its id at the target (an Entra object id), where it has one.
        pub external_id: Option<String>,
        pub set_by: String,
        /// RFC 3339.
        pub set_at: String,
    }
}
