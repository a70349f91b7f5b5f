//! Payments' pure domain: a payment's states and the rules that move it,
//! the provider's answers as the domain sees them, and the replies each
//! state announces. No I/O here.
//!
//! # States
//! ```text
//! requested ──charge──▶ captured ──refund──▶ refunding ──▶ refunded
//!     │  │                 ▲
//!     │  ├─PIX──▶ pending ─┘ (signed webhook)
//!     │  ├─decline / 400──▶ failed
//!     │  └─deadline──▶ checking ──(provider has no charge)──▶ failed
//!     └─refund before the outcome──▶ voiding ──▶ voided | refunded
//! ```

pub mod webhook;

use contracts::payments::{
    ChargePaymentV1, PaymentFailedV1, PaymentMethodV1, PaymentPendingV1, PaymentRefundedV1, PaymentSucceededV1,
};
use kernel::money::{Cents, Currency};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// Where a payment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting for (another) charge attempt.
    Requested,
    /// The charge deadline passed: the provider is asked whether a charge
    /// exists before the payment is declared failed.
    Checking,
    /// A PIX charge waits for the customer to pay it.
    Pending,
    Captured,
    Failed,
    /// A captured charge is being given back.
    Refunding,
    Refunded,
    /// The provider refused the refund: an operator must look.
    RefundFailed,
    /// A refund came before the charge's outcome: the provider is asked
    /// whether a charge exists (refunded if so); no new attempt is made.
    Voiding,
    Voided,
}

impl Status {
    pub const ALL: [Status; 10] = [
        Status::Requested,
        Status::Checking,
        Status::Pending,
        Status::Captured,
        Status::Failed,
        Status::Refunding,
        Status::Refunded,
        Status::RefundFailed,
        Status::Voiding,
        Status::Voided,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Requested => "requested",
            Status::Checking => "checking",
            Status::Pending => "pending",
            Status::Captured => "captured",
            Status::Failed => "failed",
            Status::Refunding => "refunding",
            Status::Refunded => "refunded",
            Status::RefundFailed => "refund_failed",
            Status::Voiding => "voiding",
            Status::Voided => "voided",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// States the worker has provider work for.
    pub fn is_due_work(self) -> bool {
        matches!(self, Status::Requested | Status::Checking | Status::Voiding | Status::Refunding)
    }
}

/// How the customer pays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Card { token: String },
    Pix,
}

impl Method {
    pub fn kind(&self) -> &'static str {
        match self {
            Method::Card { .. } => "card",
            Method::Pix => "pix",
        }
    }
}

/// Why a reply says the money was not captured.
pub mod reason {
    pub const DECLINED: &str = "declined";
    pub const INSUFFICIENT_FUNDS: &str = "insufficient_funds";
    pub const FAILED: &str = "failed";
}

/// Outcomes of a refund command, as `PaymentRefundedV1::outcome`.
pub mod outcome {
    pub const REFUNDED: &str = "refunded";
    pub const VOIDED: &str = "voided";
    pub const NOTHING_TO_REFUND: &str = "nothing_to_refund";
}

/// A charge command, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub amount: Cents,
    pub currency: Currency,
    pub method: Method,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChargeRequestError {
    #[error("amount_cents {0}: {1}")]
    Amount(i64, String),
    #[error("amount_cents must be positive")]
    Zero,
    #[error("currency: {0}")]
    Currency(String),
    #[error("the card token must not be empty")]
    EmptyToken,
}

impl TryFrom<&ChargePaymentV1> for ChargeRequest {
    type Error = ChargeRequestError;

    fn try_from(c: &ChargePaymentV1) -> Result<Self, Self::Error> {
        let amount = Cents::parse(c.amount_cents).map_err(|e| ChargeRequestError::Amount(c.amount_cents, e.0))?;
        if amount == Cents::ZERO {
            return Err(ChargeRequestError::Zero);
        }
        let currency = Currency::parse(&c.currency).map_err(|e| ChargeRequestError::Currency(e.0))?;
        let method = match &c.method {
            PaymentMethodV1::Card { token } if token.trim().is_empty() => return Err(ChargeRequestError::EmptyToken),
            PaymentMethodV1::Card { token } => Method::Card { token: token.clone() },
            PaymentMethodV1::Pix => Method::Pix,
        };
        Ok(ChargeRequest { order_id: c.order_id, customer_id: c.customer_id, amount, currency, method })
    }
}

