//! Storage: carts in Redis (`carts`), checkout attempts in PostgreSQL
//! (`attempts`, SQL only here).

pub mod attempts;
pub mod carts;

pub use attempts::Attempt;
pub use carts::{CartStore, SetOutcome, StoreError};
