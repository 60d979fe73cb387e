//! The privilege model (DESIGN.md, "Privilege model"): which roles are privileged, which form the
//! top tier, and the pure rules the services apply before they change anything.
//!
//! Rules kept here (numbers are DESIGN.md's):
//! 1. A role is *privileged* when its permissions include role, assignment, settings,
//!    conditional-access, break-glass, key, channel or other principals' credential management
//!    ([`PRIVILEGED_PERMISSIONS`]); it is *top tier* when it can create assignments (whoever
//!    assigns roles can make anyone anything) or holds every permission (Global Administrator).
//!    The class is computed from the permissions, so a custom role is classified exactly like a
//!    built-in one with the same permissions.
//! 2. No self-escalation ([`check_assignment`]): nobody assigns a role to themselves, to a group
//!    they belong to, or to a service account whose credentials they manage; people get
//!    privileged roles as eligible only (break-glass accounts excepted); a service account holds
//!    a privileged role actively only when a top-tier actor assigns it. A role is defined or
//!    reconfigured only with permissions the actor holds ([`missing_to_grant`]): nobody hands
//!    out more than they have.
//! 3. The last Global Administrator is guarded ([`refuses_last_global_administrator`]).
//! 5. Privileged people, and (6.) the credentials of privileged service accounts, are managed
//!    only by the top tier ([`may_manage`]).
//! 7. A new credential needs a fresh proof ([`check_fresh_proof`]).
//! 8. Device-grant tokens carry at most `mfa` ([`device_grant_strength`]).
//! 10. Scope is part of a role: only grants at `/` give a tier at the tenant ([`tier_at_tenant`]).

use crate::roles::perm;
use time::{Duration, OffsetDateTime};

use crate::roles::{BuiltinRole, Grant, Permission, Scope};
use crate::session::AuthStrength;

/// Permissions that make a role privileged (rule 1).
pub const PRIVILEGED_PERMISSIONS: &[&str] = &[
    // roles and their settings
    perm::ROLES_CREATE,
    perm::ROLES_DELETE,
    perm::ROLES_SETTINGS_UPDATE,
    // assignments, directly or through role-assignable groups
    perm::ASSIGNMENTS_CREATE,
    perm::ASSIGNMENTS_DELETE,
    perm::GROUPS_ROLE_ASSIGNABLE_UPDATE,
    // conditional access, break-glass, keys, alert channels
    perm::CA_MANAGE,
    perm::BREAKGLASS_MANAGE,
    perm::KEYS_ROTATE,
    perm::ALERTS_MANAGE,
    // other principals' credentials and access: passwords of new users, disabling and
    // re-enabling, ending sessions, service-account secrets and keys, consent to application
    // permissions, relying parties and their secrets
    perm::USERS_CREATE,
    perm::USERS_UPDATE,
    perm::SESSIONS_REVOKE,
    perm::SERVICE_ACCOUNTS_CREDENTIALS,
    perm::SERVICE_ACCOUNTS_CONSENT,
    perm::CLIENTS_MANAGE,
];

/// The permission whose holder is top tier: it assigns any role to anyone.
pub const TOP_TIER_PERMISSION: &str = perm::ASSIGNMENTS_CREATE;

/// How much a role (or an actor, by the roles they hold) can do to the tenant's privileges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Reads, or changes nothing that touches privileges or others' credentials.
    Ordinary,
    /// Changes roles, assignments, settings, policies, keys, channels or others' credentials.
    Privileged,
    /// Assigns roles (Global Administrator, Privileged Role Administrator, and any custom role
    /// with `assignments.create`).
    Top,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ordinary => "ordinary",
            Self::Privileged => "privileged",
            Self::Top => "top",
        }
    }

    pub fn is_privileged(self) -> bool {
        self >= Self::Privileged
    }
}

/// Whether one permission makes a role privileged.
pub fn is_privileged_permission(p: &str) -> bool {
    PRIVILEGED_PERMISSIONS.contains(&p)
}

impl BuiltinRole {
    /// The role's tier, computed from its permissions like any custom role's ([`tier_of`]).
    /// Defined here, with the tiers, so that `roles` does not depend on the privilege model.
    pub fn tier(self) -> Tier {
        tier_of(&self.permissions(), self.grants_everything())
    }
}

