//! SQL only. Every function takes a connection, so use cases decide the
//! transaction.

pub mod keys;
pub mod refresh_tokens;
pub mod users;
