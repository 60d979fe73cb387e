//! Activation requests as a pure state machine, and the rules for asking and approving.
//!
//! States: `pending_approval → active | denied | cancelled | timed_out` and
//! `active → expired | deactivated | revoked`; the last six are terminal.
//!
//! Invariants:
//! - A role is activated only with the strength its settings require, proven within the last
//!   15 minutes; otherwise `step_up_required` names the strength needed.
//! - Nobody approves their own request, not even as a member of an approver group; the
//!   approver must be signed in with at least `mfa`; N-of-M counts distinct people.
//! - A grant never outlives the eligible assignment it came from.

mod approval;
mod request;
mod state;

#[cfg(test)]
mod tests;

pub use approval::{APPROVAL_TIMEOUT, ApprovalError, Approver, check_approval, is_listed_approver};
pub use request::{
    ActivationError, ActivationInput, STEP_UP_WINDOW, SessionFacts, check_activation, grant_end,
};
pub use state::{RequestEvent, RequestState, TransitionError, transition};
