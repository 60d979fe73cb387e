//! State changes: each is applied inside the writer's transaction, together with its audit
//! events (invariant 1). A change that finds the world not as it expected (a row already there,
//! a conditional update that matched nothing) fails with [`StoreError::Conflict`] and is rolled
//! back alone, so races between replicas resolve to exactly one winner.

use futures_core::future::BoxFuture;
use time::OffsetDateTime;

use crate::{Result, StoreError, micros};

/// A new principal row.
#[derive(Debug, Clone)]
pub struct NewPrincipal {
    pub id: String,
    pub name: String,
    /// `user`, `group` or `service_account`.
    pub kind: String,
    pub display_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Set for guests: their home organisation.
    pub guest_organisation: Option<String>,
    pub role_assignable: bool,
    pub emergency: bool,
    pub privileged: bool,
    pub first_admin: bool,
    pub created_at_us: i64,
}

/// At most `max` pending unauthenticated rows per client address created after `since_us`.
#[derive(Debug, Clone, Copy)]
pub struct PendingCap {
    pub max: i64,
    pub since_us: i64,
}

/// A conditional-access change, checked against the version it was validated at.
#[derive(Debug, Clone, Default)]
pub struct CaChange {
    /// The version the change was checked against (lockout guard); conflicts if it moved.
    pub expected_version: i64,
    /// Policies to create or replace: (name, state, spec JSON).
    pub put_policies: Vec<(String, String, String)>,
    pub delete_policies: Vec<String>,
    /// Locations to create or replace: (name, cidrs JSON, trusted).
    pub put_locations: Vec<(String, String, bool)>,
    pub delete_locations: Vec<String>,
    pub by: String,
    pub at_us: i64,
}

/// A break-glass account's custody record (its principal is created in the same change).
#[derive(Debug, Clone)]
pub struct NewBreakGlass {
    pub principal_id: String,
    /// `password` or `fido2`.
    pub credential: String,
    /// JSON array of principal names in share order.
    pub custodians: String,
    pub threshold: i64,
    pub key_holder: Option<String>,
    pub pin_holder: Option<String>,
    pub created_by: String,
    pub created_at_us: i64,
}

/// A new session row (the token itself is never stored, only its hash).
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub token_hash: Vec<u8>,
    pub principal_id: String,
    pub strength: String,
    pub scope: String,
    pub created_at_us: i64,
    pub strong_auth_at_us: Option<i64>,
    pub client_ip: String,
    pub user_agent: String,
    /// An end earlier than the lifetimes (a conditional-access sign-in frequency).
    pub ends_at_us: Option<i64>,
}

/// A new role assignment.
#[derive(Debug, Clone)]
pub struct NewAssignment {
    pub id: String,
    pub principal_id: String,
    pub role: String,
    pub scope: String,
    /// `eligible` or `active`.
    pub kind: String,
    pub starts_at_us: i64,
    pub ends_at_us: Option<i64>,
    pub created_by: String,
    pub created_at_us: i64,
}

/// A new activation request, pending approval or already active.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub id: String,
    pub principal_id: String,
    pub role: String,
    pub scope: String,
    pub eligibility_id: String,
    /// `pending_approval` or `active`.
    pub state: String,
    pub duration_seconds: i64,
    pub justification: Option<String>,
    pub ticket: Option<String>,
    pub approvals_required: i64,
    pub created_at_us: i64,
    pub timeout_at_us: Option<i64>,
    pub activated_at_us: Option<i64>,
    pub ends_at_us: Option<i64>,
}

/// A device authorization as created.
#[derive(Debug, Clone)]
pub struct NewDeviceAuthorization {
    pub id: String,
    pub device_code_hash: Vec<u8>,
    pub user_code: String,
    pub client_id: String,
    pub created_at_us: i64,
    pub expires_at_us: i64,
    pub interval_s: i64,
    /// Where it was requested from (shown to the person asked to approve it).
    pub client_ip: String,
    pub user_agent: String,
    /// At most this many pending, unexpired device codes from one address.
    pub max_pending_per_address: i64,
}

/// A refresh token as issued (its hash only).
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub id: String,
    pub token_hash: Vec<u8>,
    pub family_id: String,
    pub principal_id: String,
    pub client_id: String,
    pub strength: String,
    pub auth_time_us: i64,
    /// The session that approved the family's device code.
    pub session_id: String,
    pub created_at_us: i64,
    pub expires_at_us: i64,
    pub family_expires_at_us: i64,
    /// OAuth scopes the family was granted (empty for the CLI).
    pub scope: String,
    /// The access token issued with it (`jti`, expiry): revoked with the family.
    pub access: Option<(String, i64)>,
    /// `device_code` for a family started by the device grant (conditional access can name
    /// that flow); `None` otherwise.
    pub flow: Option<String>,
    /// The person's address conditional access judges the family's refreshes by, when the
    /// caller of the token endpoint is not the person (an OIDC client: the browser's address
    /// at the authorize step); `None`: the caller is the person's own device (the CLI).
    pub person_ip: Option<String>,
}

/// A registered OpenID Connect client.
#[derive(Debug, Clone)]
pub struct NewOAuthClient {
    pub client_id: String,
    pub name: String,
    /// `confidential` or `public`.
    pub kind: String,
    /// A JSON array of validated redirect URIs.
    pub redirect_uris: String,
    pub created_by: String,
    pub created_at_us: i64,
}

/// An authorization code as issued (its hash only).
#[derive(Debug, Clone)]
pub struct NewAuthorizationCode {
    pub id: String,
    pub code_hash: Vec<u8>,
    pub client_id: String,
    pub principal_id: String,
    /// The session the person signed in with; revoking it ends the tokens that follow.
    pub session_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub strength: String,
    pub auth_time_us: i64,
    pub created_at_us: i64,
    pub expires_at_us: i64,
    /// The person's (browser's) address at the authorize step: conditional access judges the
    /// code exchange by it, not by the relying party's address.
    pub person_ip: String,
}

/// A message for the outbox, delivered later by a worker.
#[derive(Debug, Clone)]
pub struct NewOutboxMessage {
    pub id: String,
    /// `notification` or `alert`.
    pub kind: String,
    pub topic: String,
    pub recipient: String,
    pub payload: String,
    pub at_us: i64,
    /// For alerts: the channel that delivers it, and the severity.
    pub channel: Option<String>,
    pub severity: Option<String>,
}

/// A new alert channel: what lists show in clear, the full configuration sealed.
#[derive(Debug, Clone)]
pub struct NewAlertChannel {
    pub name: String,
    /// `email`, `webhook` or `sms`.
    pub kind: String,
    /// JSON: the display fields only (no URL path or query, no header value, no template).
    pub config: String,
    pub sealed_secret: Option<Vec<u8>>,
    /// The full configuration (JSON), sealed under the master key with
    /// [`crate::alerts::channel_config_aad`].
    pub sealed_config: Vec<u8>,
    pub min_severity: String,
    pub created_by: String,
    pub created_at_us: i64,
}

/// A channel's configuration as sealed at start-up (see [`Change::SealAlertChannels`]).
#[derive(Debug, Clone)]
pub struct SealedChannel {
    pub name: String,
    /// The display fields (JSON).
    pub config: String,
    pub sealed_config: Vec<u8>,
}

/// A new custom alert rule (validated by the caller with
/// [`portcullis_core::alerts::CustomRule::validate`]).
#[derive(Debug, Clone)]
pub struct NewAlertRule {
    pub name: String,
    pub action: String,
    pub outcome: Option<String>,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub group_by: String,
    pub count: i64,
    pub window_seconds: i64,
    pub severity: String,
    pub created_by: String,
    pub created_at_us: i64,
}

/// The end of one delivery attempt.
#[derive(Debug, Clone)]
pub struct OutboxAttempt {
    pub id: String,
    pub worker: String,
    /// The attempt's number (the message's `attempts` after its claim).
    pub attempt: i64,
    pub started_at_us: i64,
    pub finished_at_us: i64,
    pub delivered: bool,
    pub detail: Option<String>,
    /// For a failure: when to try again, or `None` to dead-letter.
    pub retry_at_us: Option<i64>,
}

