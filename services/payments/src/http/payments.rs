//! `/payments`: read payments (the saga drives them through messages).

use axum::extract::{Path, Query, State};
use platform::ApiError;
use platform::http::{Caller, Json};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::app;
use crate::domain::Payment;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_payments)).routes(routes!(get_payment))
}

/// A payment of one order.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentResponse {
    pub id: Uuid,
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub amount_cents: i64,
    #[schema(example = "BRL")]
    pub currency: String,
    /// `card` or `pix`.
    pub method: String,
    /// `requested`, `checking`, `pending`, `captured`, `failed`, `refunding`,
    /// `refunded`, `refund_failed`, `voiding` or `voided`.
    pub status: String,
    /// The provider's charge (`ch_...`), once known.
    pub provider_charge_id: Option<String>,
    /// `declined`, `insufficient_funds` or `failed`, when failed.
    pub failure_reason: Option<String>,
    pub failure_detail: Option<String>,
    /// The PIX code to pay, while pending.
    pub pix: Option<PixResponse>,
    pub refunded_cents: i64,
    /// Provider calls that failed and were retried.
    pub attempts: i32,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub captured_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PixResponse {
    pub code: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
}

impl From<&Payment> for PaymentResponse {
    fn from(p: &Payment) -> Self {
        let pix = (p.pix_code.is_some() || p.pix_expires_at.is_some())
            .then(|| PixResponse { code: p.pix_code.clone(), expires_at: p.pix_expires_at });
        PaymentResponse {
            id: p.id,
            order_id: p.order_id,
            customer_id: p.customer_id,
            amount_cents: p.amount_cents,
            currency: p.currency.clone(),
            method: p.method.kind().to_string(),
            status: p.status.as_str().to_string(),
            provider_charge_id: p.provider_charge_id.clone(),
            failure_reason: p.failure_reason.clone(),
            failure_detail: p.failure_detail.clone(),
            pix,
            refunded_cents: p.refunded_cents,
            attempts: p.attempts,
            created_at: p.created_at,
            updated_at: p.updated_at,
            captured_at: p.captured_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentPage {
    pub items: Vec<PaymentResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Uuid>,
}

/// One payment; another customer's payment answers 404.
#[utoipa::path(
    get, path = "/payments/{id}", tag = "payments",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "the payment", body = PaymentResponse),
        (status = 401, description = "anonymous caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such resource for this caller", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_payment(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<PaymentResponse>, ApiError> {
    let p = app::get_payment(&st.db_read, &caller, id).await?;
    Ok(Json(PaymentResponse::from(&p)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only the payment of this order.
    pub order_id: Option<Uuid>,
    /// 1 to 100, default 20.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// The caller's payments (every payment for admins), newest first.
#[utoipa::path(
    get, path = "/payments", tag = "payments",
    params(ListQuery),
    responses(
        (status = 200, description = "a page of payments", body = PaymentPage),
        (status = 401, description = "anonymous caller", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_payments(
    State(st): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<PaymentPage>, ApiError> {
    let (items, next_cursor) = app::list_payments(&st.db_read, &caller, q.order_id, q.cursor, q.limit).await?;
    Ok(Json(PaymentPage { items: items.iter().map(PaymentResponse::from).collect(), next_cursor }))
}
