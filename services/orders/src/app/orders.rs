//! Placing, reading, listing and cancelling orders.

use contracts::Envelope;
use platform::http::{Caller, page};
use platform::messaging::outbox;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::saga::{self, Cause};
use crate::domain::saga::{self as machine, CancelRefused};
use crate::domain::{NewOrder, Order, Timeouts};
use crate::repo::TimelineRow;
use crate::{OrdersError, events, repo};

/// Checks that the caller may place an order for `customer_id`.
pub fn authorize_placing(caller: &Caller, customer_id: Uuid) -> Result<(), OrdersError> {
    caller.require_user()?;
    if !caller.may_access(customer_id) {
        return Err(OrdersError::Forbidden("you may only place orders for yourself"));
    }
    Ok(())
}

/// A customer's order comes through the cart's checkout, which prices it
/// from the catalog; only an admin places one directly.
pub fn authorize_channel(caller: &Caller, channel: Option<&str>) -> Result<(), OrdersError> {
    if caller.is_admin() || channel == Some("cart") {
        return Ok(());
    }
    Err(OrdersError::Forbidden("orders are placed through the cart's checkout"))
}

/// Stores a new `PENDING` order, its `OrderPlacedV1` and the saga's first
/// command (`ReserveStockV1`) in one transaction.
///
/// With an idempotency key (kept with the order, per caller, for good), a
/// retry returns the first order even when the process died before the
/// HTTP layer stored its response; the same key for a different order is
/// refused.
#[tracing::instrument(skip_all, fields(customer_id = %new.customer_id))]
pub async fn place_order(
    db: &PgPool,
    caller: &Caller,
    new: NewOrder,
    key: Option<&str>,
    timeouts: &Timeouts,
) -> Result<Order, OrdersError> {
    authorize_placing(caller, new.customer_id)?;
    let key = match (key, caller.user_id) {
        (Some(k), Some(who)) => Some(format!("{who}:{k}")),
        _ => None,
    };
    let order = Order::place(new.clone(), OffsetDateTime::now_utc(), timeouts);
    let placed = Envelope::new(events::order_placed(&order));
    let mut tx = db.begin().await?;
    if !repo::insert_order(&mut tx, &order, key.as_deref(), placed.correlation_id).await? {
        let existing = repo::fetch_order_by_key(&mut tx, order.customer_id, key.as_deref().unwrap_or_default()).await?;
        tx.rollback().await?;
        return match existing {
            Some(o) if o.matches(&new) => Ok(o),
            Some(_) => Err(OrdersError::KeyReused),
            None => Err(OrdersError::NotFound),
        };
    }
    outbox::enqueue(&mut tx, &placed).await?;
    outbox::enqueue(&mut tx, &Envelope::caused_by(&placed, events::reserve_stock(&order))).await?;
    repo::append_timeline(&mut tx, order.id, &machine::placed_entries(), order.created_at).await?;
    tx.commit().await?;
    metrics::counter!("orders_placed_total").increment(1);
    tracing::info!(order_id = %order.id, total_cents = order.total.get(), "order placed");
    Ok(order)
}

/// The order, if the caller may see it; another customer's order is "not found".
#[tracing::instrument(skip_all, fields(order_id = %id))]
pub async fn get_order(db: &PgPool, caller: &Caller, id: Uuid) -> Result<Order, OrdersError> {
    caller.require_user()?;
    let mut conn = db.acquire().await?;
    match repo::fetch_order(&mut conn, id).await? {
        Some(o) if caller.may_access(o.customer_id) => Ok(o),
        _ => Err(OrdersError::NotFound),
    }
}

/// A page of orders: a customer's own, or anyone's for an admin.
#[tracing::instrument(skip_all)]
pub async fn list_orders(
    db: &PgPool,
    caller: &Caller,
    customer_id: Option<Uuid>,
    cursor: Option<Uuid>,
    limit: Option<i64>,
) -> Result<(Vec<Order>, Option<Uuid>), OrdersError> {
    let me = caller.require_user()?;
    let customer_id = match customer_id {
        Some(c) if !caller.may_access(c) => return Err(OrdersError::Forbidden("you may only list your own orders")),
        Some(c) => Some(c),
        None if caller.is_admin() => None,
        None => Some(me),
    };
    let limit = page::limit(limit);
    let mut conn = db.acquire().await?;
    let orders = repo::list_orders(&mut conn, customer_id, cursor, limit + 1).await?;
    Ok(page::cut(orders, limit, |o| o.id))
}

/// What happened to the order so far, oldest first.
#[tracing::instrument(skip_all, fields(order_id = %id))]
pub async fn timeline(db: &PgPool, caller: &Caller, id: Uuid) -> Result<(Order, Vec<TimelineRow>), OrdersError> {
    let order = get_order(db, caller, id).await?;
    let mut conn = db.acquire().await?;
    let rows = repo::fetch_timeline(&mut conn, id).await?;
    Ok((order, rows))
}

/// The customer (or an admin) cancels the order: allowed until it ships;
/// the saga releases the stock and refunds or voids the payment.
#[tracing::instrument(skip_all, fields(order_id = %id))]
pub async fn cancel_order(db: &PgPool, caller: &Caller, id: Uuid) -> Result<Order, OrdersError> {
    caller.require_user()?;
    let mut tx = db.begin().await?;
    let order = match repo::lock_order(&mut tx, id).await? {
        Some(o) if caller.may_access(o.customer_id) => o,
        _ => return Err(OrdersError::NotFound),
    };
    let transition = machine::cancel_by_customer(&order.saga).map_err(|e| match e {
        CancelRefused::Shipped => OrdersError::Conflict("the order has already shipped"),
    })?;
    let now = kernel::time::now();
    let order = saga::commit_transition(&mut tx, order, transition, Cause::Internal, now).await?;
    tx.commit().await?;
    Ok(order)
}