/// The tier of a role with `permissions` (`everything`: Global Administrator's every permission).
pub fn tier_of(permissions: &[Permission], everything: bool) -> Tier {
    if everything
        || permissions
            .iter()
            .any(|p| p.as_str() == TOP_TIER_PERMISSION)
    {
        Tier::Top
    } else if permissions
        .iter()
        .any(|p| is_privileged_permission(p.as_str()))
    {
        Tier::Privileged
    } else {
        Tier::Ordinary
    }
}

/// The highest tier among grants held at the tenant scope `/` itself. A role held at
/// `/targets/x` or `/apps/x` never counts as held at `/` (rule 10).
pub fn tier_at_tenant(grants: &[Grant]) -> Tier {
    let tenant = Scope::tenant();
    grants
        .iter()
        .filter(|g| g.scope == tenant)
        .map(|g| tier_of(&g.permissions, g.everything))
        .max()
        .unwrap_or(Tier::Ordinary)
}

/// The permissions of a role that an actor holding `grants` at the tenant cannot hand out:
/// empty when they may define or reconfigure it. Global Administrator's `everything` can only
/// be handed out by someone who has it.
pub fn missing_to_grant(
    grants: &[Grant],
    permissions: &[Permission],
    everything: bool,
) -> Vec<String> {
    let tenant = Scope::tenant();
    let held: Vec<&Grant> = grants.iter().filter(|g| g.scope == tenant).collect();
    if held.iter().any(|g| g.everything) {
        return Vec::new();
    }
    let mut missing: Vec<String> = permissions
        .iter()
        .filter(|p| !held.iter().any(|g| g.permissions.contains(p)))
        .map(|p| p.as_str().to_owned())
        .collect();
    if everything {
        missing.insert(0, "every permission (Global Administrator)".to_owned());
    }
    missing
}

/// Who receives an assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignee {
    /// A member or a guest.
    Person,
    /// A break-glass account (the one standing exception for people).
    BreakGlass,
    Group,
    ServiceAccount,
}

/// What an assignment decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct AssignmentFacts {
    /// The actor is the assignee.
    pub to_self: bool,
    /// The assignee is a group the actor belongs to.
    pub to_own_group: bool,
    /// The assignee is a service account with a live secret or key the actor added.
    pub to_managed_service_account: bool,
    pub assignee: Assignee,
    /// The tier of the role assigned.
    pub role: Tier,
    /// An active assignment (not eligible).
    pub active: bool,
    /// The actor's tier at the tenant.
    pub actor: Tier,
}

/// Why an assignment is refused (rule 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AssignmentRefusal {
    #[error("nobody assigns a role to themselves; ask another administrator")]
    ToSelf,
    #[error("nobody assigns a role to a group they belong to; ask another administrator")]
    ToOwnGroup,
    #[error(
        "you manage this service account's credentials (you added a live secret or key), so assigning it a role would be assigning it to yourself"
    )]
    ToManagedServiceAccount,
    #[error(
        "people get privileged roles as eligible only (they activate them just in time); make the assignment eligible"
    )]
    PrivilegedActiveForPeople,
    #[error(
        "only a top-tier administrator (Global or Privileged Role Administrator) assigns a privileged role actively to a service account"
    )]
    PrivilegedActiveNeedsTopTier,
}

/// Rule 2: whether an assignment may be created.
pub fn check_assignment(f: &AssignmentFacts) -> Result<(), AssignmentRefusal> {
    if f.to_self {
        return Err(AssignmentRefusal::ToSelf);
    }
    if f.to_own_group {
        return Err(AssignmentRefusal::ToOwnGroup);
    }
    if f.to_managed_service_account {
        return Err(AssignmentRefusal::ToManagedServiceAccount);
    }
    if f.active && f.role.is_privileged() {
        match f.assignee {
            Assignee::BreakGlass => {}
            Assignee::Person | Assignee::Group => {
                return Err(AssignmentRefusal::PrivilegedActiveForPeople);
            }
            Assignee::ServiceAccount if f.actor < Tier::Top => {
                return Err(AssignmentRefusal::PrivilegedActiveNeedsTopTier);
            }
            Assignee::ServiceAccount => {}
        }
    }
    Ok(())
}

/// Rules 5 and 6: whether an actor of `actor` tier may disable, re-enable, reset or end the
/// sessions of a person, or manage a service account's credentials, when that principal is
/// `privileged` (holds or is eligible for a privileged role, or is a break-glass account).
pub fn may_manage(actor: Tier, privileged: bool) -> bool {
    !privileged || actor == Tier::Top
}

