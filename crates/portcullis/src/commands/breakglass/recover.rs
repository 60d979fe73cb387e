//! Opening a break-glass account (`signin`, `drill`): the custodians' shares are read (files,
//! or typed hidden), the password rebuilt, used once and wiped; a failed recovery is reported
//! to the server, so it alerts.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use portcullis_client::Client;
use portcullis_core::api::{BreakGlassFailedRecovery, PasswordSignInRequest};
use portcullis_core::breakglass::{self, CombineError, Share, ShareError};
use portcullis_core::principal::PrincipalName;
use zeroize::{Zeroize, Zeroizing};

use crate::login::ask_secret;

#[derive(Args)]
pub struct SharesArgs {
    /// Account name.
    pub account: String,
    /// Share files (one share each); without them, each custodian types a share (hidden).
    #[arg(long, num_args = 1..)]
    pub shares: Vec<PathBuf>,
}

/// Reads the shares (files, or typed by each custodian), rebuilds the password, signs in,
/// wipes it. A failed rebuild is reported to the server (it alerts) before the error.
pub(super) async fn recover_and_sign_in(
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
