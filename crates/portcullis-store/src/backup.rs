//! Online backup of the embedded SQLite database: `VACUUM INTO` writes a consistent copy of one
//! read snapshot while the server keeps running (readers and writers go on; WAL mode). The
//! copy is a plain database file the server opens as it is (restore: put it in place of
//! `portcullis.db` with the server stopped). PostgreSQL is backed up with its own tools
//! (`pg_dump`), not here.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use crate::{Result, StoreError};

/// Writes a consistent copy of the SQLite database at `url` to `out`, which must not exist.
pub async fn backup_sqlite(url: &str, out: &Path) -> Result<()> {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Err(StoreError::InvalidUrl);
    };
    let path = rest.trim_start_matches("//");
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
        .map_err(|_| StoreError::InvalidUrl)?
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(30));
    let mut c = SqliteConnection::connect_with(&opts)
        .await
        .map_err(|e| StoreError::Unreachable(e.to_string()))?;
    let target = out
        .to_str()
        .ok_or_else(|| StoreError::Corrupt("the backup path is not UTF-8".into()))?;
    sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(&mut c)
        .await?;
    c.close().await?;
    Ok(())
}
