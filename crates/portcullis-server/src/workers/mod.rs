//! Background work that runs beside the HTTP server, each loop until its stop future resolves:
//! grants expired to the second (`expiry`), the sweeper that bounds the growth of short-lived
//! rows, alert delivery, the break-glass drill watch, the SIEM export (`audit_export`), the daily posture digest (`posture`), access-review rounds (`reviews`), the cooling-off of change requests (`governance`), the signing-key reload, and target
//! operations and reconciliation (`targets`). A worker imports no HTTP code.

pub mod alerts;
pub mod audit_export;
pub mod drills;
pub mod expiry;
pub mod governance;
pub mod keys;
pub mod posture;
pub mod reviews;
pub mod sweeper;
pub mod targets;
