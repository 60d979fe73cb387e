//! `portcullis changes`: four eyes on the PAM's own settings. A weakening change (of a
//! privileged role's settings) waits as a change request; another top-tier person approves or
//! denies it, its requester may cancel it.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use portcullis_client::Client;
use portcullis_core::api::{ChangeDecisionRequest, ChangeRequestView};

use crate::output::{Output, print_json, table};

#[derive(Subcommand)]
pub enum ChangesCommand {
    /// Change requests, newest first (`--pending`: only those waiting).
    List {
        #[arg(long)]
        pending: bool,
    },
    /// One change request, with the change it holds.
    Show { id: String },
    /// Approve a change request: it applies now (never your own).
    Approve {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny a change request (a reason is required): it never applies.
    Deny {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Cancel a change request (yours, or as a top-tier administrator).
    Cancel {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

fn rows(list: &[ChangeRequestView]) -> Vec<Vec<String>> {
    list.iter()
        .map(|c| {
            vec![
                c.id.clone(),
                c.subject.clone(),
                c.weakenings.join(", "),
                c.requested_by.clone(),
                c.state.clone(),
                c.effective_at
                    .clone()
                    .unwrap_or_else(|| "on approval".into()),
            ]
        })
        .collect()
}

const HEADER: &[&str] = &[
    "id",
    "subject",
    "weakens",
    "requested by",
    "state",
    "takes effect",
];

fn show(output: Output, list: &[ChangeRequestView]) -> Result<()> {
    match output {
        Output::Json => print_json(&list),
        Output::Table => {
            table(HEADER, rows(list));
            Ok(())
        }
    }
}

pub async fn run(c: &Client, output: Output, cmd: &ChangesCommand) -> Result<ExitCode> {
    let decision = |reason: &Option<String>| ChangeDecisionRequest {
        reason: reason.clone(),
    };
    match cmd {
        ChangesCommand::List { pending } => {
            let list = c.change_requests(pending.then_some("pending")).await?;
            show(output, &list)?;
        }
        ChangesCommand::Show { id } => {
            let one = c.change_request(id).await?;
            match output {
                Output::Json => print_json(&one)?,
                Output::Table => {
                    table(HEADER, rows(std::slice::from_ref(&one)));
                    println!("change: {}", one.change);
                }
            }
        }
        ChangesCommand::Approve { id, reason } => {
            show(output, &[c.approve_change(id, &decision(reason)).await?])?;
        }
        ChangesCommand::Deny { id, reason } => {
            show(
                output,
                &[c.deny_change(id, &decision(&Some(reason.clone()))).await?],
            )?;
        }
        ChangesCommand::Cancel { id, reason } => {
            show(output, &[c.cancel_change(id, &decision(reason)).await?])?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