/// A state change applied in the same transaction as its audit events.
#[derive(Debug, Clone)]
pub enum Change {
    /// Only the audit events.
    None,
    /// Several changes, all or nothing.
    Many(Vec<Change>),
    /// Writes a signed checkpoint at the end of this batch, whatever the policy says.
    ForceCheckpoint,
    /// Sets a configuration value.
    SetSetting {
        key: String,
        value: String,
    },
    /// Creates the tenant; conflicts if it already exists.
    InitialiseTenant {
        created_at_us: i64,
        key_check: Vec<u8>,
        key_id: String,
        public_key: Vec<u8>,
        sealed_private_key: Vec<u8>,
        bootstrap_token_hash: Vec<u8>,
        bootstrap_expires_at_us: i64,
    },
    /// Marks the bootstrap token used; conflicts unless it is unused and unexpired.
    RedeemBootstrapToken {
        token_hash: Vec<u8>,
        at_us: i64,
    },
    /// Creates a principal; conflicts if the name is taken.
    CreatePrincipal(NewPrincipal),
    /// Enables or disables a principal; disabling revokes its sessions.
    SetPrincipalEnabled {
        id: String,
        enabled: bool,
        at_us: i64,
    },
    /// Records a successful sign-in, and (with `address`, in its throttling form) that the
    /// address is familiar to the account (smart lockout).
    RecordSignIn {
        principal_id: String,
        at_us: i64,
        address: Option<String>,
    },
    AddGroupMember {
        group_id: String,
        member_id: String,
        at_us: i64,
    },
    /// Conflicts if the member was not in the group.
    RemoveGroupMember {
        group_id: String,
        member_id: String,
    },
    /// Sets (or replaces) a password hash (PHC string).
    SetPassword {
        principal_id: String,
        phc: String,
        at_us: i64,
    },
    /// Adds a TOTP factor (unconfirmed until a code proves the enrolment).
    AddTotpFactor {
        id: String,
        principal_id: String,
        name: String,
        sealed_secret: Vec<u8>,
        confirmed: bool,
        last_step: Option<i64>,
        at_us: i64,
    },
    /// Accepts a TOTP time step: conflicts if that step (or a later one) was already used,
    /// which is what stops a code from working twice, also across replicas.
    AcceptTotpStep {
        factor_id: String,
        step: i64,
        confirm: bool,
        at_us: i64,
    },
    /// Adds a confirmed WebAuthn credential; conflicts if the name or the credential id is taken.
    AddWebauthnFactor {
        id: String,
        principal_id: String,
        name: String,
        credential_id: Vec<u8>,
        sealed_credential: Vec<u8>,
        counter: i64,
        at_us: i64,
    },
    /// Stores the credential after a use; conflicts if the signature counter did not move
    /// forward (a cloned authenticator) unless the authenticator keeps no counter (0).
    UpdateWebauthnFactor {
        id: String,
        sealed_credential: Vec<u8>,
        counter: i64,
        at_us: i64,
    },
    /// Stores a WebAuthn ceremony's server-side state. With `cap`, conflicts with
    /// [`TOO_MANY_PENDING`] when `client_ip` already has that many ceremonies and decoys
    /// created after `since_us` (an unauthenticated start must not grow the table unbounded).
    CreateCeremony {
        id_hash: Vec<u8>,
        principal_id: String,
        kind: String,
        state: String,
        factor_name: Option<String>,
        pending_signin_hash: Option<Vec<u8>>,
        at_us: i64,
        client_ip: String,
        cap: Option<PendingCap>,
    },
    /// A decoy passwordless challenge for `name` (no such account, or no passkey), capped like
    /// [`Change::CreateCeremony`].
    CreateDecoy {
        id_hash: Vec<u8>,
        name: String,
        client_ip: String,
        at_us: i64,
        cap: PendingCap,
    },
    /// Consumes a decoy; conflicts if it is gone.
    ConsumeDecoy {
        id_hash: Vec<u8>,
    },
    /// Consumes a ceremony; conflicts if it is gone (finished already, or never existed), which
    /// is what makes a replayed challenge fail.
    ConsumeCeremony {
        id_hash: Vec<u8>,
    },
    /// Conflicts if the factor does not exist for that principal.
    RemoveFactor {
        id: String,
        principal_id: String,
    },
    CreateSession(NewSession),
    /// Conflicts if the session is unknown or already revoked.
    RevokeSession {
        id: String,
        at_us: i64,
    },
    /// Revokes every live session of a principal, but `except`.
    RevokeSessionsOf {
        principal_id: String,
        except: Option<String>,
        at_us: i64,
    },
    /// Updates a session's last activity (no audit event needed).
    TouchSession {
        id: String,
        at_us: i64,
    },
    /// Stores a half-finished sign-in (password accepted, second factor pending).
    CreatePendingSignIn {
        id_hash: Vec<u8>,
        principal_id: String,
        at_us: i64,
    },
    /// Consumes it; conflicts if it is gone (used, or never existed).
    ConsumePendingSignIn {
        id_hash: Vec<u8>,
    },
    /// Reserves an attempt on each throttle key before its credential is checked: conflicts
    /// with [`THROTTLED`] (changing nothing) when any key must still wait
    /// ([`portcullis_core::throttle::admit`]), else counts the attempt on every key. Serialised
    /// by the writer (rows locked on PostgreSQL), so concurrent guesses cannot all pass one check.
    ReserveAttempt {
        keys: Vec<String>,
        at_us: i64,
    },
    /// After a success: gives the reservation back on address keys and clears the others
    /// ([`portcullis_core::throttle::ThrottleKey::cleared_by_success`]).
    ReleaseAttempt {
        keys: Vec<String>,
    },
    /// Gives back a reservation whose credential was never checked (the server was busy):
    /// one less on every key.
    RefundAttempt {
        keys: Vec<String>,
    },
    /// Stores a break-glass account's fast verifier (see migration 0015).
    SetBreakGlassVerifier {
        principal_id: String,
        verifier: Vec<u8>,
    },
    /// One more failure on each throttle key.
    RecordFailures {
        keys: Vec<String>,
        at_us: i64,
    },
    /// Forgets the failures of these keys (after a success).
    ResetThrottle {
        keys: Vec<String>,
    },
    /// Creates a custom role (permissions as a JSON array); conflicts if the slug exists.
    CreateCustomRole {
        slug: String,
        display_name: String,
        description: String,
        permissions: String,
        at_us: i64,
    },
    /// Deletes a custom role and its settings; conflicts while a live assignment names it.
    DeleteCustomRole {
        slug: String,
    },
    /// Stores a role's settings (JSON), replacing earlier ones.
    SetRoleSettings {
        role: String,
        settings: String,
        at_us: i64,
    },
    CreateAssignment(NewAssignment),
    /// Ends a live assignment and closes the requests resting on it (pending ones cancelled,
    /// active ones revoked) with the same reason; conflicts if it has ended already.
    EndAssignment {
        id: String,
        reason: String,
        by: String,
        at_us: i64,
    },
    /// Creates a request; conflicts unless its eligibility is still live at `created_at_us`.
    CreateRequest(NewRequest),
    /// Records one approver's decision. Conflicts if the request is no longer pending, if the
    /// approver decided already, or if the number of earlier approvals is not
    /// `approvals_before` (the caller chose its audit events from that count; a concurrent
    /// approval makes it retry). `activate` = `(activated_at_us, ends_at_us)` makes the request
    /// active in the same step; `deny` closes it as denied.
    DecideRequest {
        request_id: String,
        approver_id: String,
        approve: bool,
        reason: Option<String>,
        approvals_before: i64,
        activate: Option<(i64, i64)>,
        at_us: i64,
    },
    /// Moves a request from state `from` to `to` (a terminal state); conflicts if it is not in
    /// `from` any more, so a state change happens once even across replicas.
    CloseRequest {
        id: String,
        from: String,
        to: String,
        by: String,
        reason: Option<String>,
        at_us: i64,
    },
    Enqueue(NewOutboxMessage),
    /// Adds a client secret (its SHA-256); conflicts if the principal has two live ones.
    AddClientSecret {
        id: String,
        principal_id: String,
        secret_hash: Vec<u8>,
        created_by: String,
        at_us: i64,
    },
    /// Revokes a client secret; conflicts if it is not live.
    RevokeClientSecret {
        id: String,
        principal_id: String,
        at_us: i64,
    },
    /// Records consent to application permissions (idempotent per permission).
    GrantConsent {
        principal_id: String,
        permissions: Vec<String>,
        granted_by: String,
        at_us: i64,
    },
    /// Withdraws consent to one permission; conflicts if it was not granted.
    RevokeConsent {
        principal_id: String,
        permission: String,
    },
    /// Makes a new signing key the active one; the one it replaces (`previous`, which must
    /// still be active, so two racing rotations make one winner) stays as a public key for
    /// verification.
    RotateSigningKey {
        previous: String,
        key_id: String,
        public_key: Vec<u8>,
        sealed_private_key: Vec<u8>,
        at_us: i64,
    },
    /// Sets the networks a service account may authenticate from (a JSON array of validated
    /// CIDRs), or lifts the restriction (`None`).
    SetClientNetworks {
        principal_id: String,
        cidrs: Option<String>,
        by: String,
        at_us: i64,
    },
    /// A new device authorization (RFC 8628), pending.
    CreateDeviceAuthorization(NewDeviceAuthorization),
    /// Records a poll; with `slow_down`, the interval grows by 5 s.
    PollDevice {
        id: String,
        slow_down: bool,
        at_us: i64,
    },
    /// A person approves (with their session's strength) or denies a pending, unexpired
    /// device authorization; conflicts when it is no longer pending.
    DecideDevice {
        id: String,
        approve: bool,
        principal_id: String,
        strength: String,
        auth_time_us: i64,
        /// The approving session; revoking it ends the tokens that follow.
        session_id: String,
        at_us: i64,
    },
    /// Approved → consumed: its tokens are issued once; conflicts otherwise.
    ConsumeDevice {
        id: String,
    },
    /// A new refresh token (the first of a family, or a rotation's successor).
    IssueRefreshToken(NewRefreshToken),
    /// Marks a live, unused refresh token used (rotation); conflicts when it was used or
    /// revoked meanwhile, so a token rotates once.
    UseRefreshToken {
        id: String,
        at_us: i64,
    },
    /// Revokes every token of a family (reuse detected, sign-out, disabled account), and the
    /// unexpired access tokens issued with them.
    RevokeRefreshFamily {
        family_id: String,
        at_us: i64,
    },
    /// Revokes an access token by its `jti` (idempotent).
    RevokeToken {
        jti: String,
        expires_at_us: i64,
        at_us: i64,
    },
    /// Registers a public key for `private_key_jwt`; conflicts if the account has used this
    /// key id before (live or removed) or has five live keys.
    AddClientKey {
        principal_id: String,
        key_id: String,
        /// `EdDSA` or `ES256`.
        algorithm: String,
        /// SubjectPublicKeyInfo DER.
        public_key: Vec<u8>,
        created_by: String,
        at_us: i64,
    },
    /// Removes (revokes) a public key; conflicts if it is not live.
    RemoveClientKey {
        principal_id: String,
        key_id: String,
        at_us: i64,
    },
    /// Records an accepted client assertion's `jti` until `expires_at_us`, forgetting those
    /// that have expired. Conflicts if the `jti` is recorded already: a replay, also when two
    /// replicas are presented the same assertion at once (one insert wins).
    UseClientAssertion {
        principal_id: String,
        jti: String,
        expires_at_us: i64,
        at_us: i64,
    },
    /// Marks a principal as one that is or may become privileged (stricter password and MFA
    /// before full sign-in). Never cleared automatically.
    MarkPrivileged {
        principal_id: String,
    },
    /// Registers an OpenID Connect client; conflicts when the name is taken.
    CreateOAuthClient(NewOAuthClient),
    /// Deletes a client with its secrets and consents, and revokes every refresh token issued
    /// to it; conflicts when there is no such client.
    DeleteOAuthClient {
        client_id: String,
        at_us: i64,
    },
    /// Adds a client secret to a confidential client; conflicts when two are live already.
    AddOAuthClientSecret {
        id: String,
        client_id: String,
        secret_hash: Vec<u8>,
        created_by: String,
        at_us: i64,
    },
    /// Revokes a live client secret; conflicts when it is not live.
    RevokeOAuthClientSecret {
        id: String,
        client_id: String,
        at_us: i64,
    },
    /// A new authorization code.
    CreateAuthorizationCode(NewAuthorizationCode),
    /// Redeems an unused, unexpired code once, remembering what was issued from it (so a
    /// second presentation can revoke it); conflicts otherwise.
    RedeemAuthorizationCode {
        id: String,
        family_id: Option<String>,
        access_jti: String,
        access_expires_at_us: i64,
        at_us: i64,
    },
    /// Adds an alert channel; conflicts when the name is taken.
    AddAlertChannel(NewAlertChannel),
    /// Removes an alert channel; conflicts when there is none of that name. Its undelivered
    /// messages are dead-lettered with the reason.
    RemoveAlertChannel {
        name: String,
        at_us: i64,
    },
    /// Adds a custom alert rule; conflicts when the name is taken.
    AddAlertRule(NewAlertRule),
    /// Removes a custom alert rule; conflicts when there is none of that name.
    RemoveAlertRule {
        name: String,
    },
    /// Claims a due, pending outbox message for `worker` until `until_us` and counts the
    /// attempt; conflicts when another worker (replica) holds it or it is not due. With
    /// `sms_max_per_hour`, the first attempt of a message on an SMS channel is refused when
    /// that many messages to its number were first attempted in the hour before `now_us`: the
    /// message becomes `suppressed` (not sent, no attempt counted; the claim succeeds, so the
    /// worker reads the state); otherwise it takes the suppressed messages before it as
    /// `reported_in` it, so it can say how many there were. Serialised with every other write
    /// (the chain head), so replicas share one count.
    ClaimOutbox {
        id: String,
        worker: String,
        now_us: i64,
        until_us: i64,
        sms_max_per_hour: Option<i64>,
    },
    /// Seals channel configurations written before sealing: each row's `config` becomes its
    /// display fields and `sealed_config` the sealed full one. Conflicts when any of them is
    /// sealed already (another replica did it first), so it happens once.
    SealAlertChannels(Vec<SealedChannel>),
    /// Records the end of an attempt by the worker that holds the claim: delivered, retried
    /// later, or dead-lettered; conflicts when the claim was lost meanwhile.
    FinishOutbox(OutboxAttempt),
    /// Puts a dead-lettered message back in the queue with a fresh budget of attempts.
    RetryOutbox {
        id: String,
        at_us: i64,
    },
    /// Records a break-glass account's custody.
    CreateBreakGlass(NewBreakGlass),
    /// Changes conditional-access policies and locations at an expected version.
    ConditionalAccess(CaChange),
    /// A new split of a password account: custodians and threshold (the hash is a
    /// [`Change::SetPassword`] beside it).
    UpdateBreakGlassCustody {
        principal_id: String,
        custodians: String,
        threshold: i64,
    },
    /// Records a drill proved by `session_id` (a session of the account itself).
    RecordDrill {
        id: String,
        principal_id: String,
        session_id: String,
        at_us: i64,
    },
    /// Conflicts when fewer than `min` usable break-glass accounts remain (after the changes
    /// before it in the same [`Change::Many`]) and fewer than `before` (the count the caller
    /// read before): a change that does not lower the count (disabling an account that was
    /// never usable, during setup) passes. The writer already serialises transactions on the
    /// chain head; on PostgreSQL the emergency rows are locked as well, in depth.
    RequireBreakGlassMinimum {
        min: i64,
        before: i64,
    },
    /// Conflicts with [`LAST_GLOBAL_ADMINISTRATOR`] when, after the changes before it in the same
    /// [`Change::Many`], no person (enabled, not break-glass) can reach Global Administrator at
    /// `/` any more — by a live active or eligible assignment, directly or through a
    /// role-assignable group — and fewer than `before` (the count the caller read). Serialised
    /// like [`Change::RequireBreakGlassMinimum`]; on PostgreSQL the GA assignments are locked too.
    RequireGlobalAdministrator {
        before: i64,
        at_us: i64,
    },
    /// Records a fresh proof in a live session (re-authentication): its strength becomes
    /// `strength` (never lower than it was) and its second factor counts as proven at `at_us`.
    /// Conflicts when the session is gone or revoked.
    StampSession {
        id: String,
        strength: String,
        at_us: i64,
    },
    /// Claims the periodic job `name` for this run: conflicts when another run (any replica)
    /// recorded one after `not_before_us`.
    ClaimPeriodic {
        name: String,
        not_before_us: i64,
        at_us: i64,
    },
    /// Records (or widens) a person's consent to a client for `scope`.
    RecordOAuthConsent {
        principal_id: String,
        client_id: String,
        scope: String,
        at_us: i64,
    },
}

