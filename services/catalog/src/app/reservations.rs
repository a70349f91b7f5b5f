//! Stock reservations: reserve (all lines or none), release, commit, expire.
//!
//! Each runs in the caller's transaction: the consumer's (which also holds
//! the inbox record) for a command, or one the HTTP handler opens for an
//! operator. Stock rows are always locked in product order, so concurrent
//! reservations queue on the rows they share and never oversell.
//!
//! A command always gets exactly one reply, caused by it: the event of what
//! it changed, or, when it changes nothing, the same answer again (a repeated
//! reserve re-announces the first outcome) or `StockReleasedV1` saying why
//! nothing is held. An operator's HTTP request announces only what it
//! changed; its answer is the HTTP response.
//!
//! Each records the products whose stock it moved in `changes`; whoever
//! commits the transaction invalidates them in the cache afterwards (the
//! operator's use cases and the sweeper here; for a command, the consumer
//! commits after its handler returns, so its `StockChangedV1` events do it).

use std::time::Duration;

use platform::http::Caller;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{CatalogCache, Cause, Changes, announce, now};
use crate::domain::{
    Decision, Movement, Reservation, ReservationRequest, ReservationStatus, Transition, decide, move_stock,
};
use crate::{CatalogError, events, repo};

/// What a reserve did.
#[derive(Debug)]
pub enum Reserve {
    /// The first request for the order: reserved or rejected now.
    Decided(Reservation),
    /// The order already had an outcome, which stands (nothing changed).
    Existing(Reservation),
}

/// What a release or commit did.
#[derive(Debug)]
pub enum Settle {
    /// Stock moved; the reservation is now this.
    Applied(Reservation),
    /// It had already happened (or the reservation had expired, for a
    /// release): nothing moved.
    Repeated(Reservation),
    /// It cannot happen in the reservation's state: nothing moved.
    Refused(Reservation),
    /// The order has no reservation.
    Unknown,
}

/// The reservation endpoints are for operators: admins only.
pub fn authorize_operator(caller: &Caller) -> Result<(), CatalogError> {
    caller.require_user()?;
    if !caller.is_admin() {
        return Err(CatalogError::Forbidden("only admins may operate reservations"));
    }
    Ok(())
}

/// Reserves every line of `request` until now + `ttl`, or nothing.
/// Idempotent per order: the first outcome stands.
#[tracing::instrument(skip_all, fields(order_id = %request.order_id))]
pub async fn reserve(
    tx: &mut PgConnection,
    cause: Cause<'_>,
    request: &ReservationRequest,
    ttl: Duration,
    changes: &mut Changes,
) -> Result<Reserve, CatalogError> {
    repo::lock_order(tx, request.order_id).await?;
    if let Some(existing) = repo::fetch_reservation(tx, request.order_id, false).await? {
        if !existing.asks_for(request) {
            tracing::warn!("a reserve with other lines for an order that already has a reservation; the first stands");
        }
        if cause.is_some() {
            announce_outcome(tx, cause, &existing).await?;
        }
        return Ok(Reserve::Existing(existing));
    }
    let now = now();
    let stock = repo::lock_stock(tx, &request.product_ids()).await?;
    let decision = decide(request, &stock);
    let reservation = Reservation::decided(request, &decision, ttl, cause.map(|c| c.correlation_id), now);
    repo::insert_reservation(tx, &reservation).await?;
    if decision == Decision::Reserve {
        let levels: Vec<_> = stock.into_iter().map(|a| a.level).collect();
        let moved = move_stock(&levels, &reservation.quantities(), Movement::Reserve, now)?;
        repo::update_stock(tx, &moved).await?;
        for level in &moved {
            announce(tx, cause, events::stock_changed(level)).await?;
            changes.product(level.owner_id, level.product_id);
        }
    }
    announce_outcome(tx, cause, &reservation).await?;
    tracing::info!(status = reservation.status.as_str(), reason = reservation.reason, "reservation decided");
    Ok(Reserve::Decided(reservation))
}

/// `StockReservedV1` or `StockRejectedV1`, as first decided.
async fn announce_outcome(tx: &mut PgConnection, cause: Cause<'_>, r: &Reservation) -> sqlx::Result<()> {
    match r.status {
        ReservationStatus::Rejected => announce(tx, cause, events::stock_rejected(r)).await,
        _ => announce(tx, cause, events::stock_reserved(r)).await,
    }
}

