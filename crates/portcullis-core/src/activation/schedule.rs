//! Activations that start later, and extensions of active ones.
//!
//! Invariants:
//! - A scheduled activation starts in the future, at most [`MAX_SCHEDULE_AHEAD`] ahead, and
//!   only while its eligibility still lives at the start; its grant runs from the start for
//!   its duration, never past the eligibility.
//! - A scheduled request waiting for approval may be approved until the later of the usual
//!   [`APPROVAL_TIMEOUT`] and its start, but never after its window has ended; approved after
//!   its start, it is active from the approval until the window's end (the window does not
//!   move).
//! - An extension is asked while the activation is active and before it ends; the extended
//!   end is at most the role's maximum activation from the moment it is asked (no grant ever
//!   lies further ahead than a fresh activation could), and never past the eligibility. An
//!   extension not decided by the activation's end times out with it.

use time::{Duration, OffsetDateTime};

use super::approval::APPROVAL_TIMEOUT;
use super::request::in_words;
use crate::error::ErrorCode;

/// How far ahead an activation can be scheduled.
pub const MAX_SCHEDULE_AHEAD: Duration = Duration::days(30);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("the start must be in the future")]
    StartNotInFuture,
    #[error("an activation can be scheduled at most 30 days ahead")]
    StartTooFar,
    #[error("your eligible assignment ends before the start")]
    EligibilityEndsBeforeStart,
    #[error("only an active activation can be extended, before it ends")]
    NotExtendable,
    #[error("the extension must be positive")]
    ExtensionNotPositive,
    #[error(
        "an extended activation may end at most {} from now, the role's maximum ({} seconds)",
        in_words(*max),
        max.whole_seconds()
    )]
    ExtensionTooLong { max: Duration },
    #[error("your eligible assignment ends when this activation does; it cannot be extended")]
    EligibilityEnds,
}

impl ScheduleError {
    /// The stable code the server answers with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::StartNotInFuture | Self::StartTooFar | Self::ExtensionNotPositive => {
                ErrorCode::InvalidRequest
            }
            Self::EligibilityEndsBeforeStart | Self::EligibilityEnds => ErrorCode::NotEligible,
            Self::NotExtendable => ErrorCode::AlreadyDecided,
            Self::ExtensionTooLong { .. } => ErrorCode::DurationTooLong,
        }
    }
}

/// Whether an activation may be scheduled to start at `start`.
pub fn check_start(
    start: OffsetDateTime,
    now: OffsetDateTime,
    eligibility_end: Option<OffsetDateTime>,
) -> Result<(), ScheduleError> {
    if start <= now {
        return Err(ScheduleError::StartNotInFuture);
    }
    if start - now > MAX_SCHEDULE_AHEAD {
        return Err(ScheduleError::StartTooFar);
    }
    if eligibility_end.is_some_and(|e| e <= start) {
        return Err(ScheduleError::EligibilityEndsBeforeStart);
    }
    Ok(())
}

/// When a request asked at `now` for the window `start..window_end` times out if nobody
/// approved it: the later of the usual timeout and its start, but not after the window.
pub fn scheduled_approval_deadline(
    now: OffsetDateTime,
    start: OffsetDateTime,
    window_end: OffsetDateTime,
) -> OffsetDateTime {
    (now + APPROVAL_TIMEOUT).max(start).min(window_end)
}

/// When an extension asked at `now` times out: with the activation it extends, at the latest.
pub fn extension_approval_deadline(
    now: OffsetDateTime,
    current_end: OffsetDateTime,
) -> OffsetDateTime {
    (now + APPROVAL_TIMEOUT).min(current_end)
}

/// The end of an activation now ending at `current_end` extended by `extra`, asked at `now`,
/// for a role activated for at most `max`.
pub fn extension_end(
    current_end: OffsetDateTime,
    extra: Duration,
    eligibility_end: Option<OffsetDateTime>,
    now: OffsetDateTime,
    max: Duration,
) -> Result<OffsetDateTime, ScheduleError> {
    if current_end <= now {
        return Err(ScheduleError::NotExtendable);
    }
    if extra <= Duration::ZERO {
        return Err(ScheduleError::ExtensionNotPositive);
    }
    let end = current_end + extra;
    if end - now > max {
        return Err(ScheduleError::ExtensionTooLong { max });
    }
    match eligibility_end {
        Some(e) if e <= current_end => Err(ScheduleError::EligibilityEnds),
        Some(e) => Ok(end.min(e)),
        None => Ok(end),
    }
}
