//! Account commands: your second factors (`mfa`), users, groups and sessions.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use portcullis_client::Client;
use portcullis_core::api::{
    CreateGroupRequest, CreateUserRequest, GroupMemberRequest, SessionView, TotpConfirmRequest,
    TotpEnrolRequest, UserView,
};

use super::credentials::{new_password, show_totp, with_fresh_proof};
use crate::login::ask;
use crate::output::{Output, print_json, table};

#[derive(Subcommand)]
pub enum MfaCommand {
    /// List your second factors.
    List,
    /// Enrol a second factor.
    #[command(subcommand)]
    Enroll(EnrollCommand),
    /// Remove a second factor by id.
    Remove { id: String },
}

#[derive(Subcommand)]
pub enum EnrollCommand {
    /// An authenticator app (TOTP): shows a QR code, then asks for a code to confirm.
    Totp {
        #[arg(long, default_value = "authenticator")]
        name: String,
        /// The confirmation code (otherwise it is asked for).
        #[arg(long)]
        code: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create a user; the initial password is asked for (or read with --password-stdin).
    Create {
        name: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// E.164, for SMS alerts.
        #[arg(long)]
        phone: Option<String>,
        /// Makes the user a guest from this organisation (partner or MSP staff).
        #[arg(long)]
        guest_org: Option<String>,
        /// The account may become privileged: 15+ character password, MFA before full sign-in.
        #[arg(long)]
        privileged: bool,
        #[arg(long)]
        password_stdin: bool,
    },
    List,
    Show {
        name: String,
    },
    Disable {
        name: String,
    },
    Enable {
        name: String,
    },
    /// Set a person's manager (their reviewer in a `managers` access review), or remove it.
    SetManager {
        name: String,
        #[arg(required_unless_present = "none")]
        manager: Option<String>,
        /// Remove the manager.
        #[arg(long, conflicts_with = "manager")]
        none: bool,
    },
}

#[derive(Subcommand)]
pub enum GroupsCommand {
    Create {
        name: String,
        #[arg(long)]
        display_name: Option<String>,
        /// Membership can then be changed by privileged administrators only.
        #[arg(long)]
        role_assignable: bool,
    },
    List,
    /// Add a member to a group.
    Add {
        group: String,
        member: String,
    },
    /// Remove a member from a group.
    Remove {
        group: String,
        member: String,
    },
}

#[derive(Subcommand)]
pub enum SessionsCommand {
    /// Your live sessions, or a user's (administrators).
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a session by id.
    Revoke { id: String },
}

fn print_users(output: Output, users: &[UserView]) -> Result<()> {
    if output == Output::Json {
        return print_json(&users);
    }
    let rows = users
        .iter()
        .map(|u| {
            vec![
                u.name.clone(),
                u.display_name.clone(),
                match &u.guest_organisation {
                    Some(o) => format!("guest ({o})"),
                    None => u.kind.clone(),
                },
                if u.first_admin {
                    "first admin".into()
                } else {
                    u.privileged.to_string()
                },
                u.enabled.to_string(),
                u.mfa.join(","),
                u.groups.join(","),
                u.last_sign_in.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "name",
            "display name",
            "kind",
            "privileged",
            "enabled",
            "mfa",
            "groups",
            "last sign-in",
        ],
        rows,
    );
    Ok(())
}

fn print_sessions(output: Output, sessions: &[SessionView]) -> Result<()> {
    if output == Output::Json {
        return print_json(&sessions);
    }
    let rows = sessions
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.user.clone(),
                s.strength.clone(),
                s.scope.clone(),
                s.created_at.clone(),
                s.last_seen.clone(),
                s.client_ip.clone(),
                s.user_agent.clone(),
                if s.current {
                    "current".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    table(
        &[
            "id",
            "user",
            "strength",
            "scope",
            "created",
            "last seen",
            "ip",
            "user agent",
            "",
        ],
        rows,
    );
    Ok(())
}

pub async fn mfa(c: &Client, output: Output, cmd: &MfaCommand) -> Result<ExitCode> {
    match cmd {
        MfaCommand::List => {
            let f = c.mfa_list().await?;
            if output == Output::Json {
                print_json(&f)?;
            } else {
                let rows = f
                    .into_iter()
                    .map(|x| {
                        vec![
                            x.id,
                            x.kind,
                            x.name,
                            x.confirmed.to_string(),
                            x.created_at,
                            x.last_used.unwrap_or_default(),
                        ]
                    })
                    .collect();
                table(
                    &["id", "kind", "name", "confirmed", "created", "last used"],
                    rows,
                );
            }
        }
        MfaCommand::Enroll(EnrollCommand::Totp { name, code }) => {
            let req = TotpEnrolRequest { name: name.clone() };
            let e = with_fresh_proof(c, || c.mfa_enrol_totp(&req)).await?;
            show_totp(&e.secret, &e.otpauth_uri);
            let code = match code {
                Some(x) => x.clone(),
                None => ask("Code from the authenticator app: ", "code")?,
            };
            let confirm = TotpConfirmRequest {
                code: code.trim().to_owned(),
            };
            let f = with_fresh_proof(c, || c.mfa_confirm_totp(&e.factor_id, &confirm)).await?;
            println!("enrolled {} ({})", f.name, f.id);
        }
        MfaCommand::Remove { id } => {
            with_fresh_proof(c, || c.mfa_remove(id)).await?;
            println!("removed {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn users(c: &Client, output: Output, cmd: &UsersCommand) -> Result<ExitCode> {
    match cmd {
        UsersCommand::Create {
            name,
            display_name,
            email,
            phone,
            guest_org,
            privileged,
            password_stdin,
        } => {
            let password = new_password(*password_stdin, "Initial password: ")?;
            let u = c
                .create_user(&CreateUserRequest {
                    name: name.clone(),
                    display_name: display_name.clone().unwrap_or_else(|| name.clone()),
                    email: email.clone(),
                    phone: phone.clone(),
                    guest_organisation: guest_org.clone(),
                    privileged: *privileged,
                    password,
                })
                .await?;
            print_users(output, &[u])?;
        }
        UsersCommand::List => print_users(output, &c.users().await?)?,
        UsersCommand::Show { name } => print_users(output, &[c.user(name).await?])?,
        UsersCommand::Disable { name } => print_users(output, &[c.disable_user(name).await?])?,
        UsersCommand::Enable { name } => print_users(output, &[c.enable_user(name).await?])?,
        UsersCommand::SetManager { name, manager, .. } => {
            let u = c
                .set_manager(
                    name,
                    &portcullis_core::api::SetManagerRequest {
                        manager: manager.clone(),
                    },
                )
                .await?;
            match output {
                Output::Json => print_json(&u)?,
                Output::Table => println!(
                    "{}'s manager: {}",
                    u.name,
                    u.manager.as_deref().unwrap_or("none")
                ),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn groups(c: &Client, output: Output, cmd: &GroupsCommand) -> Result<ExitCode> {
    let groups = match cmd {
        GroupsCommand::Create {
            name,
            display_name,
            role_assignable,
        } => vec![
            c.create_group(&CreateGroupRequest {
                name: name.clone(),
                display_name: display_name.clone(),
                role_assignable: *role_assignable,
            })
            .await?,
        ],
        GroupsCommand::List => c.groups().await?,
        GroupsCommand::Add { group, member } => {
            vec![
                c.add_group_member(
                    group,
                    &GroupMemberRequest {
                        member: member.clone(),
                    },
                )
                .await?,
            ]
        }
        GroupsCommand::Remove { group, member } => {
            vec![c.remove_group_member(group, member).await?]
        }
    };
    if output == Output::Json {
        print_json(&groups)?;
    } else {
        let rows = groups
            .into_iter()
            .map(|g| {
                vec![
                    g.name,
                    g.display_name,
                    g.role_assignable.to_string(),
                    g.members.join(","),
                ]
            })
            .collect();
        table(
            &["name", "display name", "role assignable", "members"],
            rows,
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn sessions(c: &Client, output: Output, cmd: &SessionsCommand) -> Result<ExitCode> {
    match cmd {
        SessionsCommand::List { user } => {
            let s = match user {
                Some(u) => c.user_sessions(u).await?,
                None => c.sessions().await?,
            };
            print_sessions(output, &s)?;
        }
        SessionsCommand::Revoke { id } => {
            c.revoke_session(id).await?;
            println!("revoked {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
