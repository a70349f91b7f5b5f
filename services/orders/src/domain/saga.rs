//! The order saga as a pure state machine: given where an order stands and
//! what just happened, what it becomes and which commands and events go out.
//!
//! ```text
//! PENDING/reserving_stock --StockReserved--> PENDING/charging --PaymentSucceeded--> CONFIRMED (commit stock)
//!        |                                       |  \--PaymentPending (PIX)--> PENDING/awaiting_pix --...
//!        |--StockRejected--> CANCELLED(out_of_stock)
//!        |--timeout--> CANCELLED(timeout) + release stock
//!                                                |--PaymentFailed--> CANCELLED(payment_declined|payment_failed) + release stock
//!                                                |--timeout--> CANCELLED(timeout) + release stock + void/refund payment
//! CONFIRMED --customer cancel (not shipped)--> CANCELLED(customer_request) + refund + release stock
//! ```
//!
//! Replies that arrive after the order ended are compensated, never applied:
//! a late `StockReserved` is released, a late `PaymentSucceeded` refunded.

use time::{Duration, OffsetDateTime};

use super::order::OrderStatus;

/// Where a `PENDING` order's saga waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    ReservingStock,
    Charging,
    AwaitingPix,
    /// The order ended (`CONFIRMED` or `CANCELLED`); nothing is awaited.
    Done,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::ReservingStock => "reserving_stock",
            Step::Charging => "charging",
            Step::AwaitingPix => "awaiting_pix",
            Step::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        Some(match s {
            "reserving_stock" => Step::ReservingStock,
            "charging" => Step::Charging,
            "awaiting_pix" => Step::AwaitingPix,
            "done" => Step::Done,
            _ => return None,
        })
    }
}

/// Why an order was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    OutOfStock,
    PaymentDeclined,
    PaymentFailed,
    Timeout,
    CustomerRequest,
}

impl CancelReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::OutOfStock => "out_of_stock",
            CancelReason::PaymentDeclined => "payment_declined",
            CancelReason::PaymentFailed => "payment_failed",
            CancelReason::Timeout => "timeout",
            CancelReason::CustomerRequest => "customer_request",
        }
    }
}

/// What happened to an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SagaEvent {
    StockReserved {
        expires_at: OffsetDateTime,
    },
    StockRejected {
        reason: String,
    },
    StockReleased {
        reason: String,
    },
    StockCommitted,
    PaymentSucceeded {
        payment_id: uuid::Uuid,
    },
    PaymentPending {
        expires_at: OffsetDateTime,
    },
    /// `reason` is the payment service's: `declined`, `insufficient_funds`
    /// or `failed`.
    PaymentFailed {
        reason: String,
    },
    PaymentRefunded {
        outcome: String,
    },
    ShipmentScheduled {
        tracking_code: String,
    },
    /// The current step's deadline passed.
    TimedOut,
    CustomerCancel,
}

/// A message the saga sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    ReserveStock,
    ChargePayment,
    CommitStock,
    ReleaseStock,
    RefundPayment,
    AnnounceConfirmed,
    AnnounceCancelled { refund_requested: bool },
}

/// How long each step may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub reserve: Duration,
    pub payment: Duration,
    pub pix: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { reserve: Duration::seconds(30), payment: Duration::seconds(60), pix: Duration::minutes(30) }
    }
}

/// The saga's view of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaState {
    pub status: OrderStatus,
    pub step: Step,
    pub deadline: Option<OffsetDateTime>,
    pub cancel_reason: Option<CancelReason>,
    /// When the stock reservation lapses (known once reserved).
    pub reservation_expires_at: Option<OffsetDateTime>,
    pub payment_id: Option<uuid::Uuid>,
    pub tracking_code: Option<String>,
}

impl SagaState {
    /// A freshly placed order: its stock is being reserved.
    pub fn placed(now: OffsetDateTime, t: &Timeouts) -> SagaState {
        SagaState {
            status: OrderStatus::Pending,
            step: Step::ReservingStock,
            deadline: Some(now + t.reserve),
            cancel_reason: None,
            reservation_expires_at: None,
            payment_id: None,
            tracking_code: None,
        }
    }
}

/// One line of the order's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub step: &'static str,
    pub outcome: String,
}

/// The outcome of applying an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub state: SagaState,
    pub commands: Vec<Command>,
    pub entries: Vec<Entry>,
}

/// Why a customer's cancellation is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CancelRefused {
    #[error("the order has already shipped")]
    Shipped,
}

