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

mod assignment;
mod proof;
mod tier;

#[cfg(test)]
mod tests;

pub use assignment::{
    Assignee, AssignmentFacts, AssignmentRefusal, check_assignment, may_manage,
    refuses_last_global_administrator,
};
pub use proof::{
    FRESH_PROOF_WINDOW, ProofFacts, ProofRefusal, check_fresh_proof, device_grant_strength,
};
pub use tier::{
    PRIVILEGED_PERMISSIONS, TOP_TIER_PERMISSION, Tier, is_privileged_permission, missing_to_grant,
    tier_at_tenant, tier_of,
};
