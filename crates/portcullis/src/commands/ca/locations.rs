//! Named locations: IPv4 and IPv6 ranges that policies refer to by name (`ca locations add`,
//! `list`), checked here with the server's own rules before anything is sent.

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand};
use portcullis_client::Client;
use portcullis_core::api::{CaLocationRequest, CaLocationView};
use portcullis_core::conditional_access::NamedLocation;

use crate::output::{Output, print_json, table};

#[derive(Subcommand)]
pub enum LocationsCommand {
    /// Create or replace a named location.
    Add(AddLocationArgs),
    /// Named locations, their ranges and the policies that use them.
    List,
    /// Remove a named location (refused while a policy uses it).
    Remove { name: String },
}

#[derive(Args)]
pub struct AddLocationArgs {
    /// Location name (not any, trusted or untrusted).
    name: String,
    /// IPv4 or IPv6 ranges (CIDR, no host bits, no overlaps). Repeat or separate with commas.
    #[arg(
        long = "cidr",
        value_name = "CIDR",
        value_delimiter = ',',
        required = true
    )]
    cidrs: Vec<String>,
    /// Mark the location trusted (policies can then say `trusted` / `untrusted`).
    #[arg(long)]
    trusted: bool,
    /// Apply even if the change would lock you out (audited).
    #[arg(long)]
    force: bool,
}

pub(super) async fn add_location(c: &Client, output: Output, a: &AddLocationArgs) -> Result<()> {
    let cidrs: Vec<String> = a.cidrs.iter().map(|s| s.trim().to_owned()).collect();
    NamedLocation::parse(&a.name, &cidrs, a.trusted).map_err(|e| {
        anyhow!(
            "cannot save named location {}: {}",
            a.name,
            e.problems.join("; ")
        )
    })?;
    let v = c
        .ca_set_location(&CaLocationRequest {
            name: a.name.clone(),
            cidrs,
            trusted: a.trusted,
            force: a.force,
        })
        .await
        .with_context(|| format!("cannot save named location {}", a.name))?;
    match output {
        Output::Json => print_json(&v)?,
        Output::Table => {
            let trust = if v.trusted { "trusted" } else { "not trusted" };
            let mut line = format!(
                "saved named location {} ({trust}): {}",
                v.name,
                v.cidrs.join(", ")
            );
            if !v.used_by.is_empty() {
                line.push_str(&format!("; used by {}", v.used_by.join(", ")));
            }
            println!("{line}");
        }
    }
    Ok(())
}

pub(super) fn print_locations(output: Output, list: &[CaLocationView]) -> Result<()> {
    if output == Output::Json {
        return print_json(&list);
    }
    let rows = list
        .iter()
        .map(|l| {
            vec![
                l.name.clone(),
                if l.trusted { "yes" } else { "no" }.to_owned(),
                l.cidrs.join(", "),
                l.used_by.join(", "),
                l.updated_by.clone(),
                l.updated_at.clone(),
            ]
        })
        .collect();
    table(
        &[
            "name",
            "trusted",
            "cidrs",
            "used by",
            "updated by",
            "updated at",
        ],
        rows,
    );
    Ok(())
}
