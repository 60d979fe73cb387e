//! Break-glass accounts: split passwords, FIDO2, sign-in and alerts, drills, no per-account
//! throttling; one file per topic.

use super::*;

mod drills_and_alerts;
mod fido2;
mod split_custody;
mod throttling;
