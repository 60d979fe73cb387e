//! CLI for conditional access: policies (list, show, import, export, enable / disable /
//! report-only, delete), named locations, and "what if" evaluations of a sign-in.
//!
//! Policy files are JSON or YAML — one policy or a list — in the form documented in
//! `portcullis_core::conditional_access`; the format comes from the extension (`.json`,
//! `.yaml`, `.yml`), otherwise from the content.
//!
//! Invariants:
//! - `import` reads and parses the file here first (`parse_policy_specs`), so a syntax error or
//!   an unknown field is one line naming the file, and the server is never contacted. The
//!   policies then go to the server in **one** request: it validates the whole resulting set
//!   (every problem at once, names checked against the directory), runs the lockout guard and
//!   applies everything or nothing. `--force` overrides only the guard's "you would lock
//!   yourself out", and the server audits it.
//! - `export` writes every policy as a list in the file format, normalised through
//!   `Policy::from_spec` exactly as the server stores them, so importing an export changes
//!   nothing (the server reports every policy unchanged). With `--out FILE` the format is
//!   `--format`, else the file's extension, else JSON; the file is created with mode 0644 and an
//!   existing file is never overwritten unless `--force`.
//! - Named locations are checked here with the server's own rules (`NamedLocation::parse`: at
//!   least one CIDR, no host bits, no overlaps, not a reserved name), so a mistake is one clear
//!   line and nothing is sent; the server checks again.
//! - `whatif` changes nothing; `--output json` prints the server's decision as it came.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand, ValueEnum};
use portcullis_client::Client;
use portcullis_core::api::{
    CaImportRequest, CaImportResult, CaLocationRequest, CaLocationView, CaPolicyView,
    CaStateRequest, WhatIfRequest,
};
use portcullis_core::conditional_access::{
    Application, NamedLocation, Policy, PolicyFormat, PolicySpec, SelectionSpec, export_policies,
    parse_policy_specs,
};
use serde_json::Value;

use crate::output::{Output, print_json, table};

#[derive(Subcommand)]
pub enum CaCommand {
    /// Policies with their state, who they are about, their controls and last change.
    List,
    /// One policy in the file format (JSON by default).
    Show {
        name: String,
        #[arg(long, value_enum, default_value_t = FormatArg::Json)]
        format: FormatArg,
    },
    /// Create or replace policies (by name) from a JSON or YAML file, all or nothing.
    Import {
        /// A policy or a list of policies (.json, .yaml or .yml; otherwise detected).
        file: PathBuf,
        /// Apply even if the change would lock you out (audited; a change that leaves no
        /// Global Administrator able to sign in is refused regardless).
        #[arg(long)]
        force: bool,
    },
    /// Every policy, as a list in the file format that `import` reads back unchanged.
    Export {
        /// JSON or YAML (default: the extension of --out, else JSON).
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// Write this file (mode 0644) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Overwrite --out if it exists.
        #[arg(long, requires = "out")]
        force: bool,
    },
    /// Enforce a policy.
    Enable(StateArgs),
    /// Stop evaluating a policy.
    Disable(StateArgs),
    /// Evaluate a policy and report what it would do, without enforcing it.
    #[command(name = "report-only")]
    ReportOnly(StateArgs),
    /// Delete a policy.
    Delete { name: String },
    /// Named locations: IPv4 and IPv6 ranges that policies refer to by name.
    #[command(subcommand)]
    Locations(LocationsCommand),
    /// How the policies would decide a sign-in, with the reason for each policy.
    Whatif(WhatIfArgs),
}

#[derive(Args)]
pub struct StateArgs {
    /// Policy name.
    name: String,
    /// Apply even if the change would lock you out (audited).
    #[arg(long)]
    force: bool,
}

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

