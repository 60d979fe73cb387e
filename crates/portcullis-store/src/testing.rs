//! Helpers for tests in this and other crates: fresh databases on either backend.
//!
//! The conformance suite runs every test on SQLite, and on PostgreSQL when
//! `PORTCULLIS_TEST_DATABASE_URL` is set (e.g. `postgres://postgres@127.0.0.1:5432/postgres`);
//! each test gets its own new database there.

use rand::RngCore;
use sqlx::Connection;

/// The environment variable naming the PostgreSQL server for tests.
pub const TEST_DATABASE_ENV: &str = "PORTCULLIS_TEST_DATABASE_URL";

/// Creates a new, empty PostgreSQL database and returns its URL; `None` when the environment
/// variable is unset. Panics (it is for tests) when the server cannot be reached.
pub async fn fresh_postgres_url() -> Option<String> {
    let admin = std::env::var(TEST_DATABASE_ENV).ok()?;
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("{TEST_DATABASE_ENV} is set but unreachable: {e}"));
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let name = format!("portcullis_test_{}", hex::encode(b));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("cannot create test database: {e}"));
    let _ = conn.close().await;
    let base = match admin.rsplit_once('/') {
        Some((base, _)) if base.contains("//") && !base.ends_with('/') => base.to_owned(),
        _ => admin.trim_end_matches('/').to_owned(),
    };
    Some(format!("{base}/{name}"))
}

/// A new SQLite database URL in `dir`.
pub fn sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("portcullis.db").display())
}

/// Runs one raw SQL statement against the database at `url` (`sqlite://…` or `postgres://…`),
/// as someone with database access would: for tests of rows written by an older version (a
/// server with a stricter rule must still meet what the older one stored). Panics (it is for
/// tests) when the statement fails.
pub async fn exec_raw(url: &str, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url)
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
        sqlx::query(sql)
            .execute(&mut c)
            .await
            .unwrap_or_else(|e| panic!("raw SQL failed: {e}"));
        let _ = c.close().await;
    } else {
        let mut c = sqlx::PgConnection::connect(url)
            .await
            .unwrap_or_else(|e| panic!("cannot open the database: {e}"));
        sqlx::query(sql)
            .execute(&mut c)
            .await
            .unwrap_or_else(|e| panic!("raw SQL failed: {e}"));
        let _ = c.close().await;
    }
}

tokio::task_local! {
    static READS: std::cell::Cell<u32>;
}

/// Runs `f` and counts the store's reads it made on this task (each a round trip to the pool;
/// writes go through the writer task and are not counted), for tests that pin what a request
/// costs.
pub async fn counting_reads<F: std::future::Future>(f: F) -> (F::Output, u32) {
    READS
        .scope(std::cell::Cell::new(0), async {
            let out = f.await;
            (out, READS.with(std::cell::Cell::get))
        })
        .await
}

pub(crate) fn note_read() {
    let _ = READS.try_with(|c| c.set(c.get() + 1));
}
