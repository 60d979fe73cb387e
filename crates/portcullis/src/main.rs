//! `portcullis`: the server (`portcullis serve`) and the command-line client of its API.
//!
//! Exit codes scripts can rely on: 0 success; 1 error (one line on stderr); 2 bad usage;
//! 3 the audit chain failed verification.

#![deny(clippy::unwrap_used)]

mod cli;
mod commands;
mod connect;
mod keyring_store;
mod login;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(cli::run(cli));
    // Every successful call says so while the tenant is in its setup state (the server's
    // answer said); a failing one keeps its one error line.
    if result.is_ok()
        && let Some(notice) = portcullis_client::setup_notice()
    {
        eprintln!("warning: {notice}");
    }
    match result {
        Ok(code) => code,
        // A weakening recorded as a change request for a second person (four eyes), not
        // applied: said plainly, with its own exit status.
        Err(e) => match e.downcast_ref::<portcullis_client::ClientError>() {
            Some(portcullis_client::ClientError::Api { code, message, .. })
                if code == "change_pending" =>
            {
                eprintln!("pending: {message}");
                ExitCode::from(3)
            }
            _ => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}
