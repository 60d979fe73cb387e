//! Role assignments: `assign`, `unassign`, `make-eligible` and the `assignments` list.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use portcullis_client::Client;
use portcullis_core::api::{AssignmentView, CreateAssignmentRequest, MakeEligibleRequest};

use super::seconds;
use crate::output::{Output, print_json, table};

#[derive(Args)]
pub struct AssignArgs {
    /// NAME (a user), user:NAME, group:NAME or service_account:NAME.
    principal: String,
    role: String,
    #[arg(long)]
    scope: Option<String>,
    /// Eligible: activated just in time (the default).
    #[arg(long, conflicts_with = "active")]
    eligible: bool,
    /// Active: in effect at once.
    #[arg(long)]
    active: bool,
    /// How long, e.g. 30d.
    #[arg(long = "for", conflicts_with = "until")]
    for_: Option<String>,
    /// Until when (RFC 3339).
    #[arg(long)]
    until: Option<String>,
}

#[derive(Args)]
pub struct UnassignArgs {
    /// An assignment id, or PRINCIPAL ROLE.
    #[arg(required = true, num_args = 1..=2)]
    what: Vec<String>,
    #[arg(long)]
    scope: Option<String>,
}

#[derive(Args)]
pub struct MakeEligibleArgs {
    /// The role whose active assignment becomes eligible (or an assignment id).
    what: String,
    /// Whose assignment (`NAME`, `user:NAME`, `group:NAME`, …); yourself by default.
    #[arg(long)]
    principal: Option<String>,
    #[arg(long)]
    scope: Option<String>,
    /// How long the eligible assignment lasts, e.g. 365d (permanent where the role allows).
    #[arg(long = "for")]
    for_: Option<String>,
}

#[derive(Args)]
pub struct AssignmentsArgs {
    #[arg(long)]
    principal: Option<String>,
    #[arg(long)]
    role: Option<String>,
}

fn assignment_rows(list: &[AssignmentView]) -> Vec<Vec<String>> {
    list.iter()
        .map(|a| {
            vec![
                a.id.clone(),
                a.principal.clone(),
                a.role.clone(),
                a.scope.clone(),
                a.kind.clone(),
                a.ends_at.clone().unwrap_or_else(|| "permanent".into()),
            ]
        })
        .collect()
}

pub async fn assign(c: &Client, output: Output, a: &AssignArgs) -> Result<ExitCode> {
    let created = c
        .create_assignment(&CreateAssignmentRequest {
            principal: a.principal.clone(),
            role: a.role.clone(),
            scope: a.scope.clone(),
            kind: Some(if a.active { "active" } else { "eligible" }.into()),
            duration_seconds: a.for_.as_deref().map(seconds).transpose()?,
            ends_at: a.until.clone(),
        })
        .await?;
    match output {
        Output::Json => print_json(&created)?,
        Output::Table => println!(
            "{} is {} for {} at {} until {} ({})",
            created.principal,
            created.kind,
            created.role,
            created.scope,
            created.ends_at.as_deref().unwrap_or("further notice"),
            created.id
        ),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn unassign(c: &Client, u: &UnassignArgs) -> Result<ExitCode> {
    let id = match u.what.as_slice() {
        [id] => id.clone(),
        [principal, role] => {
            let want = if principal.contains(':') {
                principal.clone()
            } else {
                format!("user:{principal}")
            };
            let scope = u.scope.as_deref().unwrap_or("/");
            let found: Vec<AssignmentView> = c
                .assignments_of(principal)
                .await?
                .into_iter()
                .filter(|a| a.principal == want && &a.role == role && a.scope == scope)
                .collect();
            match found.as_slice() {
                [one] => one.id.clone(),
                [] => bail!("{want} has no live assignment of {role} at {scope}"),
                _ => bail!(
                    "{want} has several assignments of {role} at {scope}; give the id (portcullis assignments --principal {principal})"
                ),
            }
        }
        _ => bail!("give an assignment id, or PRINCIPAL ROLE"),
    };
    c.delete_assignment(&id).await?;
    println!("removed assignment {id}");
    Ok(ExitCode::SUCCESS)
}

/// `portcullis make-eligible ROLE`: the live active assignment of ROLE (yours by default) turns
/// into an eligible one, in one step.
pub async fn make_eligible(c: &Client, output: Output, m: &MakeEligibleArgs) -> Result<ExitCode> {
    let scope = m.scope.as_deref().unwrap_or("/");
    let id = if m.what.starts_with("a_") {
        m.what.clone()
    } else {
        let principal = match &m.principal {
            Some(p) => p.clone(),
            None => c.whoami().await?.user.name,
        };
        let want = if principal.contains(':') {
            principal.clone()
        } else {
            format!("user:{principal}")
        };
        let found: Vec<AssignmentView> = c
            .assignments_of(&principal)
            .await?
            .into_iter()
            .filter(|a| {
                a.principal == want && a.role == m.what && a.scope == scope && a.kind == "active"
            })
            .collect();
        match found.as_slice() {
            [one] => one.id.clone(),
            [] => bail!(
                "{want} has no live active assignment of {} at {scope}",
                m.what
            ),
            _ => bail!(
                "{want} has several active assignments of {} at {scope}; give the id (portcullis assignments --principal {principal})",
                m.what
            ),
        }
    };
    let duration_seconds = m.for_.as_deref().map(seconds).transpose()?;
    let a = c
        .make_eligible(&id, &MakeEligibleRequest { duration_seconds })
        .await?;
    match output {
        Output::Json => print_json(&a)?,
        Output::Table => println!(
            "{} is now eligible for {} at {} ({}); assignment {id} ended",
            a.principal,
            a.role,
            a.scope,
            a.ends_at
                .as_deref()
                .map_or("permanent".to_owned(), |e| format!("until {e}")),
        ),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn assignments(c: &Client, output: Output, a: &AssignmentsArgs) -> Result<ExitCode> {
    let mut list = match &a.principal {
        Some(p) => c.assignments_of(p).await?,
        None => c.assignments().await?,
    };
    if let Some(r) = &a.role {
        list.retain(|x| &x.role == r);
    }
    match output {
        Output::Json => print_json(&list)?,
        Output::Table => table(
            &["id", "principal", "role", "scope", "kind", "ends"],
            assignment_rows(&list),
        ),
    }
    Ok(ExitCode::SUCCESS)
}
