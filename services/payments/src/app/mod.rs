//! Use cases: domain → repository → outbox, each in one transaction (the
//! consumer's for commands, which also holds the inbox record).

pub mod webhook;
pub mod worker;

use contracts::payments::{ChargePaymentV1, RefundPaymentV1};
use contracts::{Envelope, Message};
use platform::http::{Caller, page};
use platform::messaging::{HandlerError, outbox};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{self, Cause, ChargeRequest, Payment, RefundStep, Reply};
use crate::{PaymentsError, repo};

impl Cause {
    /// The command `e` as the cause of later replies.
    pub fn of<T>(e: &Envelope<T>) -> Cause {
        Cause { message_id: e.message_id, correlation_id: e.correlation_id }
    }
}

/// An envelope answering the command `cause`: its correlation, and the
/// command as causation (what `Envelope::caused_by` gives, for a command
/// handled earlier).
fn reply_to<T: Message>(cause: Cause, payload: T) -> Envelope<T> {
    Envelope { correlation_id: cause.correlation_id, causation_id: Some(cause.message_id), ..Envelope::new(payload) }
}

/// Writes `reply` to the outbox, as an answer to `cause`.
pub(crate) async fn announce(tx: &mut PgConnection, reply: Reply, cause: Cause) -> sqlx::Result<()> {
    match reply {
        Reply::Succeeded(m) => outbox::enqueue(tx, &reply_to(cause, m)).await,
        Reply::Pending(m) => outbox::enqueue(tx, &reply_to(cause, m)).await,
        Reply::Failed(m) => outbox::enqueue(tx, &reply_to(cause, m)).await,
        Reply::Refunded(m) => outbox::enqueue(tx, &reply_to(cause, m)).await,
    }
}

/// The command a reply of `p` answers.
pub(crate) fn cause_of(p: &Payment, reply: &Reply) -> Cause {
    match reply {
        Reply::Refunded(_) => p.refund_cause.unwrap_or(p.charge_cause),
        _ => p.charge_cause,
    }
}

/// `ChargePaymentV1`: records the payment for the worker to charge, refuses
/// it if the order was cancelled first, and re-announces the outcome of a
/// payment the order already has.
#[tracing::instrument(skip_all, fields(order_id = %cmd.payload.order_id))]
pub async fn charge_payment(
    tx: &mut PgConnection,
    cmd: &Envelope<ChargePaymentV1>,
    req: ChargeRequest,
) -> Result<(), HandlerError> {
    let now = kernel::time::now();
    repo::lock_order(tx, req.order_id).await?;
    if let Some(existing) = repo::lock_by_order(tx, req.order_id).await? {
        if existing.amount_cents != i64::from(req.amount) || existing.currency != req.currency.code() {
            tracing::warn!(payment_id = %existing.id, "a repeated charge command differs from the first; the first stands");
        }
        match existing.charge_reply() {
            Some(reply) => {
                tracing::info!(payment_id = %existing.id, status = existing.status.as_str(), "charge repeated: outcome announced again");
                announce(tx, reply, Cause::of(cmd)).await?;
            }
            None => {
                tracing::info!(payment_id = %existing.id, status = existing.status.as_str(), "charge repeated: nothing to do")
            }
        }
        return Ok(());
    }
    if repo::tombstone_exists(tx, req.order_id).await? {
        let payment = Payment::refused(req, Cause::of(cmd), now);
        repo::insert_payment(tx, &payment).await?;
        if let Some(reply) = payment.charge_reply() {
            announce(tx, reply, Cause::of(cmd)).await?;
        }
        tracing::warn!(payment_id = %payment.id, "charge refused: the order was cancelled before its charge");
        return Ok(());
    }
    let payment = Payment::request(req, Cause::of(cmd), now);
    repo::insert_payment(tx, &payment).await?;
    repo::set_traceparent(tx, payment.id, platform::telemetry::current_traceparent().as_deref()).await?;
    repo::notify_work(tx).await?;
    tracing::info!(payment_id = %payment.id, amount_cents = payment.amount_cents, method = payment.method.kind(), "payment requested");
    Ok(())
}

/// `RefundPaymentV1`: gives a captured payment back, stops one whose outcome
/// is not known yet (voiding), answers at once when there is nothing to do,
/// and tombstones an order never charged so its charge is refused later.
#[tracing::instrument(skip_all, fields(order_id = %cmd.payload.order_id))]
pub async fn refund_payment(tx: &mut PgConnection, cmd: &Envelope<RefundPaymentV1>) -> Result<(), HandlerError> {
    let now = kernel::time::now();
    let order_id = cmd.payload.order_id;
    repo::lock_order(tx, order_id).await?;
    let Some(mut payment) = repo::lock_by_order(tx, order_id).await? else {
        repo::insert_tombstone(tx, order_id, &cmd.payload.reason, now).await?;
        announce(tx, domain::nothing_charged(order_id), Cause::of(cmd)).await?;
        tracing::info!("refund before any charge: the order is tombstoned");
        return Ok(());
    };
    match payment.on_refund_command(Cause::of(cmd), now) {
        RefundStep::Reply(reply) => {
            tracing::info!(payment_id = %payment.id, status = payment.status.as_str(), "refund answered at once");
            announce(tx, reply, Cause::of(cmd)).await?;
        }
        RefundStep::Work => {
            repo::update_payment(tx, &payment).await?;
            repo::set_traceparent(tx, payment.id, platform::telemetry::current_traceparent().as_deref()).await?;
            repo::notify_work(tx).await?;
            tracing::info!(payment_id = %payment.id, status = payment.status.as_str(), "refund under way");
        }
        RefundStep::Nothing => {
            repo::update_payment(tx, &payment).await?;
            tracing::info!(payment_id = %payment.id, status = payment.status.as_str(), "refund already under way");
        }
    }
    Ok(())
}

/// One payment, if the caller may see it.
pub async fn get_payment(db: &PgPool, caller: &Caller, id: Uuid) -> Result<Payment, PaymentsError> {
    caller.require_user()?;
    let mut conn = db.acquire().await?;
    match repo::list_payments(&mut conn, Some(id), None, None, None, 1).await?.pop() {
        Some(p) if caller.may_access(p.customer_id) => Ok(p),
        _ => Err(PaymentsError::NotFound),
    }
}

/// The caller's payments (anyone's for an admin), optionally of one order.
pub async fn list_payments(
    db: &PgPool,
    caller: &Caller,
    order_id: Option<Uuid>,
    cursor: Option<Uuid>,
    limit: Option<i64>,
) -> Result<(Vec<Payment>, Option<Uuid>), PaymentsError> {
    let me = caller.require_user()?;
    let customer = if caller.is_admin() { None } else { Some(me) };
    let limit = page::limit(limit);
    let mut conn = db.acquire().await?;
    let items = repo::list_payments(&mut conn, None, order_id, customer, cursor, limit + 1).await?;
    Ok(page::cut(items, limit, |p| p.id))
}
