//! `portcullis contain`: take a user or service account out of everything in one step (and
//! `--undo`: give back the account only).

use anyhow::Result;
use clap::Args;
use portcullis_client::Client;
use portcullis_core::api::{ContainRequest, ContainmentView, ReleaseRequest};

use crate::output::Output;

#[derive(Args)]
pub struct ContainArgs {
    /// The user or service account.
    pub principal: String,
    /// Why (recorded, and sent with the critical alert).
    #[arg(long)]
    pub reason: String,
    /// End the containment instead: the account is enabled again, nothing it held comes back.
    #[arg(long)]
    pub undo: bool,
    /// Contain a break-glass account even if fewer than two usable ones would remain
    /// (recorded as forced).
    #[arg(long, conflicts_with = "undo")]
    pub force: bool,
}

pub async fn contain(c: &Client, output: Output, args: &ContainArgs) -> Result<()> {
    let view = super::credentials::with_fresh_proof(c, || async {
        if args.undo {
            c.release_principal(
                &args.principal,
                &ReleaseRequest {
                    reason: args.reason.clone(),
                },
            )
            .await
        } else {
            c.contain_principal(
                &args.principal,
                &ContainRequest {
                    reason: args.reason.clone(),
                    force: args.force,
                },
            )
            .await
        }
    })
    .await?;
    print(output, &view)
}

fn print(output: Output, v: &ContainmentView) -> Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(v)?),
        Output::Table if v.contained => println!(
            "{} {} contained at {}: cut {} session(s), {} refresh token family(ies), {} client secret(s) and key(s), {} pending and {} active request(s), {} active assignment(s), {} target grant(s), {} SSH certificate(s)",
            v.kind.replace('_', " "),
            v.principal,
            v.at,
            v.sessions,
            v.refresh_tokens,
            v.client_credentials,
            v.pending_requests,
            v.active_requests,
            v.active_assignments,
            v.target_grants,
            v.ssh_certificates
        ),
        Output::Table => println!(
            "{} {} released at {}: the account is enabled again; nothing it held was restored",
            v.kind.replace('_', " "),
            v.principal,
            v.at
        ),
    }
    Ok(())
}
