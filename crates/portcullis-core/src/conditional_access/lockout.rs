//! The lockout guard ([`check_lockout`]).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::roles::BuiltinRole;
use crate::session::AuthStrength;

use super::*;

/// An account as the lockout guard sees it: who it is and the strongest factor it has
/// registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountProfile {
    pub subject: Subject,
    pub strongest: AuthStrength,
}

/// Why a proposed policy set is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "lockout", rename_all = "snake_case")]
pub enum LockoutError {
    /// (a) No Global Administrator could sign in from any network with any application using a
    /// factor they have. Never forcible.
    #[error(
        "refused: no Global Administrator could sign in from any network or application with \
         the factors they have registered (affected: {}); policies responsible: {}",
        .accounts.join(", "),
        .policies.join(", ")
    )]
    NoGlobalAdministrator {
        accounts: Vec<String>,
        policies: Vec<String>,
    },
    /// (b) The caller would lock themselves out. The server may let the caller force it.
    #[error(
        "refused: you ({account}) could not sign in from any network or application with the \
         factors you have registered; policies responsible: {}",
        .policies.join(", ")
    )]
    CallerLockedOut {
        account: String,
        policies: Vec<String>,
    },
}

impl LockoutError {
    /// Only a caller lock-out (b) may be forced.
    pub fn forcible(&self) -> bool {
        matches!(self, Self::CallerLockedOut { .. })
    }
}

/// The lockout guard: refuses `proposed` (the full set after the change, all states; only
/// enabled policies count) when (a) there are Global Administrators (not break-glass) and none of
/// them could sign in from any network — one address per region of the named locations, IPv4 and
/// IPv6, and addresses outside them all — with any application at any strength up to the
/// strongest factor they have; or (b) the caller could not. (a) is reported before (b).
/// Break-glass accounts are ignored: no policy applies to them.
///
/// Only candidates in `global_admins` whose subject holds Global Administrator at the tenant
/// scope `/` (active or eligible; [`Subject::with_roles`]) count as Global Administrators:
/// one at `/targets/x` cannot administer the tenant (privilege rule 10).
///
/// Each application is probed by the flow that really reaches it: `api` (the sign-in
/// endpoints) and each of `clients` without a flow, `cli` through the device flow (its only
/// way in). So a policy that blocks only the device flow for every administrator is no
/// lock-out (they sign in to the API), while one that blocks the API and another that blocks
/// the device flow together are.
pub fn check_lockout(
    proposed: &CompiledPolicies,
    clients: &[String],
    global_admins: &[AccountProfile],
    caller: &AccountProfile,
) -> Result<(), LockoutError> {
    let mut routes = vec![
        (Application::Api, None),
        (Application::Cli, Some(AuthenticationFlow::DeviceCode)),
    ];
    routes.extend(
        clients
            .iter()
            .map(|c| (Application::Client(c.clone()), None)),
    );
    let addresses = proposed.probe_addresses();
    let ga = BuiltinRole::GlobalAdministrator.slug();
    let admins: Vec<&AccountProfile> = global_admins
        .iter()
        .filter(|a| !a.subject.emergency && a.subject.holds(ga))
        .collect();
    if !admins.is_empty() {
        let mut responsible = BTreeSet::new();
        let mut someone = false;
        for a in &admins {
            match proposed.can_sign_in(a, &routes, &addresses) {
                Ok(()) => {
                    someone = true;
                    break;
                }
                Err(p) => responsible.extend(p),
            }
        }
        if !someone {
            return Err(LockoutError::NoGlobalAdministrator {
                accounts: admins.iter().map(|a| a.subject.name.clone()).collect(),
                policies: responsible.iter().map(|p| p.to_string()).collect(),
            });
        }
    }
    if !caller.subject.emergency
        && let Err(p) = proposed.can_sign_in(caller, &routes, &addresses)
    {
        return Err(LockoutError::CallerLockedOut {
            account: caller.subject.name.clone(),
            policies: p.iter().map(|p| p.to_string()).collect(),
        });
    }
    Ok(())
}
