//! CLI for conditional access: policies (list, show, import, export, enable / disable /
//! report-only, delete), named locations, and "what if" evaluations of a sign-in.
//!
//! Policy files are JSON or YAML — one policy or a list — in the form documented in
//! `portcullis_core::conditional_access`; the format comes from the extension (`.json`,
//! `.yaml`, `.yml`), otherwise from the content.
//!
//! Invariants:
//! - `import` reads and parses the file here first (`parse_policy_specs`), so a syntax error or
//!   an unknown field is one line naming the file, and the server is never contacted. The
//!   policies then go to the server in **one** request: it validates the whole resulting set
//!   (every problem at once, names checked against the directory), runs the lockout guard and
//!   applies everything or nothing. `--force` overrides only the guard's "you would lock
//!   yourself out", and the server audits it.
//! - `export` writes every policy as a list in the file format, normalised through
//!   `Policy::from_spec` exactly as the server stores them, so importing an export changes
//!   nothing (the server reports every policy unchanged). With `--out FILE` the format is
//!   `--format`, else the file's extension, else JSON; the file is created with mode 0644 and an
//!   existing file is never overwritten unless `--force`.
//! - Named locations are checked here with the server's own rules (`NamedLocation::parse`: at
//!   least one CIDR, no host bits, no overlaps, not a reserved name), so a mistake is one clear
//!   line and nothing is sent; the server checks again.
//! - `whatif` changes nothing; `--output json` prints the server's decision as it came.

mod import_export;
mod locations;
mod policies;
mod whatif;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use portcullis_client::Client;

use crate::output::Output;
use import_export::{FormatArg, export, import};
use locations::{LocationsCommand, add_location, print_locations};
use policies::{StateArgs, print_policies, set_state, show_text};
use whatif::{WhatIfArgs, whatif};

#[derive(Subcommand)]
pub enum CaCommand {
    /// Policies with their state, who they are about, their controls and last change.
    List,
    /// One policy in the file format (JSON by default).
    Show {
        name: String,
        #[arg(long, value_enum, default_value_t = FormatArg::Json)]
        format: FormatArg,
    },
    /// Create or replace policies (by name) from a JSON or YAML file, all or nothing.
    Import {
        /// A policy or a list of policies (.json, .yaml or .yml; otherwise detected).
        file: PathBuf,
        /// Apply even if the change would lock you out (audited; a change that leaves no
        /// Global Administrator able to sign in is refused regardless).
        #[arg(long)]
        force: bool,
    },
    /// Every policy, as a list in the file format that `import` reads back unchanged.
    Export {
        /// JSON or YAML (default: the extension of --out, else JSON).
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// Write this file (mode 0644) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Overwrite --out if it exists.
        #[arg(long, requires = "out")]
        force: bool,
    },
    /// Enforce a policy.
    Enable(StateArgs),
    /// Stop evaluating a policy.
    Disable(StateArgs),
    /// Evaluate a policy and report what it would do, without enforcing it.
    #[command(name = "report-only")]
    ReportOnly(StateArgs),
    /// Delete a policy.
    Delete { name: String },
    /// Named locations: IPv4 and IPv6 ranges that policies refer to by name.
    #[command(subcommand)]
    Locations(LocationsCommand),
    /// How the policies would decide a sign-in, with the reason for each policy.
    Whatif(WhatIfArgs),
}

pub async fn run(c: &Client, output: Output, cmd: &CaCommand) -> Result<ExitCode> {
    match cmd {
        CaCommand::List => print_policies(output, &c.ca_policies().await?)?,
        CaCommand::Show { name, format } => {
            let view = c.ca_policy(name).await?;
            print!("{}", show_text(&view, (*format).into())?);
        }
        CaCommand::Import { file, force } => import(c, output, file, *force).await?,
        CaCommand::Export { format, out, force } => {
            export(c, *format, out.as_deref(), *force).await?;
        }
        CaCommand::Enable(a) => set_state(c, output, a, "enabled", "enable").await?,
        CaCommand::Disable(a) => set_state(c, output, a, "disabled", "disable").await?,
        CaCommand::ReportOnly(a) => {
            set_state(c, output, a, "report_only", "switch to report-only").await?;
        }
        CaCommand::Delete { name } => {
            c.ca_delete(name)
                .await
                .with_context(|| format!("cannot delete policy {name}"))?;
            println!("deleted policy {name}");
        }
        CaCommand::Locations(LocationsCommand::Add(a)) => add_location(c, output, a).await?,
        CaCommand::Locations(LocationsCommand::List) => {
            print_locations(output, &c.ca_locations().await?)?;
        }
        CaCommand::Locations(LocationsCommand::Remove { name }) => {
            c.ca_remove_location(name)
                .await
                .with_context(|| format!("cannot remove named location {name}"))?;
            println!("removed named location {name}");
        }
        CaCommand::Whatif(a) => whatif(c, output, a).await?,
    }
    Ok(ExitCode::SUCCESS)
}
