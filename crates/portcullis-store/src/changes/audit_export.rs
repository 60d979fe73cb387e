//! The SIEM export's cursor and lease (`audit_export_cursors`): one replica at a time holds a
//! sink's lease and only the holder moves its cursor, each move from the seq it read, so an
//! event is delivered by one replica of the group and the cursor never goes back.

use super::conflicts::conflict;
use super::sql::{Conn, args};
use crate::Result;

/// The conflict [`super::Change::ClaimAuditExport`] reports while another replica holds it.
pub const EXPORT_HELD: &str = "another replica holds the audit export lease";

pub(crate) async fn claim(
    c: &mut Conn<'_>,
    sink: &str,
    holder: &str,
    at_us: i64,
    lease_until_us: i64,
) -> Result<()> {
    let n = c.execute("INSERT INTO audit_export_cursors (sink, seq, holder, lease_until_us, updated_at_us) VALUES ($1, 0, $2, $3, $4) ON CONFLICT (sink) DO UPDATE SET holder = excluded.holder, lease_until_us = excluded.lease_until_us, updated_at_us = excluded.updated_at_us WHERE audit_export_cursors.holder = excluded.holder OR audit_export_cursors.lease_until_us <= $4", args![sink, holder, lease_until_us, at_us]).await?;
    if n == 0 {
        return Err(conflict(EXPORT_HELD));
    }
    Ok(())
}

pub(crate) async fn advance(
    c: &mut Conn<'_>,
    (sink, holder): (&str, &str),
    (from_seq, to_seq): (i64, i64),
    at_us: i64,
    lease_until_us: i64,
) -> Result<()> {
    if to_seq < from_seq {
        return Err(conflict("the audit export cursor never goes back"));
    }
    let n = c.execute("UPDATE audit_export_cursors SET seq = $1, lease_until_us = $2, updated_at_us = $3 WHERE sink = $4 AND holder = $5 AND seq = $6 AND lease_until_us > $3", args![to_seq, lease_until_us, at_us, sink, holder, from_seq]).await?;
    if n == 0 {
        return Err(conflict(
            "the audit export lease was lost or its cursor moved meanwhile",
        ));
    }
    Ok(())
}

pub(crate) async fn release(c: &mut Conn<'_>, sink: &str, holder: &str) -> Result<()> {
    c.execute(
        "UPDATE audit_export_cursors SET lease_until_us = 0 WHERE sink = $1 AND holder = $2",
        args![sink, holder],
    )
    .await?;
    Ok(())
}