fn entry(step: &'static str, outcome: impl Into<String>) -> Entry {
    Entry { step, outcome: outcome.into() }
}

/// Applies `event` to `s`. Never fails for a message: a reply that does not
/// fit the current step is recorded and, if it holds something (stock,
/// money) for an order that no longer wants it, compensated.
pub fn apply(s: &SagaState, event: &SagaEvent, now: OffsetDateTime, t: &Timeouts) -> Transition {
    if *event == SagaEvent::CustomerCancel {
        // Refused only once shipped; then nothing changes.
        return cancel_by_customer(s).unwrap_or_else(|_| Transition {
            state: s.clone(),
            commands: vec![],
            entries: vec![],
        });
    }
    let mut next = s.clone();
    let mut commands = Vec::new();
    let mut entries = Vec::new();
    let ended = s.status != OrderStatus::Pending;
    let cancel = |next: &mut SagaState, reason: CancelReason| {
        next.status = OrderStatus::Cancelled;
        next.step = Step::Done;
        next.deadline = None;
        next.cancel_reason = Some(reason);
    };
    match (event, s.step) {
        (SagaEvent::StockReserved { expires_at }, Step::ReservingStock) if !ended => {
            next.step = Step::Charging;
            next.deadline = Some(now + t.payment);
            next.reservation_expires_at = Some(*expires_at);
            commands.push(Command::ChargePayment);
            entries.push(entry("reserve_stock", "reserved"));
            entries.push(entry("charge_payment", "requested"));
        }
        (SagaEvent::StockReserved { .. }, _) => {
            if ended && s.status == OrderStatus::Cancelled {
                commands.push(Command::ReleaseStock);
                entries.push(entry("reserve_stock", "reserved after the order ended; released"));
            } else {
                entries.push(entry("reserve_stock", "reserved (repeat)"));
            }
        }
        (SagaEvent::StockRejected { reason }, Step::ReservingStock) if !ended => {
            cancel(&mut next, CancelReason::OutOfStock);
            commands.push(Command::AnnounceCancelled { refund_requested: false });
            entries.push(entry("reserve_stock", format!("rejected: {reason}")));
            entries.push(entry("cancelled", CancelReason::OutOfStock.as_str()));
        }
        (SagaEvent::StockRejected { reason }, _) => entries.push(entry("reserve_stock", format!("rejected: {reason}"))),
        (SagaEvent::StockReleased { reason }, Step::Charging | Step::AwaitingPix) if !ended && reason == "expired" => {
            // The hold lapsed while the payment was pending: nothing to sell.
            cancel(&mut next, CancelReason::Timeout);
            commands.push(Command::RefundPayment);
            commands.push(Command::AnnounceCancelled { refund_requested: true });
            entries.push(entry("reserve_stock", "reservation expired"));
            entries.push(entry("cancelled", CancelReason::Timeout.as_str()));
        }
        (SagaEvent::StockReleased { reason }, _) => entries.push(entry("release_stock", reason.clone())),
        (SagaEvent::StockCommitted, _) => entries.push(entry("commit_stock", "committed")),
        (SagaEvent::PaymentSucceeded { payment_id }, Step::Charging | Step::AwaitingPix) if !ended => {
            next.status = OrderStatus::Confirmed;
            next.step = Step::Done;
            next.deadline = None;
            next.payment_id = Some(*payment_id);
            commands.push(Command::CommitStock);
            commands.push(Command::AnnounceConfirmed);
            entries.push(entry("charge_payment", "captured"));
            entries.push(entry("confirmed", "stock committed, payment captured"));
        }
        (SagaEvent::PaymentSucceeded { payment_id }, _) => {
            if s.status == OrderStatus::Cancelled {
                next.payment_id = Some(*payment_id);
                commands.push(Command::RefundPayment);
                entries.push(entry("charge_payment", "captured after the order ended; refund requested"));
            } else {
                entries.push(entry("charge_payment", "captured (repeat)"));
            }
        }
        (SagaEvent::PaymentPending { expires_at }, Step::Charging) if !ended => {
            next.step = Step::AwaitingPix;
            // Wait for the customer, but never past the stock hold.
            let mut deadline = (*expires_at).min(now + t.pix);
            if let Some(hold) = s.reservation_expires_at {
                deadline = deadline.min(hold);
            }
            next.deadline = Some(deadline);
            entries.push(entry("charge_payment", "awaiting PIX payment"));
        }
        (SagaEvent::PaymentPending { .. }, _) => entries.push(entry("charge_payment", "pending (ignored)")),
        (SagaEvent::PaymentFailed { reason }, Step::Charging | Step::AwaitingPix) if !ended => {
            let why = match reason.as_str() {
                "declined" | "insufficient_funds" => CancelReason::PaymentDeclined,
                _ => CancelReason::PaymentFailed,
            };
            cancel(&mut next, why);
            commands.push(Command::ReleaseStock);
            commands.push(Command::AnnounceCancelled { refund_requested: false });
            entries.push(entry("charge_payment", format!("failed: {reason}")));
            entries.push(entry("cancelled", why.as_str()));
        }
        (SagaEvent::PaymentFailed { reason }, _) => entries.push(entry("charge_payment", format!("failed: {reason}"))),
        (SagaEvent::PaymentRefunded { outcome }, _) => entries.push(entry("refund_payment", outcome.clone())),
        (SagaEvent::ShipmentScheduled { tracking_code }, _) => {
            next.tracking_code = Some(tracking_code.clone());
            entries.push(entry("shipment", format!("scheduled, tracking {tracking_code}")));
        }
        (SagaEvent::TimedOut, step) if !ended => {
            cancel(&mut next, CancelReason::Timeout);
            commands.push(Command::ReleaseStock);
            let charging = matches!(step, Step::Charging | Step::AwaitingPix);
            if charging {
                commands.push(Command::RefundPayment);
            }
            commands.push(Command::AnnounceCancelled { refund_requested: charging });
            entries.push(entry(step_name(step), "timed out"));
            entries.push(entry("cancelled", CancelReason::Timeout.as_str()));
        }
        (SagaEvent::TimedOut | SagaEvent::CustomerCancel, _) => {}
    }
    Transition { state: next, commands, entries }
}

