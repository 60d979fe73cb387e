//! Alert channels (email, webhook, SMS gateway): `channels add` (shaping the request the
//! server validates), `list` with where each delivers, and `test` with `--wait`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use portcullis_client::Client;
use portcullis_core::api::{AlertChannelView, AlertView, CreateAlertChannelRequest};

use super::severity::{SeverityArg, severity_str};
use crate::login::ask_secret;
use crate::output::{Output, print_json, table};

/// How often `channels test --wait` looks at the test message.
const POLL: Duration = Duration::from_millis(500);

#[derive(Subcommand)]
pub enum ChannelsCommand {
    /// Add a channel. Adding and removing channels is itself alerted on.
    Add(Box<AddChannelArgs>),
    /// All channels (no secrets; `signed` says whether a webhook has a signing key).
    List,
    /// Remove a channel: recorded as a change request (every channel receives critical alerts),
    /// applied once a second top-tier person approves it or, alone, after the cooling-off; its
    /// undelivered messages are then dead-lettered.
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
pub enum ShapeArg {
    /// The alert and its event as JSON.
    Generic,
    /// `{"text": …}` (Slack, Teams incoming webhooks).
    Slack,
}

#[derive(Args)]
pub struct AddChannelArgs {
    /// A unique channel name.
    pub(super) name: String,
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

pub(super) fn request(a: &AddChannelArgs) -> Result<CreateAlertChannelRequest> {
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

fn kind_str(k: KindArg) -> &'static str {
    match k {
        KindArg::Email => "email",
        KindArg::Webhook => "webhook",
        KindArg::Sms => "sms",
    }
}

/// Where a channel delivers, in one cell.
pub(super) fn destination(c: &AlertChannelView) -> String {
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

pub(super) fn print_channels(output: Output, list: &[AlertChannelView]) -> Result<()> {
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

/// The messages one `test` queued: the first comes back from the server; an SMS channel with
/// several recipients queued one more per recipient in the same write (same channel, topic and
/// time). Without `alerts.read` only the first is known.
pub(super) async fn test_messages(c: &Client, name: &str, first: AlertView) -> Vec<AlertView> {
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
pub(super) async fn wait_for(
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