/// Applies a [`Change`] on a connection of either backend.
pub(crate) trait Apply {
    fn apply<'a>(&'a mut self, change: &'a Change) -> BoxFuture<'a, Result<()>>;
}

/// The conflict [`Change::AddAlertRule`] reports when [`crate::alerts::MAX_RULES`] exist.
pub const TOO_MANY_RULES: &str = "too many custom alert rules";

/// The conflict [`Change::ConditionalAccess`] reports when another change landed first.
pub const CA_CHANGED: &str = "the conditional-access configuration changed meanwhile";

/// The conflict a capped creation reports (too many pending rows from one address).
pub const TOO_MANY_PENDING: &str = "too many pending requests from this address";

/// The conflict [`Change::ReserveAttempt`] reports.
pub const THROTTLED: &str = "too many failed attempts; wait before trying again";

/// The conflict [`Change::RequireGlobalAdministrator`] reports.
pub const LAST_GLOBAL_ADMINISTRATOR: &str =
    "nobody would be left who can reach Global Administrator at the tenant";

/// The conflict [`Change::RequireBreakGlassMinimum`] reports.
pub const BREAKGLASS_MINIMUM: &str = "fewer than the required break-glass accounts would remain";

fn conflict(what: &str) -> StoreError {
    StoreError::Conflict(what.to_owned())
}

