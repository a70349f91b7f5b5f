//! The carrier's rules, with no I/O: CEPs and weights, freight prices and
//! delivery times, tracking codes.

pub mod freight;
pub mod shipment;
pub mod tracking;

pub use freight::{Cep, QuoteOption, ServiceLevel, Weight, quote};
pub use shipment::{NewShipment, Shipment};

/// A request the carrier refuses as sent (400 `invalid_request_error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);
