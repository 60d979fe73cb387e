//! Asking for an activation: what the requester asks for, checked against the role's settings.
//! Invariant: the required strength, proven within [`STEP_UP_WINDOW`], or `step_up_required`;
//! a grant never outlives the eligible assignment it came from.

use time::{Duration, OffsetDateTime};

use super::state::{Completion, RequestState};
use crate::error::ErrorCode;
use crate::roles::RoleSettings;
use crate::session::AuthStrength;

/// How recent the strong factor of the requesting session must be.
pub const STEP_UP_WINDOW: Duration = Duration::minutes(15);

/// The session asking for an activation.
#[derive(Debug, Clone, Copy)]
pub struct SessionFacts {
    pub strength: AuthStrength,
    /// When the second factor was last proven in this session.
    pub strong_auth_at: Option<OffsetDateTime>,
}

/// What the requester asks for.
#[derive(Debug, Clone, Copy)]
pub struct ActivationInput<'a> {
    pub duration: Duration,
    pub justification: Option<&'a str>,
    pub ticket: Option<&'a str>,
    /// What the request becomes once approved (or at once, where no approval is needed).
    pub completes_as: Completion,
}

/// A duration as people say it: `1 h`, `45 min`, `1 h 30 min`, `90 s`.
pub fn in_words(d: Duration) -> String {
    let s = d.whole_seconds().max(0);
    let (h, m, rest) = (s / 3600, (s % 3600) / 60, s % 60);
    match (h, m, rest) {
        (0, 0, r) => format!("{r} s"),
        (h, m, r) if r != 0 => format!("{} s", h * 3600 + m * 60 + r),
        (0, m, _) => format!("{m} min"),
        (h, 0, _) => format!("{h} h"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivationError {
    #[error("this role needs a {} sign-in within the last 15 minutes; sign in again and retry", needed.as_str())]
    StepUpRequired { needed: AuthStrength },
    #[error("the duration must be positive")]
    DurationNotPositive,
    #[error("this role can be activated for at most {} ({} seconds)", in_words(*max), max.whole_seconds())]
    DurationTooLong { max: Duration },
    #[error("this role needs a justification")]
    JustificationRequired,
    #[error("this role needs a ticket number")]
    TicketRequired,
    #[error(
        "the justification must be at most 500 characters without control, bidirectional or invisible characters"
    )]
    JustificationTooLong,
    #[error("a ticket number is 1 to 64 letters, digits or _ . # / -")]
    TicketMalformed,
}

impl ActivationError {
    /// The stable code the server answers with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::StepUpRequired { .. } => ErrorCode::StepUpRequired,
            Self::DurationTooLong { .. } => ErrorCode::DurationTooLong,
            Self::JustificationRequired => ErrorCode::JustificationRequired,
            Self::TicketRequired => ErrorCode::TicketRequired,
            Self::DurationNotPositive | Self::JustificationTooLong | Self::TicketMalformed => {
                ErrorCode::InvalidRequest
            }
        }
    }
}

fn ticket_ok(t: &str) -> bool {
    let b = t.as_bytes();
    (1..=64).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'#' | b'/' | b'-'))
}

/// Checks a request against the role's settings and the session; the state it starts in.
pub fn check_activation(
    settings: &RoleSettings,
    session: &SessionFacts,
    input: &ActivationInput,
    now: OffsetDateTime,
) -> Result<RequestState, ActivationError> {
    if input.duration <= Duration::ZERO {
        return Err(ActivationError::DurationNotPositive);
    }
    let max = Duration::seconds(settings.max_activation);
    if input.duration > max {
        return Err(ActivationError::DurationTooLong { max });
    }
    match input.justification.map(str::trim) {
        Some(j) if j.chars().count() > 500 || crate::text::has_invisible(j) => {
            return Err(ActivationError::JustificationTooLong);
        }
        Some("") | None if settings.require_justification => {
            return Err(ActivationError::JustificationRequired);
        }
        _ => {}
    }
    match input.ticket {
        Some(t) if !ticket_ok(t) => return Err(ActivationError::TicketMalformed),
        None if settings.require_ticket => return Err(ActivationError::TicketRequired),
        _ => {}
    }
    let fresh = session
        .strong_auth_at
        .is_some_and(|at| now - at <= STEP_UP_WINDOW && at <= now);
    if session.strength < settings.required_strength || !fresh {
        return Err(ActivationError::StepUpRequired {
            needed: settings.required_strength,
        });
    }
    Ok(if settings.require_approval {
        RequestState::PendingApproval
    } else {
        input.completes_as.state()
    })
}

/// When a grant starting at `start` for `duration` ends: never after its eligibility.
pub fn grant_end(
    start: OffsetDateTime,
    duration: Duration,
    eligibility_end: Option<OffsetDateTime>,
) -> OffsetDateTime {
    let end = start + duration;
    match eligibility_end {
        Some(e) if e < end => e,
        _ => end,
    }
}
