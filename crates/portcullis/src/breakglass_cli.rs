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

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use portcullis_client::Client;
use portcullis_core::api::{
    BreakGlassFailedRecovery, BreakGlassView, CreateBreakGlassRequest, PasswordSignInRequest,
    RotateBreakGlassRequest, TenantReadiness,
};
use portcullis_core::breakglass::{self, CombineError, Custodians, Share, ShareError, Threshold};
use portcullis_core::principal::PrincipalName;
use secrecy::SecretString;
use zeroize::{Zeroize, Zeroizing};

use crate::login::{self, ask_secret};
use crate::output::{Output, print_json, table};

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

#[derive(Args)]
pub struct SplitArgs {
    /// Account name.
    pub name: String,
    /// Custodians, comma-separated, in share order.
    #[arg(long, value_delimiter = ',')]
    pub custodians: Vec<String>,
    /// How many custodians must come together.
    #[arg(long)]
    pub threshold: Option<usize>,
    /// Allow a threshold of 1 with several custodians (each alone can use the account).
    #[arg(long)]
    pub force: bool,
    /// Write one file per custodian (ACCOUNT-CUSTODIAN.share, mode 0600) instead of printing.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub split: SplitArgs,
    #[arg(long)]
    pub display_name: Option<String>,
    /// A FIDO2 security key instead of a split password.
    #[arg(long, conflicts_with_all = ["custodians", "threshold", "force", "out"])]
    pub fido2: bool,
    /// Who holds the security key (with --fido2).
    #[arg(long, requires = "fido2")]
    pub key_holder: Option<String>,
    /// Who holds its PIN (with --fido2).
    #[arg(long, requires = "fido2")]
    pub pin_holder: Option<String>,
}

