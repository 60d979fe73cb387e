//! The request state machine. Invariant: `pending_approval → active | scheduled | applied |
//! denied | cancelled | timed_out`, `scheduled → active | cancelled | revoked` and
//! `active → expired | deactivated | revoked`; all but the first three are terminal.
//!
//! - `scheduled`: approved (or needing no approval) and waiting for its start; nothing is
//!   granted until the expiry worker starts it.
//! - `applied`: an extension request whose extra time was added to the activation it extends;
//!   the extension itself never grants anything, the activation it extends does.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestState {
    PendingApproval,
    Scheduled,
    Active,
    Applied,
    Denied,
    Cancelled,
    TimedOut,
    Expired,
    Deactivated,
    Revoked,
}

impl RequestState {
    pub const ALL: [RequestState; 10] = [
        Self::PendingApproval,
        Self::Scheduled,
        Self::Active,
        Self::Applied,
        Self::Denied,
        Self::Cancelled,
        Self::TimedOut,
        Self::Expired,
        Self::Deactivated,
        Self::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingApproval => "pending_approval",
            Self::Scheduled => "scheduled",
            Self::Active => "active",
            Self::Applied => "applied",
            Self::Denied => "denied",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
            Self::Expired => "expired",
            Self::Deactivated => "deactivated",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::PendingApproval | Self::Scheduled | Self::Active)
    }
}

impl std::fmt::Display for RequestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request becomes once it is approved (or needs no approval).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The grant starts now.
    Activate,
    /// The grant starts later, at the request's start.
    Schedule,
    /// The request extends an active activation.
    Extend,
}

impl Completion {
    /// The state a completed request is in.
    pub fn state(self) -> RequestState {
        match self {
            Self::Activate => RequestState::Active,
            Self::Schedule => RequestState::Scheduled,
            Self::Extend => RequestState::Applied,
        }
    }
}

/// What can happen to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestEvent {
    /// One more approval; `approvals_now` counts it. With enough, the request completes as
    /// `completes_as` says.
    Approve {
        approvals_now: u32,
        required: u32,
        completes_as: Completion,
    },
    /// A scheduled request's start is reached.
    Start,
    Deny,
    Cancel,
    TimeOut,
    Expire,
    Deactivate,
    Revoke,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a request that is {from} cannot be {event}")]
pub struct TransitionError {
    pub from: &'static str,
    pub event: &'static str,
}

fn event_name(ev: &RequestEvent) -> &'static str {
    match ev {
        RequestEvent::Approve { .. } => "approved",
        RequestEvent::Start => "started",
        RequestEvent::Deny => "denied",
        RequestEvent::Cancel => "cancelled",
        RequestEvent::TimeOut => "timed out",
        RequestEvent::Expire => "expired",
        RequestEvent::Deactivate => "deactivated",
        RequestEvent::Revoke => "revoked",
    }
}

/// The state after `ev`, or why it cannot happen.
pub fn transition(from: RequestState, ev: &RequestEvent) -> Result<RequestState, TransitionError> {
    use RequestEvent as E;
    use RequestState as S;
    let to = match (from, ev) {
        (
            S::PendingApproval,
            E::Approve {
                approvals_now,
                required,
                completes_as,
            },
        ) => {
            if approvals_now >= required {
                completes_as.state()
            } else {
                S::PendingApproval
            }
        }
        (S::Scheduled, E::Start) => S::Active,
        (S::Scheduled, E::Cancel) => S::Cancelled,
        (S::Scheduled, E::Revoke) => S::Revoked,
        (S::PendingApproval, E::Deny) => S::Denied,
        (S::PendingApproval, E::Cancel) => S::Cancelled,
        (S::PendingApproval, E::TimeOut) => S::TimedOut,
        (S::Active, E::Expire) => S::Expired,
        (S::Active, E::Deactivate) => S::Deactivated,
        (S::Active, E::Revoke) => S::Revoked,
        _ => {
            return Err(TransitionError {
                from: from.as_str(),
                event: event_name(ev),
            });
        }
    };
    Ok(to)
}
