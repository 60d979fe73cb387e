//! Policy files: `import` (JSON or YAML, parsed here first, applied all or nothing) and
//! `export` (every policy, in the form `import` reads back unchanged), and their format.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use clap::ValueEnum;
use portcullis_client::Client;
use portcullis_core::api::{CaImportRequest, CaImportResult};
use portcullis_core::conditional_access::{PolicyFormat, export_policies, parse_policy_specs};

use super::policies::policy_of;
use crate::output::{Output, print_json};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Json,
    Yaml,
}

impl From<FormatArg> for PolicyFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Json => PolicyFormat::Json,
            FormatArg::Yaml => PolicyFormat::Yaml,
        }
    }
}

/// Errors of local parsers may span lines (YAML positions); the CLI's error is one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The format of `path` by its extension, if it has a known one.
fn format_of(path: &Path) -> Option<PolicyFormat> {
    path.extension()
        .and_then(|e| e.to_str())
        .and_then(PolicyFormat::from_extension)
}

pub(super) async fn import(c: &Client, output: Output, file: &Path, force: bool) -> Result<()> {
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {shown}"))?;
    let format = format_of(file).unwrap_or_else(|| PolicyFormat::detect(&text));
    let specs = parse_policy_specs(&text, format)
        .map_err(|e| anyhow!("cannot import {shown}: {}", one_line(&e.to_string())))?;
    if specs.is_empty() {
        match output {
            Output::Json => print_json(&CaImportResult {
                created: vec![],
                updated: vec![],
                unchanged: vec![],
            })?,
            Output::Table => println!("{shown} holds no policy: nothing imported"),
        }
        return Ok(());
    }
    let policies = specs
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()?;
    let r = c
        .ca_import(&CaImportRequest { policies, force })
        .await
        .with_context(|| format!("cannot import {shown}"))?;
    match output {
        Output::Json => print_json(&r)?,
        Output::Table => {
            println!(
                "imported {shown}: {} created, {} updated, {} unchanged",
                r.created.len(),
                r.updated.len(),
                r.unchanged.len()
            );
            for (label, names) in [
                ("created", &r.created),
                ("updated", &r.updated),
                ("unchanged", &r.unchanged),
            ] {
                if !names.is_empty() {
                    println!("{label}: {}", names.join(", "));
                }
            }
        }
    }
    Ok(())
}

pub(super) async fn export(
    c: &Client,
    format: Option<FormatArg>,
    out: Option<&Path>,
    force: bool,
) -> Result<()> {
    let format = match (format, out) {
        (Some(f), _) => f.into(),
        (None, Some(p)) => format_of(p).unwrap_or(PolicyFormat::Json),
        (None, None) => PolicyFormat::Json,
    };
    let policies = c
        .ca_policies()
        .await?
        .iter()
        .map(policy_of)
        .collect::<Result<Vec<_>>>()?;
    let text = export_policies(&policies, format)?;
    match out {
        None => print!("{text}"),
        Some(path) => {
            write_file(path, &text, force)?;
            println!(
                "wrote {} policies to {} ({format})",
                policies.len(),
                path.display()
            );
        }
    }
    Ok(())
}

/// Creates `path` (0644) with `text`; an existing file only with `force`.
fn write_file(path: &Path, text: &str, force: bool) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o644);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut f = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow!(
                "{} exists; choose another file or add --force to overwrite it",
                path.display()
            )
        } else {
            anyhow!("cannot create {}: {e}", path.display())
        }
    })?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}
