//! The command line: the top-level `Cli` and `Command` definitions, and `run`, which hands each
//! command to its module in `commands/` with the client it needs.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::commands::accounts::{self, GroupsCommand, MfaCommand, SessionsCommand, UsersCommand};
use crate::commands::alerts::{self, AlertsCommand};
use crate::commands::audit::{self, AuditCommand};
use crate::commands::breakglass::{self, BreakGlassCommand};
use crate::commands::ca::{self, CaCommand};
use crate::commands::clients::{self, ClientsCommand};
use crate::commands::credentials::{self, ReauthArgs};
use crate::commands::keys::{self, KeysCommand};
use crate::commands::roles::{self, assignments, requests};
use crate::commands::serve::{self, SERVE_HELP, ServeArgs};
use crate::commands::service_accounts::{self, ServiceAccountsCommand};
use crate::commands::signin::{self, BootstrapArgs, DeviceCommand, LoginArgs};
use crate::commands::targets::{self, TargetsCommand};
use crate::connect::{anonymous, client, refresh_if_due};
use crate::output::Output;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Privileged access server and its command-line client"
)]
pub struct Cli {
    /// URL of the Portcullis server.
    #[arg(
        long,
        global = true,
        env = "PORTCULLIS_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// Read and verify the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Token signing keys: list them, rotate the active one.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Approve or deny a device code another CLI showed (it then signs in as you).
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Redeem the bootstrap token: create the first administrator (password + TOTP).
    Bootstrap(BootstrapArgs),
    /// Sign in and keep the session for the next commands.
    Login(LoginArgs),
    /// Sign out and forget the stored session.
    Logout,
    /// Show who you are signed in as, your session and your roles.
    Whoami,
    /// Your second factors.
    #[command(subcommand)]
    Mfa(MfaCommand),
    /// Users (members and partner guests).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Groups.
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Service accounts (records; credentials come with the token service).
    #[command(subcommand, name = "service-accounts")]
    ServiceAccounts(ServiceAccountsCommand),
    /// Registered OpenID Connect clients (relying parties) and their secrets.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Alert channels (email, webhook, SMS), test messages, and the delivery state of alerts.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Break-glass (emergency access) accounts: create with split custody, sign in, drills.
    #[command(subcommand, name = "breakglass")]
    Breakglass(BreakGlassCommand),
    /// Conditional access: policies (import/export as JSON or YAML), named locations, what-if.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Targets where grants become real access (PostgreSQL, webhooks): bindings, operations,
    /// observation and drift.
    #[command(subcommand)]
    Targets(TargetsCommand),
    /// SSH through an ssh-ca target with a certificate from your active grants
    /// (`portcullis ssh TARGET -- user@host`), or get one (`portcullis ssh sign TARGET`).
    Ssh(crate::commands::ssh::SshArgs),
    /// Print a completion script for a shell (`portcullis completions bash >
    /// /etc/bash_completion.d/portcullis`; zsh: into a directory of `$fpath` as `_portcullis`;
    /// fish: `~/.config/fish/completions/portcullis.fish`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Back up the embedded SQLite database while the server runs, verified before it is kept
    /// (PostgreSQL: pg_dump, see the README).
    Backup(crate::commands::backup::BackupArgs),
    /// Roles (built-in and custom) and their settings.
    #[command(subcommand)]
    Roles(roles::RolesCommand),
    /// Assign a role to a user, group or service account (eligible by default).
    Assign(assignments::AssignArgs),
    /// Remove an assignment (by id, or PRINCIPAL ROLE).
    Unassign(assignments::UnassignArgs),
    /// Turn an active assignment (yours by default) into an eligible one, in one step.
    MakeEligible(assignments::MakeEligibleArgs),
    /// Prove again that it is you (password and TOTP code): credential changes need a proof
    /// within the last five minutes.
    Reauth(ReauthArgs),
    /// List live assignments.
    Assignments(assignments::AssignmentsArgs),
    /// Ask to activate an eligible role, now or (`--start`) later.
    Request(requests::RequestArgs),
    /// Activation requests: yours, those to approve, or everyone's pending ones.
    Requests(requests::RequestsArgs),
    /// Approve a pending request.
    Approve(requests::DecideArgs),
    /// Deny a pending request (a reason is required).
    Deny(requests::DecideArgs),
    /// Cancel your own pending request.
    Cancel(requests::DecideArgs),
    /// End your active activation of a role early.
    Deactivate { role: String },
    /// Ask for more time on your active activation of a role, before it ends (same approval
    /// rules; it keeps running until the extension is decided).
    Extend(requests::ExtendArgs),
    /// Contain a user or service account in one step (incident response): disabled, every
    /// session, token, request, grant and target grant cut, a critical alert; `--undo` gives
    /// back the account only.
    Contain(crate::commands::contain::ContainArgs),
    /// The posture report: SCuBA MS.AAD.7.1–7.9 and PIM's checks of this tenant, with the
    /// evidence and the fix; `--fail-on high` exits 4 when a high finding is present.
    Posture(crate::commands::posture::PostureArgs),
    /// Four eyes on the PAM's own settings: change requests that weaken a privileged role wait
    /// for another top-tier administrator (`list --pending`, `approve ID`, `deny ID --reason`,
    /// `cancel ID`).
    #[command(subcommand)]
    Changes(crate::commands::changes::ChangesCommand),
    /// Access reviews: reviewers keep or remove each eligible and active assignment of a role;
    /// undecided ones get the default when the round closes (`create --every 90d`, `list
    /// --to-decide`, `decide ROUND ASSIGNMENT --keep|--remove --reason …`).
    #[command(subcommand)]
    Reviews(crate::commands::reviews::ReviewsCommand),
}

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let uses_stored_login = !matches!(
        cli.command,
        Command::Serve(_)
            | Command::Login(_)
            | Command::Logout
            | Command::Bootstrap(_)
            | Command::Completions { .. }
            | Command::Backup(_)
    );
    if uses_stored_login && std::env::var_os("PORTCULLIS_TOKEN").is_none() {
        refresh_if_due(&cli.server).await?;
    }
    match &cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "portcullis",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup(args) => crate::commands::backup::backup(cli.output, args).await,
        Command::Serve(args) => serve::serve(args).await,
        Command::Audit(cmd) => audit::run(&cli.server, cli.output, cmd).await,
        Command::Bootstrap(args) => signin::bootstrap(&cli.server, cli.output, args).await,
        Command::Login(args) => signin::login_cmd(&cli.server, cli.output, args).await,
        Command::Logout => signin::logout(&client(&cli.server)?, &cli.server).await,
        Command::Whoami => signin::whoami(&client(&cli.server)?, cli.output).await,
        Command::Mfa(cmd) => accounts::mfa(&client(&cli.server)?, cli.output, cmd).await,
        Command::Users(cmd) => accounts::users(&client(&cli.server)?, cli.output, cmd).await,
        Command::Groups(cmd) => accounts::groups(&client(&cli.server)?, cli.output, cmd).await,
        Command::Sessions(cmd) => accounts::sessions(&client(&cli.server)?, cli.output, cmd).await,
        Command::ServiceAccounts(cmd) => {
            service_accounts::run(&client(&cli.server)?, cli.output, cmd).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Clients(cmd) => {
            clients::run(&client(&cli.server)?, cli.output, cmd).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Alerts(cmd) => {
            alerts::run(&client(&cli.server)?, cli.output, cmd).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Targets(cmd) => {
            targets::run(&client(&cli.server)?, cli.output, cmd).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ssh(args) => {
            crate::commands::ssh::run(&client(&cli.server)?, cli.output, args).await
        }
        Command::Breakglass(cmd) => {
            breakglass::run(
                &client(&cli.server)?,
                &anonymous(&cli.server)?,
                &cli.server,
                cli.output,
                cmd,
            )
            .await
        }
        Command::Ca(cmd) => ca::run(&client(&cli.server)?, cli.output, cmd).await,
        Command::Roles(cmd) => roles::roles(&client(&cli.server)?, cli.output, cmd).await,
        Command::Assign(a) => assignments::assign(&client(&cli.server)?, cli.output, a).await,
        Command::Unassign(u) => assignments::unassign(&client(&cli.server)?, u).await,
        Command::MakeEligible(m) => {
            assignments::make_eligible(&client(&cli.server)?, cli.output, m).await
        }
        Command::Reauth(args) => {
            credentials::reauth(
                &client(&cli.server)?,
                args.code.clone(),
                args.password_stdin,
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Assignments(a) => {
            assignments::assignments(&client(&cli.server)?, cli.output, a).await
        }
        Command::Request(r) => requests::request(&client(&cli.server)?, cli.output, r).await,
        Command::Requests(r) => requests::requests(&client(&cli.server)?, cli.output, r).await,
        Command::Approve(d) => {
            requests::decide(&client(&cli.server)?, cli.output, "approve", d).await
        }
        Command::Deny(d) => requests::decide(&client(&cli.server)?, cli.output, "deny", d).await,
        Command::Cancel(d) => {
            requests::decide(&client(&cli.server)?, cli.output, "cancel", d).await
        }
        Command::Deactivate { role } => {
            requests::deactivate(&client(&cli.server)?, cli.output, role).await
        }
        Command::Extend(a) => requests::extend(&client(&cli.server)?, cli.output, a).await,
        Command::Changes(cmd) => {
            crate::commands::changes::run(&client(&cli.server)?, cli.output, cmd).await
        }
        Command::Posture(args) => {
            crate::commands::posture::posture(&client(&cli.server)?, cli.output, args).await
        }
        Command::Contain(args) => {
            crate::commands::contain::contain(&client(&cli.server)?, cli.output, args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Reviews(cmd) => {
            crate::commands::reviews::run(&client(&cli.server)?, cli.output, cmd).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Device(cmd) => signin::decide_device(&client(&cli.server)?, cmd).await,
        Command::Keys(cmd) => keys::run(&client(&cli.server)?, cli.output, cmd).await,
    }
}
