//! SQL only. Every function takes the connection (or transaction) it runs on.

pub mod charges;
pub mod deliveries;
pub mod idempotency;
pub mod refunds;

/// A stored value the code does not know (a row written by a newer version).
fn corrupt(what: &str, value: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unknown {what} {value:?} in the ledger").into())
}