macro_rules! apply_for {
    ($conn:ty, $lock:literal) => {
        impl Apply for $conn {
            fn apply<'a>(&'a mut self, change: &'a Change) -> BoxFuture<'a, Result<()>> {
                Box::pin(async move {
                    let c = self;
                    match change {
                        Change::None | Change::ForceCheckpoint => {}
                        Change::Many(all) => {
                            for one in all {
                                c.apply(one).await?;
                            }
                        }
                        Change::SetSetting { key, value } => {
                            sqlx::query("INSERT INTO settings (key, value, updated_at_us) VALUES ($1, $2, $3) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at_us = excluded.updated_at_us")
                                .bind(key).bind(value).bind(micros(OffsetDateTime::now_utc()))
                                .execute(&mut *c).await?;
                        }
                        Change::InitialiseTenant { created_at_us, key_check, key_id, public_key, sealed_private_key, bootstrap_token_hash, bootstrap_expires_at_us } => {
                            let n = sqlx::query("INSERT INTO tenant (id, created_at_us, key_check) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING")
                                .bind(*created_at_us).bind(key_check).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("tenant already initialised"));
                            }
                            sqlx::query("INSERT INTO signing_keys (key_id, public_key, sealed_private_key, created_at_us, active) VALUES ($1, $2, $3, $4, TRUE)")
                                .bind(key_id).bind(public_key).bind(sealed_private_key).bind(*created_at_us)
                                .execute(&mut *c).await?;
                            sqlx::query("INSERT INTO bootstrap_tokens (id, token_hash, expires_at_us) VALUES ('bootstrap', $1, $2)")
                                .bind(bootstrap_token_hash).bind(*bootstrap_expires_at_us)
                                .execute(&mut *c).await?;
                        }
                        Change::RedeemBootstrapToken { token_hash, at_us } => {
                            let n = sqlx::query("UPDATE bootstrap_tokens SET used_at_us = $1 WHERE token_hash = $2 AND used_at_us IS NULL AND expires_at_us > $1")
                                .bind(*at_us).bind(token_hash).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("bootstrap token already used or expired"));
                            }
                        }
                        Change::CreatePrincipal(p) => {
                            let n = sqlx::query("INSERT INTO principals (id, name, kind, display_name, email, phone, guest_organisation, role_assignable, emergency, privileged, first_admin, enabled, created_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, TRUE, $12) ON CONFLICT (name) DO NOTHING")
                                .bind(&p.id).bind(&p.name).bind(&p.kind).bind(&p.display_name).bind(&p.email).bind(&p.phone)
                                .bind(&p.guest_organisation).bind(p.role_assignable).bind(p.emergency).bind(p.privileged)
                                .bind(p.first_admin).bind(p.created_at_us)
                                .execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("name already taken"));
                            }
                        }
                        Change::SetPrincipalEnabled { id, enabled, at_us } => {
                            sqlx::query("UPDATE principals SET enabled = $1 WHERE id = $2")
                                .bind(*enabled).bind(id).execute(&mut *c).await?;
                            if !*enabled {
                                sqlx::query("UPDATE sessions SET revoked_at_us = $1 WHERE principal_id = $2 AND revoked_at_us IS NULL")
                                    .bind(*at_us).bind(id).execute(&mut *c).await?;
                            }
                        }
                        Change::RecordSignIn { principal_id, at_us, address } => {
                            sqlx::query("UPDATE principals SET last_sign_in_us = $1 WHERE id = $2")
                                .bind(*at_us).bind(principal_id).execute(&mut *c).await?;
                            if let Some(a) = address {
                                sqlx::query("INSERT INTO signin_addresses (principal_id, address, last_success_us) VALUES ($1, $2, $3) ON CONFLICT (principal_id, address) DO UPDATE SET last_success_us = excluded.last_success_us")
                                    .bind(principal_id).bind(a).bind(*at_us).execute(&mut *c).await?;
                            }
                        }
                        Change::ReserveAttempt { keys, at_us } => {
                            let now = crate::from_micros(*at_us);
                            let mut counters = Vec::with_capacity(keys.len());
                            for key in keys {
                                let row: Option<(i64, i64)> = sqlx::query_as(concat!("SELECT failures, last_failure_us FROM throttle WHERE key = $1", $lock))
                                    .bind(key).fetch_optional(&mut *c).await?;
                                if let Some((n, last)) = row {
                                    counters.push((key.clone(), n, crate::from_micros(last)));
                                }
                            }
                            if portcullis_core::throttle::admit(&counters, now).is_err() {
                                return Err(conflict(THROTTLED));
                            }
                            for key in keys {
                                // A counter past its forget period starts again from one.
                                let forget = portcullis_core::throttle::ThrottlePolicy::for_key(key).forget_after.whole_microseconds() as i64;
                                sqlx::query("INSERT INTO throttle (key, failures, last_failure_us) VALUES ($1, 1, $2) ON CONFLICT (key) DO UPDATE SET failures = CASE WHEN throttle.last_failure_us <= $2 - $3 THEN 1 ELSE throttle.failures + 1 END, last_failure_us = excluded.last_failure_us")
                                    .bind(key).bind(*at_us).bind(forget).execute(&mut *c).await?;
                            }
                        }
                        Change::ReleaseAttempt { keys } => {
                            for key in keys {
                                if portcullis_core::throttle::ThrottleKey::cleared_by_success(key) {
                                    sqlx::query("DELETE FROM throttle WHERE key = $1").bind(key).execute(&mut *c).await?;
                                } else {
                                    sqlx::query("UPDATE throttle SET failures = failures - 1 WHERE key = $1 AND failures > 0")
                                        .bind(key).execute(&mut *c).await?;
                                }
                            }
                        }
                        Change::RefundAttempt { keys } => {
                            for key in keys {
                                sqlx::query("UPDATE throttle SET failures = failures - 1 WHERE key = $1 AND failures > 0")
                                    .bind(key).execute(&mut *c).await?;
                            }
                        }
                        Change::SetBreakGlassVerifier { principal_id, verifier } => {
                            sqlx::query("UPDATE breakglass_accounts SET verifier = $1 WHERE principal_id = $2")
                                .bind(verifier).bind(principal_id).execute(&mut *c).await?;
                        }
                        Change::AddGroupMember { group_id, member_id, at_us } => {
                            let n = sqlx::query("INSERT INTO group_members (group_id, member_id, added_at_us) VALUES ($1, $2, $3) ON CONFLICT (group_id, member_id) DO NOTHING")
                                .bind(group_id).bind(member_id).bind(*at_us).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("already a member"));
                            }
                        }
                        Change::RemoveGroupMember { group_id, member_id } => {
                            let n = sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND member_id = $2")
                                .bind(group_id).bind(member_id).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("not a member"));
                            }
                        }
                        Change::SetPassword { principal_id, phc, at_us } => {
                            sqlx::query("INSERT INTO passwords (principal_id, phc, updated_at_us) VALUES ($1, $2, $3) ON CONFLICT (principal_id) DO UPDATE SET phc = excluded.phc, updated_at_us = excluded.updated_at_us")
                                .bind(principal_id).bind(phc).bind(*at_us).execute(&mut *c).await?;
                        }
                        Change::AddTotpFactor { id, principal_id, name, sealed_secret, confirmed, last_step, at_us } => {
                            let n = sqlx::query("INSERT INTO mfa_factors (id, principal_id, kind, name, sealed_secret, confirmed, last_step, created_at_us) VALUES ($1, $2, 'totp', $3, $4, $5, $6, $7) ON CONFLICT (principal_id, name) DO NOTHING")
                                .bind(id).bind(principal_id).bind(name).bind(sealed_secret).bind(*confirmed).bind(*last_step).bind(*at_us)
                                .execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("a factor with that name exists"));
                            }
                        }
                        Change::AcceptTotpStep { factor_id, step, confirm, at_us } => {
                            let n = sqlx::query("UPDATE mfa_factors SET last_step = $1, last_used_us = $2, confirmed = (confirmed OR $3) WHERE id = $4 AND (last_step IS NULL OR last_step < $1)")
                                .bind(*step).bind(*at_us).bind(*confirm).bind(factor_id)
                                .execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("totp step already used"));
                            }
                        }
                        Change::AddWebauthnFactor { id, principal_id, name, credential_id, sealed_credential, counter, at_us } => {
                            let n = sqlx::query("INSERT INTO mfa_factors (id, principal_id, kind, name, sealed_secret, confirmed, last_step, created_at_us, credential_id) VALUES ($1, $2, 'webauthn', $3, $4, TRUE, $5, $6, $7) ON CONFLICT DO NOTHING")
                                .bind(id).bind(principal_id).bind(name).bind(sealed_credential).bind(*counter).bind(*at_us).bind(credential_id)
                                .execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("a factor with that name or credential exists"));
                            }
                        }
                        Change::UpdateWebauthnFactor { id, sealed_credential, counter, at_us } => {
                            let n = sqlx::query("UPDATE mfa_factors SET sealed_secret = $1, last_step = $2, last_used_us = $3 WHERE id = $4 AND kind = 'webauthn' AND ($2 = 0 OR last_step IS NULL OR last_step < $2)")
                                .bind(sealed_credential).bind(*counter).bind(*at_us).bind(id)
                                .execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("signature counter did not advance"));
                            }
                        }
                        Change::CreateCeremony { id_hash, principal_id, kind, state, factor_name, pending_signin_hash, at_us, client_ip, cap } => {
                            if let Some(cap) = cap {
                                let n: i64 = sqlx::query_scalar("SELECT (SELECT COUNT(*) FROM webauthn_ceremonies WHERE client_ip = $1 AND created_at_us > $2) + (SELECT COUNT(*) FROM webauthn_decoys WHERE client_ip = $1 AND created_at_us > $2)")
                                    .bind(client_ip).bind(cap.since_us).fetch_one(&mut *c).await?;
                                if n >= cap.max {
                                    return Err(conflict(TOO_MANY_PENDING));
                                }
                            }
                            sqlx::query("INSERT INTO webauthn_ceremonies (id_hash, principal_id, kind, state, factor_name, pending_signin_hash, created_at_us, client_ip) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                                .bind(id_hash).bind(principal_id).bind(kind).bind(state).bind(factor_name).bind(pending_signin_hash).bind(*at_us).bind(client_ip)
                                .execute(&mut *c).await?;
                        }
                        Change::CreateDecoy { id_hash, name, client_ip, at_us, cap } => {
                            let n: i64 = sqlx::query_scalar("SELECT (SELECT COUNT(*) FROM webauthn_ceremonies WHERE client_ip = $1 AND created_at_us > $2) + (SELECT COUNT(*) FROM webauthn_decoys WHERE client_ip = $1 AND created_at_us > $2)")
                                .bind(client_ip).bind(cap.since_us).fetch_one(&mut *c).await?;
                            if n >= cap.max {
                                return Err(conflict(TOO_MANY_PENDING));
                            }
                            sqlx::query("INSERT INTO webauthn_decoys (id_hash, name, client_ip, created_at_us) VALUES ($1, $2, $3, $4)")
                                .bind(id_hash).bind(name).bind(client_ip).bind(*at_us)
                                .execute(&mut *c).await?;
                        }
                        Change::ConsumeDecoy { id_hash } => {
                            let n = sqlx::query("DELETE FROM webauthn_decoys WHERE id_hash = $1")
                                .bind(id_hash).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("ceremony already finished or unknown"));
                            }
                        }
                        Change::ConsumeCeremony { id_hash } => {
                            let n = sqlx::query("DELETE FROM webauthn_ceremonies WHERE id_hash = $1")
                                .bind(id_hash).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("ceremony already finished or unknown"));
                            }
                        }
                        Change::RemoveFactor { id, principal_id } => {
                            let n = sqlx::query("DELETE FROM mfa_factors WHERE id = $1 AND principal_id = $2")
                                .bind(id).bind(principal_id).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("no such factor"));
                            }
                        }
                        Change::CreateSession(s) => {
                            sqlx::query("INSERT INTO sessions (id, token_hash, principal_id, strength, scope, created_at_us, last_seen_us, strong_auth_at_us, client_ip, user_agent, ends_at_us) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9, $10)")
                                .bind(&s.id).bind(&s.token_hash).bind(&s.principal_id).bind(&s.strength).bind(&s.scope)
                                .bind(s.created_at_us).bind(s.strong_auth_at_us).bind(&s.client_ip).bind(&s.user_agent)
                                .bind(s.ends_at_us)
                                .execute(&mut *c).await?;
                        }
                        Change::RevokeSession { id, at_us } => {
                            let n = sqlx::query("UPDATE sessions SET revoked_at_us = $1 WHERE id = $2 AND revoked_at_us IS NULL")
                                .bind(*at_us).bind(id).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("no such live session"));
                            }
                        }
                        Change::RevokeSessionsOf { principal_id, except, at_us } => {
                            sqlx::query("UPDATE sessions SET revoked_at_us = $1 WHERE principal_id = $2 AND revoked_at_us IS NULL AND id <> $3")
                                .bind(*at_us).bind(principal_id).bind(except.as_deref().unwrap_or("")).execute(&mut *c).await?;
                        }
                        Change::TouchSession { id, at_us } => {
                            sqlx::query("UPDATE sessions SET last_seen_us = $1 WHERE id = $2 AND last_seen_us < $1")
                                .bind(*at_us).bind(id).execute(&mut *c).await?;
                        }
                        Change::CreatePendingSignIn { id_hash, principal_id, at_us } => {
                            sqlx::query("INSERT INTO pending_signins (id_hash, principal_id, created_at_us) VALUES ($1, $2, $3)")
                                .bind(id_hash).bind(principal_id).bind(*at_us).execute(&mut *c).await?;
                        }
                        Change::ConsumePendingSignIn { id_hash } => {
                            let n = sqlx::query("DELETE FROM pending_signins WHERE id_hash = $1")
                                .bind(id_hash).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("sign-in already completed or unknown"));
                            }
                        }
                        Change::RecordFailures { keys, at_us } => {
                            for key in keys {
                                sqlx::query("INSERT INTO throttle (key, failures, last_failure_us) VALUES ($1, 1, $2) ON CONFLICT (key) DO UPDATE SET failures = throttle.failures + 1, last_failure_us = excluded.last_failure_us")
                                    .bind(key).bind(*at_us).execute(&mut *c).await?;
                            }
                        }
                        Change::ResetThrottle { keys } => {
                            for key in keys {
                                sqlx::query("DELETE FROM throttle WHERE key = $1").bind(key).execute(&mut *c).await?;
                            }
                        }
                        Change::CreateCustomRole { slug, display_name, description, permissions, at_us } => {
                            let n = sqlx::query("INSERT INTO custom_roles (slug, display_name, description, permissions, created_at_us) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
                                .bind(slug).bind(display_name).bind(description).bind(permissions).bind(*at_us)
                                .execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("a role with that name exists"));
                            }
                        }
                        Change::DeleteCustomRole { slug } => {
                            let n = sqlx::query("DELETE FROM custom_roles WHERE slug = $1 AND NOT EXISTS (SELECT 1 FROM role_assignments WHERE role = $1 AND ended_at_us IS NULL)")
                                .bind(slug).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("the role is gone or still assigned"));
                            }
                            sqlx::query("DELETE FROM role_settings WHERE role = $1").bind(slug).execute(&mut *c).await?;
                        }
                        Change::SetRoleSettings { role, settings, at_us } => {
                            sqlx::query("INSERT INTO role_settings (role, settings, updated_at_us) VALUES ($1, $2, $3) ON CONFLICT (role) DO UPDATE SET settings = excluded.settings, updated_at_us = excluded.updated_at_us")
                                .bind(role).bind(settings).bind(*at_us).execute(&mut *c).await?;
                        }
                        Change::CreateAssignment(a) => {
                            sqlx::query("INSERT INTO role_assignments (id, principal_id, role, scope, kind, starts_at_us, ends_at_us, created_by, created_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                                .bind(&a.id).bind(&a.principal_id).bind(&a.role).bind(&a.scope).bind(&a.kind)
                                .bind(a.starts_at_us).bind(a.ends_at_us).bind(&a.created_by).bind(a.created_at_us)
                                .execute(&mut *c).await?;
                        }
                        Change::EndAssignment { id, reason, by, at_us } => {
                            let n = sqlx::query("UPDATE role_assignments SET ended_at_us = $1, end_reason = $2 WHERE id = $3 AND ended_at_us IS NULL")
                                .bind(*at_us).bind(reason).bind(id).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("assignment already ended"));
                            }
                            sqlx::query("UPDATE activation_requests SET state = CASE state WHEN 'active' THEN 'revoked' ELSE 'cancelled' END, closed_at_us = $1, closed_by = $2, close_reason = $3 WHERE eligibility_id = $4 AND state IN ('pending_approval', 'active')")
                                .bind(*at_us).bind(by).bind(reason).bind(id).execute(&mut *c).await?;
                        }
                        Change::CreateRequest(r) => {
                            let live: Option<i64> = sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM role_assignments WHERE id = $1 AND ended_at_us IS NULL AND (ends_at_us IS NULL OR ends_at_us > $2)")
                                .bind(&r.eligibility_id).bind(r.created_at_us).fetch_optional(&mut *c).await?;
                            if live.is_none() {
                                return Err(conflict("the eligible assignment has ended"));
                            }
                            sqlx::query("INSERT INTO activation_requests (id, principal_id, role, scope, eligibility_id, state, duration_seconds, justification, ticket, approvals_required, created_at_us, timeout_at_us, activated_at_us, ends_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)")
                                .bind(&r.id).bind(&r.principal_id).bind(&r.role).bind(&r.scope).bind(&r.eligibility_id)
                                .bind(&r.state).bind(r.duration_seconds).bind(&r.justification).bind(&r.ticket)
                                .bind(r.approvals_required).bind(r.created_at_us).bind(r.timeout_at_us)
                                .bind(r.activated_at_us).bind(r.ends_at_us)
                                .execute(&mut *c).await?;
                        }
                        Change::DecideRequest { request_id, approver_id, approve, reason, approvals_before, activate, at_us } => {
                            let approvals: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM request_decisions WHERE request_id = $1 AND decision = 'approve'")
                                .bind(request_id).fetch_one(&mut *c).await?;
                            let pending: Option<i64> = sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM activation_requests WHERE id = $1 AND state = 'pending_approval'")
                                .bind(request_id).fetch_optional(&mut *c).await?;
                            if pending.is_none() {
                                return Err(conflict("the request is no longer pending"));
                            }
                            if approvals != *approvals_before {
                                return Err(conflict("another approval arrived meanwhile"));
                            }
                            let n = sqlx::query("INSERT INTO request_decisions (request_id, approver_id, decision, reason, at_us) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
                                .bind(request_id).bind(approver_id).bind(if *approve { "approve" } else { "deny" })
                                .bind(reason).bind(*at_us).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("this approver has decided already"));
                            }
                            if !*approve {
                                sqlx::query("UPDATE activation_requests SET state = 'denied', closed_at_us = $1, closed_by = $2, close_reason = $3 WHERE id = $4")
                                    .bind(*at_us).bind(approver_id).bind(reason).bind(request_id).execute(&mut *c).await?;
                            } else if let Some((activated, ends)) = activate {
                                sqlx::query("UPDATE activation_requests SET state = 'active', activated_at_us = $1, ends_at_us = $2 WHERE id = $3")
                                    .bind(*activated).bind(*ends).bind(request_id).execute(&mut *c).await?;
                            }
                        }
                        Change::CloseRequest { id, from, to, by, reason, at_us } => {
                            let n = sqlx::query("UPDATE activation_requests SET state = $1, closed_at_us = $2, closed_by = $3, close_reason = $4 WHERE id = $5 AND state = $6")
                                .bind(to).bind(*at_us).bind(by).bind(reason).bind(id).bind(from)
                                .execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("the request is not in the expected state"));
                            }
                        }
                        Change::AddClientSecret { id, principal_id, secret_hash, created_by, at_us } => {
                            let live: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM client_secrets WHERE principal_id = $1 AND revoked_at_us IS NULL")
                                .bind(principal_id).fetch_one(&mut *c).await?;
                            if live >= 2 {
                                return Err(conflict("two client secrets are live already"));
                            }
                            sqlx::query("INSERT INTO client_secrets (id, principal_id, secret_hash, created_by, created_at_us) VALUES ($1, $2, $3, $4, $5)")
                                .bind(id).bind(principal_id).bind(secret_hash).bind(created_by).bind(*at_us)
                                .execute(&mut *c).await?;
                        }
                        Change::RevokeClientSecret { id, principal_id, at_us } => {
                            let n = sqlx::query("UPDATE client_secrets SET revoked_at_us = $1 WHERE id = $2 AND principal_id = $3 AND revoked_at_us IS NULL")
                                .bind(*at_us).bind(id).bind(principal_id).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("no such live client secret"));
                            }
                        }
                        Change::GrantConsent { principal_id, permissions, granted_by, at_us } => {
                            for p in permissions {
                                sqlx::query("INSERT INTO consents (principal_id, permission, granted_by, granted_at_us) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                                    .bind(principal_id).bind(p).bind(granted_by).bind(*at_us)
                                    .execute(&mut *c).await?;
                            }
                        }
                        Change::RevokeConsent { principal_id, permission } => {
                            let n = sqlx::query("DELETE FROM consents WHERE principal_id = $1 AND permission = $2")
                                .bind(principal_id).bind(permission).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("no such consent"));
                            }
                        }
                        Change::RotateSigningKey { previous, key_id, public_key, sealed_private_key, at_us } => {
                            let n = sqlx::query("UPDATE signing_keys SET active = FALSE WHERE key_id = $1 AND active")
                                .bind(previous).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("the signing key was rotated already"));
                            }
                            sqlx::query("INSERT INTO signing_keys (key_id, public_key, sealed_private_key, created_at_us, active) VALUES ($1, $2, $3, $4, TRUE)")
                                .bind(key_id).bind(public_key).bind(sealed_private_key).bind(*at_us)
                                .execute(&mut *c).await?;
                        }
                        Change::SetClientNetworks { principal_id, cidrs, by, at_us } => {
                            match cidrs {
                                Some(cidrs) => {
                                    sqlx::query("INSERT INTO client_networks (principal_id, cidrs, updated_by, updated_at_us) VALUES ($1, $2, $3, $4) ON CONFLICT (principal_id) DO UPDATE SET cidrs = excluded.cidrs, updated_by = excluded.updated_by, updated_at_us = excluded.updated_at_us")
                                        .bind(principal_id).bind(cidrs).bind(by).bind(*at_us)
                                        .execute(&mut *c).await?;
                                }
                                None => {
                                    sqlx::query("DELETE FROM client_networks WHERE principal_id = $1")
                                        .bind(principal_id).execute(&mut *c).await?;
                                }
                            }
                        }
                        Change::CreateDeviceAuthorization(d) => {
                            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM device_authorizations WHERE client_ip = $1 AND state = 'pending' AND expires_at_us > $2")
                                .bind(&d.client_ip).bind(d.created_at_us).fetch_one(&mut *c).await?;
                            if n >= d.max_pending_per_address {
                                return Err(conflict(TOO_MANY_PENDING));
                            }
                            sqlx::query("INSERT INTO device_authorizations (id, device_code_hash, user_code, client_id, state, created_at_us, expires_at_us, interval_s, client_ip, user_agent) VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9)")
                                .bind(&d.id).bind(&d.device_code_hash).bind(&d.user_code).bind(&d.client_id)
                                .bind(d.created_at_us).bind(d.expires_at_us).bind(d.interval_s)
                                .bind(&d.client_ip).bind(&d.user_agent)
                                .execute(&mut *c).await?;
                        }
                        Change::PollDevice { id, slow_down, at_us } => {
                            let bump: i64 = if *slow_down { 5 } else { 0 };
                            sqlx::query("UPDATE device_authorizations SET last_poll_at_us = $1, interval_s = interval_s + $2 WHERE id = $3")
                                .bind(*at_us).bind(bump).bind(id).execute(&mut *c).await?;
                        }
                        Change::DecideDevice { id, approve, principal_id, strength, auth_time_us, session_id, at_us } => {
                            let to = if *approve { "approved" } else { "denied" };
                            let n = sqlx::query("UPDATE device_authorizations SET state = $1, principal_id = $2, strength = $3, auth_time_us = $4, decided_at_us = $5, session_id = $7 WHERE id = $6 AND state = 'pending' AND expires_at_us > $5")
                                .bind(to).bind(principal_id).bind(strength).bind(*auth_time_us).bind(*at_us).bind(id).bind(session_id)
                                .execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("the device code is no longer pending"));
                            }
                        }
                        Change::ConsumeDevice { id } => {
                            let n = sqlx::query("UPDATE device_authorizations SET state = 'consumed' WHERE id = $1 AND state = 'approved'")
                                .bind(id).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("the device code was used already"));
                            }
                        }
                        Change::IssueRefreshToken(t) => {
                            sqlx::query("INSERT INTO refresh_tokens (id, token_hash, family_id, principal_id, client_id, strength, auth_time_us, created_at_us, expires_at_us, family_expires_at_us, session_id, scope, access_jti, access_expires_at_us, flow, person_ip) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)")
                                .bind(&t.id).bind(&t.token_hash).bind(&t.family_id).bind(&t.principal_id).bind(&t.client_id)
                                .bind(&t.strength).bind(t.auth_time_us).bind(t.created_at_us).bind(t.expires_at_us).bind(t.family_expires_at_us).bind(&t.session_id)
                                .bind(&t.scope).bind(t.access.as_ref().map(|a| a.0.clone())).bind(t.access.as_ref().map(|a| a.1))
                                .bind(&t.flow).bind(&t.person_ip)
                                .execute(&mut *c).await?;
                        }
                        Change::UseRefreshToken { id, at_us } => {
                            let n = sqlx::query("UPDATE refresh_tokens SET used_at_us = $1 WHERE id = $2 AND used_at_us IS NULL AND revoked_at_us IS NULL")
                                .bind(*at_us).bind(id).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("the refresh token was used already"));
                            }
                        }
                        Change::RevokeRefreshFamily { family_id, at_us } => {
                            sqlx::query("UPDATE refresh_tokens SET revoked_at_us = $1 WHERE family_id = $2 AND revoked_at_us IS NULL")
                                .bind(*at_us).bind(family_id).execute(&mut *c).await?;
                            // The access tokens minted from the family end with it.
                            sqlx::query("INSERT INTO revoked_tokens (jti, expires_at_us, revoked_at_us) SELECT access_jti, access_expires_at_us, $1 FROM refresh_tokens WHERE family_id = $2 AND access_jti IS NOT NULL AND access_expires_at_us > $1 ON CONFLICT DO NOTHING")
                                .bind(*at_us).bind(family_id).execute(&mut *c).await?;
                        }
                        Change::RevokeToken { jti, expires_at_us, at_us } => {
                            sqlx::query("INSERT INTO revoked_tokens (jti, expires_at_us, revoked_at_us) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                                .bind(jti).bind(*expires_at_us).bind(*at_us).execute(&mut *c).await?;
                        }
                        Change::AddClientKey { principal_id, key_id, algorithm, public_key, created_by, at_us } => {
                            let live: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM client_keys WHERE principal_id = $1 AND revoked_at_us IS NULL")
                                .bind(principal_id).fetch_one(&mut *c).await?;
                            if live >= 5 {
                                return Err(conflict("five public keys are live already"));
                            }
                            let n = sqlx::query("INSERT INTO client_keys (principal_id, key_id, algorithm, public_key, created_by, created_at_us) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING")
                                .bind(principal_id).bind(key_id).bind(algorithm).bind(public_key).bind(created_by).bind(*at_us)
                                .execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("this key id has been used"));
                            }
                        }
                        Change::RemoveClientKey { principal_id, key_id, at_us } => {
                            let n = sqlx::query("UPDATE client_keys SET revoked_at_us = $1 WHERE principal_id = $2 AND key_id = $3 AND revoked_at_us IS NULL")
                                .bind(*at_us).bind(principal_id).bind(key_id).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("no such live public key"));
                            }
                        }
                        Change::UseClientAssertion { principal_id, jti, expires_at_us, at_us } => {
                            // Expired ids can go: an assertion that old fails its exp check.
                            sqlx::query("DELETE FROM client_assertion_jtis WHERE expires_at_us <= $1")
                                .bind(*at_us).execute(&mut *c).await?;
                            let n = sqlx::query("INSERT INTO client_assertion_jtis (principal_id, jti, expires_at_us) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                                .bind(principal_id).bind(jti).bind(*expires_at_us)
                                .execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("client assertion replayed"));
                            }
                        }
                        Change::CreateOAuthClient(k) => {
                            let n = sqlx::query("INSERT INTO oauth_clients (client_id, name, kind, redirect_uris, created_by, created_at_us) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING")
                                .bind(&k.client_id).bind(&k.name).bind(&k.kind).bind(&k.redirect_uris).bind(&k.created_by).bind(k.created_at_us)
                                .execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("a client with that name exists"));
                            }
                        }
                        Change::DeleteOAuthClient { client_id, at_us } => {
                            sqlx::query("UPDATE refresh_tokens SET revoked_at_us = $1 WHERE client_id = $2 AND revoked_at_us IS NULL")
                                .bind(*at_us).bind(client_id).execute(&mut *c).await?;
                            sqlx::query("DELETE FROM oauth_client_secrets WHERE client_id = $1").bind(client_id).execute(&mut *c).await?;
                            sqlx::query("DELETE FROM oauth_consents WHERE client_id = $1").bind(client_id).execute(&mut *c).await?;
                            let n = sqlx::query("DELETE FROM oauth_clients WHERE client_id = $1")
                                .bind(client_id).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("no such client"));
                            }
                        }
                        Change::AddOAuthClientSecret { id, client_id, secret_hash, created_by, at_us } => {
                            let live: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM oauth_client_secrets WHERE client_id = $1 AND revoked_at_us IS NULL")
                                .bind(client_id).fetch_one(&mut *c).await?;
                            if live >= 2 {
                                return Err(conflict("two client secrets are live already"));
                            }
                            sqlx::query("INSERT INTO oauth_client_secrets (id, client_id, secret_hash, created_by, created_at_us) VALUES ($1, $2, $3, $4, $5)")
                                .bind(id).bind(client_id).bind(secret_hash).bind(created_by).bind(*at_us)
                                .execute(&mut *c).await?;
                        }
                        Change::RevokeOAuthClientSecret { id, client_id, at_us } => {
                            let n = sqlx::query("UPDATE oauth_client_secrets SET revoked_at_us = $1 WHERE id = $2 AND client_id = $3 AND revoked_at_us IS NULL")
                                .bind(*at_us).bind(id).bind(client_id).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("no such live client secret"));
                            }
                        }
                        Change::CreateAuthorizationCode(a) => {
                            sqlx::query("INSERT INTO authorization_codes (id, code_hash, client_id, principal_id, session_id, redirect_uri, scope, nonce, code_challenge, strength, auth_time_us, created_at_us, expires_at_us, person_ip) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)")
                                .bind(&a.id).bind(&a.code_hash).bind(&a.client_id).bind(&a.principal_id).bind(&a.session_id)
                                .bind(&a.redirect_uri).bind(&a.scope).bind(&a.nonce).bind(&a.code_challenge).bind(&a.strength)
                                .bind(a.auth_time_us).bind(a.created_at_us).bind(a.expires_at_us).bind(&a.person_ip)
                                .execute(&mut *c).await?;
                        }
                        Change::RedeemAuthorizationCode { id, family_id, access_jti, access_expires_at_us, at_us } => {
                            let n = sqlx::query("UPDATE authorization_codes SET used_at_us = $1, family_id = $2, access_jti = $3, access_expires_at_us = $4 WHERE id = $5 AND used_at_us IS NULL AND expires_at_us > $1")
                                .bind(*at_us).bind(family_id).bind(access_jti).bind(*access_expires_at_us).bind(id)
                                .execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("the authorization code was used already"));
                            }
                        }
                        Change::RecordOAuthConsent { principal_id, client_id, scope, at_us } => {
                            sqlx::query("INSERT INTO oauth_consents (principal_id, client_id, scope, granted_at_us) VALUES ($1, $2, $3, $4) ON CONFLICT (principal_id, client_id) DO UPDATE SET scope = excluded.scope, granted_at_us = excluded.granted_at_us")
                                .bind(principal_id).bind(client_id).bind(scope).bind(*at_us)
                                .execute(&mut *c).await?;
                        }
                        Change::ConditionalAccess(ca) => {
                            let n = sqlx::query("UPDATE ca_version SET version = version + 1 WHERE id = 1 AND version = $1")
                                .bind(ca.expected_version).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict(CA_CHANGED));
                            }
                            for (name, state, spec) in &ca.put_policies {
                                sqlx::query("INSERT INTO ca_policies (name, state, spec, created_by, created_at_us, updated_by, updated_at_us) VALUES ($1, $2, $3, $4, $5, $4, $5) ON CONFLICT (name) DO UPDATE SET state = excluded.state, spec = excluded.spec, updated_by = excluded.updated_by, updated_at_us = excluded.updated_at_us")
                                    .bind(name).bind(state).bind(spec).bind(&ca.by).bind(ca.at_us).execute(&mut *c).await?;
                            }
                            for name in &ca.delete_policies {
                                sqlx::query("DELETE FROM ca_policies WHERE name = $1").bind(name).execute(&mut *c).await?;
                            }
                            for (name, cidrs, trusted) in &ca.put_locations {
                                sqlx::query("INSERT INTO ca_locations (name, cidrs, trusted, updated_by, updated_at_us) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET cidrs = excluded.cidrs, trusted = excluded.trusted, updated_by = excluded.updated_by, updated_at_us = excluded.updated_at_us")
                                    .bind(name).bind(cidrs).bind(*trusted).bind(&ca.by).bind(ca.at_us).execute(&mut *c).await?;
                            }
                            for name in &ca.delete_locations {
                                sqlx::query("DELETE FROM ca_locations WHERE name = $1").bind(name).execute(&mut *c).await?;
                            }
                        }
                        Change::CreateBreakGlass(b) => {
                            sqlx::query("INSERT INTO breakglass_accounts (principal_id, credential, custodians, threshold, key_holder, pin_holder, created_by, created_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                                .bind(&b.principal_id).bind(&b.credential).bind(&b.custodians).bind(b.threshold)
                                .bind(&b.key_holder).bind(&b.pin_holder).bind(&b.created_by).bind(b.created_at_us)
                                .execute(&mut *c).await?;
                        }
                        Change::UpdateBreakGlassCustody { principal_id, custodians, threshold } => {
                            sqlx::query("UPDATE breakglass_accounts SET custodians = $1, threshold = $2 WHERE principal_id = $3")
                                .bind(custodians).bind(*threshold).bind(principal_id).execute(&mut *c).await?;
                        }
                        Change::RecordDrill { id, principal_id, session_id, at_us } => {
                            let n = sqlx::query("INSERT INTO breakglass_drills (id, principal_id, session_id, at_us) VALUES ($1, $2, $3, $4) ON CONFLICT (session_id) DO NOTHING")
                                .bind(id).bind(principal_id).bind(session_id).bind(*at_us)
                                .execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("this session already recorded a drill"));
                            }
                        }
                        Change::RequireBreakGlassMinimum { min, before } => {
                            sqlx::query(concat!("SELECT p.id FROM principals p WHERE p.emergency ORDER BY p.id", $lock))
                                .fetch_all(&mut *c).await?;
                            let q = crate::breakglass::usable_count_sql();
                            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(q)).fetch_one(&mut *c).await?;
                            if n < *min && n < *before {
                                return Err(conflict(BREAKGLASS_MINIMUM));
                            }
                        }
                        Change::RequireGlobalAdministrator { before, at_us } => {
                            sqlx::query(concat!("SELECT a.id FROM role_assignments a WHERE a.role = 'global-administrator' AND a.ended_at_us IS NULL ORDER BY a.id", $lock))
                                .fetch_all(&mut *c).await?;
                            let n: i64 = sqlx::query_scalar(crate::roles::GA_REACHERS_SQL)
                                .bind(*at_us).fetch_one(&mut *c).await?;
                            if portcullis_core::privilege::refuses_last_global_administrator(*before, n) {
                                return Err(conflict(LAST_GLOBAL_ADMINISTRATOR));
                            }
                        }
                        Change::StampSession { id, strength, at_us } => {
                            // The strength only rises: a TOTP re-authentication of a passkey
                            // session keeps it phishing-resistant.
                            let n = sqlx::query("UPDATE sessions SET strength = CASE WHEN strength = 'phishing_resistant' OR $1 = 'password' OR (strength = 'mfa' AND $1 = 'mfa') THEN strength ELSE $1 END, strong_auth_at_us = $2 WHERE id = $3 AND revoked_at_us IS NULL")
                                .bind(strength).bind(*at_us).bind(id).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("no such live session"));
                            }
                        }
                        Change::ClaimPeriodic { name, not_before_us, at_us } => {
                            let n = sqlx::query("INSERT INTO periodic_jobs (name, last_run_us) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET last_run_us = excluded.last_run_us WHERE periodic_jobs.last_run_us <= $3")
                                .bind(name).bind(*at_us).bind(*not_before_us)
                                .execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("this periodic job already ran in this period"));
                            }
                        }
                        Change::MarkPrivileged { principal_id } => {
                            sqlx::query("UPDATE principals SET privileged = TRUE WHERE id = $1")
                                .bind(principal_id).execute(&mut *c).await?;
                        }
                        Change::Enqueue(m) => {
                            sqlx::query("INSERT INTO outbox (id, kind, topic, recipient, payload, created_at_us, next_attempt_at_us, channel, severity) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)")
                                .bind(&m.id).bind(&m.kind).bind(&m.topic).bind(&m.recipient).bind(&m.payload).bind(m.at_us)
                                .bind(&m.channel).bind(&m.severity)
                                .execute(&mut *c).await?;
                        }
                        Change::AddAlertChannel(ch) => {
                            let n = sqlx::query("INSERT INTO alert_channels (name, kind, config, sealed_secret, sealed_config, min_severity, created_by, created_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING")
                                .bind(&ch.name).bind(&ch.kind).bind(&ch.config).bind(&ch.sealed_secret).bind(&ch.sealed_config)
                                .bind(&ch.min_severity).bind(&ch.created_by).bind(ch.created_at_us)
                                .execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("an alert channel with that name exists"));
                            }
                        }
                        Change::RemoveAlertChannel { name, at_us } => {
                            let n = sqlx::query("DELETE FROM alert_channels WHERE name = $1")
                                .bind(name).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("no such alert channel"));
                            }
                            sqlx::query("UPDATE outbox SET state = 'dead', last_error = 'the channel was removed', claimed_by = NULL, claimed_until_us = NULL, next_attempt_at_us = $2 WHERE channel = $1 AND state = 'pending'")
                                .bind(name).bind(*at_us).execute(&mut *c).await?;
                        }
                        Change::AddAlertRule(r) => {
                            let rules: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM alert_rules").fetch_one(&mut *c).await?;
                            if rules >= crate::alerts::MAX_RULES {
                                return Err(conflict(TOO_MANY_RULES));
                            }
                            let n = sqlx::query("INSERT INTO alert_rules (name, action, outcome, actor, target, group_by, count, window_seconds, severity, created_by, created_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING")
                                .bind(&r.name).bind(&r.action).bind(&r.outcome).bind(&r.actor).bind(&r.target).bind(&r.group_by)
                                .bind(r.count).bind(r.window_seconds).bind(&r.severity).bind(&r.created_by).bind(r.created_at_us)
                                .execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("an alert rule with that name exists"));
                            }
                        }
                        Change::RemoveAlertRule { name } => {
                            let n = sqlx::query("DELETE FROM alert_rules WHERE name = $1")
                                .bind(name).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("no such alert rule"));
                            }
                            sqlx::query("DELETE FROM alert_rule_fired WHERE rule = $1").bind(name).execute(&mut *c).await?;
                        }
                        Change::ClaimOutbox { id, worker, now_us, until_us, sms_max_per_hour } => {
                            let n = sqlx::query("UPDATE outbox SET claimed_by = $1, claimed_until_us = $2, attempts = attempts + 1, first_attempt_at_us = COALESCE(first_attempt_at_us, $4) WHERE id = $3 AND state = 'pending' AND next_attempt_at_us <= $4 AND (claimed_until_us IS NULL OR claimed_until_us < $4)")
                                .bind(worker).bind(*until_us).bind(id).bind(*now_us)
                                .execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("claimed elsewhere or not due"));
                            }
                            if let Some(max) = sms_max_per_hour {
                                // Only an SMS message's first attempt takes a place under the cap.
                                let sms = sqlx::query("SELECT o.channel, o.recipient FROM outbox o JOIN alert_channels ch ON ch.name = o.channel WHERE o.id = $1 AND o.kind = 'alert' AND ch.kind = 'sms' AND o.attempts = 1")
                                    .bind(id).fetch_optional(&mut *c).await?;
                                if let Some(row) = sms {
                                    let channel: String = sqlx::Row::try_get(&row, "channel")?;
                                    let recipient: String = sqlx::Row::try_get(&row, "recipient")?;
                                    let since = *now_us - portcullis_core::alerts::SMS_CAP_PERIOD.whole_microseconds() as i64;
                                    let sent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE channel = $1 AND recipient = $2 AND first_attempt_at_us > $3 AND id <> $4")
                                        .bind(&channel).bind(&recipient).bind(since).bind(id).fetch_one(&mut *c).await?;
                                    if sent >= *max {
                                        sqlx::query("UPDATE outbox SET state = 'suppressed', attempts = attempts - 1, first_attempt_at_us = NULL, claimed_by = NULL, claimed_until_us = NULL, next_attempt_at_us = $2, last_error = $3 WHERE id = $1")
                                            .bind(id).bind(*now_us)
                                            .bind(format!("not sent: the SMS cap of {max} messages per hour to this number was reached"))
                                            .execute(&mut *c).await?;
                                    } else {
                                        sqlx::query("UPDATE outbox SET reported_in = $1 WHERE channel = $2 AND recipient = $3 AND state = 'suppressed' AND reported_in IS NULL")
                                            .bind(id).bind(&channel).bind(&recipient).execute(&mut *c).await?;
                                    }
                                }
                            }
                        }
                        Change::SealAlertChannels(all) => {
                            for ch in all {
                                let n = sqlx::query("UPDATE alert_channels SET config = $1, sealed_config = $2 WHERE name = $3 AND sealed_config IS NULL")
                                    .bind(&ch.config).bind(&ch.sealed_config).bind(&ch.name)
                                    .execute(&mut *c).await?.rows_affected();
                                if n == 0 {
                                    return Err(conflict("the channel is sealed already"));
                                }
                            }
                        }
                        Change::FinishOutbox(a) => {
                            let (state, next) = match (a.delivered, a.retry_at_us) {
                                (true, _) => ("delivered", a.finished_at_us),
                                (false, Some(at)) => ("pending", at),
                                (false, None) => ("dead", a.finished_at_us),
                            };
                            let n = sqlx::query("UPDATE outbox SET state = $1, next_attempt_at_us = $2, last_error = $3, delivered_at_us = $4, claimed_by = NULL, claimed_until_us = NULL WHERE id = $5 AND claimed_by = $6 AND state = 'pending'")
                                .bind(state).bind(next).bind(if a.delivered { None } else { a.detail.clone() })
                                .bind(a.delivered.then_some(a.finished_at_us)).bind(&a.id).bind(&a.worker)
                                .execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("the claim was lost"));
                            }
                            sqlx::query("INSERT INTO outbox_attempts (message_id, attempt, worker, started_at_us, finished_at_us, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                                .bind(&a.id).bind(a.attempt).bind(&a.worker).bind(a.started_at_us).bind(a.finished_at_us)
                                .bind(if a.delivered { "delivered" } else { "failed" }).bind(&a.detail)
                                .execute(&mut *c).await?;
                        }
                        Change::RetryOutbox { id, at_us } => {
                            let n = sqlx::query("UPDATE outbox SET state = 'pending', next_attempt_at_us = $1, budget_from = attempts WHERE id = $2 AND state = 'dead' AND channel IN (SELECT name FROM alert_channels)")
                                .bind(*at_us).bind(id).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("not a dead-lettered message of an existing channel"));
                            }
                        }
                    }
                    Ok(())
                })
            }
        }
    };
}

// SQLite's writer holds the database lock for the whole transaction (BEGIN IMMEDIATE), so
// reads there are already serialised; PostgreSQL locks the rows it reads.
apply_for!(sqlx::SqliteConnection, "");
apply_for!(sqlx::PgConnection, " FOR UPDATE");