fn step_name(step: Step) -> &'static str {
    match step {
        Step::ReservingStock => "reserve_stock",
        Step::Charging | Step::AwaitingPix => "charge_payment",
        Step::Done => "done",
    }
}

/// The timeline of a freshly placed order.
pub fn placed_entries() -> Vec<Entry> {
    vec![entry("placed", "PENDING"), entry("reserve_stock", "requested")]
}

/// The customer cancels: allowed until the order ships. Cancelling a
/// cancelled order changes nothing.
pub fn cancel_by_customer(s: &SagaState) -> Result<Transition, CancelRefused> {
    if s.tracking_code.is_some() {
        return Err(CancelRefused::Shipped);
    }
    let mut next = s.clone();
    let mut commands = Vec::new();
    let mut entries = Vec::new();
    if s.status != OrderStatus::Cancelled {
        let paid_or_paying = s.status == OrderStatus::Confirmed || matches!(s.step, Step::Charging | Step::AwaitingPix);
        next.status = OrderStatus::Cancelled;
        next.step = Step::Done;
        next.deadline = None;
        next.cancel_reason = Some(CancelReason::CustomerRequest);
        commands.push(Command::ReleaseStock);
        if paid_or_paying {
            commands.push(Command::RefundPayment);
        }
        commands.push(Command::AnnounceCancelled { refund_requested: paid_or_paying });
        entries.push(entry("cancelled", CancelReason::CustomerRequest.as_str()));
    }
    Ok(Transition { state: next, commands, entries })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn t() -> Timeouts {
        Timeouts::default()
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
    }

    fn reserved(s: &SagaState) -> SagaState {
        apply(s, &SagaEvent::StockReserved { expires_at: now() + Duration::minutes(15) }, now(), &t()).state
    }

    #[test]
    fn the_happy_path_reserves_charges_and_confirms() {
        let s = SagaState::placed(now(), &t());
        assert_eq!(s.deadline, Some(now() + Duration::seconds(30)));
        let r = apply(&s, &SagaEvent::StockReserved { expires_at: now() + Duration::minutes(15) }, now(), &t());
        assert_eq!(r.state.step, Step::Charging);
        assert_eq!(r.commands, vec![Command::ChargePayment]);
        let pid = Uuid::now_v7();
        let c = apply(&r.state, &SagaEvent::PaymentSucceeded { payment_id: pid }, now(), &t());
        assert_eq!(c.state.status, OrderStatus::Confirmed);
        assert_eq!(c.state.payment_id, Some(pid));
        assert_eq!(c.commands, vec![Command::CommitStock, Command::AnnounceConfirmed]);
    }

    #[test]
    fn rejected_stock_cancels_without_compensation() {
        let s = SagaState::placed(now(), &t());
        let r = apply(&s, &SagaEvent::StockRejected { reason: "out_of_stock".into() }, now(), &t());
        assert_eq!(r.state.status, OrderStatus::Cancelled);
        assert_eq!(r.state.cancel_reason, Some(CancelReason::OutOfStock));
        assert_eq!(r.commands, vec![Command::AnnounceCancelled { refund_requested: false }]);
    }

    #[test]
    fn a_declined_payment_releases_the_stock() {
        let s = reserved(&SagaState::placed(now(), &t()));
        let r = apply(&s, &SagaEvent::PaymentFailed { reason: "declined".into() }, now(), &t());
        assert_eq!(r.state.cancel_reason, Some(CancelReason::PaymentDeclined));
        assert_eq!(r.commands, vec![Command::ReleaseStock, Command::AnnounceCancelled { refund_requested: false }]);
        let f = apply(&s, &SagaEvent::PaymentFailed { reason: "failed".into() }, now(), &t());
        assert_eq!(f.state.cancel_reason, Some(CancelReason::PaymentFailed));
    }

    #[test]
    fn a_payment_timeout_releases_stock_and_voids_the_payment() {
        let s = reserved(&SagaState::placed(now(), &t()));
        let r = apply(&s, &SagaEvent::TimedOut, now(), &t());
        assert_eq!(r.state.cancel_reason, Some(CancelReason::Timeout));
        assert_eq!(
            r.commands,
            vec![Command::ReleaseStock, Command::RefundPayment, Command::AnnounceCancelled { refund_requested: true }]
        );
    }

    #[test]
    fn late_replies_are_compensated_not_applied() {
        let s = SagaState::placed(now(), &t());
        let cancelled = apply(&s, &SagaEvent::TimedOut, now(), &t()).state;
        let late = apply(&cancelled, &SagaEvent::StockReserved { expires_at: now() }, now(), &t());
        assert_eq!(late.state.status, OrderStatus::Cancelled);
        assert_eq!(late.commands, vec![Command::ReleaseStock]);
        let paid = apply(&cancelled, &SagaEvent::PaymentSucceeded { payment_id: Uuid::nil() }, now(), &t());
        assert_eq!(paid.state.status, OrderStatus::Cancelled);
        assert_eq!(paid.commands, vec![Command::RefundPayment]);
    }

    #[test]
    fn a_repeated_reply_changes_nothing() {
        let s = reserved(&SagaState::placed(now(), &t()));
        let again = apply(&s, &SagaEvent::StockReserved { expires_at: now() }, now(), &t());
        assert_eq!(again.state, s);
        assert!(again.commands.is_empty());
    }

    #[test]
    fn pix_waits_for_the_customer_but_not_past_the_stock_hold() {
        let s = reserved(&SagaState::placed(now(), &t()));
        let r = apply(&s, &SagaEvent::PaymentPending { expires_at: now() + Duration::minutes(30) }, now(), &t());
        assert_eq!(r.state.step, Step::AwaitingPix);
        assert_eq!(r.state.deadline, Some(now() + Duration::minutes(15)));
    }

    #[test]
    fn the_customer_may_cancel_until_shipment() {
        let s = reserved(&SagaState::placed(now(), &t()));
        let confirmed = apply(&s, &SagaEvent::PaymentSucceeded { payment_id: Uuid::nil() }, now(), &t()).state;
        let c = cancel_by_customer(&confirmed).unwrap();
        assert_eq!(c.state.cancel_reason, Some(CancelReason::CustomerRequest));
        assert_eq!(
            c.commands,
            vec![Command::ReleaseStock, Command::RefundPayment, Command::AnnounceCancelled { refund_requested: true }]
        );
        assert!(cancel_by_customer(&c.state).unwrap().commands.is_empty(), "cancelling twice is a no-op");
        let shipped =
            apply(&confirmed, &SagaEvent::ShipmentScheduled { tracking_code: "AA1BR".into() }, now(), &t()).state;
        assert_eq!(cancel_by_customer(&shipped), Err(CancelRefused::Shipped));
    }

    #[test]
    fn a_reservation_that_lapses_while_paying_cancels_and_refunds() {
        let s = reserved(&SagaState::placed(now(), &t()));
        let r = apply(&s, &SagaEvent::StockReleased { reason: "expired".into() }, now(), &t());
        assert_eq!(r.state.status, OrderStatus::Cancelled);
        assert!(r.commands.contains(&Command::RefundPayment));
    }
}
