//! `portcullis serve`: its arguments (and the deployment settings its help lists), then the
//! configuration, logging and the server itself until a shutdown signal.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use portcullis_server::{Application, BuildOptions, Config, LogFormat};

/// The deployment settings people look for first (all keys: README, "Configuration").
pub const SERVE_HELP: &str = "\
Deployment (config file key / PORTCULLIS_ variable):
  public_url          the URL people and clients use: token issuer, discovery, WebAuthn
                      origin, links. Default: follows the listener (http://localhost:PORT on
                      loopback). webauthn_origin is its old name.
  tls_cert, tls_key   PEM files served directly over TLS; `kill -HUP` reloads them (a bad
                      file keeps the old certificate and logs why).
  trusted_proxies     CIDRs of reverse proxies whose X-Forwarded-For is believed.
  header_read_timeout_seconds (10), body_timeout_seconds (30), idle_timeout_seconds (60),
  max_connections_per_address (128): slow and many connections.
  rate_limit_per_address (200/s, burst 1000), rate_limit_global (20000/s, burst 40000):
                      request rates; sign-in is never rate limited (0 turns a limit off).";

#[derive(Args)]
pub struct ServeArgs {
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

pub async fn serve(args: &ServeArgs) -> Result<ExitCode> {
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
    tracing::info!(
        port = app.port(),
        public_url = app.public_url(),
        "listening"
    );
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
