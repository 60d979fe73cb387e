//! CLI for just-in-time roles: roles and settings, assignments, activation requests and
//! decisions. Durations are written like `90s`, `15m`, `8h`, `30d`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use portcullis_client::Client;
use portcullis_core::api::{
    ActivationRequestView, AssignmentView, CreateActivationRequest, CreateAssignmentRequest,
    CreateRoleRequest, DecisionRequest, MakeEligibleRequest, RoleSettingsUpdate, RoleSettingsView,
};
use portcullis_core::roles::{format_duration, parse_duration};

use crate::output::{Output, print_json, table};

#[derive(Subcommand)]
pub enum RolesCommand {
    /// Every role, built-in and custom.
    List,
    /// One role and its permissions.
    Show { role: String },
    /// Create a custom role.
    Create {
        name: String,
        /// Comma-separated: catalogue permissions and app:NAME.ACTION / target:NAME.ACTION.
        #[arg(long, value_delimiter = ',', required = true)]
        permissions: Vec<String>,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete a custom role (refused while it is assigned).
    Delete { role: String },
    /// A role's settings.
    #[command(subcommand)]
    Settings(SettingsCommand),
}

#[derive(Subcommand)]
pub enum SettingsCommand {
    Get {
        role: String,
    },
    /// Change only what is given.
    Set {
        role: String,
        /// Longest activation, e.g. 2h (1m to 24h).
        #[arg(long)]
        max_duration: Option<String>,
        /// mfa or phishing_resistant.
        #[arg(long)]
        strength: Option<String>,
        #[arg(long)]
        require_justification: Option<bool>,
        #[arg(long)]
        require_ticket: Option<bool>,
        #[arg(long)]
        require_approval: Option<bool>,
        /// Comma-separated: NAME (a user), user:NAME or group:NAME.
        #[arg(long, value_delimiter = ',')]
        approvers: Option<Vec<String>>,
        /// How many distinct approvers must approve.
        #[arg(long)]
        approvals: Option<u32>,
    },
}

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

fn settings_rows(s: &RoleSettingsView) -> Vec<Vec<String>> {
    let opt = |v: Option<i64>| {
        v.map_or("permanent allowed".to_owned(), |x| {
            format_duration(time::Duration::seconds(x))
        })
    };
    vec![
        vec![
            "max activation".into(),
            format_duration(time::Duration::seconds(s.max_activation_seconds)),
        ],
        vec!["required strength".into(), s.required_strength.clone()],
        vec![
            "justification required".into(),
            s.require_justification.to_string(),
        ],
        vec!["ticket required".into(), s.require_ticket.to_string()],
        vec!["approval required".into(), s.require_approval.to_string()],
        vec!["approvers".into(), s.approvers.join(", ")],
        vec!["approvals".into(), s.approvals_required.to_string()],
        vec![
            "max eligible assignment".into(),
            opt(s.max_eligible_seconds),
        ],
        vec!["max active assignment".into(), opt(s.max_active_seconds)],
        vec![
            "permanent active allowed".into(),
            s.allow_permanent_active.to_string(),
        ],
        vec!["notify".into(), s.notify.join(", ")],
    ]
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

fn seconds(d: &str) -> Result<i64> {
    Ok(parse_duration(d)?.whole_seconds())
}

fn approver(s: &str) -> String {
    if s.contains(':') {
        s.to_owned()
    } else {
        format!("user:{s}")
    }
}

pub async fn roles(c: &Client, output: Output, cmd: &RolesCommand) -> Result<ExitCode> {
    match cmd {
        RolesCommand::List => {
            let roles = c.roles().await?;
            match output {
                Output::Json => print_json(&roles)?,
                Output::Table => table(
                    &["role", "name", "built-in", "permissions"],
                    roles
                        .into_iter()
                        .map(|r| {
                            vec![
                                r.slug,
                                r.display_name,
                                r.builtin.to_string(),
                                r.permissions.len().to_string(),
                            ]
                        })
                        .collect(),
                ),
            }
        }
        RolesCommand::Show { role } => {
            let r = c.role(role).await?;
            match output {
                Output::Json => print_json(&r)?,
                Output::Table => {
                    println!(
                        "{} ({}){}",
                        r.slug,
                        r.display_name,
                        if r.builtin { ", built-in" } else { "" }
                    );
                    println!("{}", r.description);
                    for p in &r.permissions {
                        println!("  {p}");
                    }
                }
            }
        }
        RolesCommand::Create {
            name,
            permissions,
            display_name,
            description,
        } => {
            let r = c
                .create_role(&CreateRoleRequest {
                    slug: name.clone(),
                    display_name: display_name.clone(),
                    description: description.clone(),
                    permissions: permissions.clone(),
                })
                .await?;
            match output {
                Output::Json => print_json(&r)?,
                Output::Table => println!(
                    "created role {} with {} permissions",
                    r.slug,
                    r.permissions.len()
                ),
            }
        }
        RolesCommand::Delete { role } => {
            c.delete_role(role).await?;
            println!("deleted role {role}");
        }
        RolesCommand::Settings(SettingsCommand::Get { role }) => {
            let s = c.role_settings(role).await?;
            match output {
                Output::Json => print_json(&s)?,
                Output::Table => table(&["setting", role], settings_rows(&s)),
            }
        }
        RolesCommand::Settings(SettingsCommand::Set {
            role,
            max_duration,
            strength,
            require_justification,
            require_ticket,
            require_approval,
            approvers,
            approvals,
        }) => {
            let update = RoleSettingsUpdate {
                max_activation_seconds: max_duration.as_deref().map(seconds).transpose()?,
                required_strength: strength.clone(),
                require_justification: *require_justification,
                require_ticket: *require_ticket,
                require_approval: *require_approval,
                approvers: approvers
                    .as_ref()
                    .map(|v| v.iter().map(|a| approver(a)).collect()),
                approvals_required: *approvals,
                notify: None,
            };
            let s = c.update_role_settings(role, &update).await?;
            match output {
                Output::Json => print_json(&s)?,
                Output::Table => table(&["setting", role], settings_rows(&s)),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
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
