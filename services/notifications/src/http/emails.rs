//! `/emails`: read the e-mails sent (or being sent) to customers.

use axum::extract::{Path, Query, State};
use platform::ApiError;
use platform::error::FieldErrors;
use platform::http::{Caller, Json};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::app;
use crate::domain::{Email, EmailKind, EmailStatus};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_emails)).routes(routes!(get_email))
}

/// An e-mail to a customer.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailResponse {
    pub id: Uuid,
    pub kind: EmailKind,
    pub order_id: Uuid,
    pub customer_id: Uuid,
    /// Absent when the e-mail was skipped for want of an address.
    #[schema(example = "ana@example.com")]
    pub to: Option<String>,
    #[schema(example = "Sua nota fiscal nº 1")]
    pub subject: String,
    /// Plain text.
    pub body: String,
    pub status: EmailStatus,
    /// Delivery attempts so far.
    pub attempts: i32,
    /// Why the last attempt failed, or why the e-mail was skipped.
    pub last_error: Option<String>,
    /// The event the e-mail was made for.
    pub source_message_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sent_at: Option<OffsetDateTime>,
}

impl From<&Email> for EmailResponse {
    fn from(e: &Email) -> Self {
        EmailResponse {
            id: e.id,
            kind: e.kind,
            order_id: e.order_id,
            customer_id: e.customer_id,
            to: e.to.clone(),
            subject: e.subject.clone(),
            body: e.body.clone(),
            status: e.status,
            attempts: e.attempts,
            last_error: e.last_error.clone(),
            source_message_id: e.source_message_id,
            created_at: e.created_at,
            sent_at: e.sent_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailPage {
    pub items: Vec<EmailResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Uuid>,
}

/// One e-mail; another customer's e-mail answers 404.
#[utoipa::path(
    get, path = "/emails/{id}", tag = "emails",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "the e-mail", body = EmailResponse),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such resource for this caller", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_email(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<EmailResponse>, ApiError> {
    let email = app::get_email(&st.db, &caller, id).await?;
    Ok(Json(EmailResponse::from(&email)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only the e-mails of this order.
    pub order_id: Option<Uuid>,
    /// `invoice_issued`, `order_cancelled` or `shipment_scheduled`.
    pub kind: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// The caller's e-mails (every e-mail for admins), newest first.
#[utoipa::path(
    get, path = "/emails", tag = "emails",
    params(ListQuery),
    responses(
        (status = 200, description = "a page of e-mails", body = EmailPage),
        (status = 400, description = "an unknown kind or a malformed id", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_emails(
    State(st): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<EmailPage>, ApiError> {
    let mut errors = FieldErrors::default();
    let kind = match q.kind.as_deref() {
        None => None,
        Some(k) => errors.check(
            "kind",
            EmailKind::parse(k).map_err(|_| "must be invoice_issued, order_cancelled or shipment_scheduled"),
        ),
    };
    errors.into_result()?;
    let (items, next_cursor) = app::list_emails(&st.db, &caller, q.order_id, kind, q.cursor, q.limit).await?;
    Ok(Json(EmailPage { items: items.iter().map(EmailResponse::from).collect(), next_cursor }))
}
