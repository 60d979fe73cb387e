//! Signing in and out: redeeming the bootstrap token, `login` (password and TOTP, or a device
//! code), answering another CLI's device code, `logout` and `whoami`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use portcullis_client::Client;
use portcullis_core::api::{BootstrapRequest, PasswordSignInRequest, TotpSignInRequest};
use rand::RngCore;
use secrecy::SecretString;

use super::credentials::{new_password, show_totp};
use crate::connect::anonymous;
use crate::login::{self, ask, ask_secret};
use crate::output::{Output, print_json};

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Let the CLI that shows this code sign in as you (with your session's strength).
    Approve { code: String },
    /// Refuse it (that CLI gets access_denied).
    Deny { code: String },
}

#[derive(Args)]
pub struct BootstrapArgs {
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
pub struct LoginArgs {
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

pub async fn bootstrap(server: &str, output: Output, args: &BootstrapArgs) -> Result<ExitCode> {
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
    let user = anonymous(server)?
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
    match output {
        Output::Json => print_json(&user)?,
        Output::Table => println!(
            "created the first administrator {}; sign in with `portcullis login`",
            user.name
        ),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn login_cmd(server: &str, output: Output, args: &LoginArgs) -> Result<ExitCode> {
    if args.device {
        return device_login(server, output).await;
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
    let anon = anonymous(server)?;
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
    login::save_session_login(server, &session.token, &username)?;
    match output {
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

/// `login --device`: shows a code, waits for a person to approve it, keeps the tokens.
async fn device_login(server: &str, output: Output) -> Result<ExitCode> {
    login::check_credential_store(server)?;
    let anon = anonymous(server)?;
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
        server,
        &tokens.access_token,
        &me.user.name,
        now + tokens.expires_in,
        &refresh,
        None,
    )?;
    match output {
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

pub async fn logout(c: &Client, server: &str) -> Result<ExitCode> {
    let stored = login::load().filter(|l| l.server == server);
    let had = stored.is_some();
    match stored.as_ref().filter(|l| l.refresh_store().is_some()) {
        // A device login: revoke its refresh-token family (its access token too).
        Some(device) => {
            let revoked = match login::refresh_token(device) {
                Ok(refresh) => c.revoke_cli_token(&refresh).await,
                Err(e) => Err(portcullis_client::ClientError::Transport {
                    url: server.to_owned(),
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
    login::forget(server)?;
    println!("{}", if had { "signed out" } else { "no stored login" });
    Ok(ExitCode::SUCCESS)
}

pub async fn whoami(c: &Client, output: Output) -> Result<ExitCode> {
    let me = c.whoami().await?;
    if output == Output::Json {
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
    Ok(ExitCode::SUCCESS)
}

/// `device approve|deny CODE`: answers the device code another CLI showed.
pub async fn decide_device(c: &Client, cmd: &DeviceCommand) -> Result<ExitCode> {
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
