//! The dispatch from a [`Change`] to the function that applies it (one per variant, in the
//! file of its topic). Nothing else happens here.

use futures_core::future::BoxFuture;

use super::sql::{Conn, on_conn};
use super::{
    Change, accounts, alerts, audit_export, breakglass, clients, conditional_access, containment,
    device, factors, governance, oidc, reviews, roles, sessions, ssh, targets, tenant, throttle,
    tokens,
};
use crate::Result;

/// Applies a [`Change`] on an open write transaction of either backend.
pub(crate) fn apply<'a, 'c: 'a>(
    c: &'a mut Conn<'c>,
    change: &'a Change,
) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        match change {
            Change::None | Change::ForceCheckpoint => Ok(()),
            Change::Many(all) => {
                for one in all {
                    apply(c, one).await?;
                }
                Ok(())
            }
            Change::SetSetting { key, value } => tenant::set_setting(c, key, value).await,
            Change::InitialiseTenant(d) => tenant::initialise_tenant(c, d).await,
            Change::RedeemBootstrapToken { token_hash, at_us } => {
                tenant::redeem_bootstrap_token(c, token_hash, *at_us).await
            }
            Change::RotateSigningKey {
                previous,
                algorithm,
                key_id,
                public_key,
                sealed_private_key,
                at_us,
            } => {
                tenant::rotate_signing_key(
                    c,
                    previous,
                    algorithm,
                    key_id,
                    public_key,
                    sealed_private_key,
                    *at_us,
                )
                .await
            }
            Change::CreateSigningKey {
                algorithm,
                key_id,
                public_key,
                sealed_private_key,
                at_us,
            } => {
                tenant::create_signing_key(
                    c,
                    algorithm,
                    key_id,
                    public_key,
                    sealed_private_key,
                    *at_us,
                )
                .await
            }
            Change::ClaimPeriodic {
                name,
                not_before_us,
                at_us,
            } => tenant::claim_periodic(c, name, *not_before_us, *at_us).await,
            Change::ClaimAuditExport {
                sink,
                holder,
                at_us,
                lease_until_us,
            } => audit_export::claim(c, sink, holder, *at_us, *lease_until_us).await,
            Change::AdvanceAuditExport {
                sink,
                holder,
                from_seq,
                to_seq,
                at_us,
                lease_until_us,
            } => {
                audit_export::advance(
                    c,
                    (sink, holder),
                    (*from_seq, *to_seq),
                    *at_us,
                    *lease_until_us,
                )
                .await
            }
            Change::ReleaseAuditExport { sink, holder } => {
                audit_export::release(c, sink, holder).await
            }
            Change::Contain {
                id,
                by,
                reason,
                at_us,
            } => containment::contain(c, id, by, reason, *at_us).await,
            Change::Uncontain { id } => containment::uncontain(c, id).await,
            Change::Review(r) => reviews::apply(c, r).await,
            Change::Governance(g) => governance::apply(c, g).await,
            Change::CreatePrincipal(p) => accounts::create_principal(c, p).await,
            Change::SetPrincipalEnabled { id, enabled, at_us } => {
                accounts::set_principal_enabled(c, id, *enabled, *at_us).await
            }
            Change::RecordSignIn {
                principal_id,
                at_us,
                address,
            } => accounts::record_sign_in(c, principal_id, *at_us, address.as_deref()).await,
            Change::AddGroupMember {
                group_id,
                member_id,
                at_us,
            } => accounts::add_group_member(c, group_id, member_id, *at_us).await,
            Change::RemoveGroupMember {
                group_id,
                member_id,
            } => accounts::remove_group_member(c, group_id, member_id).await,
            Change::SetPassword {
                principal_id,
                phc,
                at_us,
            } => accounts::set_password(c, principal_id, phc, *at_us).await,
            Change::MarkPrivileged { principal_id } => {
                accounts::mark_privileged(c, principal_id).await
            }
            Change::ReserveAttempt { keys, at_us } => {
                throttle::reserve_attempt(c, keys, *at_us).await
            }
            Change::ReleaseAttempt { keys } => throttle::release_attempt(c, keys).await,
            Change::RefundAttempt { keys } => throttle::refund_attempt(c, keys).await,
            Change::RecordFailures { keys, at_us } => {
                throttle::record_failures(c, keys, *at_us).await
            }
            Change::ResetThrottle { keys } => throttle::reset_throttle(c, keys).await,
            Change::AddTotpFactor(d) => factors::add_totp_factor(c, d).await,
            Change::AcceptTotpStep {
                factor_id,
                step,
                confirm,
                at_us,
            } => factors::accept_totp_step(c, factor_id, *step, *confirm, *at_us).await,
            Change::AddWebauthnFactor(d) => factors::add_webauthn_factor(c, d).await,
            Change::UpdateWebauthnFactor {
                id,
                sealed_credential,
                counter,
                at_us,
            } => factors::update_webauthn_factor(c, id, sealed_credential, *counter, *at_us).await,
            Change::CreateCeremony(d) => factors::create_ceremony(c, d).await,
            Change::CreateDecoy {
                id_hash,
                name,
                client_ip,
                at_us,
                cap,
            } => factors::create_decoy(c, id_hash, name, client_ip, *at_us, *cap).await,
            Change::ConsumeDecoy { id_hash } => factors::consume_decoy(c, id_hash).await,
            Change::ConsumeCeremony { id_hash } => factors::consume_ceremony(c, id_hash).await,
            Change::RemoveFactor { id, principal_id } => {
                factors::remove_factor(c, id, principal_id).await
            }
            Change::CreateSession(s) => sessions::create_session(c, s).await,
            Change::RevokeSession { id, at_us } => sessions::revoke_session(c, id, *at_us).await,
            Change::RevokeSessionsOf {
                principal_id,
                except,
                at_us,
            } => sessions::revoke_sessions_of(c, principal_id, except.as_deref(), *at_us).await,
            Change::TouchSession { id, at_us } => sessions::touch_session(c, id, *at_us).await,
            Change::StampSession {
                id,
                strength,
                at_us,
            } => sessions::stamp_session(c, id, *strength, *at_us).await,
            Change::CreatePendingSignIn {
                id_hash,
                principal_id,
                at_us,
            } => sessions::create_pending_sign_in(c, id_hash, principal_id, *at_us).await,
            Change::ConsumePendingSignIn { id_hash } => {
                sessions::consume_pending_sign_in(c, id_hash).await
            }
            Change::CreateCustomRole {
                slug,
                display_name,
                description,
                permissions,
                at_us,
            } => {
                roles::create_custom_role(c, slug, display_name, description, permissions, *at_us)
                    .await
            }
            Change::DeleteCustomRole { slug } => roles::delete_custom_role(c, slug).await,
            Change::SetRoleSettings {
                role,
                settings,
                at_us,
            } => roles::set_role_settings(c, role, settings, *at_us).await,
            Change::CreateAssignment(a) => roles::create_assignment(c, a).await,
            Change::EndAssignment {
                id,
                reason,
                by,
                at_us,
            } => roles::end_assignment(c, id, reason, by, *at_us).await,
            Change::CreateRequest(r) => roles::create_request(c, r).await,
            Change::DecideRequest(d) => roles::decide_request(c, d).await,
            Change::ExtendRequest {
                id,
                from_end_us,
                to_end_us,
                at_us,
            } => roles::extend_request(c, id, *from_end_us, *to_end_us, *at_us).await,
            Change::StartRequest { id, at_us } => roles::start_request(c, id, *at_us).await,
            Change::CloseRequest {
                id,
                from,
                to,
                by,
                reason,
                at_us,
            } => roles::close_request(c, id, *from, *to, by, reason.as_deref(), *at_us).await,
            Change::RequireGlobalAdministrator { before, at_us } => {
                roles::require_global_administrator(c, *before, *at_us).await
            }
            Change::AddClientSecret {
                id,
                principal_id,
                secret_hash,
                created_by,
                at_us,
            } => {
                clients::add_client_secret(c, id, principal_id, secret_hash, created_by, *at_us)
                    .await
            }
            Change::RevokeClientSecret {
                id,
                principal_id,
                at_us,
            } => clients::revoke_client_secret(c, id, principal_id, *at_us).await,
            Change::SetClientNetworks {
                principal_id,
                cidrs,
                by,
                at_us,
            } => clients::set_client_networks(c, principal_id, cidrs.as_deref(), by, *at_us).await,
            Change::AddClientKey {
                principal_id,
                key_id,
                algorithm,
                public_key,
                created_by,
                at_us,
            } => {
                clients::add_client_key(
                    c,
                    principal_id,
                    key_id,
                    algorithm,
                    public_key,
                    created_by,
                    *at_us,
                )
                .await
            }
            Change::RemoveClientKey {
                principal_id,
                key_id,
                at_us,
            } => clients::remove_client_key(c, principal_id, key_id, *at_us).await,
            Change::UseClientAssertion {
                principal_id,
                jti,
                expires_at_us,
                at_us,
            } => clients::use_client_assertion(c, principal_id, jti, *expires_at_us, *at_us).await,
            Change::GrantConsent {
                principal_id,
                permissions,
                granted_by,
                at_us,
            } => clients::grant_consent(c, principal_id, permissions, granted_by, *at_us).await,
            Change::RevokeConsent {
                principal_id,
                permission,
            } => clients::revoke_consent(c, principal_id, permission).await,
            Change::CreateOAuthClient(k) => oidc::create_o_auth_client(c, k).await,
            Change::DeleteOAuthClient { client_id, at_us } => {
                oidc::delete_o_auth_client(c, client_id, *at_us).await
            }
            Change::AddOAuthClientSecret {
                id,
                client_id,
                secret_hash,
                created_by,
                at_us,
            } => {
                oidc::add_o_auth_client_secret(c, id, client_id, secret_hash, created_by, *at_us)
                    .await
            }
            Change::RevokeOAuthClientSecret {
                id,
                client_id,
                at_us,
            } => oidc::revoke_o_auth_client_secret(c, id, client_id, *at_us).await,
            Change::CreateAuthorizationCode(a) => oidc::create_authorization_code(c, a).await,
            Change::RedeemAuthorizationCode {
                id,
                family_id,
                access_jti,
                access_expires_at_us,
                at_us,
            } => {
                oidc::redeem_authorization_code(
                    c,
                    id,
                    family_id.as_deref(),
                    access_jti,
                    *access_expires_at_us,
                    *at_us,
                )
                .await
            }
            Change::RecordOAuthConsent {
                principal_id,
                client_id,
                scope,
                at_us,
            } => oidc::record_o_auth_consent(c, principal_id, client_id, scope, *at_us).await,
            Change::IssueRefreshToken(t) => tokens::issue_refresh_token(c, t).await,
            Change::UseRefreshToken { id, at_us } => tokens::use_refresh_token(c, id, *at_us).await,
            Change::RevokeRefreshFamily { family_id, at_us } => {
                tokens::revoke_refresh_family(c, family_id, *at_us).await
            }
            Change::RevokeToken {
                jti,
                expires_at_us,
                at_us,
            } => tokens::revoke_token(c, jti, *expires_at_us, *at_us).await,
            Change::CreateDeviceAuthorization(d) => device::create_device_authorization(c, d).await,
            Change::PollDevice {
                id,
                slow_down,
                at_us,
            } => device::poll_device(c, id, *slow_down, *at_us).await,
            Change::DecideDevice(d) => device::decide_device(c, d).await,
            Change::ConsumeDevice { id } => device::consume_device(c, id).await,
            Change::ConditionalAccess(ca) => conditional_access::conditional_access(c, ca).await,
            Change::SetBreakGlassVerifier {
                principal_id,
                verifier,
            } => breakglass::set_break_glass_verifier(c, principal_id, verifier).await,
            Change::CreateBreakGlass(b) => breakglass::create_break_glass(c, b).await,
            Change::UpdateBreakGlassCustody {
                principal_id,
                custodians,
                threshold,
            } => {
                breakglass::update_break_glass_custody(c, principal_id, custodians, *threshold)
                    .await
            }
            Change::RecordDrill {
                id,
                principal_id,
                session_id,
                at_us,
            } => breakglass::record_drill(c, id, principal_id, session_id, *at_us).await,
            Change::RequireBreakGlassMinimum { min, before } => {
                breakglass::require_break_glass_minimum(c, *min, *before).await
            }
            Change::Enqueue(m) => alerts::enqueue(c, m).await,
            Change::AddAlertChannel(ch) => alerts::add_alert_channel(c, ch).await,
            Change::RemoveAlertChannel { name, at_us } => {
                alerts::remove_alert_channel(c, name, *at_us).await
            }
            Change::AddAlertRule(r) => alerts::add_alert_rule(c, r).await,
            Change::RemoveAlertRule { name } => alerts::remove_alert_rule(c, name).await,
            Change::ClaimOutbox {
                id,
                worker,
                now_us,
                until_us,
                sms_max_per_hour,
            } => alerts::claim_outbox(c, id, worker, *now_us, *until_us, *sms_max_per_hour).await,
            Change::SealAlertChannels(all) => alerts::seal_alert_channels(c, all).await,
            Change::FinishOutbox(a) => alerts::finish_outbox(c, a).await,
            Change::RetryOutbox { id, at_us } => alerts::retry_outbox(c, id, *at_us).await,
            Change::AddTarget(t) => targets::add_target(c, t).await,
            Change::RemoveTarget { name } => targets::remove_target(c, name).await,
            Change::BindRole(b) => targets::bind_role(c, b).await,
            Change::SetTargetAccount(a) => targets::set_target_account(c, a).await,
            Change::UnbindRole {
                role,
                target,
                at_us,
            } => targets::unbind_role(c, role, target, *at_us).await,
            Change::ClaimTargetOp {
                id,
                worker,
                now_us,
                until_us,
            } => targets::claim_target_op(c, *id, worker, *now_us, *until_us).await,
            Change::FinishTargetOp(a) => targets::finish_target_op(c, a).await,
            Change::RetryTargetOp { id, at_us } => targets::retry_target_op(c, *id, *at_us).await,
            Change::ReapplyTargetGrant {
                target,
                grant_id,
                at_us,
            } => targets::reapply_grant(c, target, grant_id, *at_us).await,
            Change::TakeTargetCredential {
                target,
                grant_id,
                at_us,
            } => targets::take_credential(c, target, grant_id, *at_us).await,
            Change::AddSshCaKey {
                key,
                retire_until_us,
            } => ssh::add_ca_key(c, key, *retire_until_us).await,
            Change::IssueSshCertificate(cert) => ssh::issue_certificate(c, cert).await,
            Change::RevokeSshCertificates {
                target,
                serials,
                reason,
                at_us,
            } => ssh::revoke_certificates(c, target, serials, reason, *at_us).await,
        }
    })
}

/// Applies `change` in a savepoint of the batch's transaction, so its failure rolls back alone.
pub(crate) async fn in_savepoint(c: &mut Conn<'_>, change: &Change) -> Result<()> {
    on_conn!(c, c => {
        let mut sp = sqlx::Connection::begin(&mut **c).await?;
        apply(&mut Conn::from(&mut *sp), change).await?;
        sp.commit().await?;
    });
    Ok(())
}
