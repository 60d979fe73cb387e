//! Approving a request. Invariant: nobody approves their own request, not even through a group;
//! the approver is a listed person, counted once, signed in with at least `mfa` and at least
//! the strength the role asks of whoever activates it: approving access needs a proof as
//! strong as using it, so a stolen one-time-code session of an approver cannot approve a role
//! that needs a security key.

use time::Duration;

use crate::error::ErrorCode;
use crate::session::AuthStrength;

/// A request not decided within this time times out.
pub const APPROVAL_TIMEOUT: Duration = Duration::hours(24);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    #[error("nobody approves their own request")]
    SelfApproval,
    #[error("you are not an approver of this role")]
    NotAnApprover,
    #[error("approvers must be signed in with a second factor")]
    ApproverNeedsMfa,
    #[error("approving this role needs a sign-in as strong as activating it ({})", .0.as_str())]
    ApproverNeedsStrength(AuthStrength),
    #[error("you have already decided on this request")]
    AlreadyApproved,
    #[error("approvers are people; a service account never approves")]
    NotAPerson,
}

impl ApprovalError {
    /// The stable code the server answers with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::SelfApproval => ErrorCode::SelfApproval,
            Self::NotAnApprover | Self::NotAPerson => ErrorCode::Forbidden,
            Self::ApproverNeedsMfa | Self::ApproverNeedsStrength(_) => ErrorCode::StepUpRequired,
            Self::AlreadyApproved => ErrorCode::AlreadyDecided,
        }
    }
}

/// Who is deciding on a request.
#[derive(Debug, Clone, Copy)]
pub struct Approver<'a> {
    pub id: &'a str,
    /// A person (member or guest); service accounts never approve.
    pub person: bool,
    pub strength: AuthStrength,
    /// Named by the role's approvers, directly or through a role-assignable group.
    pub listed: bool,
    /// The strength the role requires of whoever activates it.
    pub role_strength: AuthStrength,
}

/// Whether `approver` may add an approval to a request by `requester`.
pub fn check_approval(
    requester_id: &str,
    approver: &Approver,
    already_approved_by: &[String],
) -> Result<(), ApprovalError> {
    // Checked first: being listed (directly or through a group) never makes it allowed.
    if requester_id == approver.id {
        return Err(ApprovalError::SelfApproval);
    }
    if !approver.person {
        return Err(ApprovalError::NotAPerson);
    }
    let (approver_id, approver_strength) = (approver.id, approver.strength);
    if !approver.listed {
        return Err(ApprovalError::NotAnApprover);
    }
    if approver_strength < AuthStrength::Mfa {
        return Err(ApprovalError::ApproverNeedsMfa);
    }
    if approver_strength < approver.role_strength {
        return Err(ApprovalError::ApproverNeedsStrength(approver.role_strength));
    }
    if already_approved_by.iter().any(|a| a == approver_id) {
        return Err(ApprovalError::AlreadyApproved);
    }
    Ok(())
}

/// Whether a person (by name, with the role-assignable groups they belong to) is among
/// `approvers`. Callers pass only role-assignable groups: membership of an ordinary group is
/// changed by Helpdesk, so it must never make anyone an approver (rule 4).
pub fn is_listed_approver(
    approver_name: &str,
    approver_groups: &[String],
    approvers: &[String],
) -> bool {
    approvers.iter().any(|a| match a.split_once(':') {
        Some(("user", n)) => n == approver_name,
        Some(("group", g)) => approver_groups.iter().any(|x| x == g),
        _ => false,
    })
}
