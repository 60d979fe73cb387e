//! `portcullis backup --out FILE`: an online backup of the embedded SQLite database, verified
//! before it is kept: the copy is opened read-only and its audit chain and signed checkpoints
//! walked; only a copy that verifies gets its final name. PostgreSQL is backed up with
//! `pg_dump` (README, "Backups and restore"), and the restored copy verified with
//! `portcullis audit verify --database URL`.
//!
//! The master key (`master.key` in the data directory, or `PORTCULLIS_MASTER_KEY`) is not in
//! the database and not in the backup: keep it, separately, or the sealed secrets in the copy
//! cannot be opened.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use portcullis_core::api::VerifyResult;
use portcullis_server::Config;
use portcullis_store::{Store, StoreOptions};

use crate::output::Output;

#[derive(Args)]
pub struct BackupArgs {
    /// The server's TOML configuration file (PORTCULLIS_* variables override it), for where
    /// its database is.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The backup file to write (must not exist).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub async fn backup(output: Output, args: &BackupArgs) -> Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    let url = config.database_url();
    if !url.starts_with("sqlite:") {
        bail!(
            "the database is PostgreSQL: back it up with pg_dump (README, \"Backups and restore\") and verify the restored copy with `portcullis audit verify --database URL`"
        );
    }
    if args.out.exists() {
        bail!("{} exists already; choose a new file", args.out.display());
    }
    let mut partial = args.out.clone().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let _ = std::fs::remove_file(&partial);
    portcullis_store::backup_sqlite(&url, &partial)
        .await
        .context("the backup could not be written")?;
    let verified = verify(&partial).await;
    let result = match verified {
        Ok(r) if r.ok => r,
        Ok(r) => {
            let _ = std::fs::remove_file(&partial);
            eprintln!(
                "the copy does not verify ({}): not kept. Run `portcullis audit verify` on the server.",
                r.problem.as_deref().unwrap_or("broken chain")
            );
            return Ok(ExitCode::from(3));
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.context("the copy could not be opened to verify it"));
        }
    };
    std::fs::rename(&partial, &args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "backup": args.out.display().to_string(),
                "verified": result,
            }))?
        ),
        Output::Table => println!(
            "backup written and verified: {} ({} events, {} signed checkpoints, head {})\nkeep the master key separately: the backup's sealed secrets need it",
            args.out.display(),
            result.events.unwrap_or(0),
            result.checkpoints.unwrap_or(0),
            result.last_hash.as_deref().unwrap_or("-"),
        ),
    }
    Ok(ExitCode::SUCCESS)
}

async fn verify(path: &std::path::Path) -> Result<VerifyResult> {
    let store = Store::open(
        &format!("sqlite://{}", path.display()),
        StoreOptions {
            read_only: true,
            max_connections: 2,
            ..Default::default()
        },
    )
    .await?;
    let outcome = store.verify(&[]).await;
    store.close().await;
    Ok(VerifyResult::from_verification(outcome?))
}
