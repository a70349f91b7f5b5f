//! The notifications HTTP API (for operators and the customer's own view).

pub mod emails;