/// Answers a reserve command that can never be served as sent; stores nothing.
pub async fn reject_invalid(tx: &mut PgConnection, cause: Cause<'_>, order_id: Uuid) -> Result<(), CatalogError> {
    announce(tx, cause, events::invalid_request(order_id)).await?;
    Ok(())
}

/// Compensation: gives the order's held stock back.
#[tracing::instrument(skip_all, fields(order_id = %order_id))]
pub async fn release(
    tx: &mut PgConnection,
    cause: Cause<'_>,
    order_id: Uuid,
    reason: &str,
    changes: &mut Changes,
) -> Result<Settle, CatalogError> {
    let now = now();
    let Some(r) = repo::fetch_reservation(tx, order_id, true).await? else {
        if cause.is_some() {
            announce(tx, cause, events::stock_released(order_id, "nothing_reserved")).await?;
        }
        return Ok(Settle::Unknown);
    };
    if r.is_due(now) {
        // Its time is over: it expires (and that is the answer).
        return Ok(Settle::Applied(expire(tx, cause, r, changes).await?));
    }
    match r.release(reason, now) {
        Transition::Apply(released) => {
            let movement = if r.status == ReservationStatus::Committed { Movement::Return } else { Movement::Release };
            move_reserved(tx, cause, &released, movement, changes).await?;
            repo::update_reservation(tx, &released).await?;
            announce(tx, cause, events::stock_released(order_id, released.released_reason())).await?;
            tracing::info!(reason, "reservation released");
            Ok(Settle::Applied(released))
        }
        other => {
            if cause.is_some() {
                announce(tx, cause, events::stock_released(order_id, r.released_reason())).await?;
            }
            Ok(match other {
                Transition::Repeat => Settle::Repeated(r),
                _ => Settle::Refused(r),
            })
        }
    }
}

/// The sale: held stock leaves both `on_hand` and `reserved`. Stock that
/// was released or expired is not sold (the command is answered with
/// `StockReleasedV1` saying why nothing is held).
#[tracing::instrument(skip_all, fields(order_id = %order_id))]
pub async fn commit(
    tx: &mut PgConnection,
    cause: Cause<'_>,
    order_id: Uuid,
    changes: &mut Changes,
) -> Result<Settle, CatalogError> {
    let now = now();
    let Some(mut r) = repo::fetch_reservation(tx, order_id, true).await? else {
        if cause.is_some() {
            announce(tx, cause, events::stock_released(order_id, "nothing_reserved")).await?;
        }
        return Ok(Settle::Unknown);
    };
    let mut answered = false;
    if r.is_due(now) {
        r = expire(tx, cause, r, changes).await?;
        answered = true;
    }
    match r.commit(now) {
        Transition::Apply(committed) => {
            move_reserved(tx, cause, &committed, Movement::Commit, changes).await?;
            repo::update_reservation(tx, &committed).await?;
            announce(tx, cause, events::stock_committed(order_id)).await?;
            tracing::info!("reservation committed");
            Ok(Settle::Applied(committed))
        }
        Transition::Repeat => {
            if cause.is_some() {
                announce(tx, cause, events::stock_committed(order_id)).await?;
            }
            Ok(Settle::Repeated(r))
        }
        Transition::Refuse => {
            if cause.is_some() && !answered {
                announce(tx, cause, events::stock_released(order_id, r.released_reason())).await?;
            }
            tracing::warn!(status = r.status.as_str(), "nothing to commit");
            Ok(Settle::Refused(r))
        }
    }
}

/// Moves the stock of every line of `r` (locked in product order) and
/// announces each new level.
async fn move_reserved(
    tx: &mut PgConnection,
    cause: Cause<'_>,
    r: &Reservation,
    movement: Movement,
    changes: &mut Changes,
) -> Result<(), CatalogError> {
    let lines = r.quantities();
    let products: Vec<Uuid> = lines.iter().map(|(p, _)| *p).collect();
    let levels: Vec<_> = repo::lock_stock(tx, &products).await?.into_iter().map(|a| a.level).collect();
    let moved = move_stock(&levels, &lines, movement, r.updated_at)?;
    repo::update_stock(tx, &moved).await?;
    for level in &moved {
        announce(tx, cause, events::stock_changed(level)).await?;
        changes.product(level.owner_id, level.product_id);
    }
    Ok(())
}

