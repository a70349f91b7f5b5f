//! Use cases: domain → repository, inside the caller's transaction for the
//! consumers (which also holds the inbox record), on the pool for reads.

use platform::ErrorKind;
use platform::http::{Caller, page};
use platform::messaging::HandlerError;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::render::{RenderError, Rendered};
use crate::domain::{Email, EmailKind, EmailStatus, Recipient};
use crate::{NotificationsError, repo};

/// Counts e-mails by kind and status (`notifications_emails_total`).
pub fn count_email(kind: EmailKind, status: EmailStatus) {
    metrics::counter!("notifications_emails_total", "kind" => kind.as_str(), "status" => status.as_str()).increment(1);
}

/// Remembers who receives the order's e-mails.
#[tracing::instrument(skip_all, fields(order_id = %r.order_id))]
pub async fn record_recipient(tx: &mut PgConnection, r: &Recipient) -> Result<(), HandlerError> {
    if !repo::insert_recipient(tx, r, kernel::time::now()).await? {
        tracing::info!("the order's recipient is already known");
    } else if r.email.is_none() {
        tracing::info!("the order has no contact e-mail: its e-mails will be skipped");
    }
    Ok(())
}

/// The recipient of an order's e-mails. Not known yet means its
/// `OrderPlacedV1` is still on its way (it travels on another queue): a
/// transient failure, so the message is retried later.
pub async fn recipient_of(tx: &mut PgConnection, order_id: Uuid) -> Result<Recipient, HandlerError> {
    repo::fetch_recipient(tx, order_id).await?.ok_or_else(|| {
        HandlerError::new(
            ErrorKind::Unavailable,
            anyhow::anyhow!("the recipient of order {order_id} is not known yet (its OrderPlacedV1 has not arrived)"),
        )
    })
}

/// What one event asks to be mailed.
pub struct EmailRequest<'a> {
    pub kind: EmailKind,
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub to: Option<&'a str>,
    /// The event's message id: one e-mail per event.
    pub source: Uuid,
}

/// Stores the rendered e-mail for the delivery worker (or as skipped when
/// there is no address). A second request from the same event changes
/// nothing.
#[tracing::instrument(skip_all, fields(kind = req.kind.as_str(), order_id = %req.order_id, source = %req.source))]
pub async fn queue_email(
    tx: &mut PgConnection,
    req: EmailRequest<'_>,
    rendered: Result<Rendered, RenderError>,
) -> Result<Option<Email>, HandlerError> {
    let rendered = rendered.map_err(|e| HandlerError::new(ErrorKind::Internal, e))?;
    let email = Email::new(req.kind, req.order_id, req.customer_id, req.to, rendered, req.source, kernel::time::now());
    if !repo::insert_email(tx, &email).await? {
        tracing::info!("this event's e-mail already exists");
        return Ok(None);
    }
    repo::set_traceparent(tx, email.id, platform::telemetry::current_traceparent().as_deref()).await?;
    match email.status {
        EmailStatus::Skipped => {
            tracing::info!(email_id = %email.id, reason = email.last_error.as_deref().unwrap_or(""), "e-mail skipped")
        }
        _ => tracing::info!(email_id = %email.id, "e-mail queued"),
    }
    count_email(email.kind, email.status);
    Ok(Some(email))
}

/// One e-mail, if the caller may see it (admins: any; customers: their own).
pub async fn get_email(db: &PgPool, caller: &Caller, id: Uuid) -> Result<Email, NotificationsError> {
    caller.require_user()?;
    let mut conn = db.acquire().await?;
    match repo::fetch_email(&mut conn, id).await? {
        Some(e) if caller.may_access(e.customer_id) => Ok(e),
        _ => Err(NotificationsError::NotFound),
    }
}

/// The caller's e-mails (anyone's for an admin), optionally of one order
/// and one kind, newest first.
pub async fn list_emails(
    db: &PgPool,
    caller: &Caller,
    order_id: Option<Uuid>,
    kind: Option<EmailKind>,
    cursor: Option<Uuid>,
    limit: Option<i64>,
) -> Result<(Vec<Email>, Option<Uuid>), NotificationsError> {
    let me = caller.require_user()?;
    let customer = if caller.is_admin() { None } else { Some(me) };
    let limit = page::limit(limit);
    let mut conn = db.acquire().await?;
    let items = repo::list_emails(&mut conn, order_id, kind, customer, cursor, limit + 1).await?;
    Ok(page::cut(items, limit, |e| e.id))
}
