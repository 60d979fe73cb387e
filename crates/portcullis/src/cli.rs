//! Command-line definitions and their handlers.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use comfy_table::Table;
use portcullis_client::{Client, EventFilter};
use portcullis_core::api::VerifyResult;
use portcullis_server::{Application, BuildOptions, Config, LogFormat};
use portcullis_store::{Store, StoreOptions};
use secrecy::SecretString;

/// Exit code when the audit chain does not verify.
const EXIT_CHAIN_BROKEN: u8 = 3;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Privileged access server and its command-line client"
)]
pub struct Cli {
    /// URL of the Portcullis server.
    #[arg(
        long,
        global = true,
        env = "PORTCULLIS_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Read and verify the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Args)]
struct ServeArgs {
    /// TOML configuration file (PORTCULLIS_* environment variables override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log format (overrides the configuration).
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
    /// On first start, write the bootstrap token to this new file (mode 0600) instead of the log.
    #[arg(long)]
    bootstrap_token_file: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Pretty,
    Json,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// List audit events, oldest first.
    List(ListArgs),
    /// Walk the hash chain and signed checkpoints; exit code 3 if anything is broken.
    Verify {
        /// Verify offline, straight from the database (works when the server is down).
        #[arg(long, env = "PORTCULLIS_VERIFY_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
    },
    /// Write a signed checkpoint now.
    Checkpoint {
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Args)]
struct ListArgs {
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

fn client(cli: &Cli) -> Result<Client> {
    let token = std::env::var("PORTCULLIS_TOKEN")
        .ok()
        .map(SecretString::from);
    Ok(Client::new(&cli.server, token)?)
}

pub async fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Audit(AuditCommand::List(args)) => audit_list(&cli, args).await,
        Command::Audit(AuditCommand::Verify { database }) => {
            audit_verify(&cli, database.as_deref()).await
        }
        Command::Audit(AuditCommand::Checkpoint { reason }) => {
            let created = client(&cli)?.audit_checkpoint(reason).await?;
            match cli.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&created)?),
                Output::Table => {
                    println!("checkpoint at sequence {} ({})", created.seq, created.hash)
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(args: &ServeArgs) -> Result<ExitCode> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(f) = args.log_format {
        config.log_format = match f {
            LogFormatArg::Pretty => LogFormat::Pretty,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    init_logging(config.log_format);
    let public = config.public_view();
    tracing::info!(
        listen = %config.listen,
        data_dir = %config.data_dir.display(),
        database = %public["database"].as_str().unwrap_or(""),
        "starting portcullis {}", env!("CARGO_PKG_VERSION")
    );
    if config.database_url.is_none() {
        tracing::info!(
            "using embedded SQLite in {} (set PORTCULLIS_DATABASE_URL for PostgreSQL)",
            config.data_dir.display()
        );
    }
    let app = Application::build(
        config,
        BuildOptions {
            bootstrap_token_file: args.bootstrap_token_file.clone(),
        },
    )
    .await?;
    tracing::info!(port = app.port(), "listening");
    app.run_until(portcullis_server::app::shutdown_signal())
        .await
        .context("server failed")?;
    Ok(ExitCode::SUCCESS)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTCULLIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

async fn audit_list(cli: &Cli, args: &ListArgs) -> Result<ExitCode> {
    let client = client(cli)?;
    let mut remaining = args.limit;
    if remaining.is_some_and(|l| l < 1) {
        bail!("--limit must be at least 1");
    }
    let mut filter = EventFilter {
        actor: args.actor.clone(),
        action: args.action.clone(),
        target: args.target.clone(),
        outcome: args.outcome.clone(),
        since: args.since.clone(),
        until: args.until.clone(),
        after: args.after,
        limit: None,
    };
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
    match cli.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&events)?),
        Output::Table => {
            let mut t = Table::new();
            t.set_header(["seq", "time", "actor", "action", "target", "outcome"]);
            for e in &events {
                t.add_row([
                    e.seq.to_string(),
                    e.time.clone(),
                    e.actor.clone(),
                    e.action.clone(),
                    e.target.clone(),
                    e.outcome.clone(),
                ]);
            }
            println!("{t}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn audit_verify(cli: &Cli, database: Option<&str>) -> Result<ExitCode> {
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
            let outcome = store.verify_chain().await?;
            store.close().await;
            VerifyResult::from_outcome(outcome)
        }
        None => client(cli)?.audit_verify().await?,
    };
    match cli.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&result)?),
        Output::Table => {
            if result.ok {
                println!(
                    "audit chain intact: {} events, {} signed checkpoints matched, head {}",
                    result.events.unwrap_or(0),
                    result.checkpoints.unwrap_or(0),
                    result.last_hash.as_deref().unwrap_or("")
                );
            } else {
                println!(
                    "AUDIT CHAIN BROKEN at sequence {}: {}",
                    result.first_bad_seq.unwrap_or(0),
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
