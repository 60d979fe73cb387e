//! Command-line definitions and their handlers.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use portcullis_client::{Client, EventFilter};
use portcullis_core::api::{
    BootstrapRequest, CreateGroupRequest, CreateUserRequest, GroupMemberRequest,
    MAX_VERIFY_ANCHORS, PasswordSignInRequest, SessionView, TotpConfirmRequest, TotpEnrolRequest,
    TotpSignInRequest, UserView, VerifyResult,
};
use portcullis_core::audit::{AnchorRecord, Checkpoint, parse_anchor_lines};
use rand::RngCore;

use crate::alerts_cli::{self, AlertsCommand};
use crate::breakglass_cli::{self, BreakGlassCommand};
use crate::ca_cli::{self, CaCommand};
use crate::clients_cli::{self, ClientsCommand};
use crate::login::{self, ask, ask_secret, qr};
use crate::output::{Output, print_json, table};
use crate::roles_cli;
use crate::service_accounts_cli::{self, ServiceAccountsCommand};
use portcullis_server::{Application, BuildOptions, Config, LogFormat};
use portcullis_store::{Store, StoreOptions};
use secrecy::SecretString;

/// Exit code when the audit chain does not verify.
const EXIT_CHAIN_BROKEN: u8 = 3;

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
    /// Roles (built-in and custom) and their settings.
    #[command(subcommand)]
    Roles(roles_cli::RolesCommand),
    /// Assign a role to a user, group or service account (eligible by default).
    Assign(roles_cli::AssignArgs),
    /// Remove an assignment (by id, or PRINCIPAL ROLE).
    Unassign(roles_cli::UnassignArgs),
    /// Turn an active assignment (yours by default) into an eligible one, in one step.
    MakeEligible(roles_cli::MakeEligibleArgs),
    /// Prove again that it is you (password and TOTP code): credential changes need a proof
    /// within the last five minutes.
    Reauth(ReauthArgs),
    /// List live assignments.
    Assignments(roles_cli::AssignmentsArgs),
    /// Ask to activate an eligible role.
    Request(roles_cli::RequestArgs),
    /// Activation requests: yours, those to approve, or everyone's pending ones.
    Requests(roles_cli::RequestsArgs),
    /// Approve a pending request.
    Approve(roles_cli::DecideArgs),
    /// Deny a pending request (a reason is required).
    Deny(roles_cli::DecideArgs),
    /// Cancel your own pending request.
    Cancel(roles_cli::DecideArgs),
    /// End your active activation of a role early.
    Deactivate { role: String },
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Let the CLI that shows this code sign in as you (with your session's strength).
    Approve { code: String },
    /// Refuse it (that CLI gets access_denied).
    Deny { code: String },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// The signing keys, newest first, and until when retired ones stay in JWKS.
    List,
    /// Make a new key the signing key; the old one stays in JWKS until its tokens expired.
    Rotate {
        /// Only if this key is still the active one (a second run then fails instead of
        /// rotating again).
        #[arg(long)]
        previous: Option<String>,
    },
}

#[derive(Args)]
struct BootstrapArgs {
    /// Read the bootstrap token from this file (otherwise it is asked for).
    #[arg(long)]
    token_file: Option<PathBuf>,
    #[arg(long)]
    username: Option<String>,
    #[arg(long)]
    display_name: Option<String>,
    #[arg(long)]
    email: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Args)]
struct LoginArgs {
    #[arg(long)]
    username: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
    /// The TOTP code (otherwise it is asked for).
    #[arg(long)]
    code: Option<String>,
    /// Sign in through the browser or another signed-in terminal (device code, RFC 8628):
    /// no password here; the login refreshes itself.
    #[arg(long, conflicts_with_all = ["username", "password_stdin", "code"])]
    device: bool,
}

#[derive(Args)]
struct ReauthArgs {
    /// The TOTP code (otherwise it is asked for).
    #[arg(long)]
    code: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand)]
enum MfaCommand {
    /// List your second factors.
    List,
    /// Enrol a second factor.
    #[command(subcommand)]
    Enroll(EnrollCommand),
    /// Remove a second factor by id.
    Remove { id: String },
}

