//! Use cases: domain → repository → outbox, inside the caller's transaction
//! (the consumer's, which also holds the inbox record).

use contracts::Envelope;
use platform::http::{Caller, page};
use platform::messaging::{HandlerError, outbox};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{DEFAULT_SERIES, Invoice, InvoiceDraft};
use crate::{InvoicesError, events, repo};

/// Issues the order's invoice unless it already has one, and announces it.
#[tracing::instrument(skip_all, fields(order_id = %draft.order_id))]
pub async fn issue_invoice<C>(
    tx: &mut PgConnection,
    cause: &Envelope<C>,
    draft: InvoiceDraft,
) -> Result<Option<Invoice>, HandlerError> {
    if repo::invoice_exists_for_order(tx, draft.order_id).await? {
        tracing::info!("the order already has an invoice");
        return Ok(None);
    }
    let number = repo::take_number(tx, DEFAULT_SERIES).await?;
    let invoice = draft.issue(DEFAULT_SERIES, number, OffsetDateTime::now_utc());
    repo::insert_invoice(tx, &invoice).await?;
    outbox::enqueue(tx, &Envelope::caused_by(cause, events::invoice_issued(&invoice))).await?;
    tracing::info!(invoice_id = %invoice.id, series = %invoice.series, number, "invoice issued");
    Ok(Some(invoice))
}

/// One invoice, if the caller may see it.
pub async fn get_invoice(db: &PgPool, caller: &Caller, id: Uuid) -> Result<Invoice, InvoicesError> {
    caller.require_user()?;
    let mut conn = db.acquire().await?;
    match repo::fetch_invoice(&mut conn, id).await? {
        Some(inv) if caller.may_access(inv.customer_id) => Ok(inv),
        _ => Err(InvoicesError::NotFound),
    }
}

/// The caller's invoices (anyone's for an admin), optionally of one order.
pub async fn list_invoices(
    db: &PgPool,
    caller: &Caller,
    order_id: Option<Uuid>,
    cursor: Option<Uuid>,
    limit: Option<i64>,
) -> Result<(Vec<Invoice>, Option<Uuid>), InvoicesError> {
    let me = caller.require_user()?;
    let customer = if caller.is_admin() { None } else { Some(me) };
    let limit = page::limit(limit);
    let mut conn = db.acquire().await?;
    let items = repo::list_invoices(&mut conn, None, order_id, customer, cursor, limit + 1).await?;
    Ok(page::cut(items, limit, |i| i.id))
}
