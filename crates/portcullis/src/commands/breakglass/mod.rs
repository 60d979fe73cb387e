//! CLI for break-glass accounts: create (generate and split the password here), list, sign
//! in and drill with custodians' shares, re-split.
//!
//! The password is generated from the OS CSPRNG and split on this machine
//! (`portcullis_core::breakglass`); the server receives the password once to hash it, and never
//! sees a share. Shares are printed once, or written one file per custodian
//! (`ACCOUNT-CUSTODIAN.share`, mode 0600, never overwriting) *before* the account is created,
//! so a failure to write can never leave an account nobody can open. The rebuilt password
//! lives in `Zeroizing` buffers and is wiped once the sign-in request is sent.
//!
//! A failed recovery (a corrupted, foreign or wrong share, too few shares) is reported to the
//! server before the CLI exits, so it alerts like a failed sign-in: an attempt on a break-glass
//! account never goes unnoticed just because it failed early.

mod create;
mod recover;

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use portcullis_client::Client;
use portcullis_core::api::BreakGlassView;
use secrecy::SecretString;

use crate::login;
use crate::output::{Output, print_json, table};
use create::{CreateArgs, SplitArgs, create_fido2, create_password, rotate};
use recover::{SharesArgs, recover_and_sign_in};

#[derive(Subcommand)]
pub enum BreakGlassCommand {
    /// Create an emergency account: a 100-character random password split among custodians
    /// (any THRESHOLD of them rebuild it), or a FIDO2 key with separate key and PIN holders.
    Create(CreateArgs),
    /// Accounts with custodians, credential type, last drill and last use.
    List,
    /// Rebuild the password from custodians' shares and sign in as the account (alerts).
    Signin(SharesArgs),
    /// A tested sign-in: rebuild, sign in, record the drill, end the session (alerts).
    Drill(SharesArgs),
    /// Re-split a password account: a new password and shares (after a use, or when a
    /// custodian leaves). The old shares stop working.
    Rotate(SplitArgs),
    /// A new enrolment token for a FIDO2 account whose key is not registered yet (the first
    /// token expired); earlier tokens end.
    Enrol { name: String },
}

/// `client` carries the stored login; `anonymous` signs in as the break-glass account.
pub async fn run(
    client: &Client,
    anonymous: &Client,
    server: &str,
    output: Output,
    cmd: &BreakGlassCommand,
) -> Result<ExitCode> {
    match cmd {
        BreakGlassCommand::Create(a) if a.fido2 => create_fido2(client, output, a).await,
        BreakGlassCommand::Create(a) => create_password(client, output, a).await,
        BreakGlassCommand::List => {
            let list = client.breakglass_accounts().await?;
            print_accounts(output, &list)?;
            Ok(ExitCode::SUCCESS)
        }
        BreakGlassCommand::Signin(a) => {
            let (name, session) = recover_and_sign_in(anonymous, a).await?;
            login::save_session_login(server, &session.token, name.as_str())?;
            match output {
                Output::Json => print_json(&serde_json::json!({
                    "user": name.as_str(), "session_id": session.session_id,
                    "strength": session.strength, "expires_at": session.expires_at,
                }))?,
                Output::Table => println!(
                    "signed in as break-glass account {name} (session ends by {}); every action alerts. Re-split it when done: portcullis breakglass rotate {name}",
                    session.expires_at
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        BreakGlassCommand::Drill(a) => {
            let (name, session) = recover_and_sign_in(anonymous, a).await?;
            let own = anonymous.with_token(Some(SecretString::from(session.token.clone())));
            let d = own.record_drill().await?;
            match output {
                Output::Json => print_json(&d)?,
                Output::Table => println!(
                    "drill recorded for {name} at {} (drill {}); the drill session has ended",
                    d.at, d.drill_id
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        BreakGlassCommand::Rotate(a) => rotate(client, output, a).await,
        BreakGlassCommand::Enrol { name } => {
            let e = client.breakglass_enrolment(name).await?;
            match output {
                Output::Json => print_json(&e)?,
                Output::Table => println!(
                    "register the security key of {} (with its PIN set) by {}, using this one-time enrolment token (a registration-only session) as the bearer credential of POST /api/v1/me/mfa/webauthn: {}",
                    e.account, e.expires_at, e.enrolment_token
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_accounts(output: Output, list: &[BreakGlassView]) -> Result<()> {
    if output == Output::Json {
        return print_json(&list);
    }
    let rows = list
        .iter()
        .map(|a| {
            let custody = if a.credential == "fido2" {
                format!(
                    "key: {}, PIN: {}",
                    a.key_holder.clone().unwrap_or_default(),
                    a.pin_holder.clone().unwrap_or_default()
                )
            } else {
                format!("{} of {}", a.threshold, a.custodians.join(", "))
            };
            vec![
                a.name.clone(),
                a.credential.clone(),
                custody,
                if a.usable {
                    "yes".into()
                } else if !a.enabled {
                    "disabled".into()
                } else {
                    "no (credential or role missing)".into()
                },
                match (&a.last_drill, a.drill_overdue) {
                    (Some(d), true) => format!("{d} (overdue)"),
                    (Some(d), false) => d.clone(),
                    (None, true) => "never (overdue)".into(),
                    (None, false) => "never".into(),
                },
                a.last_use.clone().unwrap_or_else(|| "never".into()),
            ]
        })
        .collect();
    table(
        &[
            "account",
            "credential",
            "custodians",
            "usable",
            "last drill",
            "last use",
        ],
        rows,
    );
    Ok(())
}