#[derive(Subcommand)]
enum EnrollCommand {
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
enum UsersCommand {
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
}

#[derive(Subcommand)]
enum GroupsCommand {
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
enum SessionsCommand {
    /// Your live sessions, or a user's (administrators).
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a session by id.
    Revoke { id: String },
}

/// The deployment settings people look for first (all keys: README, "Configuration").
const SERVE_HELP: &str = "\
Deployment (config file key / PORTCULLIS_ variable):
  public_url          the URL people and clients use: token issuer, discovery, WebAuthn
                      origin, links. Default: follows the listener (http://localhost:PORT on
                      loopback). webauthn_origin is its old name.
  tls_cert, tls_key   PEM files served directly over TLS; `kill -HUP` reloads them (a bad
                      file keeps the old certificate and logs why).
  trusted_proxies     CIDRs of reverse proxies whose X-Forwarded-For is believed.
  header_read_timeout_seconds (10), body_timeout_seconds (30), idle_timeout_seconds (60),
  max_connections_per_address (128): slow and many connections.
  rate_limit_per_address (200/s, burst 1000), rate_limit_global (20000/s, burst 40000):
                      request rates; sign-in is never rate limited (0 turns a limit off).";

#[derive(Args)]
struct ServeArgs {
    /// TOML configuration file (PORTCULLIS_* environment variables override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log format (overrides the configuration).
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
    /// On first start, write the bootstrap token to this new file (mode 0600) instead of the log.
    #[arg(long)]
    bootstrap_token_file: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Pretty,
    Json,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// List audit events, oldest first.
    List(ListArgs),
    /// Walk the hash chain, the chain of signed checkpoints and the checkpoint cadence; exit
    /// code 3 if anything is broken.
    Verify {
        /// Verify offline, straight from the database (works when the server is down).
        #[arg(long, env = "PORTCULLIS_VERIFY_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
        /// An audit anchor file (`audit_anchor_file`, kept outside the database): also prove
        /// the database still holds every checkpoint in it, so no history up to the newest was
        /// deleted. Repeat for several replicas' files.
        #[arg(long = "anchor", value_name = "FILE")]
        anchors: Vec<PathBuf>,
    },
    /// Write a signed checkpoint now.
    Checkpoint {
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Args)]
struct ListArgs {
    #[arg(long)]
    actor: Option<String>,
    #[arg(long)]
    action: Option<String>,
    #[arg(long)]
    target: Option<String>,
    /// success or failure.
    #[arg(long)]
    outcome: Option<String>,
    /// RFC 3339 time (inclusive).
    #[arg(long)]
    since: Option<String>,
    /// RFC 3339 time (exclusive).
    #[arg(long)]
    until: Option<String>,
    /// Only events after this sequence number.
    #[arg(long)]
    after: Option<i64>,
    /// At most this many events (all matching when absent).
    #[arg(long)]
    limit: Option<i64>,
}

/// A client with the credential in effect: `PORTCULLIS_TOKEN`, else the stored login for
/// this server.
fn client(cli: &Cli) -> Result<Client> {
    let token = match std::env::var("PORTCULLIS_TOKEN") {
        Ok(t) => Some(t),
        Err(_) => match login::load().filter(|l| l.server == cli.server) {
            Some(l) => Some(login::bearer(&l)?.to_string()),
            None => None,
        },
    };
    Ok(Client::new(&cli.server, token.map(SecretString::from))?)
}

fn anonymous(cli: &Cli) -> Result<Client> {
    Ok(Client::new(&cli.server, None)?)
}

fn print_users(cli: &Cli, users: &[UserView]) -> Result<()> {
    if cli.output == Output::Json {
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

fn print_sessions(cli: &Cli, sessions: &[SessionView]) -> Result<()> {
    if cli.output == Output::Json {
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

/// Shows a TOTP secret for an authenticator app: a QR code and the URI on stderr, the secret
/// on stdout (one line `secret: BASE32`, so scripts can read it).
fn show_totp(secret_b32: &str, uri: &str) {
    eprintln!("Add this to your authenticator app (scan the QR code or enter the secret):");
    eprintln!("{}", qr(uri));
    eprintln!("otpauth URI: {uri}");
    println!("secret: {secret_b32}");
    let _ = std::io::Write::flush(&mut std::io::stdout());
}

/// A password asked twice on a terminal, or one line of stdin with `--password-stdin`.
fn new_password(from_stdin: bool, prompt: &str) -> Result<String> {
    if from_stdin {
        return login::read_stdin_line("password");
    }
    let a = ask_secret(prompt, "password")?;
    let b = ask_secret("Repeat it: ", "password")?;
    if a != b {
        bail!("the passwords differ");
    }
    Ok(a)
}

async fn bootstrap(cli: &Cli, args: &BootstrapArgs) -> Result<ExitCode> {
    let token = match &args.token_file {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read {}", p.display()))?
            .trim()
            .to_owned(),
        None => ask_secret("Bootstrap token: ", "bootstrap token")?,
    };
    let password = new_password(
        args.password_stdin,
        "Password for the first administrator (15+ characters): ",
    )?;
    let username = match &args.username {
        Some(u) => u.clone(),
        None => ask("User name: ", "user name")?,
    };
    let display_name = args
        .display_name
        .clone()
        .unwrap_or_else(|| username.clone());
    let mut secret = zeroize::Zeroizing::new([0u8; portcullis_core::totp::SECRET_LEN]);
    rand::rngs::OsRng.fill_bytes(secret.as_mut());
    let secret_b32 = portcullis_core::totp::base32(secret.as_ref());
    let uri = portcullis_core::totp::otpauth_uri(secret.as_ref(), &username)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    show_totp(&secret_b32, &uri);
    let code = ask("Code from the authenticator app: ", "code")?;
    let user = anonymous(cli)?
        .bootstrap(&BootstrapRequest {
            token,
            username,
            display_name,
            email: args.email.clone(),
            password,
            totp_secret: secret_b32,
            totp_code: code.trim().to_owned(),
        })
        .await?;
    match cli.output {
        Output::Json => print_json(&user)?,
        Output::Table => println!(
            "created the first administrator {}; sign in with `portcullis login`",
            user.name
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// A fresh proof in the stored session: the password and a TOTP code.
async fn reauth(c: &Client, code: Option<String>, password_stdin: bool) -> Result<()> {
    let password = if password_stdin {
        login::read_stdin_line("password")?
    } else {
        ask_secret("Password (to prove it is you): ", "password")?
    };
    let code = match code {
        Some(c) => c,
        None => ask("Code from the authenticator app: ", "code")?,
    };
    let r = c
        .reauth(&portcullis_core::api::ReauthRequest {
            password: Some(password),
            code: Some(code.trim().to_owned()),
            ceremony_id: None,
            credential: None,
        })
        .await?;
    eprintln!(
        "re-authenticated ({}); credential changes are allowed until {}",
        r.strength, r.fresh_until
    );
    Ok(())
}

/// Runs a credential change; when the server asks for a fresh proof (`reauth_required`),
/// asks for the password and a code, re-authenticates and runs it once more.
async fn with_fresh_proof<T, F, Fut>(c: &Client, change: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, portcullis_client::ClientError>>,
{
    match change().await {
        Err(e) if e.code() == Some("reauth_required") => {
            eprintln!("{e}");
            reauth(c, None, false).await?;
            Ok(change().await?)
        }
        other => Ok(other?),
    }
}

async fn login_cmd(cli: &Cli, args: &LoginArgs) -> Result<ExitCode> {
    if args.device {
        return device_login(cli).await;
    }
    let username = match &args.username {
        Some(u) => u.clone(),
        None => ask("User name: ", "user name")?,
    };
    let password = if args.password_stdin {
        login::read_stdin_line("password")?
    } else {
        ask_secret("Password: ", "password")?
    };
    let anon = anonymous(cli)?;
    let mut r = anon
        .signin_password(&PasswordSignInRequest {
            username: username.clone(),
            password,
        })
        .await?;
    if r.status == "mfa_required" {
        let code = match &args.code {
            Some(c) => c.clone(),
            None => ask("Code from the authenticator app: ", "code")?,
        };
        let signin_id = r
            .signin_id
            .clone()
            .context("the server asked for a second factor without a sign-in id")?;
        r = anon
            .signin_totp(&TotpSignInRequest {
                signin_id,
                code: code.trim().to_owned(),
            })
            .await?;
    }
    let session = r.session.context("the server did not open a session")?;
    // Like a device login's refresh token: in the OS keyring, or sealed to this machine and
    // user, never in the clear on disk.
    login::save_session_login(&cli.server, &session.token, &username)?;
    match cli.output {
        Output::Json => print_json(&serde_json::json!({
            "user": username, "session_id": session.session_id, "strength": session.strength,
            "scope": session.scope, "expires_at": session.expires_at,
        }))?,
        Output::Table => {
            println!(
                "signed in as {username} ({}; session ends by {})",
                session.strength, session.expires_at
            );
            if session.scope == "registration_only" {
                println!(
                    "this account needs a second factor: run `portcullis mfa enroll totp`, then log in again"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn accounts(cli: &Cli) -> Result<ExitCode> {
    let c = client(cli)?;
    match &cli.command {
        Command::Logout => {
            let stored = login::load().filter(|l| l.server == cli.server);
            let had = stored.is_some();
            match stored.as_ref().filter(|l| l.refresh_store().is_some()) {
                // A device login: revoke its refresh-token family (its access token too).
                Some(device) => {
                    let revoked = match login::refresh_token(device) {
                        Ok(refresh) => c.revoke_cli_token(&refresh).await,
                        Err(e) => Err(portcullis_client::ClientError::Transport {
                            url: cli.server.clone(),
                            reason: e.to_string(),
                        }),
                    };
                    if let Err(e) = revoked {
                        eprintln!("warning: the server did not revoke the login: {e}");
                    }
                    if let Some(l) = &stored {
                        let _ = c.revoke_cli_token(&l.token).await;
                    }
                }
                None => {
                    if let Err(e) = c.signout().await {
                        eprintln!("warning: the server did not end the session: {e}");
                    }
                }
            }
            login::forget(&cli.server)?;
            println!("{}", if had { "signed out" } else { "no stored login" });
        }
        Command::Whoami => {
            let me = c.whoami().await?;
            if cli.output == Output::Json {
                print_json(&me)?;
            } else {
                println!(
                    "{} ({}), {} session, {}",
                    me.user.name, me.user.display_name, me.session.strength, me.session.scope
                );
                for r in &me.roles {
                    let left = match r.seconds_left {
                        Some(s) => format!("{} left", human_duration(s)),
                        None => "permanent".to_owned(),
                    };
                    println!("role: {} at {} ({left})", r.role, r.scope);
                }
                for w in &me.warnings {
                    println!("warning: {w}");
                }
            }
        }
        Command::Mfa(MfaCommand::List) => {
            let f = c.mfa_list().await?;
            if cli.output == Output::Json {
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
        Command::Mfa(MfaCommand::Enroll(EnrollCommand::Totp { name, code })) => {
            let req = TotpEnrolRequest { name: name.clone() };
            let e = with_fresh_proof(&c, || c.mfa_enrol_totp(&req)).await?;
            show_totp(&e.secret, &e.otpauth_uri);
            let code = match code {
                Some(x) => x.clone(),
                None => ask("Code from the authenticator app: ", "code")?,
            };
            let confirm = TotpConfirmRequest {
                code: code.trim().to_owned(),
            };
            let f = with_fresh_proof(&c, || c.mfa_confirm_totp(&e.factor_id, &confirm)).await?;
            println!("enrolled {} ({})", f.name, f.id);
        }
        Command::Mfa(MfaCommand::Remove { id }) => {
            with_fresh_proof(&c, || c.mfa_remove(id)).await?;
            println!("removed {id}");
        }
        Command::Users(cmd) => match cmd {
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
                print_users(cli, &[u])?;
            }
            UsersCommand::List => print_users(cli, &c.users().await?)?,
            UsersCommand::Show { name } => print_users(cli, &[c.user(name).await?])?,
            UsersCommand::Disable { name } => print_users(cli, &[c.disable_user(name).await?])?,
            UsersCommand::Enable { name } => print_users(cli, &[c.enable_user(name).await?])?,
        },
        Command::Groups(cmd) => {
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
            if cli.output == Output::Json {
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
        }
        Command::Sessions(SessionsCommand::List { user }) => {
            let s = match user {
                Some(u) => c.user_sessions(u).await?,
                None => c.sessions().await?,
            };
            print_sessions(cli, &s)?;
        }
        Command::Sessions(SessionsCommand::Revoke { id }) => {
            c.revoke_session(id).await?;
            println!("revoked {id}");
        }
        _ => bail!("internal: command dispatched to the wrong handler"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `login --device`: shows a code, waits for a person to approve it, keeps the tokens.
async fn device_login(cli: &Cli) -> Result<ExitCode> {
    login::check_credential_store(&cli.server)?;
    let anon = anonymous(cli)?;
    let start = anon.device_authorize().await?;
    eprintln!(
        "To sign in, open {} and enter the code {}\n(or, where you are signed in with MFA: portcullis device approve {})",
        start.verification_uri, start.user_code, start.user_code
    );
    eprintln!("waiting for approval…");
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_secs(start.expires_in.max(1) as u64);
    let mut interval = start.interval.max(1) as u64;
    let tokens = loop {
        if std::time::Instant::now() >= deadline {
            bail!(
                "the code {} expired before anyone approved it; run login again",
                start.user_code
            );
        }
        tokio::time::sleep(std::time::Duration::from_secs(interval)).await;
        match anon.device_token(&start.device_code).await {
            Ok(t) => break t,
            Err(e) if e.code() == Some("authorization_pending") => {}
            Err(e) if e.code() == Some("slow_down") => interval += 5,
            Err(e) => return Err(e.into()),
        }
    };
    let refresh = tokens
        .refresh_token
        .clone()
        .context("the server sent no refresh token")?;
    let me = anon
        .with_token(Some(SecretString::from(tokens.access_token.clone())))
        .whoami()
        .await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    login::save_device_login(
        &cli.server,
        &tokens.access_token,
        &me.user.name,
        now + tokens.expires_in,
        &refresh,
        None,
    )?;
    match cli.output {
        Output::Json => print_json(&serde_json::json!({
            "user": me.user.name, "strength": me.session.strength, "method": "device",
        }))?,
        Output::Table => println!(
            "signed in as {} ({}); the login refreshes itself",
            me.user.name, me.session.strength
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Seconds before expiry at which the CLI refreshes its access token.
const REFRESH_AHEAD_SECONDS: i64 = 60;

/// Refreshes a device login's access token when it is about to expire, keeping the rotated
/// refresh token; a refused refresh ends the stored login with one clear line.
async fn refresh_if_due(cli: &Cli) -> Result<()> {
    let Some(stored) = login::load().filter(|l| l.server == cli.server) else {
        return Ok(());
    };
    let (Some(store), Some(expires_at)) = (stored.refresh_store(), stored.expires_at) else {
        return Ok(());
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if expires_at - REFRESH_AHEAD_SECONDS > now {
        return Ok(());
    }
    let refresh = login::refresh_token(&stored)?;
    match anonymous(cli)?.refresh(&refresh).await {
        Ok(t) => {
            let next = t
                .refresh_token
                .context("the server sent no refresh token")?;
            login::save_device_login(
                &stored.server,
                &t.access_token,
                &stored.user,
                now + t.expires_in,
                &next,
                Some(store),
            )
        }
        Err(e) if e.code() == Some("invalid_grant") => {
            login::forget(&cli.server)?;
            bail!(
                "your login has ended (revoked, expired or disabled); run `portcullis login` again"
            )
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let uses_stored_login = !matches!(
        cli.command,
        Command::Serve(_) | Command::Login(_) | Command::Logout | Command::Bootstrap(_)
    );
    if uses_stored_login && std::env::var_os("PORTCULLIS_TOKEN").is_none() {
        refresh_if_due(&cli).await?;
    }
    match &cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Audit(AuditCommand::List(args)) => audit_list(&cli, args).await,
        Command::Audit(AuditCommand::Verify { database, anchors }) => {
            audit_verify(&cli, database.as_deref(), anchors).await
        }
        Command::Bootstrap(args) => bootstrap(&cli, args).await,
        Command::Login(args) => login_cmd(&cli, args).await,
        Command::Logout
        | Command::Whoami
        | Command::Mfa(_)
        | Command::Users(_)
        | Command::Groups(_)
        | Command::Sessions(_) => accounts(&cli).await,
        Command::ServiceAccounts(cmd) => {
            service_accounts_cli::run(&client(&cli)?, cli.output, cmd).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Clients(cmd) => {
            clients_cli::run(&client(&cli)?, cli.output, cmd).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Alerts(cmd) => {
            alerts_cli::run(&client(&cli)?, cli.output, cmd).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Breakglass(cmd) => {
            breakglass_cli::run(
                &client(&cli)?,
                &anonymous(&cli)?,
                &cli.server,
                cli.output,
                cmd,
            )
            .await
        }
        Command::Ca(cmd) => ca_cli::run(&client(&cli)?, cli.output, cmd).await,
        Command::Roles(cmd) => roles_cli::roles(&client(&cli)?, cli.output, cmd).await,
        Command::Assign(a) => roles_cli::assign(&client(&cli)?, cli.output, a).await,
        Command::Unassign(u) => roles_cli::unassign(&client(&cli)?, u).await,
        Command::MakeEligible(m) => roles_cli::make_eligible(&client(&cli)?, cli.output, m).await,
        Command::Reauth(args) => {
            reauth(&client(&cli)?, args.code.clone(), args.password_stdin).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Assignments(a) => roles_cli::assignments(&client(&cli)?, cli.output, a).await,
        Command::Request(r) => roles_cli::request(&client(&cli)?, cli.output, r).await,
        Command::Requests(r) => roles_cli::requests(&client(&cli)?, cli.output, r).await,
        Command::Approve(d) => roles_cli::decide(&client(&cli)?, cli.output, "approve", d).await,
        Command::Deny(d) => roles_cli::decide(&client(&cli)?, cli.output, "deny", d).await,
        Command::Cancel(d) => roles_cli::decide(&client(&cli)?, cli.output, "cancel", d).await,
        Command::Deactivate { role } => {
            roles_cli::deactivate(&client(&cli)?, cli.output, role).await
        }
        Command::Device(cmd) => {
            let c = client(&cli)?;
            let (code, approve) = match cmd {
                DeviceCommand::Approve { code } => (code, true),
                DeviceCommand::Deny { code } => (code, false),
            };
            let req = portcullis_core::api::DeviceDecisionRequest {
                user_code: code.clone(),
            };
            if approve {
                c.approve_device(&req).await?;
                println!("approved {code}: that CLI is now signed in as you");
            } else {
                c.deny_device(&req).await?;
                println!("denied {code}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(KeysCommand::List) => {
            let keys = client(&cli)?.signing_keys().await?;
            if cli.output == Output::Json {
                print_json(&keys)?;
            } else {
                let rows = keys
                    .iter()
                    .map(|k| {
                        let state = if k.active {
                            "active"
                        } else if k.published {
                            "retired, in JWKS"
                        } else {
                            "retired"
                        };
                        vec![
                            k.key_id.clone(),
                            state.to_owned(),
                            k.created_at.clone(),
                            k.published_until.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                table(&["key id", "state", "created", "in JWKS until"], rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(KeysCommand::Rotate { previous }) => {
            let r = client(&cli)?
                .rotate_signing_key(previous.as_deref())
                .await?;
            if cli.output == Output::Json {
                print_json(&r)?;
            } else {
                println!(
                    "signing key {} replaces {}; {} stays in JWKS until {}",
                    r.key_id, r.previous_key_id, r.previous_key_id, r.previous_published_until
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(AuditCommand::Checkpoint { reason }) => {
            let created = client(&cli)?.audit_checkpoint(reason).await?;
            match cli.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&created)?),
                Output::Table => {
                    println!("checkpoint at sequence {} ({})", created.seq, created.hash)
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(args: &ServeArgs) -> Result<ExitCode> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(f) = args.log_format {
        config.log_format = match f {
            LogFormatArg::Pretty => LogFormat::Pretty,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    init_logging(config.log_format);
    let public = config.public_view();
    tracing::info!(
        listen = %config.listen,
        data_dir = %config.data_dir.display(),
        database = %public["database"].as_str().unwrap_or(""),
        "starting portcullis {}", env!("CARGO_PKG_VERSION")
    );
    if config.database_url.is_none() {
        tracing::info!(
            "using embedded SQLite in {} (set PORTCULLIS_DATABASE_URL for PostgreSQL)",
            config.data_dir.display()
        );
    }
    let app = Application::build(
        config,
        BuildOptions {
            bootstrap_token_file: args.bootstrap_token_file.clone(),
        },
    )
    .await?;
    tracing::info!(
        port = app.port(),
        public_url = app.public_url(),
        "listening"
    );
    app.run_until(portcullis_server::app::shutdown_signal())
        .await
        .context("server failed")?;
    Ok(ExitCode::SUCCESS)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTCULLIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

async fn audit_list(cli: &Cli, args: &ListArgs) -> Result<ExitCode> {
    let client = client(cli)?;
    let mut remaining = args.limit;
    if remaining.is_some_and(|l| l < 1) {
        bail!("--limit must be at least 1");
    }
    let mut filter = EventFilter {
        actor: args.actor.clone(),
        action: args.action.clone(),
        target: args.target.clone(),
        outcome: args.outcome.clone(),
        since: args.since.clone(),
        until: args.until.clone(),
        after: args.after,
        limit: None,
    };
    let mut events = Vec::new();
    loop {
        filter.limit = Some(remaining.map_or(1000, |r| r.min(1000)));
        let page = client.audit_events(&filter).await?;
        let n = page.events.len() as i64;
        events.extend(page.events);
        if let Some(r) = remaining.as_mut() {
            *r -= n;
            if *r <= 0 {
                break;
            }
        }
        match page.next_after {
            Some(next) => filter.after = Some(next),
            None => break,
        }
    }
    match cli.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&events)?),
        Output::Table => table(
            &["seq", "time", "actor", "action", "target", "outcome"],
            events
                .iter()
                .map(|e| {
                    vec![
                        e.seq.to_string(),
                        e.time.clone(),
                        e.actor.clone(),
                        e.action.clone(),
                        e.target.clone(),
                        e.outcome.clone(),
                    ]
                })
                .collect(),
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// The checkpoints in the anchor files, oldest first, duplicates (a shared file, or the same
/// file given twice) removed.
fn read_anchors(files: &[PathBuf]) -> Result<Vec<Checkpoint>> {
    let mut all = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the anchor file {}", f.display()))?;
        let parsed =
            parse_anchor_lines(&text).with_context(|| format!("anchor file {}", f.display()))?;
        if parsed.torn_lines > 0 {
            eprintln!(
                "note: {}: skipped {} line(s) cut short by a crash",
                f.display(),
                parsed.torn_lines
            );
        }
        all.extend(parsed.anchors);
    }
    all.sort_by_key(|c| c.seq);
    all.dedup();
    if !files.is_empty() && all.is_empty() {
        bail!("the anchor file(s) hold no checkpoint record: nothing to prove");
    }
    Ok(all)
}

async fn audit_verify(
    cli: &Cli,
    database: Option<&str>,
    anchor_files: &[PathBuf],
) -> Result<ExitCode> {
    let anchors = read_anchors(anchor_files)?;
    let result = match database {
        Some(url) => {
            let store = Store::open(
                url,
                StoreOptions {
                    read_only: true,
                    max_connections: 2,
                    ..Default::default()
                },
            )
            .await?;
            let outcome = store.verify(&anchors).await?;
            store.close().await;
            VerifyResult::from_verification(outcome)
        }
        None if anchors.is_empty() => client(cli)?.audit_verify().await?,
        None => {
            // The newest anchored checkpoint pins everything before it (events through the
            // hash chain, checkpoints through their links): send the newest ones.
            let newest: Vec<AnchorRecord> = anchors
                .iter()
                .rev()
                .take(MAX_VERIFY_ANCHORS)
                .filter_map(AnchorRecord::of)
                .collect();
            client(cli)?.audit_verify_anchored(newest).await?
        }
    };
    match cli.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&result)?),
        Output::Table => {
            if result.ok {
                let mut line = format!(
                    "audit chain intact: {} events, {} signed checkpoints matched, head {}",
                    result.events.unwrap_or(0),
                    result.checkpoints.unwrap_or(0),
                    result.last_hash.as_deref().unwrap_or("")
                );
                if let Some(seq) = result.anchored_seq {
                    line.push_str(&format!(
                        "; {} anchored checkpoint(s) present, newest at sequence {seq}",
                        result.anchors_matched.unwrap_or(0)
                    ));
                }
                println!("{line}");
            } else {
                println!(
                    "AUDIT CHAIN BROKEN at sequence {} ({}): {}",
                    result.first_bad_seq.unwrap_or(0),
                    result.reason.as_deref().unwrap_or("unknown"),
                    result.problem.as_deref().unwrap_or("")
                );
            }
        }
    }
    Ok(if result.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CHAIN_BROKEN)
    })
}

/// `3725` → `1h 2m 5s`.
fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let mut parts = Vec::new();
    if d > 0 {
        parts.push(format!("{d}d"));
    }
    if h > 0 {
        parts.push(format!("{h}h"));
    }
    if m > 0 {
        parts.push(format!("{m}m"));
    }
    if sec > 0 || parts.is_empty() {
        parts.push(format!("{sec}s"));
    }
    parts.join(" ")
}