/// Rule 3: a change that leaves `after` people able to reach Global Administrator at `/` is
/// refused when none would remain and fewer than `before` (a tenant that already has none is
/// not made worse by an unrelated change).
pub fn refuses_last_global_administrator(before: i64, after: i64) -> bool {
    after < 1 && after < before
}

/// How recent the proof behind a credential change must be (rule 7).
pub const FRESH_PROOF_WINDOW: Duration = Duration::minutes(5);

/// The session asking to change a credential.
#[derive(Debug, Clone, Copy)]
pub struct ProofFacts {
    /// The caller presented an access token, not a session.
    pub access_token: bool,
    /// The session is registration-only (an account that had no second factor at sign-in).
    pub registration_only: bool,
    /// The account has a confirmed second factor now.
    pub has_factor: bool,
    /// When the session signed in.
    pub signed_in_at: OffsetDateTime,
    /// When a second factor was last proven in this session (sign-in or re-authentication).
    pub factor_proven_at: Option<OffsetDateTime>,
}

/// Why a credential change is refused (rule 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofRefusal {
    #[error(
        "credentials are changed from a signed-in session, never with an access token; sign in with your password and second factor"
    )]
    AccessToken,
    #[error(
        "this needs a fresh proof: re-authenticate with your password and a second factor (portcullis reauth, POST /api/v1/me/reauth) and retry within five minutes"
    )]
    Stale,
    #[error("this needs a fresh sign-in: sign in again and retry within five minutes")]
    StaleSignIn,
}

/// Rule 7: registering or removing a factor, or changing a password, needs a proof with an
/// existing factor within [`FRESH_PROOF_WINDOW`], or — for an account with no factor yet — a
/// registration-only session or a sign-in within the window. Access tokens never do.
pub fn check_fresh_proof(f: &ProofFacts, now: OffsetDateTime) -> Result<(), ProofRefusal> {
    if f.access_token {
        return Err(ProofRefusal::AccessToken);
    }
    let fresh = |at: OffsetDateTime| at <= now && now - at <= FRESH_PROOF_WINDOW;
    if f.has_factor {
        return match f.factor_proven_at {
            Some(at) if fresh(at) => Ok(()),
            _ => Err(ProofRefusal::Stale),
        };
    }
    if f.registration_only || fresh(f.signed_in_at) {
        Ok(())
    } else {
        Err(ProofRefusal::StaleSignIn)
    }
}

