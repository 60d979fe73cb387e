//! Alerts and notifications with their delivery state: `alerts list` (a row each, a summary as
//! `TOPIC (+N)`) and `alerts show` (one alert with every delivery attempt).

use anyhow::Result;
use clap::ValueEnum;
use portcullis_core::api::AlertView;

use crate::output::{Output, print_json, table};

#[derive(Clone, Copy, ValueEnum)]
pub enum StateArg {
    Pending,
    Delivered,
    Dead,
    /// SMS messages over the channel's hourly cap (`sms_max_per_hour`): not sent.
    Suppressed,
}

pub(super) fn state_str(s: StateArg) -> &'static str {
    match s {
        StateArg::Pending => "pending",
        StateArg::Delivered => "delivered",
        StateArg::Dead => "dead",
        StateArg::Suppressed => "suppressed",
    }
}

pub(super) fn print_alerts(output: Output, list: &[AlertView]) -> Result<()> {
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

pub(super) fn print_alert(output: Output, a: &AlertView) -> Result<()> {
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