/// The provider idempotency key of an order's charge: every attempt, by any
/// replica, sends the same one, so the provider charges at most once.
pub fn charge_key(order_id: Uuid) -> String {
    format!("order-{order_id}-charge")
}

/// The provider idempotency key of an order's refund.
pub fn refund_key(order_id: Uuid) -> String {
    format!("order-{order_id}-refund")
}

/// A message id and correlation id: the command a later reply answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cause {
    pub message_id: Uuid,
    pub correlation_id: Uuid,
}

/// One payment (one per order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: Uuid,
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub amount_cents: i64,
    pub currency: String,
    pub method: Method,
    pub status: Status,
    pub idempotency_key: String,
    pub provider_charge_id: Option<String>,
    pub pix_code: Option<String>,
    pub pix_expires_at: Option<OffsetDateTime>,
    pub failure_reason: Option<String>,
    pub failure_detail: Option<String>,
    pub refunded_cents: i64,
    pub provider_refund_id: Option<String>,
    pub announce_refund: bool,
    pub charge_cause: Cause,
    pub refund_cause: Option<Cause>,
    pub attempts: i32,
    pub next_attempt_at: OffsetDateTime,
    pub lease_id: Option<Uuid>,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub captured_at: Option<OffsetDateTime>,
}

/// A reply to one of the saga's commands.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Succeeded(PaymentSucceededV1),
    Pending(PaymentPendingV1),
    Failed(PaymentFailedV1),
    Refunded(PaymentRefundedV1),
}

/// A charge as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderCharge {
    pub id: String,
    pub status: ChargeStatus,
    pub amount_cents: i64,
    pub failure_code: Option<String>,
    pub pix_code: Option<String>,
    pub pix_expires_at: Option<OffsetDateTime>,
    pub refunded_cents: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeStatus {
    Succeeded,
    Pending,
    Failed,
}

/// A refund the provider made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRefund {
    pub id: String,
    pub amount_cents: i64,
}

/// The reply reason for a declined charge's `failure_code`.
pub fn decline_reason(failure_code: Option<&str>) -> &'static str {
    match failure_code {
        Some("insufficient_funds") => reason::INSUFFICIENT_FUNDS,
        _ => reason::DECLINED,
    }
}

/// What the void check decided.
#[derive(Debug, Clone, PartialEq)]
pub enum VoidStep {
    /// A captured charge exists: refund it.
    Refund { charge_id: String },
    /// Nothing was captured: the payment is voided.
    Done(Option<Reply>),
}

/// What a refund command asks of the worker.
#[derive(Debug, Clone, PartialEq)]
pub enum RefundStep {
    /// Answer now.
    Reply(Reply),
    /// The worker has provider work to do (refund or void check).
    Work,
    /// The refund is already under way; its reply will come.
    Nothing,
}

impl Payment {
    /// A new payment for a charge command, waiting for its first attempt.
    pub fn request(req: ChargeRequest, cause: Cause, now: OffsetDateTime) -> Payment {
        let now = kernel::time::stored(now);
        Payment {
            id: Uuid::now_v7(),
            order_id: req.order_id,
            customer_id: req.customer_id,
            amount_cents: i64::from(req.amount),
            currency: req.currency.code().to_string(),
            idempotency_key: charge_key(req.order_id),
            method: req.method,
            status: Status::Requested,
            provider_charge_id: None,
            pix_code: None,
            pix_expires_at: None,
            failure_reason: None,
            failure_detail: None,
            refunded_cents: 0,
            provider_refund_id: None,
            announce_refund: true,
            charge_cause: cause,
            refund_cause: None,
            attempts: 0,
            next_attempt_at: now,
            lease_id: None,
            last_error: None,
            created_at: now,
            updated_at: now,
            captured_at: None,
        }
    }

    /// A payment refused at once: the order was cancelled before its charge
    /// command arrived.
    pub fn refused(req: ChargeRequest, cause: Cause, now: OffsetDateTime) -> Payment {
        let mut p = Payment::request(req, cause, now);
        p.status = Status::Failed;
        p.failure_reason = Some(reason::FAILED.into());
        p.failure_detail = Some("cancelled before charge".into());
        p
    }