/// Rule 8: tokens from the device grant carry at most `mfa`, whatever the approving session
/// proved: the device itself proved nothing, and a phished approval must not hand out a
/// phishing-resistant strength.
pub fn device_grant_strength(approver: AuthStrength) -> AuthStrength {
    approver.min(AuthStrength::Mfa)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roles::BuiltinRole;

    fn grant(role: BuiltinRole, scope: &str) -> Grant {
        Grant {
            role: role.slug().into(),
            permissions: role.permissions(),
            everything: role.grants_everything(),
            scope: Scope::parse(scope).expect("scope"),
            ends_at: None,
        }
    }

    fn perms(names: &[&str]) -> Vec<Permission> {
        names
            .iter()
            .map(|n| Permission::parse(n).expect("permission"))
            .collect()
    }

    #[test]
    fn builtin_roles_are_classified_from_their_permissions() {
        use BuiltinRole::*;
        let tier = |r: BuiltinRole| tier_of(&r.permissions(), r.grants_everything());
        assert_eq!(tier(GlobalAdministrator), Tier::Top);
        assert_eq!(tier(PrivilegedRoleAdministrator), Tier::Top);
        for r in [
            SecurityAdministrator,
            HelpdeskAdministrator,
            ServiceAdministrator,
        ] {
            assert_eq!(tier(r), Tier::Privileged, "{r:?}");
        }
        assert_eq!(tier(SecurityReader), Tier::Ordinary);
        assert_eq!(tier(AuditReader), Tier::Ordinary);
    }

    #[test]
    fn custom_roles_are_classified_like_builtin_ones() {
        assert_eq!(
            tier_of(&perms(&[perm::AUDIT_READ, perm::USERS_READ]), false),
            Tier::Ordinary
        );
        assert_eq!(
            tier_of(&perms(&["app:payroll.admin"]), false),
            Tier::Ordinary
        );
        for p in PRIVILEGED_PERMISSIONS {
            assert!(
                tier_of(&perms(&[perm::AUDIT_READ, p]), false) >= Tier::Privileged,
                "{p}"
            );
        }
        assert_eq!(
            tier_of(&perms(&[perm::ASSIGNMENTS_CREATE]), false),
            Tier::Top
        );
        assert_eq!(tier_of(&[], true), Tier::Top);
    }

    #[test]
    fn every_privileged_permission_is_in_the_catalogue() {
        for p in PRIVILEGED_PERMISSIONS {
            assert!(Permission::parse(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn only_grants_at_the_tenant_give_a_tier_there() {
        assert_eq!(
            tier_at_tenant(&[grant(BuiltinRole::GlobalAdministrator, "/targets/lab")]),
            Tier::Ordinary
        );
        assert_eq!(
            tier_at_tenant(&[
                grant(BuiltinRole::SecurityReader, "/"),
                grant(BuiltinRole::GlobalAdministrator, "/apps/x"),
            ]),
            Tier::Ordinary
        );
        assert_eq!(
            tier_at_tenant(&[grant(BuiltinRole::PrivilegedRoleAdministrator, "/")]),
            Tier::Top
        );
        assert_eq!(tier_at_tenant(&[]), Tier::Ordinary);
    }

    #[test]
    fn nobody_hands_out_more_than_they_hold() {
        let pra = [grant(BuiltinRole::PrivilegedRoleAdministrator, "/")];
        assert!(
            missing_to_grant(
                &pra,
                &perms(&[perm::ASSIGNMENTS_CREATE, perm::ROLES_READ]),
                false
            )
            .is_empty()
        );
        assert_eq!(
            missing_to_grant(
                &pra,
                &perms(&[perm::CA_MANAGE, perm::ROLES_READ, perm::BREAKGLASS_MANAGE]),
                false
            ),
            vec![
                perm::CA_MANAGE.to_owned(),
                perm::BREAKGLASS_MANAGE.to_owned()
            ]
        );
        // Global Administrator's settings: only someone with every permission.
        assert!(!missing_to_grant(&pra, &[], true).is_empty());
        let ga = [grant(BuiltinRole::GlobalAdministrator, "/")];
        assert!(missing_to_grant(&ga, &perms(&["app:x.y", perm::CA_MANAGE]), true).is_empty());
        // A Global Administrator at a target scope holds nothing at the tenant.
        let scoped = [grant(BuiltinRole::GlobalAdministrator, "/targets/lab")];
        assert_eq!(
            missing_to_grant(&scoped, &perms(&[perm::AUDIT_READ]), false).len(),
            1
        );
    }

    fn facts() -> AssignmentFacts {
        AssignmentFacts {
            to_self: false,
            to_own_group: false,
            to_managed_service_account: false,
            assignee: Assignee::Person,
            role: Tier::Top,
            active: false,
            actor: Tier::Top,
        }
    }

    #[test]
    fn no_self_escalation() {
        assert_eq!(check_assignment(&facts()), Ok(()));
        for (f, why) in [
            (
                AssignmentFacts {
                    to_self: true,
                    ..facts()
                },
                AssignmentRefusal::ToSelf,
            ),
            (
                AssignmentFacts {
                    to_own_group: true,
                    assignee: Assignee::Group,
                    ..facts()
                },
                AssignmentRefusal::ToOwnGroup,
            ),
            (
                AssignmentFacts {
                    to_managed_service_account: true,
                    assignee: Assignee::ServiceAccount,
                    ..facts()
                },
                AssignmentRefusal::ToManagedServiceAccount,
            ),
        ] {
            assert_eq!(check_assignment(&f), Err(why));
            // Also for a role that is not privileged, and eligible.
            assert_eq!(
                check_assignment(&AssignmentFacts {
                    role: Tier::Ordinary,
                    ..f
                }),
                Err(why)
            );
        }
    }

    #[test]
    fn people_get_privileged_roles_as_eligible_only() {
        let active = AssignmentFacts {
            active: true,
            ..facts()
        };
        assert_eq!(
            check_assignment(&active),
            Err(AssignmentRefusal::PrivilegedActiveForPeople)
        );
        assert_eq!(
            check_assignment(&AssignmentFacts {
                assignee: Assignee::Group,
                ..active
            }),
            Err(AssignmentRefusal::PrivilegedActiveForPeople)
        );
        assert_eq!(
            check_assignment(&AssignmentFacts {
                role: Tier::Privileged,
                ..active
            }),
            Err(AssignmentRefusal::PrivilegedActiveForPeople)
        );
        // Break-glass accounts are the standing exception; ordinary roles may be standing.
        assert_eq!(
            check_assignment(&AssignmentFacts {
                assignee: Assignee::BreakGlass,
                ..active
            }),
            Ok(())
        );
        assert_eq!(
            check_assignment(&AssignmentFacts {
                role: Tier::Ordinary,
                ..active
            }),
            Ok(())
        );
    }

    #[test]
    fn service_accounts_hold_privileged_roles_actively_only_from_the_top_tier() {
        let sa = AssignmentFacts {
            active: true,
            assignee: Assignee::ServiceAccount,
            ..facts()
        };
        assert_eq!(check_assignment(&sa), Ok(()));
        assert_eq!(
            check_assignment(&AssignmentFacts {
                actor: Tier::Privileged,
                ..sa
            }),
            Err(AssignmentRefusal::PrivilegedActiveNeedsTopTier)
        );
        assert_eq!(
            check_assignment(&AssignmentFacts {
                actor: Tier::Privileged,
                role: Tier::Ordinary,
                ..sa
            }),
            Ok(())
        );
    }

    #[test]
    fn privileged_principals_are_managed_by_the_top_tier_only() {
        assert!(may_manage(Tier::Privileged, false));
        assert!(may_manage(Tier::Ordinary, false));
        assert!(!may_manage(Tier::Privileged, true));
        assert!(!may_manage(Tier::Ordinary, true));
        assert!(may_manage(Tier::Top, true));
    }

    #[test]
    fn the_last_global_administrator_stays() {
        assert!(refuses_last_global_administrator(1, 0));
        assert!(!refuses_last_global_administrator(2, 1));
        // Already none: an unrelated change is not made impossible.
        assert!(!refuses_last_global_administrator(0, 0));
        assert!(!refuses_last_global_administrator(1, 1));
    }

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time")
    }

    fn proof() -> ProofFacts {
        ProofFacts {
            access_token: false,
            registration_only: false,
            has_factor: true,
            signed_in_at: t0(),
            factor_proven_at: Some(t0()),
        }
    }

    #[test]
    fn a_new_credential_needs_a_fresh_proof() {
        let now = t0() + Duration::minutes(4);
        assert_eq!(check_fresh_proof(&proof(), now), Ok(()));
        assert_eq!(
            check_fresh_proof(&proof(), t0() + Duration::minutes(6)),
            Err(ProofRefusal::Stale)
        );
        assert_eq!(
            check_fresh_proof(
                &ProofFacts {
                    factor_proven_at: None,
                    ..proof()
                },
                now
            ),
            Err(ProofRefusal::Stale)
        );
        // Access tokens never do, however fresh.
        assert_eq!(
            check_fresh_proof(
                &ProofFacts {
                    access_token: true,
                    ..proof()
                },
                now
            ),
            Err(ProofRefusal::AccessToken)
        );
        // A proof from the future (clock skew between replicas) is not taken as fresh forever.
        assert_eq!(
            check_fresh_proof(
                &ProofFacts {
                    factor_proven_at: Some(now + Duration::hours(1)),
                    ..proof()
                },
                now
            ),
            Err(ProofRefusal::Stale)
        );
    }

    #[test]
    fn a_first_factor_needs_a_recent_sign_in_or_a_registration_only_session() {
        let first = ProofFacts {
            has_factor: false,
            factor_proven_at: None,
            ..proof()
        };
        let later = t0() + Duration::hours(2);
        assert_eq!(
            check_fresh_proof(&first, t0() + Duration::minutes(1)),
            Ok(())
        );
        assert_eq!(
            check_fresh_proof(&first, later),
            Err(ProofRefusal::StaleSignIn)
        );
        assert_eq!(
            check_fresh_proof(
                &ProofFacts {
                    registration_only: true,
                    ..first
                },
                later
            ),
            Ok(())
        );
        // A registration-only session registers the first factor only.
        assert_eq!(
            check_fresh_proof(
                &ProofFacts {
                    registration_only: true,
                    factor_proven_at: None,
                    ..proof()
                },
                later
            ),
            Err(ProofRefusal::Stale)
        );
    }

    #[test]
    fn device_grants_carry_at_most_mfa() {
        assert_eq!(
            device_grant_strength(AuthStrength::PhishingResistant),
            AuthStrength::Mfa
        );
        assert_eq!(device_grant_strength(AuthStrength::Mfa), AuthStrength::Mfa);
        assert_eq!(
            device_grant_strength(AuthStrength::Password),
            AuthStrength::Password
        );
    }
}
