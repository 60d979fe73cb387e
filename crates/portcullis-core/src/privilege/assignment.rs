//! Assignments and the management of privileged principals (rules 2, 3, 5 and 6). Invariant:
//! no self-escalation, people hold privileged roles as eligible only, and the last Global
//! Administrator stays.

use super::tier::Tier;

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
