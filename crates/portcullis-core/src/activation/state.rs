//! The request state machine. Invariant: `pending_approval → active | denied | cancelled |
//! timed_out` and `active → expired | deactivated | revoked`; the last six are terminal.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestState {
    PendingApproval,
    Active,
    Denied,
    Cancelled,
    TimedOut,
    Expired,
    Deactivated,
    Revoked,
}

impl RequestState {
    pub const ALL: [RequestState; 8] = [
        Self::PendingApproval,
        Self::Active,
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
            Self::Active => "active",
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
        !matches!(self, Self::PendingApproval | Self::Active)
    }
}

impl std::fmt::Display for RequestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What can happen to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestEvent {
    /// One more approval; `approvals_now` counts it.
    Approve {
        approvals_now: u32,
        required: u32,
    },
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
            },
        ) => {
            if approvals_now >= required {
                S::Active
            } else {
                S::PendingApproval
            }
        }
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
