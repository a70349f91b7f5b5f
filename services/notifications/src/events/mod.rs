//! Consumed messages, one handler per file. Notifications publishes nothing.

pub mod invoice_issued;
pub mod order_cancelled;
pub mod order_placed;
pub mod shipment_scheduled;

use platform::messaging::ConsumerSpec;

/// Every queue the service consumes.
pub const CONSUMERS: &[ConsumerSpec] =
    &[order_placed::CONSUMER, invoice_issued::CONSUMER, order_cancelled::CONSUMER, shipment_scheduled::CONSUMER];