#[derive(Args)]
pub struct WhatIfArgs {
    /// The user or service account signing in.
    #[arg(long)]
    user: String,
    /// The client address (IPv4 or IPv6).
    #[arg(long)]
    ip: IpAddr,
    /// api (default), cli or client:CLIENT_ID.
    #[arg(long, value_parser = parse_app)]
    app: Option<String>,
    /// The strength presented (default: the strongest the account has).
    #[arg(long, value_enum)]
    strength: Option<StrengthArg>,
    /// Hours since the account last authenticated (for sign-in frequency; default 0).
    #[arg(long, value_name = "N")]
    hours_since_sign_in: Option<u32>,
    /// The authentication flow (default: the one the application is reached by — the device
    /// flow for cli; device_code without --app means cli).
    #[arg(long, value_enum)]
    flow: Option<FlowArg>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FlowArg {
    /// The device authorization grant (`portcullis login --device` and its refreshes).
    #[value(name = "device_code", alias = "device-code")]
    DeviceCode,
}

impl FlowArg {
    fn as_str(self) -> &'static str {
        match self {
            Self::DeviceCode => "device_code",
        }
    }
}

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

#[derive(Clone, Copy, ValueEnum)]
pub enum StrengthArg {
    Password,
    Mfa,
    #[value(name = "phishing_resistant", alias = "phishing-resistant")]
    PhishingResistant,
}

impl StrengthArg {
    fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Mfa => "mfa",
            Self::PhishingResistant => "phishing_resistant",
        }
    }
}

fn parse_app(s: &str) -> Result<String, String> {
    Application::parse(s).map(|a| a.to_string())
}

