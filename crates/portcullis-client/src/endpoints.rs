//! The generated endpoint methods of [`Client`]: one `endpoints!` line per API route. Each
//! goes through `Client::request` and `Client::send`, so every one authenticates, decodes and
//! reports errors (with the server's stable code) the same way.

use portcullis_core::api::{
    ActivationRequestView, AssignmentView, CreateActivationRequest, CreateAssignmentRequest,
    CreateRoleRequest, DecisionRequest, DeviceDecisionRequest, RoleSettingsUpdate,
    RoleSettingsView, RoleView, SigningKeyRotated, SigningKeyView,
};
use portcullis_core::api::{
    AddClientKeyRequest, ClientKeyView, ClientSecretIssued, ConsentRequest, NetworksRequest,
    ServiceAccountDetail,
};
use portcullis_core::api::{
    AlertChannelView, AlertRuleView, AlertView, CreateAlertChannelRequest, CreateAlertRuleRequest,
};
use portcullis_core::api::{
    BindRoleRequest, CreateTargetRequest, SetTargetAccountRequest, TargetAccountView,
    TargetBindingView, TargetCredentialsView, TargetObservationView, TargetOpView,
    TargetReconcileView, TargetTestView, TargetView,
};
use portcullis_core::api::{
    BootstrapRequest, CreateGroupRequest, CreateServiceAccountRequest, CreateUserRequest,
    FactorView, GroupMemberRequest, GroupView, PasswordChangeRequest, PasswordSignInRequest,
    ServiceAccountView, SessionView, SignInResponse, TotpConfirmRequest, TotpEnrolRequest,
    TotpEnrolment, TotpSignInRequest, UserView, WebauthnChallenge, WebauthnFinishRequest,
    WebauthnRegisterRequest, WebauthnSignInRequest, WhoAmI,
};
use portcullis_core::api::{
    BreakGlassCreated, BreakGlassEnrolment, BreakGlassFailedRecovery, BreakGlassView,
    CreateBreakGlassRequest, DrillRecorded, RotateBreakGlassRequest,
};
use portcullis_core::api::{
    CaImportRequest, CaImportResult, CaLocationRequest, CaLocationView, CaPolicyView,
    CaStateRequest, WhatIfRequest,
};
use portcullis_core::api::{ClientCreated, ClientView, CreateClientRequest};
use portcullis_core::api::{ContainRequest, ContainmentView, PostureReport, ReleaseRequest};
use portcullis_core::api::{
    ExtendActivationRequest, MakeEligibleRequest, ReauthRequest, Reauthenticated,
};
use portcullis_core::api::{RotateSshCaRequest, SignSshRequest, SshCaView, SshCertificateView};

use crate::{Client, ClientError};

