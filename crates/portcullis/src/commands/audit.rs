//! `portcullis audit`: list events (page by page), verify the hash chain and its signed
//! checkpoints (online, or offline from the database, against anchor files), and write a
//! checkpoint.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use portcullis_client::EventFilter;
use portcullis_core::api::{MAX_VERIFY_ANCHORS, VerifyResult};
use portcullis_core::audit::{AnchorRecord, Checkpoint, parse_anchor_lines};
use portcullis_store::{Store, StoreOptions};

use crate::connect::client;
use crate::output::{Output, table};

/// Exit code when the audit chain does not verify.
const EXIT_CHAIN_BROKEN: u8 = 3;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// List audit events, oldest first.
    List(ListArgs),
    /// Export audit events, oldest first, one JSON object per line (for a SIEM, an archive or
    /// `jq`), page by page without holding them all; progress on a terminal's standard error.
    Export(ExportArgs),
    /// Walk the hash chain, the chain of signed checkpoints and the checkpoint cadence; exit
    /// code 3 if anything is broken.
    Verify {
        /// Verify offline, straight from the database (works when the server is down).
        #[arg(long, env = "PORTCULLIS_VERIFY_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
        /// An audit anchor file (`audit_anchor_file`, kept outside the database): also prove
        /// the database still holds every checkpoint in it, so no history up to the newest was
        /// deleted. Repeat for several replicas' files.
        #[arg(long = "anchor", value_name = "FILE")]
        anchors: Vec<PathBuf>,
    },
    /// Write a signed checkpoint now.
    Checkpoint {
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Args)]
pub struct ListArgs {
    #[arg(long)]
    actor: Option<String>,
    #[arg(long)]
    action: Option<String>,
    #[arg(long)]
    target: Option<String>,
    /// success or failure.
    #[arg(long)]
    outcome: Option<String>,
    /// RFC 3339 time (inclusive).
    #[arg(long)]
    since: Option<String>,
    /// RFC 3339 time (exclusive).
    #[arg(long)]
    until: Option<String>,
    /// Only events after this sequence number.
    #[arg(long)]
    after: Option<i64>,
    /// At most this many events (all matching when absent).
    #[arg(long)]
    limit: Option<i64>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON event per line.
    Jsonl,
}

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    filter: ListArgs,
    #[arg(long, value_enum, default_value = "jsonl")]
    format: ExportFormat,
    /// Write here (replaced only once the export is whole) instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// `server` rather than a client: offline verification (`--database`) never connects.
