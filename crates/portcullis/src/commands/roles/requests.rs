//! Activation requests: `request` (optionally waiting for the decision), `requests`,
//! `approve` / `deny` / `cancel`, and `deactivate`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use portcullis_client::Client;
use portcullis_core::api::{ActivationRequestView, CreateActivationRequest, DecisionRequest};

use super::seconds;
use crate::output::{Output, print_json, table};

#[derive(Args)]
pub struct RequestArgs {
    role: String,
    #[arg(long)]
    scope: Option<String>,
    /// How long, e.g. 1h (at most the role's maximum).
    #[arg(long = "for")]
    for_: String,
    #[arg(long)]
    reason: Option<String>,
    #[arg(long)]
    ticket: Option<String>,
    /// Wait until the request is approved or denied.
    #[arg(long)]
    wait: bool,
}

#[derive(Args)]
pub struct RequestsArgs {
    /// Everyone's pending requests (needs requests.read).
    #[arg(long, conflicts_with_all = ["mine", "to_approve"])]
    pending: bool,
    /// Your own requests (the default).
    #[arg(long)]
    mine: bool,
    /// Requests you may approve.
    #[arg(long, conflicts_with = "mine")]
    to_approve: bool,
}

#[derive(Args)]
pub struct DecideArgs {
    id: String,
    #[arg(long)]
    reason: Option<String>,
}

fn request_rows(list: &[ActivationRequestView]) -> Vec<Vec<String>> {
    list.iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.requester.clone(),
                r.role.clone(),
                r.scope.clone(),
                r.state.clone(),
                format!("{}/{}", r.approvals.len(), r.approvals_required),
                r.ends_at.clone().unwrap_or_default(),
                r.justification.clone().unwrap_or_default(),
            ]
        })
        .collect()
}

const REQUEST_HEADER: &[&str] = &[
    "id",
    "requester",
    "role",
    "scope",
    "state",
    "approvals",
    "ends",
    "justification",
];

fn show_request(output: Output, r: &ActivationRequestView) -> Result<()> {
    match output {
        Output::Json => print_json(r),
        Output::Table => {
            table(REQUEST_HEADER, request_rows(std::slice::from_ref(r)));
            Ok(())
        }
    }
}

pub async fn request(c: &Client, output: Output, r: &RequestArgs) -> Result<ExitCode> {
    let mut req = c
        .request_activation(&CreateActivationRequest {
            role: r.role.clone(),
            scope: r.scope.clone(),
            duration_seconds: seconds(&r.for_)?,
            justification: r.reason.clone(),
            ticket: r.ticket.clone(),
        })
        .await?;
    if r.wait && req.state == "pending_approval" {
        let tty = std::io::stderr().is_terminal();
        let spinner = ['|', '/', '-', '\\'];
        let mut i = 0usize;
        if !tty {
            eprintln!("waiting for approval of {} …", req.id);
        }
        while req.state == "pending_approval" {
            if tty {
                eprint!(
                    "\r{} waiting for approval of {} ({}/{})",
                    spinner[i % 4],
                    req.id,
                    req.approvals.len(),
                    req.approvals_required
                );
                let _ = std::io::stderr().flush();
            }
            i += 1;
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            req = c.activation_request(&req.id).await?;
        }
        if tty {
            eprintln!();
        }
    }
    show_request(output, &req)?;
    Ok(match req.state.as_str() {
        "active" | "pending_approval" => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

pub async fn requests(c: &Client, output: Output, r: &RequestsArgs) -> Result<ExitCode> {
    let list = if r.pending {
        c.requests("all", Some("pending_approval")).await?
    } else if r.to_approve {
        c.requests("to_approve", None).await?
    } else {
        c.requests("mine", None).await?
    };
    match output {
        Output::Json => print_json(&list)?,
        Output::Table => table(REQUEST_HEADER, request_rows(&list)),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn decide(c: &Client, output: Output, action: &str, d: &DecideArgs) -> Result<ExitCode> {
    let body = DecisionRequest {
        reason: d.reason.clone(),
    };
    let r = match action {
        "approve" => c.approve(&d.id, &body).await?,
        "deny" => c.deny(&d.id, &body).await?,
        _ => c.cancel_request(&d.id, &body).await?,
    };
    show_request(output, &r)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn deactivate(c: &Client, output: Output, role: &str) -> Result<ExitCode> {
    let active: Vec<ActivationRequestView> = c
        .requests("mine", Some("active"))
        .await?
        .into_iter()
        .filter(|r| r.role == role)
        .collect();
    if active.is_empty() {
        bail!("you have no active activation of {role}");
    }
    for r in active {
        let done = c.deactivate(&r.id, &DecisionRequest::default()).await?;
        show_request(output, &done)?;
    }
    Ok(ExitCode::SUCCESS)
}
