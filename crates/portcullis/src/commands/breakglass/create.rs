//! Creating break-glass accounts (a password split among custodians, or a FIDO2 key with
//! separate key and PIN holders) and re-splitting a password account (`rotate`): the split is
//! made here, and its shares are handed out once, to files or the terminal.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use portcullis_client::Client;
use portcullis_core::api::{CreateBreakGlassRequest, RotateBreakGlassRequest, TenantReadiness};
use portcullis_core::breakglass::{self, Custodians, Share, Threshold};
use portcullis_core::principal::PrincipalName;
use zeroize::{Zeroize, Zeroizing};

use crate::output::{Output, print_json};

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

pub(super) async fn create_password(
    client: &Client,
    output: Output,
    a: &CreateArgs,
) -> Result<ExitCode> {
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

pub(super) async fn create_fido2(
    client: &Client,
    output: Output,
    a: &CreateArgs,
) -> Result<ExitCode> {
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

pub(super) async fn rotate(client: &Client, output: Output, a: &SplitArgs) -> Result<ExitCode> {
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