    /// The reply that announces the charge's outcome, once there is one.
    pub fn charge_reply(&self) -> Option<Reply> {
        match self.status {
            Status::Captured => Some(Reply::Succeeded(PaymentSucceededV1 {
                order_id: self.order_id,
                payment_id: self.id,
                provider_charge_id: self.provider_charge_id.clone().unwrap_or_default(),
                amount_cents: self.amount_cents,
                currency: self.currency.clone(),
                method: self.method.kind().to_string(),
                captured_at: self.captured_at.unwrap_or(self.updated_at),
            })),
            Status::Pending => Some(Reply::Pending(PaymentPendingV1 {
                order_id: self.order_id,
                payment_id: self.id,
                provider_charge_id: self.provider_charge_id.clone().unwrap_or_default(),
                pix_code: self.pix_code.clone(),
                expires_at: self.pix_expires_at.unwrap_or(self.updated_at),
            })),
            Status::Failed => Some(Reply::Failed(PaymentFailedV1 {
                order_id: self.order_id,
                payment_id: self.id,
                reason: self.failure_reason.clone().unwrap_or_else(|| reason::FAILED.into()),
                detail: self.failure_detail.clone().unwrap_or_default(),
            })),
            _ => None,
        }
    }

    /// The reply that announces the refund's outcome, once there is one.
    pub fn refund_reply(&self) -> Option<Reply> {
        let outcome = match self.status {
            Status::Refunded => outcome::REFUNDED,
            Status::Voided => outcome::VOIDED,
            Status::Failed => outcome::NOTHING_TO_REFUND,
            _ => return None,
        };
        Some(Reply::Refunded(PaymentRefundedV1 {
            order_id: self.order_id,
            payment_id: Some(self.id),
            outcome: outcome.to_string(),
            amount_cents: if self.status == Status::Refunded { self.refunded_cents } else { 0 },
        }))
    }

    /// Due for the worker now, without taking the lease of an attempt in flight.
    fn reschedule_now(&mut self, now: OffsetDateTime) {
        self.updated_at = kernel::time::stored(now);
        self.next_attempt_at = self.updated_at;
    }

    /// A state change by the holder of the lease (or with no attempt in
    /// flight): due now, lease released.
    fn touch(&mut self, now: OffsetDateTime) {
        self.updated_at = kernel::time::stored(now);
        self.next_attempt_at = self.updated_at;
        self.lease_id = None;
        self.last_error = None;
    }

    fn capture(&mut self, charge_id: &str, now: OffsetDateTime) {
        self.touch(now);
        self.status = Status::Captured;
        self.provider_charge_id = Some(charge_id.to_string());
        self.captured_at = Some(self.updated_at);
    }

    fn fail(&mut self, reason: &str, detail: String, now: OffsetDateTime) {
        self.touch(now);
        self.status = Status::Failed;
        self.failure_reason = Some(reason.to_string());
        self.failure_detail = Some(detail);
    }

    /// The provider answered a charge attempt with `charge`.
    pub fn on_charge_answer(&mut self, charge: &ProviderCharge, now: OffsetDateTime) -> Option<Reply> {
        self.provider_charge_id.get_or_insert_with(|| charge.id.clone());
        if !matches!(self.status, Status::Requested | Status::Checking) {
            // A refund (voiding: the void check will find this charge) or a
            // webhook (already captured) came first.
            self.touch(now);
            return None;
        }
        match charge.status {
            ChargeStatus::Succeeded => self.capture(&charge.id, now),
            ChargeStatus::Pending => {
                self.touch(now);
                self.status = Status::Pending;
                self.provider_charge_id = Some(charge.id.clone());
                self.pix_code = charge.pix_code.clone();
                self.pix_expires_at = charge.pix_expires_at;
            }
            ChargeStatus::Failed => {
                let code = charge.failure_code.as_deref();
                let detail = format!("the provider declined the charge ({})", code.unwrap_or("no code"));
                self.fail(decline_reason(code), detail, now);
            }
        }
        self.charge_reply()
    }

    /// The provider refused the charge request itself (a 4xx): retrying
    /// cannot help.
    pub fn on_charge_rejected(&mut self, message: &str, now: OffsetDateTime) -> Option<Reply> {
        if self.status != Status::Requested {
            self.touch(now);
            return None;
        }
        self.fail(reason::FAILED, format!("the provider refused the charge: {message}"), now);
        self.charge_reply()
    }

