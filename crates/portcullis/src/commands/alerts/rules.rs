//! Alert rules: the built-in ones and custom ones (COUNT events of one audit action for a
//! target or actor within a window); list, add, remove.

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use portcullis_core::api::{AlertRuleView, CreateAlertRuleRequest};

use super::severity::{SeverityArg, severity_str};
use crate::output::{Output, print_json, table};

#[derive(Subcommand)]
pub enum RulesCommand {
    /// All rules: built-in (cannot be removed) and custom (`custom:NAME`).
    List,
    /// Add a custom rule: COUNT events of ACTION for one target (or actor) within WINDOW.
    Add(Box<AddRuleArgs>),
    /// Remove a custom rule, by NAME or custom:NAME.
    Remove { name: String },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OutcomeArg {
    Success,
    Failure,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum GroupByArg {
    Target,
    Actor,
}

#[derive(Args)]
pub struct AddRuleArgs {
    /// A unique name: 2 to 64 of a-z, 0-9, - and _ (listed as custom:NAME).
    pub(super) name: String,
    /// The audit action counted, e.g. signin.password.
    #[arg(long)]
    action: String,
    /// Count only successes or only failures (default: both).
    #[arg(long, value_enum)]
    outcome: Option<OutcomeArg>,
    /// Count only events by this actor.
    #[arg(long)]
    actor: Option<String>,
    /// Count only events on this target.
    #[arg(long)]
    target: Option<String>,
    /// Count per target (default) or per actor.
    #[arg(long, value_enum)]
    group_by: Option<GroupByArg>,
    /// How many matching events raise the alert (1 to 10000).
    #[arg(long)]
    count: u32,
    /// Within how long: like 90s, 5m, 8h, 1d (at most 7 days).
    #[arg(long)]
    window: String,
    /// The alert's severity (default warning).
    #[arg(long, value_enum)]
    severity: Option<SeverityArg>,
}

pub(super) fn rule_request(a: &AddRuleArgs) -> CreateAlertRuleRequest {
    CreateAlertRuleRequest {
        name: a.name.clone(),
        action: a.action.clone(),
        outcome: a.outcome.map(|o| {
            match o {
                OutcomeArg::Success => "success",
                OutcomeArg::Failure => "failure",
            }
            .to_owned()
        }),
        actor: a.actor.clone(),
        target: a.target.clone(),
        group_by: a.group_by.map(|g| {
            match g {
                GroupByArg::Target => "target",
                GroupByArg::Actor => "actor",
            }
            .to_owned()
        }),
        count: a.count,
        window: a.window.clone(),
        severity: a.severity.map(|s| severity_str(s).to_owned()),
    }
}

pub(super) fn print_rules(output: Output, list: &[AlertRuleView]) -> Result<()> {
    if output == Output::Json {
        return print_json(&list);
    }
    let rows = list
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.builtin.to_string(),
                r.severity.clone(),
                r.description.clone(),
            ]
        })
        .collect();
    table(&["name", "builtin", "severity", "description"], rows);
    Ok(())
}
