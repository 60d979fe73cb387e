//! State changes: each is applied inside the writer's transaction, together with its audit
//! events (invariant 1). A change that finds the world not as it expected (a row already there,
//! a conditional update that matched nothing) fails with [`StoreError::Conflict`] and is rolled
//! back alone, so races between replicas resolve to exactly one winner.
//!
//! [`Change`] is the one list of what can be written; each variant is applied by an ordinary
//! async function in the file of its topic, written once for both backends against
//! [`sql::Conn`]. [`apply`] only dispatches.

mod accounts;
mod alerts;
pub(crate) mod apply;
mod audit_export;
mod breakglass;
mod clients;
mod conditional_access;
mod conflicts;
mod containment;
mod device;
mod factors;
mod governance;
mod oidc;
mod reviews;
mod roles;
mod sessions;
pub(crate) mod sql;
mod ssh;
mod targets;
mod tenant;
mod throttle;
mod tokens;

use portcullis_core::activation::RequestState;
use portcullis_core::session::AuthStrength;

pub use accounts::NewPrincipal;
pub use alerts::{NewAlertChannel, NewAlertRule, NewOutboxMessage, OutboxAttempt, SealedChannel};
pub use audit_export::EXPORT_HELD;
pub use breakglass::NewBreakGlass;
pub use conditional_access::CaChange;
pub use conflicts::{
    BREAKGLASS_MINIMUM, CA_CHANGED, LAST_GLOBAL_ADMINISTRATOR, REQUEST_MOVED, THROTTLED,
    TOO_MANY_PENDING, TOO_MANY_RULES,
};
pub use containment::ALREADY_CONTAINED;
pub use device::{DeviceDecision, NewDeviceAuthorization};
pub use factors::{NewCeremony, NewTotpFactor, NewWebauthnFactor, PendingCap};
pub use governance::{CHANGE_MOVED, GovernanceChange, NewChangeRequest};
pub use oidc::{NewAuthorizationCode, NewOAuthClient};
pub use reviews::{
    ClosedItem, NewAccessReview, NewReviewItem, NewReviewRound, REVIEW_DECISIONS_MOVED,
    REVIEW_ITEM_MOVED, REVIEW_NOT_DUE, REVIEW_ROUND_NOT_OPEN, ReviewChange, ReviewClose,
};
pub use roles::{Completed, NewAssignment, NewRequest, RequestDecision};
pub use sessions::NewSession;
pub use ssh::{NewSshCaKey, NewSshCertificate};
pub use targets::{NewBinding, NewCredential, NewTarget, NewTargetAccount, TargetOpAttempt};
pub use tenant::NewTenant;
pub use tokens::NewRefreshToken;

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
    InitialiseTenant(NewTenant),
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
    AddTotpFactor(NewTotpFactor),
    /// Accepts a TOTP time step: conflicts if that step (or a later one) was already used,
    /// which is what stops a code from working twice, also across replicas.
    AcceptTotpStep {
        factor_id: String,
        step: i64,
        confirm: bool,
        at_us: i64,
    },
    /// Adds a confirmed WebAuthn credential; conflicts if the name or the credential id is taken.
    AddWebauthnFactor(NewWebauthnFactor),
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
    CreateCeremony(NewCeremony),
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
    /// approval makes it retry). `completes` makes the request active, scheduled or applied in
    /// the same step; `deny` closes it as denied.
    DecideRequest(RequestDecision),
    /// Moves active request `id`'s end from `from_end_us` to `to_end_us` (an extension) and
    /// writes grants with the new end for its targets; conflicts unless it is still active,
    /// still ends at `from_end_us` and that is after `at_us`.
    ExtendRequest {
        id: String,
        from_end_us: i64,
        to_end_us: i64,
        at_us: i64,
    },
    /// Starts scheduled request `id` at `at_us`: conflicts unless it is still scheduled, its
    /// principal enabled and its eligibility live and still applying to the principal.
    StartRequest {
        id: String,
        at_us: i64,
    },
    /// Moves a request from state `from` to `to` (a terminal state); conflicts if it is not in
    /// `from` any more, so a state change happens once even across replicas.
    CloseRequest {
        id: String,
        from: RequestState,
        to: RequestState,
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
        /// `EdDSA`, `ES256` or `RS256`: `previous` must be the active key of this algorithm.
        algorithm: String,
        key_id: String,
        public_key: Vec<u8>,
        sealed_private_key: Vec<u8>,
        at_us: i64,
    },
    /// Adds the first key of an algorithm (active); conflicts if that algorithm has an active
    /// key already (two replicas starting at once make one).
    CreateSigningKey {
        algorithm: String,
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
    DecideDevice(DeviceDecision),
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
        strength: AuthStrength,
        at_us: i64,
    },
    /// Claims the periodic job `name` for this run: conflicts when another run (any replica)
    /// recorded one after `not_before_us`.
    ClaimPeriodic {
        name: String,
        not_before_us: i64,
        at_us: i64,
    },
    /// Takes or renews the lease to deliver the SIEM export to `sink` until `lease_until_us`
    /// (the cursor starts at 0 when the sink is new): conflicts while another holder's lease
    /// runs at `at_us`.
    ClaimAuditExport {
        sink: String,
        holder: String,
        at_us: i64,
        lease_until_us: i64,
    },
    /// Records that `holder` delivered the events after `from_seq` through `to_seq` to `sink`
    /// and renews its lease: conflicts when the holder lost the lease or the cursor is not at
    /// `from_seq`, so two replicas never both move it.
    AdvanceAuditExport {
        sink: String,
        holder: String,
        from_seq: i64,
        to_seq: i64,
        at_us: i64,
        lease_until_us: i64,
    },
    /// Ends `holder`'s lease on `sink` (a stopping replica), so another takes over at once.
    ReleaseAuditExport {
        sink: String,
        holder: String,
    },
    /// Contains a principal: disables it and cuts everything it holds (see `containment`);
    /// conflicts when it is unknown or already contained.
    Contain {
        id: String,
        by: String,
        reason: String,
        at_us: i64,
    },
    /// Ends a containment: re-enables the account only; conflicts when it is not contained.
    Uncontain {
        id: String,
    },
    /// An access-review change (see `reviews`: each is conditional, so replicas act once).
    Review(ReviewChange),
    /// A change request of four eyes on the PAM's settings: created, or closed once.
    Governance(GovernanceChange),
    /// Records (or widens) a person's consent to a client for `scope`.
    RecordOAuthConsent {
        principal_id: String,
        client_id: String,
        scope: String,
        at_us: i64,
    },
    /// Adds a target; conflicts if the name is taken.
    AddTarget(NewTarget),
    /// Removes a target; conflicts while a role is bound to it or an operation is pending.
    RemoveTarget {
        name: String,
    },
    /// Binds a role to a target (`grants`: a JSON array of target-side rights), or changes what
    /// it means there; writes a grant for each live grant of the role at the target.
    BindRole(NewBinding),
    /// Sets or removes a principal's own account at a target; conflicts while the principal
    /// holds anything there, and when another principal has the account.
    SetTargetAccount(NewTargetAccount),
    /// Removes a binding and writes the revokes of what it granted; conflicts if unbound.
    UnbindRole {
        role: String,
        target: String,
        at_us: i64,
    },
    /// Claims a due target operation for one attempt; conflicts when it is not due, claimed
    /// elsewhere, finished, or waits for an earlier operation of the same grant.
    ClaimTargetOp {
        id: i64,
        worker: String,
        now_us: i64,
        until_us: i64,
    },
    /// Records an attempt's outcome; conflicts if the claim was lost.
    FinishTargetOp(TargetOpAttempt),
    /// Gives a dead operation a fresh budget; conflicts unless it is dead (and, for a grant,
    /// nothing followed it).
    RetryTargetOp {
        id: i64,
        at_us: i64,
    },
    /// Applies an applied grant again (the reconciler found it missing from its target), unless
    /// something for it is pending or followed it.
    ReapplyTargetGrant {
        target: String,
        grant_id: String,
        at_us: i64,
    },
    /// Marks a dynamic grant's credential handed out; conflicts if there is none or it was.
    TakeTargetCredential {
        target: String,
        grant_id: String,
        at_us: i64,
    },
    /// Adds a CA key to an ssh-ca target; with `retire_until_us` (a rotation) the keys that
    /// signed so far stop signing and stay trusted until then.
    AddSshCaKey {
        key: NewSshCaKey,
        retire_until_us: Option<i64>,
    },
    /// Records a certificate; conflicts unless every grant it rests on is live, its principal
    /// enabled, its roles bound and its CA key the signing one.
    IssueSshCertificate(NewSshCertificate),
    /// Revokes live certificates of a target (drift reverted).
    RevokeSshCertificates {
        target: String,
        serials: Vec<i64>,
        reason: String,
        at_us: i64,
    },
}

