//! `ca whatif`: how the policies would decide a sign-in (changing nothing), and the decision
//! printed as an outcome line, notes and a row per policy.

use std::net::IpAddr;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use portcullis_client::Client;
use portcullis_core::api::WhatIfRequest;
use portcullis_core::conditional_access::Application;
use serde_json::Value;

use crate::output::{Output, print_json, table};

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

pub(super) async fn whatif(c: &Client, output: Output, a: &WhatIfArgs) -> Result<()> {
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
