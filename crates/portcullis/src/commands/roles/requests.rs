//! Activation requests: `request` (now or `--start` later, optionally waiting for the
//! decision), `requests`, `approve` / `deny` / `cancel`, `extend` and `deactivate`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use portcullis_client::Client;
use portcullis_core::api::{
    ActivationRequestView, CreateActivationRequest, DecisionRequest, ExtendActivationRequest,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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
    /// Start later instead of now: an RFC 3339 time (`2026-12-03T09:00Z`, seconds optional)
    /// or `+DURATION` from now (`+2h`). Approval can be given ahead; at most 30 days ahead.
    #[arg(long)]
    start: Option<String>,
    /// Wait until the request is approved or denied.
    #[arg(long)]
    wait: bool,
}

#[derive(Args)]
pub struct ExtendArgs {
    /// The role whose active activation to extend, or the activation's request id.
    role_or_id: String,
    /// How much longer, e.g. 30m (the new end is at most the role's maximum from now).
    #[arg(long = "by")]
    by: String,
    #[arg(long)]
    reason: Option<String>,
    #[arg(long)]
    ticket: Option<String>,
}

/// `--start`: an RFC 3339 time (seconds may be left out) or `+DURATION` from now.
fn start_time(s: &str) -> Result<String> {
    if let Some(d) = s.strip_prefix('+') {
        let at = OffsetDateTime::now_utc() + time::Duration::seconds(seconds(d)?);
        return Ok(at.format(&Rfc3339)?);
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t.format(&Rfc3339)?);
    }
    // `2026-12-03T09:00Z`: hours and minutes only.
    if s.len() > 16 && s.is_char_boundary(16) && s.as_bytes()[13] == b':' {
        let with_seconds = format!("{}:00{}", &s[..16], &s[16..]);
        if let Ok(t) = OffsetDateTime::parse(&with_seconds, &Rfc3339) {
            return Ok(t.format(&Rfc3339)?);
        }
    }
    bail!("--start must be an RFC 3339 time such as 2026-12-03T09:00Z, or +DURATION such as +2h")
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
            starts_at: r.start.as_deref().map(start_time).transpose()?,
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
        "active" | "pending_approval" | "scheduled" => ExitCode::SUCCESS,
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

pub async fn extend(c: &Client, output: Output, a: &ExtendArgs) -> Result<ExitCode> {
    let active = c.requests("mine", Some("active")).await?;
    let mut matching = active
        .iter()
        .filter(|r| r.id == a.role_or_id || r.role == a.role_or_id);
    let (Some(target), None) = (matching.next(), matching.next()) else {
        let n = active
            .iter()
            .filter(|r| r.id == a.role_or_id || r.role == a.role_or_id)
            .count();
        if n == 0 {
            bail!("you have no active activation of {}", a.role_or_id);
        }
        bail!(
            "{} of your activations match {}; name one by its request id",
            n,
            a.role_or_id
        );
    };
    let ext = c
        .extend_activation(
            &target.id,
            &ExtendActivationRequest {
                duration_seconds: seconds(&a.by)?,
                justification: a.reason.clone(),
                ticket: a.ticket.clone(),
            },
        )
        .await?;
    show_request(output, &ext)?;
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
