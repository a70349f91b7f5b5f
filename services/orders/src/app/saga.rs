//! Driving the saga: lock the order, apply the pure state machine
//! ([`crate::domain::saga`]), store the new state and the timeline, and put
//! the commands and events that follow in the outbox, in one transaction.

use contracts::{Envelope, Message};
use platform::messaging::outbox;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::saga::{self as machine, Transition};
use crate::domain::{Command, Order, SagaEvent, Step, Timeouts};
use crate::{OrdersError, events, repo};

/// What set the saga moving: a reply (the messages that follow are caused
/// by it) or the order's own clock or customer.
#[derive(Clone, Copy)]
pub enum Cause<'a> {
    Message(&'a Envelope<serde_json::Value>),
    Internal,
}

/// Applies `event` to the order inside `tx`. `None` when there is no such
/// order.
#[tracing::instrument(skip_all, fields(order_id = %order_id, event = ?event))]
pub async fn advance(
    tx: &mut PgConnection,
    order_id: Uuid,
    event: &SagaEvent,
    cause: Cause<'_>,
    timeouts: &Timeouts,
) -> Result<Option<Order>, sqlx::Error> {
    let Some(order) = repo::lock_order(tx, order_id).await? else {
        return Ok(None);
    };
    let now = kernel::time::now();
    let t = machine::apply(&order.saga, event, now, timeouts);
    if *event == SagaEvent::TimedOut && t.state != order.saga {
        metrics::counter!("orders_saga_timeouts_total", "step" => order.saga.step.as_str()).increment(1);
    }
    Ok(Some(commit_transition(tx, order, t, cause, now).await?))
}

/// Stores `t` and sends its commands; returns the order as it now is.
pub async fn commit_transition(
    tx: &mut PgConnection,
    mut order: Order,
    t: Transition,
    cause: Cause<'_>,
    now: OffsetDateTime,
) -> Result<Order, sqlx::Error> {
    let changed = t.state != order.saga;
    order.saga = t.state;
    if changed {
        repo::save_saga(tx, order.id, &order.saga, now).await?;
    }
    repo::append_timeline(tx, order.id, &t.entries, now).await?;
    let correlation = repo::correlation_id(tx, order.id).await?.unwrap_or(order.id);
    for command in &t.commands {
        send(tx, &order, command, cause, correlation, now).await?;
    }
    if changed {
        tracing::info!(
            status = order.saga.status.as_str(),
            step = order.saga.step.as_str(),
            reason = order.saga.cancel_reason.map(|r| r.as_str()),
            "saga advanced"
        );
    }
    Ok(order)
}

async fn send(
    tx: &mut PgConnection,
    order: &Order,
    command: &Command,
    cause: Cause<'_>,
    correlation: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    match command {
        Command::ReserveStock => enqueue(tx, cause, correlation, events::reserve_stock(order)).await,
        Command::ChargePayment => match events::charge_payment(order) {
            Some(charge) => enqueue(tx, cause, correlation, charge).await,
            None => {
                tracing::warn!("an order without a payment method cannot be charged");
                Ok(())
            }
        },
        Command::CommitStock => enqueue(tx, cause, correlation, events::commit_stock(order)).await,
        Command::ReleaseStock => enqueue(tx, cause, correlation, events::release_stock(order)).await,
        Command::RefundPayment => enqueue(tx, cause, correlation, events::refund_payment(order)).await,
        Command::AnnounceConfirmed => enqueue(tx, cause, correlation, events::order_confirmed(order, now)).await,
        Command::AnnounceCancelled { refund_requested } => {
            enqueue(tx, cause, correlation, events::order_cancelled(order, *refund_requested, now)).await
        }
    }
}

async fn enqueue<T: Message>(
    tx: &mut PgConnection,
    cause: Cause<'_>,
    correlation: Uuid,
    payload: T,
) -> sqlx::Result<()> {
    let envelope = match cause {
        Cause::Message(m) => Envelope::caused_by(m, payload),
        Cause::Internal => Envelope { correlation_id: correlation, ..Envelope::new(payload) },
    };
    outbox::enqueue(tx, &envelope).await
}

/// Cancels every order whose current step's deadline has passed (at most
/// `batch` per call, each in its own transaction); returns how many.
pub async fn sweep_timeouts(db: &PgPool, timeouts: &Timeouts, batch: i64) -> Result<usize, OrdersError> {
    let mut done = 0;
    loop {
        let mut tx = db.begin().await?;
        let ids = repo::claim_timed_out(&mut tx, kernel::time::now(), 1).await?;
        let Some(id) = ids.first().copied() else {
            tx.rollback().await?;
            return Ok(done);
        };
        advance(&mut tx, id, &SagaEvent::TimedOut, Cause::Internal, timeouts).await?;
        tx.commit().await?;
        done += 1;
        if done as i64 >= batch {
            return Ok(done);
        }
    }
}

/// Runs [`sweep_timeouts`] every `every` until `shutdown`.
pub async fn run_timeout_sweeper(
    db: PgPool,
    timeouts: Timeouts,
    every: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    // Exported from the start, so a first timeout shows as an increase.
    for step in [Step::ReservingStock, Step::Charging, Step::AwaitingPix] {
        metrics::counter!("orders_saga_timeouts_total", "step" => step.as_str()).absolute(0);
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match sweep_timeouts(&db, &timeouts, 100).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(orders = n, "saga steps timed out; compensations sent"),
            Err(e) => tracing::warn!(error = %e, "saga timeout sweep failed; retrying"),
        }
    }
}
