//! Activation requests as a pure state machine, and the rules for asking and approving.
//!
//! States: `pending_approval → active | scheduled | applied | denied | cancelled | timed_out`,
//! `scheduled → active | cancelled | revoked` and `active → expired | deactivated | revoked`;
//! all but `pending_approval`, `scheduled` and `active` are terminal.
//!
//! Invariants:
//! - A role is activated only with the strength its settings require, proven within the last
//!   15 minutes; otherwise `step_up_required` names the strength needed.
//! - Nobody approves their own request, not even as a member of an approver group; the
//!   approver must be signed in with at least `mfa`; N-of-M counts distinct people.
//! - A grant never outlives the eligible assignment it came from.
//! - A scheduled activation grants nothing before its start; an extension never reaches
//!   further than the role's maximum from when it was asked ([`schedule`]).

mod approval;
mod request;
pub mod schedule;
mod state;

#[cfg(test)]
mod tests;

pub use approval::{APPROVAL_TIMEOUT, ApprovalError, Approver, check_approval, is_listed_approver};
pub use request::{
    ActivationError, ActivationInput, STEP_UP_WINDOW, SessionFacts, check_activation, grant_end,
};
pub use state::{Completion, RequestEvent, RequestState, TransitionError, transition};
