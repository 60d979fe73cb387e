//! Conditional-access policies as the server holds them: `list` (a row each), `show` (the file
//! format), and `enable` / `disable` / `report-only`.

use anyhow::{Context, Result, anyhow};
use clap::Args;
use portcullis_client::Client;
use portcullis_core::api::{CaPolicyView, CaStateRequest};
use portcullis_core::conditional_access::{
    Policy, PolicyFormat, PolicySpec, SelectionSpec, export_policies, parse_policy_specs,
};

use crate::output::{Output, print_json, table};

#[derive(Args)]
pub struct StateArgs {
    /// Policy name.
    name: String,
    /// Apply even if the change would lock you out (audited).
    #[arg(long)]
    force: bool,
}

/// The validated policy a view carries (as the server stores it).
pub(super) fn policy_of(v: &CaPolicyView) -> Result<Policy> {
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

pub(super) fn show_text(v: &CaPolicyView, format: PolicyFormat) -> Result<String> {
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

pub(super) async fn set_state(
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

pub(super) fn print_policies(output: Output, list: &[CaPolicyView]) -> Result<()> {
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