    /// The provider could not be reached (or the breaker is open): try
    /// again after `delay`. A payment past its deadline waits in `checking`.
    pub fn on_provider_unavailable(&mut self, error: &str, delay: Duration, past_deadline: bool, now: OffsetDateTime) {
        let now = kernel::time::stored(now);
        if past_deadline && self.status == Status::Requested {
            self.status = Status::Checking;
        }
        self.attempts = self.attempts.saturating_add(1);
        self.updated_at = now;
        self.next_attempt_at = now + delay;
        self.lease_id = None;
        self.last_error = Some(error.to_string());
    }

    /// After the charge deadline: the provider's charges for the order say
    /// whether the payment failed or a charge exists after all.
    pub fn on_check(&mut self, charges: &[ProviderCharge], now: OffsetDateTime) -> Option<Reply> {
        if !matches!(self.status, Status::Requested | Status::Checking) {
            self.touch(now);
            return None;
        }
        match best_charge(charges) {
            Some(charge) => self.on_charge_answer(charge, now),
            None => {
                self.fail(reason::FAILED, "the payment provider could not be reached in time".into(), now);
                self.charge_reply()
            }
        }
    }

    /// A refund command arrived.
    pub fn on_refund_command(&mut self, cause: Cause, now: OffsetDateTime) -> RefundStep {
        match self.status {
            // A charge attempt may be in flight: its lease is kept, so the
            // void check runs only once that attempt is over (or its lease
            // expired), and sees the charge the attempt may have made.
            Status::Requested | Status::Checking | Status::Pending => {
                self.refund_cause = Some(cause);
                self.announce_refund = true;
                self.reschedule_now(now);
                self.status = Status::Voiding;
                RefundStep::Work
            }
            Status::Captured => {
                self.refund_cause = Some(cause);
                self.announce_refund = true;
                self.reschedule_now(now);
                self.status = Status::Refunding;
                RefundStep::Work
            }
            Status::Voiding | Status::Refunding if self.announce_refund => RefundStep::Nothing,
            // Giving back a late PIX payment on our own account: the saga's
            // refund now waits for the same work, and is announced.
            Status::Voiding | Status::Refunding => {
                self.refund_cause = Some(cause);
                self.announce_refund = true;
                self.updated_at = kernel::time::stored(now);
                RefundStep::Nothing
            }
            Status::RefundFailed => RefundStep::Nothing,
            Status::Failed | Status::Refunded | Status::Voided => match self.refund_reply() {
                Some(r) => RefundStep::Reply(r),
                None => RefundStep::Nothing,
            },
        }
    }

    /// The provider's charges, asked while voiding.
    pub fn on_void_check(&mut self, charges: &[ProviderCharge], now: OffsetDateTime) -> VoidStep {
        let refundable =
            charges.iter().find(|c| c.status == ChargeStatus::Succeeded && c.refunded_cents < c.amount_cents);
        if let Some(charge) = refundable {
            self.provider_charge_id = Some(charge.id.clone());
            self.status = Status::Refunding;
            return VoidStep::Refund { charge_id: charge.id.clone() };
        }
        if let Some(charge) = charges.iter().find(|c| c.status == ChargeStatus::Succeeded) {
            // Already refunded in full at the provider (by an earlier
            // attempt whose answer was lost).
            self.provider_charge_id = Some(charge.id.clone());
            self.touch(now);
            self.status = Status::Refunded;
            self.refunded_cents = charge.refunded_cents;
            return VoidStep::Done(self.announced_refund());
        }
        self.touch(now);
        self.status = Status::Voided;
        VoidStep::Done(self.announced_refund())
    }

    /// The provider refunded the charge.
    pub fn on_refunded(&mut self, refund: &ProviderRefund, now: OffsetDateTime) -> Option<Reply> {
        self.touch(now);
        self.status = Status::Refunded;
        self.refunded_cents = refund.amount_cents;
        self.provider_refund_id = Some(refund.id.clone());
        self.announced_refund()
    }

    /// The provider refused the refund (a 4xx): an operator must look.
    pub fn on_refund_rejected(&mut self, message: &str, now: OffsetDateTime) {
        self.touch(now);
        self.status = Status::RefundFailed;
        self.last_error = Some(message.to_string());
    }

    fn announced_refund(&self) -> Option<Reply> {
        if self.announce_refund { self.refund_reply() } else { None }
    }

