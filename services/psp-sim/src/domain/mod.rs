//! The provider's rules, with no I/O: what a charge request is, how a card
//! token decides the outcome, PIX codes, refund limits, callback signatures.

pub mod charge;
pub mod pix;
pub mod refund;
pub mod webhook;

pub use charge::{Charge, ChargeStatus, FailureCode, NewCharge, PixDetails, Source};
pub use refund::Refund;

/// A request the provider refuses as sent (400 `invalid_request_error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// `ch_` / `re_` / `evt_` followed by 32 hex digits (a UUIDv7, so ids sort by
/// creation time).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}
