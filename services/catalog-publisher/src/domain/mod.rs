//! The publisher's pure domain: the changes it accepts, the document it
//! builds, and the rules of publishing (object keys, when an owner is due,
//! how long a failed owner waits). No I/O here.

pub mod changes;
pub mod document;

use std::time::Duration;

use uuid::Uuid;

pub use changes::{CategoryChange, ChangeError, OwnerChange, ProductChange, StockChange};
pub use document::{CatalogDocument, CategoryRecord, OwnerRecord, ProductRecord, Rendered};

/// Object key of an owner's current catalog.
pub fn latest_key(owner_id: Uuid) -> String {
    format!("catalogs/{owner_id}.json")
}

/// Object key of one published version of an owner's catalog.
pub fn versioned_key(owner_id: Uuid, version: i64) -> String {
    format!("catalogs/{owner_id}/v{version}.json")
}

/// When a dirty owner is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coalescing {
    /// Quiet time after the last change: a burst of changes is published once.
    pub window: Duration,
    /// Longest an owner stays dirty under constant churn (10 × the window).
    pub max_delay: Duration,
}

impl Coalescing {
    pub fn new(window: Duration) -> Self {
        Coalescing { window, max_delay: window.saturating_mul(10) }
    }

    /// How often the publisher looks for due owners: often enough to publish
    /// within about 1.5 windows, never busier than every 50 ms.
    pub fn poll_interval(&self) -> Duration {
        (self.window / 2).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }
}

/// What a built document means against the last published one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Same bytes as the published version: nothing to write or announce.
    Unchanged,
    /// New content: publish it as this version.
    Publish { version: i64 },
}

/// Compares a document's hash with the last published version's.
pub fn decide(last_version: i64, last_sha256: Option<&str>, sha256: &str) -> Decision {
    if last_sha256 == Some(sha256) { Decision::Unchanged } else { Decision::Publish { version: last_version + 1 } }
}

/// How long an owner whose publication failed `failures` times in a row waits
/// before the next attempt: doubling from `base` (at least 100 ms), at most a
/// minute.
pub fn retry_delay(failures: u32, base: Duration) -> Duration {
    let base = base.max(Duration::from_millis(100));
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    base.saturating_mul(factor).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_owner_and_the_version() {
        let owner = Uuid::from_u128(7);
        assert_eq!(latest_key(owner), "catalogs/00000000-0000-0000-0000-000000000007.json");
        assert_eq!(versioned_key(owner, 3), "catalogs/00000000-0000-0000-0000-000000000007/v3.json");
    }

    #[test]
    fn only_a_new_hash_is_published_and_it_takes_the_next_version() {
        assert_eq!(decide(0, None, "abc"), Decision::Publish { version: 1 });
        assert_eq!(decide(4, Some("abc"), "abc"), Decision::Unchanged);
        assert_eq!(decide(4, Some("abc"), "def"), Decision::Publish { version: 5 });
    }

    #[test]
    fn retries_back_off_and_stop_growing_at_a_minute() {
        let base = Duration::from_millis(500);
        assert_eq!(retry_delay(1, base), Duration::from_millis(500));
        assert_eq!(retry_delay(2, base), Duration::from_secs(1));
        assert_eq!(retry_delay(4, base), Duration::from_secs(4));
        assert_eq!(retry_delay(40, base), Duration::from_secs(60));
        assert_eq!(retry_delay(1, Duration::ZERO), Duration::from_millis(100));
    }

    #[test]
    fn the_longest_wait_is_ten_windows_and_polling_stays_reasonable() {
        let c = Coalescing::new(Duration::from_millis(500));
        assert_eq!(c.max_delay, Duration::from_secs(5));
        assert_eq!(c.poll_interval(), Duration::from_millis(250));
        assert_eq!(Coalescing::new(Duration::ZERO).poll_interval(), Duration::from_millis(50));
        assert_eq!(Coalescing::new(Duration::from_secs(60)).poll_interval(), Duration::from_secs(1));
    }
}