macro_rules! endpoints {
    ($( $(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $method:ident $path:expr $(, body $body:expr)? ;)*) => {
        impl Client {
            $(
                $(#[$m])*
                pub async fn $name(&self, $($arg: $ty),*) -> Result<$ret, ClientError> {
                    #[allow(unused_mut)]
                    let mut rb = self.request(reqwest::Method::$method, &$path);
                    $( rb = rb.json(&$body); )?
                    endpoints!(@send self, rb, $ret)
                }
            )*
        }
    };
    (@send $self:ident, $rb:ident, $ret:ty) => { $self.send($rb).await };
}

/// A path segment, percent-encoded.
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

endpoints! {
    /// Redeem the bootstrap token and create the first administrator.
    fn bootstrap(req: &BootstrapRequest) -> UserView = POST "/api/v1/bootstrap", body req;
    /// Sign in, first step.
    fn signin_password(req: &PasswordSignInRequest) -> SignInResponse = POST "/api/v1/signin", body req;
    /// Sign in, second step.
    fn signin_totp(req: &TotpSignInRequest) -> SignInResponse = POST "/api/v1/signin/totp", body req;
    /// Start a WebAuthn sign-in (after the password, or passwordless).
    fn signin_webauthn(req: &WebauthnSignInRequest) -> WebauthnChallenge = POST "/api/v1/signin/webauthn", body req;
    /// Finish a WebAuthn sign-in with the authenticator's answer.
    fn signin_webauthn_finish(req: &WebauthnFinishRequest) -> SignInResponse = POST "/api/v1/signin/webauthn/finish", body req;
    fn signout() -> () = POST "/api/v1/signout";
    fn whoami() -> WhoAmI = GET "/api/v1/me";
    fn mfa_list() -> Vec<FactorView> = GET "/api/v1/me/mfa";
    fn mfa_enrol_totp(req: &TotpEnrolRequest) -> TotpEnrolment = POST "/api/v1/me/mfa/totp", body req;
    fn mfa_confirm_totp(id: &str, req: &TotpConfirmRequest) -> FactorView = POST format!("/api/v1/me/mfa/totp/{}/confirm", seg(id)), body req;
    fn mfa_webauthn_register(req: &WebauthnRegisterRequest) -> WebauthnChallenge = POST "/api/v1/me/mfa/webauthn", body req;
    fn mfa_webauthn_register_finish(req: &WebauthnFinishRequest) -> FactorView = POST "/api/v1/me/mfa/webauthn/finish", body req;
    fn mfa_remove(id: &str) -> () = DELETE format!("/api/v1/me/mfa/{}", seg(id));
    fn change_password(req: &PasswordChangeRequest) -> () = POST "/api/v1/me/password", body req;
    /// A fresh proof in this session (password and TOTP code, or a WebAuthn answer).
    fn reauth(req: &ReauthRequest) -> Reauthenticated = POST "/api/v1/me/reauth", body req;
    /// A WebAuthn challenge for [`Client::reauth`].
    fn reauth_webauthn() -> WebauthnChallenge = POST "/api/v1/me/reauth/webauthn";
    fn sessions() -> Vec<SessionView> = GET "/api/v1/sessions";
    fn revoke_session(id: &str) -> () = DELETE format!("/api/v1/sessions/{}", seg(id));
    fn create_user(req: &CreateUserRequest) -> UserView = POST "/api/v1/users", body req;
    fn users() -> Vec<UserView> = GET "/api/v1/users";
    fn user(name: &str) -> UserView = GET format!("/api/v1/users/{}", seg(name));
    fn disable_user(name: &str) -> UserView = POST format!("/api/v1/users/{}/disable", seg(name));
    fn enable_user(name: &str) -> UserView = POST format!("/api/v1/users/{}/enable", seg(name));
    fn posture() -> PostureReport = GET "/api/v1/posture";
    fn contain_principal(name: &str, req: &ContainRequest) -> ContainmentView = POST format!("/api/v1/principals/{}/contain", seg(name)), body req;
    fn release_principal(name: &str, req: &ReleaseRequest) -> ContainmentView = POST format!("/api/v1/principals/{}/release", seg(name)), body req;
    fn user_sessions(name: &str) -> Vec<SessionView> = GET format!("/api/v1/users/{}/sessions", seg(name));
    fn create_group(req: &CreateGroupRequest) -> GroupView = POST "/api/v1/groups", body req;
    fn groups() -> Vec<GroupView> = GET "/api/v1/groups";
    fn add_group_member(group: &str, req: &GroupMemberRequest) -> GroupView = POST format!("/api/v1/groups/{}/members", seg(group)), body req;
    fn remove_group_member(group: &str, member: &str) -> GroupView = DELETE format!("/api/v1/groups/{}/members/{}", seg(group), seg(member));
    fn create_service_account(req: &CreateServiceAccountRequest) -> ServiceAccountView = POST "/api/v1/service-accounts", body req;
    fn service_accounts() -> Vec<ServiceAccountView> = GET "/api/v1/service-accounts";
    fn service_account(name: &str) -> ServiceAccountDetail = GET format!("/api/v1/service-accounts/{}", seg(name));
    fn add_client_secret(name: &str) -> ClientSecretIssued = POST format!("/api/v1/service-accounts/{}/secrets", seg(name));
    fn remove_client_secret(name: &str, id: &str) -> () = DELETE format!("/api/v1/service-accounts/{}/secrets/{}", seg(name), seg(id));
    fn set_networks(name: &str, req: &NetworksRequest) -> ServiceAccountDetail = PUT format!("/api/v1/service-accounts/{}/networks", seg(name)), body req;
    fn consent(name: &str, req: &ConsentRequest) -> ServiceAccountDetail = POST format!("/api/v1/service-accounts/{}/consent", seg(name)), body req;
    fn add_client_key(name: &str, req: &AddClientKeyRequest) -> ClientKeyView = POST format!("/api/v1/service-accounts/{}/keys", seg(name)), body req;
    fn remove_client_key(name: &str, key_id: &str) -> () = DELETE format!("/api/v1/service-accounts/{}/keys/{}", seg(name), seg(key_id));
    /// Register an OpenID Connect client; a confidential one's first secret is in the answer, once.
    fn create_oidc_client(req: &CreateClientRequest) -> ClientCreated = POST "/api/v1/clients", body req;
    fn oidc_clients() -> Vec<ClientView> = GET "/api/v1/clients";
    /// One OpenID Connect client, by client id or name.
    fn oidc_client(id: &str) -> ClientView = GET format!("/api/v1/clients/{}", seg(id));
    fn delete_oidc_client(id: &str) -> () = DELETE format!("/api/v1/clients/{}", seg(id));
    /// Add a secret to a confidential OpenID Connect client (shown once; at most two live).
    fn add_oidc_client_secret(id: &str) -> ClientSecretIssued = POST format!("/api/v1/clients/{}/secrets", seg(id));
    fn remove_oidc_client_secret(id: &str, secret_id: &str) -> () = DELETE format!("/api/v1/clients/{}/secrets/{}", seg(id), seg(secret_id));
    fn signing_keys() -> Vec<SigningKeyView> = GET "/api/v1/keys";
    /// Rotate the signing key; with `previous`, only if that key is still the active one.
    fn rotate_signing_key(previous: Option<&str>) -> SigningKeyRotated = POST match previous {
        Some(p) => format!("/api/v1/keys/rotate?previous={}", seg(p)),
        None => "/api/v1/keys/rotate".to_owned(),
    };
    /// Rotate the signing key of one algorithm (`EdDSA`, `ES256` or `RS256`); with `previous`,
    /// only if that key is still its active one.
    fn rotate_signing_key_of(algorithm: &str, previous: Option<&str>) -> SigningKeyRotated = POST match previous {
        Some(p) => format!("/api/v1/keys/rotate?algorithm={}&previous={}", seg(algorithm), seg(p)),
        None => format!("/api/v1/keys/rotate?algorithm={}", seg(algorithm)),
    };
    /// Approve the device code a CLI showed (`portcullis login` elsewhere).
    fn approve_device(req: &DeviceDecisionRequest) -> () = POST "/api/v1/device/approve", body req;
    fn deny_device(req: &DeviceDecisionRequest) -> () = POST "/api/v1/device/deny", body req;
    fn roles() -> Vec<RoleView> = GET "/api/v1/roles";
    fn role(slug: &str) -> RoleView = GET format!("/api/v1/roles/{}", seg(slug));
    fn create_role(req: &CreateRoleRequest) -> RoleView = POST "/api/v1/roles", body req;
    fn delete_role(slug: &str) -> () = DELETE format!("/api/v1/roles/{}", seg(slug));
    fn role_settings(slug: &str) -> RoleSettingsView = GET format!("/api/v1/roles/{}/settings", seg(slug));
    fn update_role_settings(slug: &str, req: &RoleSettingsUpdate) -> RoleSettingsView = PUT format!("/api/v1/roles/{}/settings", seg(slug)), body req;
    fn assignments() -> Vec<AssignmentView> = GET "/api/v1/assignments";
    /// Live assignments of one principal (`NAME`, `user:NAME`, `group:NAME`, …).
    fn assignments_of(principal: &str) -> Vec<AssignmentView> = GET format!("/api/v1/assignments?principal={}", seg(principal));
    fn create_assignment(req: &CreateAssignmentRequest) -> AssignmentView = POST "/api/v1/assignments", body req;
    fn delete_assignment(id: &str) -> () = DELETE format!("/api/v1/assignments/{}", seg(id));
    /// Turn a live active assignment into an eligible one (the holder may do it themselves).
    fn make_eligible(id: &str, req: &MakeEligibleRequest) -> AssignmentView = POST format!("/api/v1/assignments/{}/make-eligible", seg(id)), body req;
    fn request_activation(req: &CreateActivationRequest) -> ActivationRequestView = POST "/api/v1/requests", body req;
    /// `view` is `mine`, `to_approve` or `all`.
    fn requests(view: &str, state: Option<&str>) -> Vec<ActivationRequestView> = GET match state {
        Some(st) => format!("/api/v1/requests?view={}&state={}", seg(view), seg(st)),
        None => format!("/api/v1/requests?view={}", seg(view)),
    };
    fn activation_request(id: &str) -> ActivationRequestView = GET format!("/api/v1/requests/{}", seg(id));
    fn approve(id: &str, req: &DecisionRequest) -> ActivationRequestView = POST format!("/api/v1/requests/{}/approve", seg(id)), body req;
    fn deny(id: &str, req: &DecisionRequest) -> ActivationRequestView = POST format!("/api/v1/requests/{}/deny", seg(id)), body req;
    fn cancel_request(id: &str, req: &DecisionRequest) -> ActivationRequestView = POST format!("/api/v1/requests/{}/cancel", seg(id)), body req;
    fn deactivate(id: &str, req: &DecisionRequest) -> ActivationRequestView = POST format!("/api/v1/requests/{}/deactivate", seg(id)), body req;
    /// Ask for more time on your own active activation (the extension request is returned).
    fn extend_activation(id: &str, req: &ExtendActivationRequest) -> ActivationRequestView = POST format!("/api/v1/requests/{}/extend", seg(id)), body req;
    fn revoke_grant(id: &str, req: &DecisionRequest) -> ActivationRequestView = POST format!("/api/v1/requests/{}/revoke", seg(id)), body req;
    /// Add an alert channel (email, webhook or SMS); the answer never holds a secret.
    fn create_alert_channel(req: &CreateAlertChannelRequest) -> AlertChannelView = POST "/api/v1/alerts/channels", body req;
    fn alert_channels() -> Vec<AlertChannelView> = GET "/api/v1/alerts/channels";
    /// Remove an alert channel; its undelivered messages are dead-lettered.
    fn remove_alert_channel(name: &str) -> () = DELETE format!("/api/v1/alerts/channels/{}", seg(name));
    /// Queue a test message on a channel (follow it with [`Client::alert`]).
    fn test_alert_channel(name: &str) -> AlertView = POST format!("/api/v1/alerts/channels/{}/test", seg(name));
    /// Alerts and notifications, newest first; `state` is `pending`, `delivered` or `dead`.
    fn alerts(state: Option<&str>) -> Vec<AlertView> = GET match state {
        Some(st) => format!("/api/v1/alerts?state={}", seg(st)),
        None => "/api/v1/alerts".to_owned(),
    };
    /// One alert with every delivery attempt.
    fn alert(id: &str) -> AlertView = GET format!("/api/v1/alerts/{}", seg(id));
    /// Put a dead-lettered alert back in the queue.
    fn retry_alert(id: &str) -> AlertView = POST format!("/api/v1/alerts/{}/retry", seg(id));
    /// Alert rules: the built-in ones (`builtin`) and the custom ones (`custom:NAME`).
    fn alert_rules() -> Vec<AlertRuleView> = GET "/api/v1/alerts/rules";
    /// Add a custom alert rule; the server validates every field.
    fn create_alert_rule(req: &CreateAlertRuleRequest) -> AlertRuleView = POST "/api/v1/alerts/rules", body req;
    /// Remove a custom rule (`NAME` or `custom:NAME`); built-in rules cannot be removed.
    fn remove_alert_rule(name: &str) -> () = DELETE format!("/api/v1/alerts/rules/{}", seg(name));
    /// Add a target (PostgreSQL or webhook); a generated webhook key is in this answer only.
    fn create_target(req: &CreateTargetRequest) -> TargetView = POST "/api/v1/targets", body req;
    fn targets() -> Vec<TargetView> = GET "/api/v1/targets";
    fn target(name: &str) -> TargetView = GET format!("/api/v1/targets/{}", seg(name));
    /// Remove a target (refused while a role is bound to it or an operation is pending).
    fn remove_target(name: &str) -> () = DELETE format!("/api/v1/targets/{}", seg(name));
    /// Check a target's connection and the rights its bindings name.
    fn test_target(name: &str) -> TargetTestView = POST format!("/api/v1/targets/{}/test", seg(name));
    /// What a target holds now, and what is missing or drift.
    fn observe_target(name: &str) -> TargetObservationView = GET format!("/api/v1/targets/{}/observe", seg(name));
    /// The login your dynamic grant at a target created, once (fresh proof needed).
    fn target_credentials(name: &str) -> TargetCredentialsView = POST format!("/api/v1/targets/{}/credentials", seg(name));
    /// Certify a public key for the principals of your active grants at an ssh-ca target.
    fn ssh_sign(target: &str, req: &SignSshRequest) -> SshCertificateView = POST format!("/api/v1/targets/{}/ssh/sign", seg(target)), body req;
    /// Rotate an ssh-ca target's CA key (the old one stays trusted for the overlap).
    fn ssh_rotate(target: &str, req: &RotateSshCaRequest) -> SshCaView = POST format!("/api/v1/targets/{}/ssh/rotate", seg(target)), body req;
    /// Reconcile a target now.
    fn reconcile_target(name: &str) -> TargetReconcileView = POST format!("/api/v1/targets/{}/reconcile", seg(name));
    /// Bind a role to a target (what its grants mean there).
    fn bind_role(target: &str, role: &str, req: &BindRoleRequest) -> TargetBindingView = PUT format!("/api/v1/targets/{}/bindings/{}", seg(target), seg(role)), body req;
    /// Remove a binding; what it granted is revoked.
    fn unbind_role(target: &str, role: &str) -> () = DELETE format!("/api/v1/targets/{}/bindings/{}", seg(target), seg(role));
    /// The accounts principals have of their own at a target.
    fn target_accounts(target: &str) -> Vec<TargetAccountView> = GET format!("/api/v1/targets/{}/accounts", seg(target));
    /// Set a principal's own account at a target.
    fn set_target_account(target: &str, principal: &str, req: &SetTargetAccountRequest) -> TargetAccountView = PUT format!("/api/v1/targets/{}/accounts/{}", seg(target), seg(principal)), body req;
    /// Remove a principal's own account at a target.
    fn remove_target_account(target: &str, principal: &str) -> () = DELETE format!("/api/v1/targets/{}/accounts/{}", seg(target), seg(principal));
    /// Target operations, newest first, optionally of one target and state.
    fn target_ops(target: Option<&str>, state: Option<&str>) -> Vec<TargetOpView> = GET {
        let mut q = Vec::new();
        if let Some(t) = target {
            q.push(format!("target={}", seg(t)));
        }
        if let Some(st) = state {
            q.push(format!("state={}", seg(st)));
        }
        if q.is_empty() { "/api/v1/target-ops".to_owned() } else { format!("/api/v1/target-ops?{}", q.join("&")) }
    };
    /// One target operation with every attempt.
    fn target_op(id: i64) -> TargetOpView = GET format!("/api/v1/target-ops/{id}");
    /// Give a dead-lettered target operation a fresh budget.
    fn retry_target_op(id: i64) -> TargetOpView = POST format!("/api/v1/target-ops/{id}/retry");
    /// Conditional-access policies, by name.
    fn ca_policies() -> Vec<CaPolicyView> = GET "/api/v1/ca/policies";
    fn ca_policy(name: &str) -> CaPolicyView = GET format!("/api/v1/ca/policies/{}", seg(name));
    /// Create or replace policies by name, all or nothing (validated and lockout-guarded).
    fn ca_import(req: &CaImportRequest) -> CaImportResult = POST "/api/v1/ca/policies", body req;
    /// Enable, disable or switch a policy to report-only.
    fn ca_set_state(name: &str, req: &CaStateRequest) -> CaPolicyView = POST format!("/api/v1/ca/policies/{}/state", seg(name)), body req;
    fn ca_delete(name: &str) -> () = DELETE format!("/api/v1/ca/policies/{}", seg(name));
    fn ca_locations() -> Vec<CaLocationView> = GET "/api/v1/ca/locations";
    /// Create or replace a named location.
    fn ca_set_location(req: &CaLocationRequest) -> CaLocationView = POST "/api/v1/ca/locations", body req;
    /// Remove a named location (refused while a policy uses it).
    fn ca_remove_location(name: &str) -> () = DELETE format!("/api/v1/ca/locations/{}", seg(name));
    /// How the policies would decide a sign-in, with an explanation per policy.
    fn ca_whatif(req: &WhatIfRequest) -> serde_json::Value = POST "/api/v1/ca/whatif", body req;
    /// Create a break-glass account (see `CreateBreakGlassRequest`).
    fn create_breakglass(req: &CreateBreakGlassRequest) -> BreakGlassCreated = POST "/api/v1/breakglass", body req;
    fn breakglass_accounts() -> Vec<BreakGlassView> = GET "/api/v1/breakglass";
    /// Re-split a password account; its old shares stop working and its sessions end.
    fn rotate_breakglass(name: &str, req: &RotateBreakGlassRequest) -> BreakGlassView = POST format!("/api/v1/breakglass/{}/rotate", seg(name)), body req;
    /// A new enrolment token for a FIDO2 account without a security key (earlier ones end).
    fn breakglass_enrolment(name: &str) -> BreakGlassEnrolment = POST format!("/api/v1/breakglass/{}/enrolment", seg(name));
    /// Record a drill with this client's token (the break-glass account's fresh session).
    fn record_drill() -> DrillRecorded = POST "/api/v1/breakglass/drill";
    /// Report a failed recovery of an account's password from shares (it alerts).
    fn report_breakglass_failure(name: &str, req: &BreakGlassFailedRecovery) -> () = POST format!("/api/v1/breakglass/{}/failed-recovery", seg(name)), body req;
}

use portcullis_core::api::{
    CreateReviewRequest, ReviewDecisionRequest, ReviewItemView, ReviewRoundView, ReviewView,
    SetManagerRequest,
};

endpoints! {
    /// Create an access review; its first round opens at once.
    fn create_review(req: &CreateReviewRequest) -> ReviewView = POST "/api/v1/reviews", body req;
    fn reviews() -> Vec<ReviewView> = GET "/api/v1/reviews";
    fn review(id: &str) -> ReviewView = GET format!("/api/v1/reviews/{}", seg(id));
    /// Delete a review (an open round is cancelled, nothing applied).
    fn delete_review(id: &str) -> () = DELETE format!("/api/v1/reviews/{}", seg(id));
    /// Open a round of a review now.
    fn start_review(id: &str) -> ReviewView = POST format!("/api/v1/reviews/{}/start", seg(id));
    /// The items of open rounds you review.
    fn my_review_items() -> Vec<ReviewItemView> = GET "/api/v1/reviews/items";
    fn review_round(id: &str) -> ReviewRoundView = GET format!("/api/v1/reviews/rounds/{}", seg(id));
    /// Close a round now: undecided items get the default, removals are applied.
    fn close_review_round(id: &str) -> ReviewRoundView = POST format!("/api/v1/reviews/rounds/{}/close", seg(id));
    /// Keep or remove one item of a round, with a reason.
    fn decide_review_item(round: &str, assignment: &str, req: &ReviewDecisionRequest) -> ReviewItemView = POST format!("/api/v1/reviews/rounds/{}/items/{}/decide", seg(round), seg(assignment)), body req;
    /// Set (or with `manager: None` remove) a person's manager.
    fn set_manager(name: &str, req: &SetManagerRequest) -> UserView = PUT format!("/api/v1/users/{}/manager", seg(name)), body req;
}

use portcullis_core::api::{ChangeDecisionRequest, ChangeRequestView};

endpoints! {
    /// Change requests (four eyes on the PAM's settings); `state` is `pending`, `applied`, …
    fn change_requests(state: Option<&str>) -> Vec<ChangeRequestView> = GET match state {
        Some(st) => format!("/api/v1/changes?state={}", seg(st)),
        None => "/api/v1/changes".to_owned(),
    };
    fn change_request(id: &str) -> ChangeRequestView = GET format!("/api/v1/changes/{}", seg(id));
    /// Approve a change request (another top-tier person): it applies now.
    fn approve_change(id: &str, req: &ChangeDecisionRequest) -> ChangeRequestView = POST format!("/api/v1/changes/{}/approve", seg(id)), body req;
    fn deny_change(id: &str, req: &ChangeDecisionRequest) -> ChangeRequestView = POST format!("/api/v1/changes/{}/deny", seg(id)), body req;
    fn cancel_change(id: &str, req: &ChangeDecisionRequest) -> ChangeRequestView = POST format!("/api/v1/changes/{}/cancel", seg(id)), body req;
}
