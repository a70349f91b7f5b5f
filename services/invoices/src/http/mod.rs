//! The invoices HTTP API.

pub mod invoices;
