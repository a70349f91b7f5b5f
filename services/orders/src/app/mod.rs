//! Use cases: open a transaction, apply the domain, write through the
//! repository and the outbox, commit.
//!
//! - [`orders`]: place, read, list, cancel.
//! - [`saga`]: apply a reply or a timeout to an order and send what follows.

pub mod orders;
pub mod saga;

pub use orders::*;