    /// The provider says (signed webhook) the charge was paid.
    pub fn on_paid(&mut self, charge_id: &str, now: OffsetDateTime) -> Option<Reply> {
        match self.status {
            Status::Requested | Status::Checking | Status::Pending => {
                self.capture(charge_id, now);
                self.charge_reply()
            }
            // Money arrived for an order that is no longer charged: give it
            // back, without a reply nobody waits for.
            Status::Voided | Status::Failed => {
                self.touch(now);
                self.provider_charge_id = Some(charge_id.to_string());
                self.status = Status::Refunding;
                self.announce_refund = false;
                None
            }
            // The void check will find the charge; the rest already know it.
            Status::Voiding | Status::Captured | Status::Refunding | Status::Refunded | Status::RefundFailed => None,
        }
    }

    /// The provider says (signed webhook) a pending charge failed or expired.
    pub fn on_unpaid(&mut self, failure_code: Option<&str>, now: OffsetDateTime) -> Option<Reply> {
        if self.status != Status::Pending {
            return None;
        }
        let detail = format!("the PIX charge was not paid ({})", failure_code.unwrap_or("expired"));
        self.fail(reason::FAILED, detail, now);
        self.charge_reply()
    }
}

/// The answer to a refund for an order that has no payment.
pub fn nothing_charged(order_id: Uuid) -> Reply {
    Reply::Refunded(PaymentRefundedV1 {
        order_id,
        payment_id: None,
        outcome: outcome::NOTHING_TO_REFUND.to_string(),
        amount_cents: 0,
    })
}

