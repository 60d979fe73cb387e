//! CLI for alerts: the channels they are delivered to (email, webhook, SMS gateway), a test
//! message per channel, and the delivery state of every alert with its attempts.
//!
//! Secrets stay off the command line: a webhook's signing key is read from standard input
//! (hidden on a terminal), and SMTP passwords and gateway credentials are named environment
//! variables (`--password-env VAR`, `--header 'Authorization: env:VAR'`) that the server reads
//! at delivery. The server validates every channel; the CLI only shapes the request, so what it
//! refuses (an http URL off loopback, an SMS template without `{message}`) is the server's
//! one-line answer, and nothing is added.
//!
//! Alert rules: the built-in ones are listed (and cannot be removed); custom ones count N
//! events of one audit action for a target (or actor) within a window. The server checks
//! every field (window at most 7 days, count 1 to 10000) and its answer is the message.

mod channels;
mod deliveries;
mod rules;
mod severity;

use anyhow::{Context, Result};
use clap::Subcommand;
use portcullis_client::Client;

use crate::output::{Output, print_json};
use channels::{ChannelsCommand, destination, print_channels, request, test_messages, wait_for};
use deliveries::{StateArg, print_alert, print_alerts, state_str};
use rules::{RulesCommand, print_rules, rule_request};

#[derive(Subcommand)]
pub enum AlertsCommand {
    /// Where alerts go: email, webhook or SMS gateway channels.
    #[command(subcommand)]
    Channels(ChannelsCommand),
    /// Alerts and notifications with their delivery state, newest first. A summary (the
    /// alerts of one rule and target after the first within the aggregation window) shows as
    /// `TOPIC (+N)` and is due when its window closes.
    List {
        #[arg(long, value_enum)]
        state: Option<StateArg>,
    },
    /// One alert with every delivery attempt.
    Show { id: String },
    /// Put a dead-lettered alert back in the queue with a fresh budget of attempts.
    Retry { id: String },
    /// What raises an alert: the built-in rules and custom ones.
    #[command(subcommand)]
    Rules(RulesCommand),
}

pub async fn run(c: &Client, output: Output, cmd: &AlertsCommand) -> Result<()> {
    match cmd {
        AlertsCommand::Channels(ChannelsCommand::Add(a)) => {
            let ch = c
                .create_alert_channel(&request(a)?)
                .await
                .with_context(|| format!("cannot add alert channel {}", a.name))?;
            if output == Output::Json {
                print_json(&ch)?;
            } else {
                println!(
                    "added {} channel {} (min severity {}{}): {}",
                    ch.kind,
                    ch.name,
                    ch.min_severity,
                    if ch.signed { ", signed" } else { "" },
                    destination(&ch)
                );
            }
        }
        AlertsCommand::Channels(ChannelsCommand::List) => {
            print_channels(output, &c.alert_channels().await?)?
        }
        AlertsCommand::Channels(ChannelsCommand::Remove { name }) => {
            c.remove_alert_channel(name).await?;
            println!("removed alert channel {name}");
        }
        AlertsCommand::Channels(ChannelsCommand::Test { name, wait }) => {
            let first = c.test_alert_channel(name).await?;
            let msgs = test_messages(c, name, first).await;
            match wait {
                Some(w) => wait_for(c, output, name, msgs, *w).await?,
                None if output == Output::Json => print_json(&msgs)?,
                None => {
                    for m in &msgs {
                        println!(
                            "queued test message {} on {name} to {}; follow it with `portcullis alerts show {}`",
                            m.id, m.recipient, m.id
                        );
                    }
                }
            }
        }
        AlertsCommand::List { state } => {
            print_alerts(output, &c.alerts(state.map(state_str)).await?)?
        }
        AlertsCommand::Show { id } => print_alert(output, &c.alert(id).await?)?,
        AlertsCommand::Retry { id } => {
            let a = c.retry_alert(id).await?;
            if output == Output::Json {
                print_json(&a)?;
            } else {
                println!(
                    "requeued {} ({}) with a fresh budget of attempts",
                    a.id, a.state
                );
            }
        }
        AlertsCommand::Rules(RulesCommand::List) => print_rules(output, &c.alert_rules().await?)?,
        AlertsCommand::Rules(RulesCommand::Add(a)) => {
            let r = c
                .create_alert_rule(&rule_request(a))
                .await
                .with_context(|| format!("cannot add alert rule {}", a.name))?;
            if output == Output::Json {
                print_json(&r)?;
            } else {
                println!(
                    "added alert rule {} ({}): {}",
                    r.name, r.severity, r.description
                );
            }
        }
        AlertsCommand::Rules(RulesCommand::Remove { name }) => {
            c.remove_alert_rule(name)
                .await
                .with_context(|| format!("cannot remove alert rule {name}"))?;
            println!("removed alert rule {name}");
        }
    }
    Ok(())
}
