//! The orders HTTP API.

pub mod orders;
