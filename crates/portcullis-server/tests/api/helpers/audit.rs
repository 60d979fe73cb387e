//! Audit-event look-ups: counts, events since a cursor, by action, the last one for a target.

use super::*;

pub(crate) async fn event_count(app: &TestApp) -> usize {
    app.client
        .audit_events(&EventFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("list")
        .events
        .len()
}

/// Audit events after `cursor`, moving it past them.
pub(crate) async fn events_since(
    admin: &Client,
    cursor: &mut i64,
) -> Vec<portcullis_core::api::AuditEventView> {
    let page = admin
        .audit_events(&EventFilter {
            after: Some(*cursor),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("events");
    if let Some(last) = page.events.last() {
        *cursor = last.seq;
    }
    page.events
}

pub(crate) async fn events_named(
    admin: &Client,
    action: &str,
) -> Vec<portcullis_core::api::AuditEventView> {
    admin
        .audit_events(&EventFilter {
            action: Some(action.into()),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("events")
        .events
}

pub(crate) fn last_event<'a>(
    events: &'a [portcullis_core::api::AuditEventView],
    target: &str,
) -> &'a portcullis_core::api::AuditEventView {
    events
        .iter()
        .rev()
        .find(|e| e.target == target)
        .expect("event")
}

/// Runs `sql` on the server's database directly, as someone with access to it.
pub(crate) async fn db_exec(config: &Config, sql: &str) {
    use sqlx::Connection;
    let url = config.database_url();
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("connect");
        sqlx::query(sql).execute(&mut c).await.expect("exec");
    } else {
        let mut c = sqlx::PgConnection::connect(&url).await.expect("connect");
        sqlx::query(sql).execute(&mut c).await.expect("exec");
    }
}
