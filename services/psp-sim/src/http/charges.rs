//! `/v1/charges`: create, read and list charges (the ledger).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{idempotency_key, json_body, respond};
use crate::domain::{Charge, Invalid, NewCharge, Source};
use crate::{AppState, PspError, app};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_charge, list_charges)).routes(routes!(get_charge))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateChargeRequest {
    /// Positive integer.
    pub amount_cents: i64,
    /// BRL (default), USD or EUR; PIX is BRL only.
    #[serde(default = "brl")]
    pub currency: String,
    pub source: SourceRequest,
    /// The merchant's reference (feira's order id); required.
    pub order_ref: String,
    /// Where the PIX `charge.succeeded` callback is posted.
    pub notify_url: Option<String>,
}

fn brl() -> String {
    "BRL".to_string()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceRequest {
    /// A card token: `tok_visa`, `tok_mastercard` succeed;
    /// `tok_chargeDeclined`, `tok_chargeDeclinedInsufficientFunds` fail.
    Card {
        token: String,
    },
    Pix,
}

impl TryFrom<CreateChargeRequest> for NewCharge {
    type Error = Invalid;

    fn try_from(r: CreateChargeRequest) -> Result<Self, Invalid> {
        let source = match &r.source {
            SourceRequest::Card { token } => Source::card(token)?,
            SourceRequest::Pix => Source::Pix,
        };
        NewCharge::parse(r.amount_cents, &r.currency, source, &r.order_ref, r.notify_url.as_deref())
    }
}

/// Charges a card (decided at once) or opens a PIX charge (pending).
#[utoipa::path(
    post,
    path = "/v1/charges",
    tag = "charges",
    params(("Idempotency-Key" = String, Header, description = "required; the same key and body answer the first answer again")),
    request_body = CreateChargeRequest,
    responses(
        (status = 201, description = "a succeeded card charge or a pending PIX charge", body = Charge),
        (status = 402, description = "a declined card: the failed charge", body = Charge),
        (status = 400, description = "invalid_request_error or idempotency_error"),
    )
)]
async fn create_charge(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, PspError> {
    let key = idempotency_key(&headers)?;
    let req: CreateChargeRequest = json_body(&body)?;
    let new = NewCharge::try_from(req)?;
    Ok(respond(app::charges::create_charge(&st.db, &key, &new).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only the charges of this merchant reference.
    pub order_ref: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChargeList {
    /// Oldest first (at most 1000).
    pub data: Vec<Charge>,
}

/// The ledger: charges (of one `order_ref`), oldest first.
#[utoipa::path(get, path = "/v1/charges", tag = "charges", params(ListQuery), responses((status = 200, description = "the charges", body = ChargeList)))]
async fn list_charges(
    State(st): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<ChargeList>, PspError> {
    let data = app::charges::list_charges(&st.db, q.order_ref.as_deref()).await?;
    Ok(axum::Json(ChargeList { data }))
}

/// One charge.
#[utoipa::path(
    get,
    path = "/v1/charges/{id}",
    tag = "charges",
    params(("id" = String, Path, description = "ch_...")),
    responses((status = 200, description = "the charge", body = Charge), (status = 404, description = "no such charge"))
)]
async fn get_charge(State(st): State<AppState>, Path(id): Path<String>) -> Result<axum::Json<Charge>, PspError> {
    Ok(axum::Json(app::charges::get_charge(&st.db, &id).await?))
}
