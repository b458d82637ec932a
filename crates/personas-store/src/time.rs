//! Timestamps are stored as INTEGER milliseconds since the Unix epoch (UTC).

use chrono::{DateTime, TimeZone, Utc};

pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub(crate) fn opt_from_ms(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(from_ms)
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}
