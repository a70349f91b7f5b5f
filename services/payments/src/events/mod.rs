//! Consumed commands (one handler per file). The replies are built in
//! `domain` and written to the outbox by `app`.

pub mod charge_payment;
pub mod refund_payment;
