//! feira's shared kernel: the few pure rules every service's domain shares.
//! No I/O and no framework types, so any `domain/` module may use it.
//!
//! # Layout
//! - [`time`]: timestamps as the services store them.
//! - [`money`]: money is integer cents plus an ISO 4217 currency.

pub mod money;

pub mod time {
    //! Timestamps are UTC and kept to the microsecond, the precision
    //! PostgreSQL stores, so what a write answers and announces is exactly
    //! what reads return later.

    use ::time::OffsetDateTime;

    /// `t` truncated to the microsecond.
    pub fn stored(t: OffsetDateTime) -> OffsetDateTime {
        t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000).unwrap_or(t)
    }

    /// The current UTC time, to the microsecond.
    pub fn now() -> OffsetDateTime {
        stored(OffsetDateTime::now_utc())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn stored_times_drop_what_the_database_cannot_keep() {
            let t = OffsetDateTime::UNIX_EPOCH + ::time::Duration::nanoseconds(1_234_567);
            assert_eq!(stored(t), OffsetDateTime::UNIX_EPOCH + ::time::Duration::microseconds(1_234));
            assert_eq!(stored(stored(t)), stored(t));
            assert_eq!(now().nanosecond() % 1_000, 0);
        }
    }
}
