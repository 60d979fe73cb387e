//! Tests of the privilege rules: tiers, assignments, management of privileged principals and
//! fresh proofs.

use super::*;
use crate::roles::BuiltinRole;
use crate::roles::{Grant, Permission, Scope, perm};
use crate::session::AuthStrength;
use time::{Duration, OffsetDateTime};

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
    // Binding a role to a target decides what an activation grants in another system; reading
    // targets does not.
    assert_eq!(
        tier_of(&perms(&[perm::TARGETS_MANAGE]), false),
        Tier::Privileged
    );
    assert_eq!(
        tier_of(&perms(&[perm::TARGETS_READ]), false),
        Tier::Ordinary
    );
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