/// The charge that decides an order's outcome: a captured one first, then a
/// pending one, then a failed one.
pub fn best_charge(charges: &[ProviderCharge]) -> Option<&ProviderCharge> {
    [ChargeStatus::Succeeded, ChargeStatus::Pending, ChargeStatus::Failed]
        .into_iter()
        .find_map(|s| charges.iter().find(|c| c.status == s))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cause() -> Cause {
        Cause { message_id: Uuid::now_v7(), correlation_id: Uuid::now_v7() }
    }

    fn payment(method: Method) -> Payment {
        let req = ChargeRequest {
            order_id: Uuid::now_v7(),
            customer_id: Uuid::now_v7(),
            amount: Cents::parse(1000).unwrap(),
            currency: Currency::Brl,
            method,
        };
        Payment::request(req, cause(), OffsetDateTime::now_utc())
    }

    fn charge(status: ChargeStatus, code: Option<&str>) -> ProviderCharge {
        ProviderCharge {
            id: "ch_1".into(),
            status,
            amount_cents: 1000,
            failure_code: code.map(str::to_string),
            pix_code: None,
            pix_expires_at: None,
            refunded_cents: 0,
        }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[test]
    fn statuses_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("nope"), None);
    }

    #[test]
    fn commands_that_cannot_be_charged_are_refused() {
        let mut c = ChargePaymentV1 {
            order_id: Uuid::nil(),
            customer_id: Uuid::nil(),
            amount_cents: 0,
            currency: "BRL".into(),
            method: PaymentMethodV1::Pix,
        };
        assert_eq!(ChargeRequest::try_from(&c), Err(ChargeRequestError::Zero));
        c.amount_cents = -5;
        assert!(matches!(ChargeRequest::try_from(&c), Err(ChargeRequestError::Amount(..))));
        c.amount_cents = 5;
        c.currency = "XYZ".into();
        assert!(matches!(ChargeRequest::try_from(&c), Err(ChargeRequestError::Currency(_))));
        c.currency = "BRL".into();
        c.method = PaymentMethodV1::Card { token: " ".into() };
        assert_eq!(ChargeRequest::try_from(&c), Err(ChargeRequestError::EmptyToken));
        c.method = PaymentMethodV1::Card { token: "tok_visa".into() };
        assert!(ChargeRequest::try_from(&c).is_ok());
    }

    #[test]
    fn a_succeeded_charge_captures_and_announces_success() {
        let mut p = payment(Method::Card { token: "tok".into() });
        assert_eq!(p.idempotency_key, format!("order-{}-charge", p.order_id));
        let reply = p.on_charge_answer(&charge(ChargeStatus::Succeeded, None), now()).unwrap();
        assert_eq!(p.status, Status::Captured);
        let Reply::Succeeded(s) = reply else { panic!("{reply:?}") };
        assert_eq!((s.provider_charge_id.as_str(), s.amount_cents, s.method.as_str()), ("ch_1", 1000, "card"));
        assert_eq!(p.charge_reply(), Some(Reply::Succeeded(s)), "re-announced identically");
    }

    #[test]
    fn declines_name_their_reason() {
        for (code, reason) in [("card_declined", "declined"), ("insufficient_funds", "insufficient_funds")] {
            let mut p = payment(Method::Card { token: "tok".into() });
            let Some(Reply::Failed(f)) = p.on_charge_answer(&charge(ChargeStatus::Failed, Some(code)), now()) else {
                panic!("a failure")
            };
            assert_eq!(f.reason, reason);
            assert_eq!(p.status, Status::Failed);
        }
    }

    #[test]
    fn an_answer_after_a_refund_was_asked_leaves_the_void_check_to_decide() {
        let mut p = payment(Method::Card { token: "tok".into() });
        assert_eq!(p.on_refund_command(cause(), now()), RefundStep::Work);
        assert_eq!(p.status, Status::Voiding);
        assert_eq!(p.on_charge_answer(&charge(ChargeStatus::Succeeded, None), now()), None);
        assert_eq!(p.status, Status::Voiding);
        let step = p.on_void_check(&[charge(ChargeStatus::Succeeded, None)], now());
        assert_eq!(step, VoidStep::Refund { charge_id: "ch_1".into() });
        let Some(Reply::Refunded(r)) = p.on_refunded(&ProviderRefund { id: "re_1".into(), amount_cents: 1000 }, now())
        else {
            panic!("a refund reply")
        };
        assert_eq!((r.outcome.as_str(), r.amount_cents), ("refunded", 1000));
    }

    #[test]
    fn a_void_without_a_captured_charge_is_voided() {
        let mut p = payment(Method::Pix);
        p.on_refund_command(cause(), now());
        let step = p.on_void_check(&[charge(ChargeStatus::Pending, None)], now());
        let VoidStep::Done(Some(Reply::Refunded(r))) = step else { panic!("{step:?}") };
        assert_eq!((r.outcome.as_str(), r.amount_cents), ("voided", 0));
        assert_eq!(p.status, Status::Voided);
        // The PIX is paid after all: the money goes back, unannounced.
        assert_eq!(p.on_paid("ch_1", now()), None);
        assert_eq!((p.status, p.announce_refund), (Status::Refunding, false));
        assert_eq!(p.on_refunded(&ProviderRefund { id: "re".into(), amount_cents: 1000 }, now()), None);
    }

    #[test]
    fn refund_commands_answer_by_state() {
        let mut p = payment(Method::Card { token: "tok".into() });
        p.on_charge_answer(&charge(ChargeStatus::Failed, Some("card_declined")), now());
        let RefundStep::Reply(Reply::Refunded(r)) = p.on_refund_command(cause(), now()) else { panic!() };
        assert_eq!(r.outcome, "nothing_to_refund");
        let mut p = payment(Method::Card { token: "tok".into() });
        p.on_charge_answer(&charge(ChargeStatus::Succeeded, None), now());
        assert_eq!(p.on_refund_command(cause(), now()), RefundStep::Work);
        assert_eq!(p.status, Status::Refunding);
        assert_eq!(p.on_refund_command(cause(), now()), RefundStep::Nothing);
    }

    #[test]
    fn past_the_deadline_no_charge_means_failed_and_a_found_charge_counts() {
        let mut p = payment(Method::Card { token: "tok".into() });
        p.on_provider_unavailable("down", Duration::seconds(1), true, now());
        assert_eq!((p.status, p.attempts), (Status::Checking, 1));
        let Some(Reply::Failed(f)) = p.on_check(&[], now()) else { panic!() };
        assert_eq!(f.reason, "failed");
        let mut p = payment(Method::Card { token: "tok".into() });
        p.on_provider_unavailable("down", Duration::seconds(1), true, now());
        let found = [charge(ChargeStatus::Failed, None), charge(ChargeStatus::Succeeded, None)];
        assert!(matches!(p.on_check(&found, now()), Some(Reply::Succeeded(_))));
    }

    #[test]
    fn a_webhook_captures_a_pending_pix_once() {
        let mut p = payment(Method::Pix);
        let mut pending = charge(ChargeStatus::Pending, None);
        pending.pix_code = Some("000201".into());
        pending.pix_expires_at = Some(now());
        assert!(matches!(p.on_charge_answer(&pending, now()), Some(Reply::Pending(_))));
        assert!(matches!(p.on_paid("ch_1", now()), Some(Reply::Succeeded(_))));
        assert_eq!(p.on_paid("ch_1", now()), None);
        assert_eq!(p.status, Status::Captured);
    }
}
