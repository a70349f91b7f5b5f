//! `POST /cart/checkout`: place the order for the cart.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use platform::ApiError;
use platform::error::FieldErrors;
use platform::http::caller::ROLES_HEADER;
use platform::http::idempotency::IdempotencyKey;
use platform::http::{Caller, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{CallerHeaders, unprocessable};
use crate::app::{self, Checkout};
use crate::clients::Forwarded;
use crate::domain::values::text;
use crate::domain::{Address, Cep, CheckoutDetails, Email, Payment, Uf};
use crate::{AppState, CartError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(checkout))
}

/// What checking out needs besides the cart.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub shipping_address: Option<AddressRequest>,
    /// A quote from shipping for the address's CEP (`POST /shipping/quotes`).
    #[schema(value_type = Option<Uuid>)]
    pub shipping_quote_id: Option<String>,
    pub payment: Option<PaymentRequest>,
    #[schema(example = "ana@example.com")]
    pub contact_email: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressRequest {
    #[schema(example = "Ana Souza")]
    pub recipient: Option<String>,
    #[schema(example = "Avenida Paulista")]
    pub street: Option<String>,
    #[schema(example = "1000")]
    pub number: Option<String>,
    #[schema(example = "apto 12")]
    pub complement: Option<String>,
    #[schema(example = "Bela Vista")]
    pub district: Option<String>,
    #[schema(example = "São Paulo")]
    pub city: Option<String>,
    /// One of the 27 UFs.
    #[schema(example = "SP")]
    pub state: Option<String>,
    /// 8 digits, optionally `12345-678`.
    #[schema(example = "01310-100")]
    pub cep: Option<String>,
}

/// `{"type": "card", "token": "tok_..."}` or `{"type": "pix"}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    #[serde(rename = "type")]
    #[schema(example = "card")]
    pub kind: Option<String>,
    #[schema(example = "tok_visa")]
    pub token: Option<String>,
}

impl TryFrom<CheckoutRequest> for CheckoutDetails {
    type Error = ApiError;

    fn try_from(req: CheckoutRequest) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let address = parse_address(&mut errors, req.shipping_address);
        let quote_id = required(&mut errors, "shipping_quote_id", req.shipping_quote_id)
            .and_then(|s| errors.check("shipping_quote_id", Uuid::parse_str(s.trim()).map_err(|_| "must be a UUID")));
        let payment = match req.payment {
            None => {
                errors.push("payment", "is required");
                None
            }
            Some(p) => match p.kind {
                None => {
                    errors.push("payment.type", "is required");
                    None
                }
                Some(kind) => match Payment::parse(kind.trim(), p.token.as_deref()) {
                    Ok(p) => Some(p),
                    Err((field, e)) => {
                        errors.push(format!("payment.{field}"), e.to_string());
                        None
                    }
                },
            },
        };
        let email = required(&mut errors, "contact_email", req.contact_email)
            .and_then(|s| errors.check("contact_email", Email::parse(&s)));
        unprocessable(errors)?;
        match (address, quote_id, payment, email) {
            (Some(shipping_address), Some(shipping_quote_id), Some(payment), Some(contact_email)) => {
                Ok(CheckoutDetails { shipping_address, shipping_quote_id, payment, contact_email })
            }
            _ => Err(ApiError::invalid(Vec::new())),
        }
    }
}

/// `v`, or an "is required" error under `field`.
fn required(errors: &mut FieldErrors, field: &str, v: Option<String>) -> Option<String> {
    if v.is_none() {
        errors.push(field, "is required");
    }
    v
}

fn parse_address(errors: &mut FieldErrors, a: Option<AddressRequest>) -> Option<Address> {
    let Some(a) = a else {
        errors.push("shipping_address", "is required");
        return None;
    };
    let mut field = |name: &str, v: Option<String>, max: usize| -> Option<String> {
        let path = format!("shipping_address.{name}");
        required(errors, &path, v).and_then(|s| errors.check(path, text(&s, max)))
    };
    let recipient = field("recipient", a.recipient, 120);
    let street = field("street", a.street, 200);
    let number = field("number", a.number, 20);
    let district = field("district", a.district, 120);
    let city = field("city", a.city, 120);
    let complement = match a.complement.as_deref().map(str::trim) {
        None | Some("") => Some(None),
        Some(s) => errors.check("shipping_address.complement", text(s, 120)).map(Some),
    };
    let state = required(errors, "shipping_address.state", a.state)
        .and_then(|s| errors.check("shipping_address.state", Uf::parse(&s)));
    let cep = required(errors, "shipping_address.cep", a.cep)
        .and_then(|s| errors.check("shipping_address.cep", Cep::parse(&s)));
    Some(Address {
        recipient: recipient?,
        street: street?,
        number: number?,
        complement: complement?,
        district: district?,
        city: city?,
        state: state?,
        cep: cep?,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckoutResponse {
    pub order_id: Uuid,
    #[schema(example = "PENDING")]
    pub status: String,
    /// The items at today's prices plus the freight.
    pub total_cents: i64,
    pub links: CheckoutLinks,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckoutLinks {
    /// The order, at orders (`GET /orders/{id}`).
    #[schema(example = "/orders/0193a6c8-0000-7000-8000-000000000000")]
    pub order: String,
}

/// Places the order for the caller's cart (re-priced from the catalog, with
/// the quote's freight), then empties the cart. A retry with the same
/// `Idempotency-Key` answers the same order.
#[utoipa::path(
    post, path = "/cart/checkout", tag = "checkout",
    request_body = CheckoutRequest,
    params(
        ("Idempotency-Key" = String, Header, description = "required: a retry with the same key and body answers the same order"),
        CallerHeaders,
    ),
    responses(
        (status = 202, description = "the order is placed and its saga runs", body = CheckoutResponse, headers(("Location" = String, description = "the order's URL"))),
        (status = 400, description = "no Idempotency-Key", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "a checkout with this key is still running", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid fields, an empty cart, a product not sold, an unknown or expired quote or one for another CEP, or the key used with another body", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the catalog, shipping, orders or the cart store is unavailable; retry with the same key", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn checkout(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    key: Option<Extension<IdempotencyKey>>,
    body: Result<Json<CheckoutRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let customer = caller.require_user()?;
    let Some(Extension(IdempotencyKey(key))) = key else {
        return Err(CartError::KeyRequired.into());
    };
    let Json(req) = body?;
    let details = CheckoutDetails::try_from(req)?;
    let forwarded = Forwarded {
        user_id: customer.to_string(),
        roles: headers.get(ROLES_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string),
    };
    let placed = app::checkout(&st, Checkout { customer, caller: forwarded, key, details }).await?;
    let location = format!("/orders/{}", placed.order_id);
    let body = CheckoutResponse {
        order_id: placed.order_id,
        status: placed.status,
        total_cents: placed.total_cents,
        links: CheckoutLinks { order: location.clone() },
    };
    let mut res = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}
