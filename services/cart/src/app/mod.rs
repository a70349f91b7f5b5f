//! Use cases: read the cart and ask the catalog, apply the domain's rules,
//! change the cart in Redis; checkout records its attempt, then calls orders.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::clients::{Forwarded, OrdersFailure, QuoteLookup};
use crate::domain::{self, CartView, CheckoutDetails, Price, Quantity};
use crate::repo::{self, Attempt, SetOutcome};
use crate::{AppState, CartError};

/// The cart, priced from the catalog now (last known prices, marked stale,
/// where the catalog cannot be asked). Newer prices are remembered.
#[tracing::instrument(skip_all, fields(%customer))]
pub async fn view_cart(st: &AppState, customer: Uuid) -> Result<CartView, CartError> {
    let cart = st.store.load(customer).await?;
    let prices = st.catalog.prices(cart.lines.iter().map(|l| l.product_id)).await;
    let view = domain::cart::price(&cart, &prices)?;
    let changed = domain::cart::changed_snapshots(&cart, &prices);
    if let Err(error) = st.store.remember_prices(customer, &changed).await {
        // The answer is right without it; the next read tries again.
        tracing::warn!(%error, "could not remember the cart's new prices");
    }
    Ok(view)
}

/// Sets a product's quantity (adding it when absent); the product must be
/// sold now, in the cart's currency.
#[tracing::instrument(skip_all, fields(%customer, %product_id, quantity = quantity.get()))]
pub async fn set_item(
    st: &AppState,
    customer: Uuid,
    product_id: Uuid,
    quantity: Quantity,
) -> Result<CartView, CartError> {
    let snapshot = match st.catalog.product(product_id).await.map_err(|_| CartError::CatalogUnavailable)? {
        Price::Current { snapshot, active: true, .. } => snapshot,
        Price::Current { active: false, .. } => return Err(CartError::ProductInactive(product_id)),
        Price::Gone => return Err(CartError::ProductNotFound(product_id)),
        Price::Unknown => return Err(CartError::CatalogUnavailable),
    };
    match st.store.set_line(customer, product_id, quantity, &snapshot).await? {
        SetOutcome::Done => {}
        SetOutcome::OtherCurrency(cart) => {
            return Err(CartError::OtherCurrency { cart, product: snapshot.currency.code().to_string() });
        }
        SetOutcome::Full => return Err(CartError::Full),
    }
    view_cart(st, customer).await
}

/// Removes a product (nothing happens when it is not in the cart).
pub async fn remove_item(st: &AppState, customer: Uuid, product_id: Uuid) -> Result<(), CartError> {
    st.store.remove_line(customer, product_id).await?;
    Ok(())
}

/// Empties the cart.
pub async fn clear_cart(st: &AppState, customer: Uuid) -> Result<(), CartError> {
    st.store.clear(customer).await?;
    Ok(())
}

/// Who checks out, as orders must see them.
#[derive(Debug, Clone)]
pub struct Checkout {
    pub customer: Uuid,
    pub caller: Forwarded,
    pub key: String,
    pub details: CheckoutDetails,
}

/// The order a checkout placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub order_id: Uuid,
    pub status: String,
    pub total_cents: i64,
}

/// Checks out: the first attempt with a key re-prices the cart, reads the
/// quote and stores the order's body; every attempt with that key sends
/// that body to orders with the key (until one records the order orders
/// placed; later ones answer that order). The cart is deleted once orders
/// placed the order.
#[tracing::instrument(skip_all, fields(customer = %c.customer))]
pub async fn checkout(st: &AppState, c: Checkout) -> Result<Placed, CartError> {
    let request = serde_json::to_value(&c.details).map_err(anyhow::Error::from)?;
    let existing = repo::attempts::fetch_attempt(&mut *st.db.acquire().await?, c.customer, &c.key).await?;
    let attempt = match existing {
        Some(a) if a.checkout_request != request => return Err(CartError::KeyReused),
        Some(a) => a,
        None => {
            let fresh = prepare(st, &c, request).await?;
            let stored = repo::attempts::insert_attempt(&mut *st.db.acquire().await?, &fresh).await?;
            if stored.checkout_request != fresh.checkout_request {
                return Err(CartError::KeyReused);
            }
            stored
        }
    };
    if let (Some(order_id), Some(status)) = (attempt.order_id, attempt.order_status.clone()) {
        // Placed and recorded before: the same answer, without asking again.
        return Ok(Placed { order_id, status, total_cents: attempt.total_cents });
    }
    let placed = st.orders.place(&attempt.order_body, &c.caller, &c.key).await.map_err(|e| match e {
        OrdersFailure::Rejected { status, detail, errors } => CartError::Rejected { status, detail, errors },
        OrdersFailure::Unavailable(why) => CartError::OrdersUnavailable(why),
    })?;
    // The cart goes before the order is recorded: if this fails (or the
    // process dies) the key is free again, and a retry re-sends the same
    // body, orders replays the same order, and the cart goes then.
    st.store.clear(c.customer).await?;
    repo::attempts::record_order(&mut *st.db.acquire().await?, c.customer, &c.key, placed.id, &placed.status).await?;
    tracing::info!(order_id = %placed.id, "checked out");
    Ok(Placed { order_id: placed.id, status: placed.status, total_cents: attempt.total_cents })
}

/// The attempt a first checkout stores: the cart re-priced, the quote read,
/// the order drafted and its exact body.
async fn prepare(st: &AppState, c: &Checkout, request: serde_json::Value) -> Result<Attempt, CartError> {
    let cart = st.store.load(c.customer).await?;
    if cart.is_empty() {
        return Err(domain::CheckoutRuleError::EmptyCart.into());
    }
    let prices = st.catalog.prices(cart.lines.iter().map(|l| l.product_id)).await;
    if prices.contains(&Price::Unknown) {
        return Err(CartError::CatalogUnavailable);
    }
    let (currency, lines) = domain::checkout::reprice(&cart, &prices)?;
    let quote = match st.shipping.quote(c.details.shipping_quote_id).await {
        Ok(QuoteLookup::Found(q)) => q,
        Ok(QuoteLookup::Unknown) => return Err(CartError::QuoteUnknown),
        Ok(QuoteLookup::Expired) => return Err(domain::CheckoutRuleError::QuoteExpired.into()),
        Err(e) => return Err(CartError::ShippingUnavailable(e.to_string())),
    };
    let draft = domain::checkout::draft(c.customer, currency, lines, &quote, c.details.clone(), kernel::time::now())?;
    Ok(Attempt {
        customer_id: c.customer,
        idempotency_key: c.key.clone(),
        checkout_request: request,
        order_body: crate::clients::orders::order_body(&draft).map_err(anyhow::Error::from)?,
        total_cents: draft.total.get(),
        order_id: None,
        order_status: None,
    })
}

/// Deletes checkout attempts older than `keep`, every ten minutes, until
/// `shutdown`.
pub async fn sweep_attempts(db: sqlx::PgPool, keep: Duration, shutdown: CancellationToken) {
    loop {
        match db.acquire().await {
            Ok(mut conn) => match repo::attempts::delete_attempts_older_than(&mut conn, keep.as_secs_f64()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "old checkout attempts deleted"),
                Err(error) => tracing::warn!(%error, "could not delete old checkout attempts"),
            },
            Err(error) => tracing::warn!(%error, "could not delete old checkout attempts"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
