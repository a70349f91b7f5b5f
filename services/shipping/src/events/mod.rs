//! Consumed messages, one handler per file. (The published event,
//! `ShipmentScheduledV1`, is written by the booking worker, `app::booking`.)

pub mod order_cancelled;
pub mod order_confirmed;