pub async fn run(server: &str, output: Output, cmd: &AuditCommand) -> Result<ExitCode> {
    match cmd {
        AuditCommand::List(args) => audit_list(server, output, args).await,
        AuditCommand::Export(args) => audit_export(server, args).await,
        AuditCommand::Verify { database, anchors } => {
            audit_verify(server, output, database.as_deref(), anchors).await
        }
        AuditCommand::Checkpoint { reason } => {
            let created = client(server)?.audit_checkpoint(reason).await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&created)?),
                Output::Table => {
                    println!("checkpoint at sequence {} ({})", created.seq, created.hash)
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn event_filter(args: &ListArgs) -> EventFilter {
    EventFilter {
        actor: args.actor.clone(),
        action: args.action.clone(),
        target: args.target.clone(),
        outcome: args.outcome.clone(),
        since: args.since.clone(),
        until: args.until.clone(),
        after: args.after,
        limit: None,
    }
}

async fn audit_export(server: &str, args: &ExportArgs) -> Result<ExitCode> {
    use std::io::Write;
    let ExportFormat::Jsonl = args.format;
    let client = client(server)?;
    let mut remaining = args.filter.limit;
    if remaining.is_some_and(|l| l < 1) {
        bail!("--limit must be at least 1");
    }
    let mut filter = event_filter(&args.filter);
    // A file is written beside its final name and renamed when whole: an interrupted export
    // never leaves a file that looks complete.
    let partial = args.out.as_ref().map(|o| {
        let mut p = o.clone().into_os_string();
        p.push(".partial");
        PathBuf::from(p)
    });
    let mut sink: Box<dyn Write> = match &partial {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let progress = std::io::stderr().is_terminal();
    let mut count: u64 = 0;
    loop {
        filter.limit = Some(remaining.map_or(1000, |r| r.min(1000)));
        let page = client.audit_events(&filter).await?;
        for e in &page.events {
            serde_json::to_writer(&mut sink, e)?;
            sink.write_all(b"\n")?;
        }
        count += page.events.len() as u64;
        if progress && let Some(last) = page.events.last() {
            eprint!("\rexported {count} events (through sequence {})", last.seq);
        }
        if let Some(r) = remaining.as_mut() {
            *r -= page.events.len() as i64;
            if *r <= 0 {
                break;
            }
        }
        match page.next_after {
            Some(next) => filter.after = Some(next),
            None => break,
        }
    }
    sink.flush()?;
    drop(sink);
    if progress {
        eprintln!();
    }
    if let (Some(p), Some(out)) = (&partial, &args.out) {
        std::fs::rename(p, out).with_context(|| format!("cannot write {}", out.display()))?;
        eprintln!("exported {count} events to {}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn audit_list(server: &str, output: Output, args: &ListArgs) -> Result<ExitCode> {
    let client = client(server)?;
    let mut remaining = args.limit;
    if remaining.is_some_and(|l| l < 1) {
        bail!("--limit must be at least 1");
    }
    let mut filter = event_filter(args);
    let mut events = Vec::new();
    loop {
        filter.limit = Some(remaining.map_or(1000, |r| r.min(1000)));
        let page = client.audit_events(&filter).await?;
        let n = page.events.len() as i64;
        events.extend(page.events);
        if let Some(r) = remaining.as_mut() {
            *r -= n;
            if *r <= 0 {
                break;
            }
        }
        match page.next_after {
            Some(next) => filter.after = Some(next),
            None => break,
        }
    }
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&events)?),
        Output::Table => table(
            &["seq", "time", "actor", "action", "target", "outcome"],
            events
                .iter()
                .map(|e| {
                    vec![
                        e.seq.to_string(),
                        e.time.clone(),
                        e.actor.clone(),
                        e.action.clone(),
                        e.target.clone(),
                        e.outcome.clone(),
                    ]
                })
                .collect(),
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// The checkpoints in the anchor files, oldest first, duplicates (a shared file, or the same
/// file given twice) removed.
fn read_anchors(files: &[PathBuf]) -> Result<Vec<Checkpoint>> {
    let mut all = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the anchor file {}", f.display()))?;
        let parsed =
            parse_anchor_lines(&text).with_context(|| format!("anchor file {}", f.display()))?;
        if parsed.torn_lines > 0 {
            eprintln!(
                "note: {}: skipped {} line(s) cut short by a crash",
                f.display(),
                parsed.torn_lines
            );
        }
        all.extend(parsed.anchors);
    }
    all.sort_by_key(|c| c.seq);
    all.dedup();
    if !files.is_empty() && all.is_empty() {
        bail!("the anchor file(s) hold no checkpoint record: nothing to prove");
    }
    Ok(all)
}

/// `walked of total events (percent)`, for a terminal.
fn verify_progress(walked: i64, total: i64) -> String {
    let percent = if total > 0 { walked * 100 / total } else { 100 };
    format!("verifying: {walked} of {total} events ({percent}%)")
}

/// Awaits `call` (the server walking the chain), showing the time it has taken so far on a
/// terminal's standard error.
async fn with_ticker<T>(call: impl std::future::Future<Output = T>) -> T {
    if !std::io::stderr().is_terminal() {
        return call.await;
    }
    let started = std::time::Instant::now();
    tokio::pin!(call);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    let out = loop {
        tokio::select! {
            out = &mut call => break out,
            _ = tick.tick() => eprint!("\rverifying on the server… {} s", started.elapsed().as_secs()),
        }
    };
    eprint!("\r\x1b[2K");
    out
}

async fn audit_verify(
    server: &str,
    output: Output,
    database: Option<&str>,
    anchor_files: &[PathBuf],
) -> Result<ExitCode> {
    let anchors = read_anchors(anchor_files)?;
    let result = match database {
        Some(url) => {
            let store = Store::open(
                url,
                StoreOptions {
                    read_only: true,
                    max_connections: 2,
                    ..Default::default()
                },
            )
            .await?;
            let progress = std::io::stderr().is_terminal();
            let outcome = store
                .verify_with_progress(&anchors, &|walked, total| {
                    if progress {
                        eprint!("\r{}", verify_progress(walked, total));
                    }
                })
                .await?;
            if progress {
                eprintln!();
            }
            store.close().await;
            VerifyResult::from_verification(outcome)
        }
        None if anchors.is_empty() => with_ticker(client(server)?.audit_verify()).await?,
        None => {
            // The newest anchored checkpoint pins everything before it (events through the
            // hash chain, checkpoints through their links): send the newest ones.
            let newest: Vec<AnchorRecord> = anchors
                .iter()
                .rev()
                .take(MAX_VERIFY_ANCHORS)
                .filter_map(AnchorRecord::of)
                .collect();
            with_ticker(client(server)?.audit_verify_anchored(newest)).await?
        }
    };
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&result)?),
        Output::Table => {
            if result.ok {
                let mut line = format!(
                    "audit chain intact: {} events, {} signed checkpoints matched, head {}",
                    result.events.unwrap_or(0),
                    result.checkpoints.unwrap_or(0),
                    result.last_hash.as_deref().unwrap_or("")
                );
                if let Some(seq) = result.anchored_seq {
                    line.push_str(&format!(
                        "; {} anchored checkpoint(s) present, newest at sequence {seq}",
                        result.anchors_matched.unwrap_or(0)
                    ));
                }
                println!("{line}");
            } else {
                println!(
                    "AUDIT CHAIN BROKEN at sequence {} ({}): {}",
                    result.first_bad_seq.unwrap_or(0),
                    result.reason.as_deref().unwrap_or("unknown"),
                    result.problem.as_deref().unwrap_or("")
                );
            }
        }
    }
    Ok(if result.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CHAIN_BROKEN)
    })
}
