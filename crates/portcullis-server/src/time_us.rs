//! Conversions between `OffsetDateTime` and the microseconds the store keeps.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn us(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

pub fn from_us(v: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(v) * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// RFC 3339 text of a stored time.
pub fn rfc3339(v: i64) -> String {
    from_us(v).format(&Rfc3339).unwrap_or_default()
}
