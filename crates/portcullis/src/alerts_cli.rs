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

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use portcullis_client::Client;
use portcullis_core::api::{
    AlertChannelView, AlertRuleView, AlertView, CreateAlertChannelRequest, CreateAlertRuleRequest,
};

use crate::login::ask_secret;
use crate::output::{Output, print_json, table};

/// How often `channels test --wait` looks at the test message.
const POLL: Duration = Duration::from_millis(500);

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
    name: String,
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

#[derive(Subcommand)]
pub enum ChannelsCommand {
    /// Add a channel. Adding and removing channels is itself alerted on.
    Add(Box<AddChannelArgs>),
    /// All channels (no secrets; `signed` says whether a webhook has a signing key).
    List,
    /// Remove a channel; its undelivered messages are dead-lettered.
    Remove { name: String },
    /// Send a test message through a channel (one per SMS recipient).
    Test {
        name: String,
        /// Wait up to this many seconds for delivery; fail unless every test message was
        /// delivered, with the last error.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<u64>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    Email,
    Webhook,
    Sms,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SeverityArg {
    Info,
    Warning,
    Critical,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ShapeArg {
    /// The alert and its event as JSON.
    Generic,
    /// `{"text": …}` (Slack, Teams incoming webhooks).
    Slack,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum StateArg {
    Pending,
    Delivered,
    Dead,
    /// SMS messages over the channel's hourly cap (`sms_max_per_hour`): not sent.
    Suppressed,
}

#[derive(Args)]
pub struct AddChannelArgs {
    /// A unique channel name.
    name: String,
    #[arg(long, value_enum)]
    kind: KindArg,
    /// The least severity delivered (default info). Critical alerts reach every channel.
    #[arg(long, value_enum)]
    min_severity: Option<SeverityArg>,
    /// email: `smtp://HOST:PORT` (plain, local relay), `smtp://HOST:PORT?tls=required`
    /// (STARTTLS) or `smtps://HOST:PORT`; no credentials in it.
    #[arg(long, value_name = "URL")]
    smtp_url: Option<String>,
    /// email: the SMTP user (with --password-env).
    #[arg(long, value_name = "USER", requires = "password_env")]
    smtp_username: Option<String>,
    /// email: the environment variable of the server that holds the SMTP password.
    #[arg(long, value_name = "VAR", requires = "smtp_username")]
    password_env: Option<String>,
    /// email: the sender address.
    #[arg(long, value_name = "ADDR")]
    from: Option<String>,
    /// email: addresses; sms: E.164 numbers (+…). Repeat or separate with commas.
    #[arg(long, value_name = "TO", value_delimiter = ',')]
    to: Vec<String>,
    /// email: also carry notifications to people (requests to approvers, decisions to
    /// requesters), sent to the addresses on their accounts.
    #[arg(long)]
    notifications: bool,
    /// webhook, sms: https, or http on a loopback address.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// webhook: the body's shape (default generic).
    #[arg(long, value_enum)]
    shape: Option<ShapeArg>,
    /// webhook: read a signing key (16+ characters) for `X-Portcullis-Signature` from
    /// standard input, one line.
    #[arg(long)]
    secret_stdin: bool,
    /// sms: POST (default), PUT or GET.
    #[arg(long)]
    method: Option<String>,
    /// sms: a request header `NAME: VALUE`; a value `env:VAR` is read from the server's
    /// environment at delivery (required for Authorization). Repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// sms: the body, with `{message}` and optionally `{to}` (escaped for the Content-Type).
    #[arg(long)]
    template: Option<String>,
}

fn headers(raw: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for h in raw {
        let Some((name, value)) = h.split_once(':') else {
            bail!("--header {h:?}: write it as 'Name: value'");
        };
        let name = name.trim();
        if name.is_empty() {
            bail!("--header {h:?}: the header has no name");
        }
        if out
            .insert(name.to_owned(), value.trim().to_owned())
            .is_some()
        {
            bail!("--header {name} is given twice");
        }
    }
    Ok(out)
}

fn request(a: &AddChannelArgs) -> Result<CreateAlertChannelRequest> {
    let secret = if a.secret_stdin {
        if a.kind != KindArg::Webhook {
            bail!("--secret-stdin is for webhook channels");
        }
        let s = ask_secret("Signing secret: ", "signing secret")?;
        let s = s.trim();
        if s.is_empty() {
            bail!("the signing secret on standard input is empty");
        }
        Some(s.to_owned())
    } else {
        None
    };
    Ok(CreateAlertChannelRequest {
        name: a.name.clone(),
        kind: kind_str(a.kind).to_owned(),
        min_severity: a.min_severity.map(|s| severity_str(s).to_owned()),
        smtp_url: a.smtp_url.clone(),
        smtp_username: a.smtp_username.clone(),
        password_env: a.password_env.clone(),
        from: a.from.clone(),
        to: a.to.iter().map(|t| t.trim().to_owned()).collect(),
        notifications: a.notifications,
        url: a.url.clone(),
        shape: a.shape.map(|s| {
            match s {
                ShapeArg::Generic => "generic",
                ShapeArg::Slack => "slack",
            }
            .to_owned()
        }),
        secret,
        method: a.method.clone(),
        headers: headers(&a.headers)?,
        template: a.template.clone(),
    })
}

fn severity_str(s: SeverityArg) -> &'static str {
    match s {
        SeverityArg::Info => "info",
        SeverityArg::Warning => "warning",
        SeverityArg::Critical => "critical",
    }
}

fn rule_request(a: &AddRuleArgs) -> CreateAlertRuleRequest {
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

fn print_rules(output: Output, list: &[AlertRuleView]) -> Result<()> {
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

fn kind_str(k: KindArg) -> &'static str {
    match k {
        KindArg::Email => "email",
        KindArg::Webhook => "webhook",
        KindArg::Sms => "sms",
    }
}

fn state_str(s: StateArg) -> &'static str {
    match s {
        StateArg::Pending => "pending",
        StateArg::Delivered => "delivered",
        StateArg::Dead => "dead",
        StateArg::Suppressed => "suppressed",
    }
}

/// Where a channel delivers, in one cell.
fn destination(c: &AlertChannelView) -> String {
    let s = |k: &str| c.config.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let to = || {
        c.config
            .get("to")
            .and_then(|t| t.as_array())
            .map(|t| {
                t.iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    match c.kind.as_str() {
        "email" => {
            let notes = c.config.get("notifications").and_then(|n| n.as_bool());
            let notes = if notes == Some(true) {
                " (and notifications)"
            } else {
                ""
            };
            format!("{} via {}{notes}", to(), s("smtp_url"))
        }
        "webhook" => format!("{} ({})", s("url"), s("shape")),
        "sms" => format!("{} via {} {}", to(), s("method"), s("url")),
        _ => c.config.to_string(),
    }
}

fn print_channels(output: Output, list: &[AlertChannelView]) -> Result<()> {
    if output == Output::Json {
        return print_json(&list);
    }
    let rows = list
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.kind.clone(),
                c.min_severity.clone(),
                destination(c),
                c.signed.to_string(),
                c.created_at.clone(),
                c.created_by.clone(),
            ]
        })
        .collect();
    table(
        &[
            "name",
            "kind",
            "min severity",
            "destination",
            "signed",
            "created",
            "by",
        ],
        rows,
    );
    Ok(())
}

fn print_alerts(output: Output, list: &[AlertView]) -> Result<()> {
    if output == Output::Json {
        return print_json(&list);
    }
    let rows = list
        .iter()
        .map(|a| {
            vec![
                a.id.clone(),
                a.created_at.clone(),
                a.severity.clone().unwrap_or_default(),
                topic_cell(a),
                a.channel.clone().unwrap_or_default(),
                a.recipient.clone(),
                a.state.clone(),
                a.attempts.to_string(),
                a.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "id",
            "created",
            "severity",
            "topic",
            "channel",
            "recipient",
            "state",
            "attempts",
            "last error",
        ],
        rows,
    );
    Ok(())
}

/// The topic, and for a summary how many alerts it stands for (`breakglass.activity (+37)`).
fn topic_cell(a: &AlertView) -> String {
    match &a.summary {
        Some(s) => format!("{} (+{})", a.topic, s.count),
        None => a.topic.clone(),
    }
}

fn print_alert(output: Output, a: &AlertView) -> Result<()> {
    if output == Output::Json {
        return print_json(a);
    }
    println!("id: {}", a.id);
    println!("kind: {}", a.kind);
    println!("topic: {}", a.topic);
    if let Some(s) = &a.severity {
        println!("severity: {s}");
    }
    if let Some(c) = &a.channel {
        println!("channel: {c}");
    }
    println!("recipient: {}", a.recipient);
    println!("state: {}", a.state);
    println!("attempts: {}", a.attempts);
    println!("created: {}", a.created_at);
    match &a.delivered_at {
        Some(d) => println!("delivered: {d}"),
        None if a.state == "pending" => println!("next attempt: {}", a.next_attempt_at),
        None => {}
    }
    if let Some(e) = &a.last_error {
        println!("last error: {e}");
    }
    println!("text: {}", a.text);
    if let Some(s) = &a.summary {
        let more = if s.more_addresses { " (and more)" } else { "" };
        println!(
            "summary: {} more alerts for {} between {} and {}",
            s.count, s.key, s.window_start, s.window_end
        );
        println!("addresses: {}{more}", s.addresses.join(", "));
    }
    if !a.history.is_empty() {
        let rows = a
            .history
            .iter()
            .map(|h| {
                vec![
                    h.attempt.to_string(),
                    h.started_at.clone(),
                    h.finished_at.clone(),
                    h.worker.clone(),
                    h.outcome.clone(),
                    h.detail.clone().unwrap_or_default(),
                ]
            })
            .collect();
        table(
            &[
                "attempt", "started", "finished", "worker", "outcome", "detail",
            ],
            rows,
        );
    }
    Ok(())
}

/// The messages one `test` queued: the first comes back from the server; an SMS channel with
/// several recipients queued one more per recipient in the same write (same channel, topic and
/// time). Without `alerts.read` only the first is known.
async fn test_messages(c: &Client, name: &str, first: AlertView) -> Vec<AlertView> {
    let mut out = vec![first];
    if let Ok(all) = c.alerts(None).await {
        let f = &out[0];
        let siblings: Vec<AlertView> = all
            .into_iter()
            .filter(|a| {
                a.id != f.id
                    && a.topic == "test"
                    && a.channel.as_deref() == Some(name)
                    && a.created_at == f.created_at
            })
            .collect();
        out.extend(siblings);
    }
    out
}

/// Polls the test messages until none is pending or `wait` has passed; fails unless all were
/// delivered.
async fn wait_for(
    c: &Client,
    output: Output,
    name: &str,
    mut msgs: Vec<AlertView>,
    wait: u64,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        for m in msgs.iter_mut().filter(|m| m.state == "pending") {
            *m = c
                .alert(&m.id)
                .await
                .with_context(|| format!("cannot follow test message {}", m.id))?;
        }
        if msgs.iter().all(|m| m.state != "pending") || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
    if output == Output::Json {
        print_json(&msgs)?;
    }
    let failed: Vec<&AlertView> = msgs.iter().filter(|m| m.state != "delivered").collect();
    if failed.is_empty() {
        if output == Output::Table {
            for m in &msgs {
                println!(
                    "delivered test message {} on {name} to {} (attempt {})",
                    m.id, m.recipient, m.attempts
                );
            }
        }
        return Ok(());
    }
    let why: Vec<String> = failed
        .iter()
        .map(|m| {
            let state = if m.state == "pending" {
                format!("still pending after {wait}s")
            } else {
                m.state.clone()
            };
            format!(
                "{} to {}: {state}, {} attempt(s), last error: {}",
                m.id,
                m.recipient,
                m.attempts,
                m.last_error.as_deref().unwrap_or("none")
            )
        })
        .collect();
    bail!(
        "the test message on {name} was not delivered: {}",
        why.join("; ")
    )
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
