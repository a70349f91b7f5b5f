//! The payments HTTP API.

pub mod payments;
pub mod webhooks;
