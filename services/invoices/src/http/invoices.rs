//! `/invoices`: read issued invoices.

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
use crate::domain::Invoice;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_invoices)).routes(routes!(get_invoice))
}

/// An issued nota fiscal.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceResponse {
    pub id: Uuid,
    pub order_id: Uuid,
    pub customer_id: Uuid,
    #[schema(example = "1")]
    pub series: String,
    /// Gapless within the series.
    pub number: i64,
    pub currency: String,
    /// Freight charged with the order; `total_cents` is the lines plus this.
    pub freight_cents: i64,
    pub total_cents: i64,
    pub lines: Vec<InvoiceLineResponse>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub issued_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceLineResponse {
    pub sku: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
    pub line_total_cents: i64,
}

impl From<&Invoice> for InvoiceResponse {
    fn from(i: &Invoice) -> Self {
        InvoiceResponse {
            id: i.id,
            order_id: i.order_id,
            customer_id: i.customer_id,
            series: i.series.clone(),
            number: i.number,
            currency: i.currency.clone(),
            freight_cents: i.freight_cents,
            total_cents: i.total_cents,
            lines: i
                .lines
                .iter()
                .map(|l| InvoiceLineResponse {
                    sku: l.sku.clone(),
                    quantity: l.quantity,
                    unit_price_cents: l.unit_price_cents,
                    line_total_cents: l.line_total_cents,
                })
                .collect(),
            issued_at: i.issued_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvoicePage {
    pub items: Vec<InvoiceResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Uuid>,
}

/// One invoice; another customer's invoice answers 404.
#[utoipa::path(
    get, path = "/invoices/{id}", tag = "invoices",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "the invoice", body = InvoiceResponse),
        (status = 404, description = "no such resource for this caller", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_invoice(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<InvoiceResponse>, ApiError> {
    let inv = app::get_invoice(&st.db, &caller, id).await?;
    Ok(Json(InvoiceResponse::from(&inv)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only the invoice of this order.
    pub order_id: Option<Uuid>,
    /// 1 to 100, default 20.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// The caller's invoices (every invoice for admins), newest first.
#[utoipa::path(
    get, path = "/invoices", tag = "invoices",
    params(ListQuery),
    responses((status = 200, description = "a page of invoices", body = InvoicePage))
)]
pub async fn list_invoices(
    State(st): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<InvoicePage>, ApiError> {
    let (items, next_cursor) = app::list_invoices(&st.db, &caller, q.order_id, q.cursor, q.limit).await?;
    Ok(Json(InvoicePage { items: items.iter().map(InvoiceResponse::from).collect(), next_cursor }))
}
