//! The one place that reads the wall clock; the domain is handed `now`.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::drop::model::Millis;

pub fn now() -> Millis {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Millis(since_epoch.as_millis() as u64)
}