pub async fn run(c: &Client, output: Output, cmd: &CaCommand) -> Result<ExitCode> {
    match cmd {
        CaCommand::List => print_policies(output, &c.ca_policies().await?)?,
        CaCommand::Show { name, format } => {
            let view = c.ca_policy(name).await?;
            print!("{}", show_text(&view, (*format).into())?);
        }
        CaCommand::Import { file, force } => import(c, output, file, *force).await?,
        CaCommand::Export { format, out, force } => {
            export(c, *format, out.as_deref(), *force).await?;
        }
        CaCommand::Enable(a) => set_state(c, output, a, "enabled", "enable").await?,
        CaCommand::Disable(a) => set_state(c, output, a, "disabled", "disable").await?,
        CaCommand::ReportOnly(a) => {
            set_state(c, output, a, "report_only", "switch to report-only").await?;
        }
        CaCommand::Delete { name } => {
            c.ca_delete(name)
                .await
                .with_context(|| format!("cannot delete policy {name}"))?;
            println!("deleted policy {name}");
        }
        CaCommand::Locations(LocationsCommand::Add(a)) => add_location(c, output, a).await?,
        CaCommand::Locations(LocationsCommand::List) => {
            print_locations(output, &c.ca_locations().await?)?;
        }
        CaCommand::Locations(LocationsCommand::Remove { name }) => {
            c.ca_remove_location(name)
                .await
                .with_context(|| format!("cannot remove named location {name}"))?;
            println!("removed named location {name}");
        }
        CaCommand::Whatif(a) => whatif(c, output, a).await?,
    }
    Ok(ExitCode::SUCCESS)
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

/// The validated policy a view carries (as the server stores it).
fn policy_of(v: &CaPolicyView) -> Result<Policy> {
    let spec: PolicySpec = serde_json::from_value(v.policy.clone()).map_err(|e| {
        anyhow!(
            "the server sent policy {:?} in a form this CLI does not read: {e}",
            v.name
        )
    })?;
    Policy::from_spec(&spec).map_err(|e| {
        anyhow!(
            "the server sent policy {:?} that this CLI does not accept: {e}",
            v.name
        )
    })
}

fn show_text(v: &CaPolicyView, format: PolicyFormat) -> Result<String> {
    let p = policy_of(v)?;
    match format {
        PolicyFormat::Json => Ok(serde_json::to_string_pretty(&p.to_spec())? + "\n"),
        PolicyFormat::Yaml => {
            let list = export_policies(std::slice::from_ref(&p), PolicyFormat::Yaml)?;
            Ok(single_yaml(&list, &p).unwrap_or(list))
        }
    }
}

/// A one-element YAML list written as the policy itself (`- name: …` → `name: …`); `None`
/// (keep the list, which imports just as well) unless it reads back as the same policy.
fn single_yaml(list: &str, p: &Policy) -> Option<String> {
    let mut out = String::with_capacity(list.len());
    for (i, line) in list.lines().enumerate() {
        let rest = if i == 0 {
            line.strip_prefix("- ")?
        } else if line.is_empty() {
            line
        } else {
            line.strip_prefix("  ")?
        };
        out.push_str(rest);
        out.push('\n');
    }
    let back = parse_policy_specs(&out, PolicyFormat::Yaml).ok()?;
    match back.as_slice() {
        [one] if Policy::from_spec(one).ok()? == *p => Some(out),
        _ => None,
    }
}

async fn import(c: &Client, output: Output, file: &Path, force: bool) -> Result<()> {
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

async fn export(
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

async fn set_state(
    c: &Client,
    output: Output,
    a: &StateArgs,
    state: &str,
    verb: &str,
) -> Result<()> {
    let v = c
        .ca_set_state(
            &a.name,
            &CaStateRequest {
                state: state.to_owned(),
                force: a.force,
            },
        )
        .await
        .with_context(|| format!("cannot {verb} policy {}", a.name))?;
    match output {
        Output::Json => print_json(&v)?,
        Output::Table => println!("policy {} is now {}", v.name, v.state),
    }
    Ok(())
}

async fn add_location(c: &Client, output: Output, a: &AddLocationArgs) -> Result<()> {
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

async fn whatif(c: &Client, output: Output, a: &WhatIfArgs) -> Result<()> {
    let req = WhatIfRequest {
        user: a.user.clone(),
        ip: a.ip.to_string(),
        app: a.app.clone(),
        strength: a.strength.map(|s| s.as_str().to_owned()),
        hours_since_sign_in: a.hours_since_sign_in,
        flow: a.flow.map(|f| f.as_str().to_owned()),
    };
    let d = c
        .ca_whatif(&req)
        .await
        .with_context(|| format!("cannot evaluate a sign-in by {} from {}", a.user, a.ip))?;
    match output {
        Output::Json => print_json(&d)?,
        Output::Table => print_decision(&d),
    }
    Ok(())
}

/// `(by: A, B)` for a list of policy names, empty when there is none.
fn by(policies: &Value) -> String {
    let names: Vec<&str> = policies
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if names.is_empty() {
        String::new()
    } else {
        format!(" (by: {})", names.join(", "))
    }
}

/// The first line of a decision: what happens to the sign-in, and which policies say so.
fn outcome_line(d: &Value) -> String {
    let by = by(&d["policies"]);
    let strength = d["strength"].as_str();
    match d["outcome"].as_str().unwrap_or("unknown") {
        "allow" => "allow".to_owned(),
        "block" => format!("block{by}"),
        "require" => format!(
            "require {}{by}",
            strength.unwrap_or("a stronger authentication")
        ),
        "reauth_required" => {
            let with = strength.map(|s| format!(" with {s}")).unwrap_or_default();
            match d["max_age_hours"].as_u64() {
                Some(h) => {
                    format!("reauthenticate{with}: the last authentication is older than {h} h{by}")
                }
                None => format!("reauthenticate{with}{by}"),
            }
        }
        other => format!("{other}{by}"),
    }
}

/// What one policy does to the sign-in (`result` of an explanation, or a report-only entry).
fn effect_text(r: &Value) -> String {
    match r["effect"].as_str() {
        Some("satisfied") => "satisfied".to_owned(),
        Some("block") => "block".to_owned(),
        Some("require") => format!("require {}", r["strength"].as_str().unwrap_or("more")),
        Some("reauth_required") => match r["max_age_hours"].as_u64() {
            Some(h) => format!("reauthenticate (older than {h} h)"),
            None => "reauthenticate".to_owned(),
        },
        Some(other) => other.to_owned(),
        None => String::new(),
    }
}

fn print_decision(d: &Value) {
    println!("{}", outcome_line(d));
    if let Some(h) = d["sign_in_frequency_hours"].as_u64() {
        println!("sign-in frequency: authenticate again every {h} h");
    }
    if d["break_glass"].as_bool() == Some(true) {
        println!(
            "break-glass: {}",
            d["note"]
                .as_str()
                .unwrap_or("a break-glass account is excluded from every policy")
        );
    } else if let Some(note) = d["note"].as_str() {
        println!("note: {note}");
    }
    for r in d["report_only"].as_array().into_iter().flatten() {
        println!(
            "report-only: {} would {}",
            r["policy"].as_str().unwrap_or("?"),
            match effect_text(r).as_str() {
                "satisfied" => "be satisfied".to_owned(),
                e => e.to_owned(),
            }
        );
    }
    let rows: Vec<Vec<String>> = d["explanation"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            vec![
                e["policy"].as_str().unwrap_or("?").to_owned(),
                e["state"].as_str().unwrap_or("").to_owned(),
                if e["applies"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                }
                .to_owned(),
                e["reason"].as_str().unwrap_or("").to_owned(),
                effect_text(&e["result"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("no policies");
    } else {
        table(&["policy", "state", "applies", "reason", "result"], rows);
    }
}

/// `guests`, `group:ops except user:bob`.
fn selection_text(s: Option<&SelectionSpec>, all: &str) -> String {
    match s {
        None => all.to_owned(),
        Some(s) if s.exclude.is_empty() => s.include.join(", "),
        Some(s) => format!("{} except {}", s.include.join(", "), s.exclude.join(", ")),
    }
}

/// `block`, `require mfa`, `sign-in every 12 h`, or several of them.
fn controls_text(p: &PolicySpec) -> String {
    let mut parts = Vec::new();
    if let Some(g) = &p.grant {
        if g.block == Some(true) {
            parts.push("block".to_owned());
        }
        if let Some(r) = &g.require {
            parts.push(format!("require {r}"));
        }
    }
    if let Some(h) = p.session.as_ref().and_then(|s| s.sign_in_frequency_hours) {
        parts.push(format!("sign-in every {h} h"));
    }
    parts.join(", ")
}

fn print_policies(output: Output, list: &[CaPolicyView]) -> Result<()> {
    if output == Output::Json {
        return print_json(&list);
    }
    let rows = list
        .iter()
        .map(|v| {
            let spec = serde_json::from_value::<PolicySpec>(v.policy.clone()).ok();
            let conditions = spec.as_ref().and_then(|s| s.conditions.as_ref());
            vec![
                v.name.clone(),
                v.state.clone(),
                conditions
                    .map(|c| selection_text(c.principals.as_ref(), "?"))
                    .unwrap_or_else(|| "?".into()),
                conditions
                    .map(|c| selection_text(c.locations.as_ref(), "any"))
                    .unwrap_or_else(|| "?".into()),
                spec.as_ref()
                    .map(controls_text)
                    .unwrap_or_else(|| "?".into()),
                v.updated_by.clone(),
                v.updated_at.clone(),
            ]
        })
        .collect();
    table(
        &[
            "name",
            "state",
            "principals",
            "locations",
            "controls",
            "updated by",
            "updated at",
        ],
        rows,
    );
    for v in list {
        for w in &v.warnings {
            println!("warning: policy {}: {w}", v.name);
        }
    }
    Ok(())
}

fn print_locations(output: Output, list: &[CaLocationView]) -> Result<()> {
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