impl Change {
    /// Whether committing this change can make a value read earlier stale for the readers that
    /// cache (principals and their credentials, networks, consents, grants, revoked tokens,
    /// OAuth clients, sessions, conditional access): after such a batch commits, the writer moves
    /// the store's [`crate::cache::Epoch`] before it answers, so no cached value read before the
    /// change is used after the caller learns it committed.
    ///
    /// The match is exhaustive on purpose: a new variant must decide, and when in doubt it
    /// invalidates. Only bookkeeping that no cached read depends on is listed as neutral.
    pub fn invalidates_caches(&self) -> bool {
        match self {
            Self::Many(all) => all.iter().any(Self::invalidates_caches),
            // Audit-only writes, throttling counters, attempt reservations, one-time values
            // consumed by their own conditional write (assertion `jti`s, codes, ceremonies,
            // decoys, pending sign-ins, device polls), the outbox and periodic-job claims.
            Self::None
            | Self::ForceCheckpoint
            | Self::RecordSignIn { .. }
            | Self::AcceptTotpStep { .. }
            | Self::CreateCeremony(_)
            | Self::CreateDecoy { .. }
            | Self::ConsumeDecoy { .. }
            | Self::ConsumeCeremony { .. }
            | Self::CreateSession(_)
            | Self::CreatePendingSignIn { .. }
            | Self::ConsumePendingSignIn { .. }
            | Self::ReserveAttempt { .. }
            | Self::ReleaseAttempt { .. }
            | Self::RefundAttempt { .. }
            | Self::RecordFailures { .. }
            | Self::ResetThrottle { .. }
            | Self::Enqueue(_)
            | Self::CreateDeviceAuthorization(_)
            | Self::PollDevice { .. }
            | Self::ConsumeDevice { .. }
            | Self::IssueRefreshToken(_)
            | Self::UseRefreshToken { .. }
            | Self::UseClientAssertion { .. }
            | Self::CreateAuthorizationCode(_)
            | Self::RedeemAuthorizationCode { .. }
            | Self::ClaimOutbox { .. }
            | Self::FinishOutbox(_)
            | Self::RetryOutbox { .. }
            | Self::ClaimPeriodic { .. }
            | Self::Review(_)
            | Self::Governance(_)
            | Self::ClaimAuditExport { .. }
            | Self::AdvanceAuditExport { .. }
            | Self::ReleaseAuditExport { .. }
            | Self::ClaimTargetOp { .. }
            | Self::FinishTargetOp(_)
            | Self::RetryTargetOp { .. }
            | Self::ReapplyTargetGrant { .. }
            | Self::TakeTargetCredential { .. }
            | Self::IssueSshCertificate(_)
            | Self::RevokeSshCertificates { .. } => false,
            Self::SetSetting { .. }
            | Self::InitialiseTenant(_)
            | Self::RedeemBootstrapToken { .. }
            | Self::CreatePrincipal(_)
            | Self::SetPrincipalEnabled { .. }
            | Self::Contain { .. }
            | Self::Uncontain { .. }
            | Self::AddGroupMember { .. }
            | Self::RemoveGroupMember { .. }
            | Self::SetPassword { .. }
            | Self::AddTotpFactor(_)
            | Self::AddWebauthnFactor(_)
            | Self::UpdateWebauthnFactor { .. }
            | Self::RemoveFactor { .. }
            | Self::RevokeSession { .. }
            | Self::RevokeSessionsOf { .. }
            | Self::TouchSession { .. }
            | Self::SetBreakGlassVerifier { .. }
            | Self::CreateCustomRole { .. }
            | Self::DeleteCustomRole { .. }
            | Self::SetRoleSettings { .. }
            | Self::CreateAssignment(_)
            | Self::EndAssignment { .. }
            | Self::CreateRequest(_)
            | Self::DecideRequest(_)
            | Self::ExtendRequest { .. }
            | Self::StartRequest { .. }
            | Self::CloseRequest { .. }
            | Self::AddClientSecret { .. }
            | Self::RevokeClientSecret { .. }
            | Self::GrantConsent { .. }
            | Self::RevokeConsent { .. }
            | Self::RotateSigningKey { .. }
            | Self::CreateSigningKey { .. }
            | Self::SetClientNetworks { .. }
            | Self::DecideDevice(_)
            | Self::RevokeRefreshFamily { .. }
            | Self::RevokeToken { .. }
            | Self::AddClientKey { .. }
            | Self::RemoveClientKey { .. }
            | Self::MarkPrivileged { .. }
            | Self::CreateOAuthClient(_)
            | Self::DeleteOAuthClient { .. }
            | Self::AddOAuthClientSecret { .. }
            | Self::RevokeOAuthClientSecret { .. }
            | Self::AddAlertChannel(_)
            | Self::RemoveAlertChannel { .. }
            | Self::AddAlertRule(_)
            | Self::RemoveAlertRule { .. }
            | Self::SealAlertChannels(_)
            | Self::CreateBreakGlass(_)
            | Self::ConditionalAccess(_)
            | Self::UpdateBreakGlassCustody { .. }
            | Self::RecordDrill { .. }
            | Self::RequireBreakGlassMinimum { .. }
            | Self::RequireGlobalAdministrator { .. }
            | Self::StampSession { .. }
            | Self::RecordOAuthConsent { .. }
            | Self::AddTarget(_)
            | Self::RemoveTarget { .. }
            | Self::BindRole(_)
            | Self::UnbindRole { .. }
            | Self::SetTargetAccount(_)
            | Self::AddSshCaKey { .. } => true,
        }
    }

    /// Whether this change can write target operations: the writer then wakes this process's
    /// target worker at once (other replicas' operations are found by polling).
    pub fn writes_target_ops(&self) -> bool {
        match self {
            Self::Many(all) => all.iter().any(Self::writes_target_ops),
            Self::CreateAssignment(_)
            | Self::EndAssignment { .. }
            | Self::CreateRequest(_)
            | Self::DecideRequest(_)
            | Self::ExtendRequest { .. }
            | Self::StartRequest { .. }
            | Self::CloseRequest { .. }
            | Self::SetPrincipalEnabled { .. }
            | Self::Contain { .. }
            | Self::BindRole(_)
            | Self::UnbindRole { .. }
            | Self::FinishTargetOp(_)
            | Self::RetryTargetOp { .. }
            | Self::ReapplyTargetGrant { .. } => true,
            _ => false,
        }
    }
}
