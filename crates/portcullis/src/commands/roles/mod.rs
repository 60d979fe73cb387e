//! CLI for just-in-time roles: roles and settings, assignments, activation requests and
//! decisions. Durations are written like `90s`, `15m`, `8h`, `30d`.
//!
//! This module holds the roles themselves and their settings (`portcullis roles`);
//! `assignments` and `requests` hold the rest.

pub mod assignments;
pub mod requests;

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use portcullis_client::Client;
use portcullis_core::api::{CreateRoleRequest, RoleSettingsUpdate, RoleSettingsView};
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
            // A weakening is recorded for a second person: `pending:`, exit 3 (main.rs).
            let s = c.update_role_settings(role, &update).await?;
            match output {
                Output::Json => print_json(&s)?,
                Output::Table => table(&["setting", role], settings_rows(&s)),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