/// Expires one reservation that is due (its stock goes back).
async fn expire(
    tx: &mut PgConnection,
    cause: Cause<'_>,
    r: Reservation,
    changes: &mut Changes,
) -> Result<Reservation, CatalogError> {
    let expired = r.expired(now()).ok_or_else(|| CatalogError::Conflict("the reservation holds nothing".into()))?;
    move_reserved(tx, cause, &expired, Movement::Release, changes).await?;
    repo::update_reservation(tx, &expired).await?;
    announce(tx, cause, events::stock_released(expired.order_id, "expired")).await?;
    tracing::info!(order_id = %expired.order_id, "reservation expired");
    Ok(expired)
}

/// Expires up to `batch` reservations held past their time, in one
/// transaction, and returns how many. Rows another replica is sweeping are
/// skipped. The messages keep the correlation of the flow that reserved.
#[tracing::instrument(skip_all)]
pub async fn expire_due(db: &PgPool, cache: &CatalogCache, batch: i64) -> Result<usize, CatalogError> {
    let now = now();
    let mut tx = db.begin().await?;
    let due = repo::claim_due_reservations(&mut tx, now, batch).await?;
    if due.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    let expired: Vec<Reservation> = due.iter().filter_map(|r| r.expired(now)).collect();
    let lines: Vec<(Uuid, i64)> = expired.iter().flat_map(Reservation::quantities).collect();
    let products: Vec<Uuid> = lines.iter().map(|(p, _)| *p).collect();
    // One ordered lock for the whole batch, as a reservation would take it.
    let levels: Vec<_> = repo::lock_stock(&mut tx, &products).await?.into_iter().map(|a| a.level).collect();
    let moved = move_stock(&levels, &lines, Movement::Release, now)?;
    repo::update_stock(&mut tx, &moved).await?;
    for r in &expired {
        repo::update_reservation(&mut tx, r).await?;
        let mut envelope = contracts::Envelope::new(events::stock_released(r.order_id, "expired"));
        if let Some(correlation) = r.correlation_id {
            envelope.correlation_id = correlation;
        }
        platform::messaging::outbox::enqueue(&mut tx, &envelope).await?;
    }
    let mut changes = Changes::default();
    for level in &moved {
        announce(&mut tx, None, events::stock_changed(level)).await?;
        changes.product(level.owner_id, level.product_id);
    }
    tx.commit().await?;
    cache.invalidate(&changes).await;
    tracing::info!(reservations = expired.len(), products = moved.len(), "reservations expired");
    Ok(expired.len())
}

/// `reserve` for an operator (an admin), in a transaction of its own.
pub async fn reserve_for_operator(
    db: &PgPool,
    cache: &CatalogCache,
    caller: &Caller,
    request: &ReservationRequest,
    ttl: Duration,
) -> Result<Reserve, CatalogError> {
    authorize_operator(caller)?;
    let mut changes = Changes::default();
    let mut tx = db.begin().await?;
    let outcome = reserve(&mut tx, None, request, ttl, &mut changes).await?;
    tx.commit().await?;
    cache.invalidate(&changes).await;
    Ok(outcome)
}

/// `release` for an operator (an admin), in a transaction of its own.
pub async fn release_for_operator(
    db: &PgPool,
    cache: &CatalogCache,
    caller: &Caller,
    order_id: Uuid,
) -> Result<Settle, CatalogError> {
    authorize_operator(caller)?;
    let mut changes = Changes::default();
    let mut tx = db.begin().await?;
    let settled = release(&mut tx, None, order_id, "released by an operator", &mut changes).await?;
    tx.commit().await?;
    cache.invalidate(&changes).await;
    Ok(settled)
}

/// `commit` for an operator (an admin), in a transaction of its own (which
/// keeps an expiry found on the way, even when nothing is sold).
pub async fn commit_for_operator(
    db: &PgPool,
    cache: &CatalogCache,
    caller: &Caller,
    order_id: Uuid,
) -> Result<Settle, CatalogError> {
    authorize_operator(caller)?;
    let mut changes = Changes::default();
    let mut tx = db.begin().await?;
    let settled = commit(&mut tx, None, order_id, &mut changes).await?;
    tx.commit().await?;
    cache.invalidate(&changes).await;
    Ok(settled)
}

/// The reservation of an order (operators only).
pub async fn get_reservation(db: &PgPool, caller: &Caller, order_id: Uuid) -> Result<Reservation, CatalogError> {
    authorize_operator(caller)?;
    let mut conn = db.acquire().await?;
    repo::fetch_reservation(&mut conn, order_id, false).await?.ok_or(CatalogError::NotFound("reservation"))
}
