//! What a change reports when it finds the world not as it expected: the conflicts callers
//! match on by name, and the one constructor every change uses.

use crate::StoreError;

/// The conflict [`Change::AddAlertRule`] reports when [`crate::alerts::MAX_RULES`] exist.
pub const TOO_MANY_RULES: &str = "too many custom alert rules";

/// The conflict [`Change::ConditionalAccess`] reports when another change landed first.
pub const CA_CHANGED: &str = "the conditional-access configuration changed meanwhile";

/// The conflict a capped creation reports (too many pending rows from one address).
pub const TOO_MANY_PENDING: &str = "too many pending requests from this address";

/// The conflict [`Change::CloseRequest`] reports when the request moved on meanwhile.
pub const REQUEST_MOVED: &str = "the request is not in the expected state";

/// The conflict [`Change::ReserveAttempt`] reports.
pub const THROTTLED: &str = "too many failed attempts; wait before trying again";

/// The conflict [`Change::RequireGlobalAdministrator`] reports.
pub const LAST_GLOBAL_ADMINISTRATOR: &str =
    "nobody would be left who can reach Global Administrator at the tenant";

/// The conflict [`Change::RequireBreakGlassMinimum`] reports.
pub const BREAKGLASS_MINIMUM: &str = "fewer than the required break-glass accounts would remain";

pub(super) fn conflict(what: &str) -> StoreError {
    StoreError::Conflict(what.to_owned())
}
