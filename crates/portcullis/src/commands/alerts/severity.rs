//! The severity of an alert, as channels (`--min-severity`) and rules (`--severity`) take it.

use clap::ValueEnum;

#[derive(Clone, Copy, ValueEnum)]
pub enum SeverityArg {
    Info,
    Warning,
    Critical,
}

pub(super) fn severity_str(s: SeverityArg) -> &'static str {
    match s {
        SeverityArg::Info => "info",
        SeverityArg::Warning => "warning",
        SeverityArg::Critical => "critical",
    }
}