#[derive(Args)]
pub struct SharesArgs {
    /// Account name.
    pub account: String,
    /// Share files (one share each); without them, each custodian types a share (hidden).
    #[arg(long, num_args = 1..)]
    pub shares: Vec<PathBuf>,
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

/// Local checks of a split (the server checks again, and against the directory).
fn plan(a: &SplitArgs) -> Result<(PrincipalName, Custodians, Threshold)> {
    let name = PrincipalName::parse("name", &a.name)?;
    let custodians = Custodians::parse(a.custodians.iter())?;
    let t = a
        .threshold
        .context("--threshold is required: how many custodians must come together")?;
    let threshold = Threshold::new(t, &custodians, a.force)?;
    Ok((name, custodians, threshold))
}

/// A fresh password for `name` that passes the password policy (a random draw can, rarely,
/// contain the account name).
fn generate(name: &PrincipalName) -> Zeroizing<String> {
    loop {
        let pw = breakglass::generate_password(&mut rand::rngs::OsRng);
        if portcullis_core::password::check(&pw, name.as_str(), None, true).is_ok() {
            return pw;
        }
    }
}

/// Where each share goes: files (created now, before the server is asked) or the terminal.
struct Delivery {
    files: Vec<PathBuf>,
}

impl Delivery {
    /// Writes the shares to `dir` (0700 if created; each file 0600, never overwriting).
    fn write(dir: &Path, name: &PrincipalName, shares: &[Share]) -> Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut d = Self { files: Vec::new() };
        for s in shares {
            let path = dir.join(format!("{name}-{}.share", s.custodian()));
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path);
            let mut file = match file {
                Ok(f) => f,
                Err(e) => {
                    d.remove();
                    return Err(e).with_context(|| {
                        format!("cannot create {} (it must not exist yet)", path.display())
                    });
                }
            };
            d.files.push(path.clone());
            let text = s.encode();
            if let Err(e) = file
                .write_all(text.as_bytes())
                .and_then(|()| file.write_all(b"\n"))
                .and_then(|()| file.sync_all())
            {
                d.remove();
                return Err(e).with_context(|| format!("cannot write {}", path.display()));
            }
        }
        Ok(d)
    }

    fn remove(&self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// A fresh split: the account, its custody, the password (wiped on drop), the shares and
/// the files they were written to, if any.
struct Split {
    name: PrincipalName,
    custodians: Custodians,
    threshold: Threshold,
    password: Zeroizing<String>,
    shares: Vec<Share>,
    files: Option<Delivery>,
}

/// Splits a fresh password for `a`; writes the share files first when asked.
fn split_fresh(a: &SplitArgs) -> Result<Split> {
    let (name, custodians, threshold) = plan(a)?;
    let password = generate(&name);
    let (_, shares) = breakglass::split(
        &name,
        &password,
        &custodians,
        threshold,
        &mut rand::rngs::OsRng,
    )?;
    let files = match &a.out {
        Some(dir) => Some(Delivery::write(dir, &name, &shares)?),
        None => None,
    };
    Ok(Split {
        name,
        custodians,
        threshold,
        password,
        shares,
        files,
    })
}

/// The server's answer; on an error the share files written for it are removed (they would
/// hold shares of a password the server never registered).
fn kept_or_removed<T>(
    files: Option<&Delivery>,
    answer: Result<T, portcullis_client::ClientError>,
) -> Result<T> {
    answer.map_err(|e| {
        if let Some(d) = files {
            d.remove();
        }
        e.into()
    })
}

/// Shows where the shares went (or the shares themselves, once). With `--output json` it is
/// one JSON document: the account, and `files` or `shares` (custodian → share), so a script
/// gets valid JSON and nothing else on standard output.
fn hand_out<T: serde::Serialize>(
    output: Output,
    account: &T,
    name: &PrincipalName,
    shares: &[Share],
    files: Option<&Delivery>,
) -> Result<()> {
    if output == Output::Json {
        let mut doc = serde_json::json!({ "account": account });
        match files {
            Some(d) => doc["files"] = serde_json::json!(d.files),
            None => {
                let map: serde_json::Map<String, serde_json::Value> = shares
                    .iter()
                    .map(|s| (s.custodian().to_string(), s.encode().as_str().into()))
                    .collect();
                doc["shares"] = map.into();
            }
        }
        return print_json(&doc);
    }
    match files {
        Some(d) => {
            for f in &d.files {
                println!("wrote {}", f.display());
            }
            println!("give each file to its custodian only, and delete it here once handed over");
        }
        None => {
            println!(
                "shares of {name}: each is shown once; give each to its custodian only, and clear this terminal"
            );
            for s in shares {
                println!("{}: {}", s.custodian(), s.encode().as_str());
            }
        }
    }
    Ok(())
}

async fn create_password(client: &Client, output: Output, a: &CreateArgs) -> Result<ExitCode> {
    let Split {
        name,
        custodians,
        threshold,
        password,
        shares,
        files,
    } = split_fresh(&a.split)?;
    let mut req = CreateBreakGlassRequest {
        name: name.to_string(),
        display_name: a.display_name.clone(),
        credential: "password".into(),
        password: Some(password.to_string()),
        custodians: custodians
            .as_slice()
            .iter()
            .map(|c| c.to_string())
            .collect(),
        threshold: Some(threshold.get() as u32),
        force: a.split.force,
        key_holder: None,
        pin_holder: None,
    };
    drop(password);
    let created = client.create_breakglass(&req).await;
    if let Some(p) = req.password.as_mut() {
        p.zeroize();
    }
    let created = kept_or_removed(files.as_ref(), created)?;
    if output == Output::Table {
        println!(
            "created break-glass account {name}: {} of {} custodians ({}) rebuild its password; it holds Global Administrator permanently",
            threshold.get(),
            custodians.len(),
            created.account.custodians.join(", ")
        );
        print_tenant(&created.tenant);
    }
    hand_out(output, &created.account, &name, &shares, files.as_ref())?;
    Ok(ExitCode::SUCCESS)
}

async fn create_fido2(client: &Client, output: Output, a: &CreateArgs) -> Result<ExitCode> {
    let (Some(key), Some(pin)) = (&a.key_holder, &a.pin_holder) else {
        bail!("--fido2 needs --key-holder and --pin-holder (two different people)");
    };
    let created = client
        .create_breakglass(&CreateBreakGlassRequest {
            name: a.split.name.clone(),
            display_name: a.display_name.clone(),
            credential: "fido2".into(),
            password: None,
            custodians: vec![],
            threshold: None,
            force: false,
            key_holder: Some(key.clone()),
            pin_holder: Some(pin.clone()),
        })
        .await?;
    let token = created.enrolment_token.clone().unwrap_or_default();
    match output {
        Output::Json => print_json(&serde_json::json!({
            "account": created.account, "enrolment_token": token,
        }))?,
        Output::Table => {
            println!(
                "created break-glass account {} (FIDO2: key held by {key}, PIN by {pin}); it holds Global Administrator permanently",
                created.account.name
            );
            println!(
                "register the security key (with its PIN set) within 15 minutes, using this one-time enrolment token (a registration-only session) as the bearer credential of POST /api/v1/me/mfa/webauthn: {token}"
            );
            print_tenant(&created.tenant);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn rotate(client: &Client, output: Output, a: &SplitArgs) -> Result<ExitCode> {
    let Split {
        name,
        custodians,
        threshold,
        password,
        shares,
        files,
    } = split_fresh(a)?;
    let mut req = RotateBreakGlassRequest {
        password: password.to_string(),
        custodians: custodians
            .as_slice()
            .iter()
            .map(|c| c.to_string())
            .collect(),
        threshold: threshold.get() as u32,
        force: a.force,
    };
    drop(password);
    let done = client.rotate_breakglass(name.as_str(), &req).await;
    req.password.zeroize();
    let view = kept_or_removed(files.as_ref(), done)?;
    if output == Output::Table {
        println!(
            "re-split {name}: {} of {} custodians; the old shares no longer work and its sessions ended",
            threshold.get(),
            custodians.len()
        );
    }
    hand_out(output, &view, &name, &shares, files.as_ref())?;
    Ok(ExitCode::SUCCESS)
}

/// Reads the shares (files, or typed by each custodian), rebuilds the password, signs in,
/// wipes it. A failed rebuild is reported to the server (it alerts) before the error.
async fn recover_and_sign_in(
    client: &Client,
    a: &SharesArgs,
) -> Result<(PrincipalName, portcullis_core::api::SessionIssued)> {
    let name = PrincipalName::parse("account", &a.account)?;
    let shares = match read_shares(a) {
        Ok(s) => s,
        Err((reason, e)) => {
            report(client, &name, reason).await;
            return Err(e);
        }
    };
    let password = match breakglass::combine(&name, &shares) {
        Ok(p) => p,
        Err(e) => {
            let reason = match e {
                CombineError::OtherAccount { .. } => "foreign_share",
                CombineError::WrongShares | CombineError::NotUtf8 => "wrong_shares",
                CombineError::NotEnough { .. } | CombineError::NoShares => "too_few_shares",
                CombineError::DuplicateCustodian(_)
                | CombineError::DuplicateIndex(_)
                | CombineError::DifferentSplits => "inconsistent_shares",
            };
            report(client, &name, reason).await;
            bail!("cannot rebuild the password of {name}: {e}");
        }
    };
    let mut req = PasswordSignInRequest {
        username: name.to_string(),
        password: password.to_string(),
    };
    drop(password);
    let r = client.signin_password(&req).await;
    req.password.zeroize();
    let r = r.with_context(|| format!("signing in as {name}"))?;
    let session = r
        .session
        .context("the server did not open a session for the break-glass account")?;
    Ok((name, session))
}

/// Tells the server a recovery failed; a transport error is only mentioned (the local error
/// is what the person must see).
async fn report(client: &Client, name: &PrincipalName, reason: &str) {
    let req = BreakGlassFailedRecovery {
        reason: reason.to_owned(),
    };
    if let Err(e) = client.report_breakglass_failure(name.as_str(), &req).await {
        eprintln!("warning: could not report the failed attempt to the server: {e}");
    }
}

type ShareFailure = (&'static str, anyhow::Error);

fn parse_share(text: &str, from: &str) -> Result<Share, ShareFailure> {
    Share::parse(text.trim()).map_err(|e| {
        let reason = match e {
            ShareError::NotAShare
            | ShareError::Corrupted
            | ShareError::Malformed(_)
            | ShareError::Name { .. } => "corrupted_share",
        };
        (reason, anyhow::anyhow!("{from}: {e}"))
    })
}

fn read_shares(a: &SharesArgs) -> Result<Vec<Share>, ShareFailure> {
    let mut shares = Vec::new();
    if !a.shares.is_empty() {
        for path in &a.shares {
            let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                (
                    "too_few_shares",
                    anyhow::anyhow!("cannot read {}: {e}", path.display()),
                )
            })?);
            shares.push(parse_share(&text, &path.display().to_string())?);
        }
        return Ok(shares);
    }
    // Interactive: each custodian types their share; the first tells how many are needed.
    loop {
        let needed = shares.first().map(|s: &Share| usize::from(s.threshold()));
        if needed.is_some_and(|n| shares.len() >= n) {
            return Ok(shares);
        }
        let prompt = match needed {
            Some(n) => format!("share {} of {n} (hidden): ", shares.len() + 1),
            None => "first custodian's share (hidden): ".to_owned(),
        };
        let text = Zeroizing::new(ask_secret(&prompt, "share").map_err(|e| ("too_few_shares", e))?);
        if text.trim().is_empty() {
            return Ok(shares);
        }
        shares.push(parse_share(&text, "typed share")?);
    }
}

fn print_tenant(t: &TenantReadiness) {
    if let Some(n) = &t.notice {
        println!("{n}");
    } else {
        println!(
            "the tenant has {} usable break-glass accounts",
            t.breakglass_accounts
        );
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
