//! `/products` and `/owners/{id}/products`: create, read, search, change and
//! delete products.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use platform::ApiError;
use platform::error::FieldErrors;
use platform::http::{Caller, Json};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{CallerHeaders, nullable};
use crate::AppState;
use crate::app;
use crate::domain::{
    Attributes, Cents, Currency, Description, NewProduct, ProductFilter, ProductPatch, ProductView, SearchText, Sku,
    Title,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_product)).routes(routes!(list_products)).routes(routes!(
        get_product,
        update_product,
        delete_product
    ))
}

/// A new product.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProductRequest {
    /// 1 to 64 of `A-Z a-z 0-9 - _ .`, unique per owner.
    #[schema(example = "CAN-001")]
    pub sku: String,
    /// 1 to 200 characters.
    #[schema(example = "Caneca de cerâmica")]
    pub title: String,
    /// Up to 5 000 characters; empty by default.
    #[serde(default)]
    pub description: String,
    /// Non-negative, in cents.
    #[schema(example = 3590)]
    pub price_cents: i64,
    /// BRL (default), USD or EUR.
    #[schema(example = "BRL")]
    pub currency: Option<String>,
    /// One of the owner's categories.
    pub category_id: Option<Uuid>,
    /// Only active products are listed and sold; true by default.
    pub active: Option<bool>,
    /// Any JSON object of up to 16 KiB; `{}` by default.
    #[schema(value_type = Option<Object>, example = json!({"color": "azul", "capacity_ml": 350}))]
    pub attributes: Option<serde_json::Value>,
}

impl TryFrom<CreateProductRequest> for NewProduct {
    type Error = ApiError;

    fn try_from(req: CreateProductRequest) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let sku = errors.check("sku", Sku::parse(&req.sku));
        let title = errors.check("title", Title::parse(&req.title));
        let description = errors.check("description", Description::parse(&req.description));
        let price = errors.check("price_cents", Cents::parse(req.price_cents));
        let currency = match req.currency.as_deref() {
            Some(c) => errors.check("currency", Currency::parse(c)),
            None => Some(Currency::default()),
        };
        let attributes = match req.attributes {
            Some(a) => errors.check("attributes", Attributes::parse(a)),
            None => Some(Attributes::default()),
        };
        errors.into_result()?;
        match (sku, title, description, price, currency, attributes) {
            (Some(sku), Some(title), Some(description), Some(price), Some(currency), Some(attributes)) => {
                Ok(NewProduct {
                    sku,
                    title,
                    description,
                    price,
                    currency,
                    category_id: req.category_id,
                    active: req.active.unwrap_or(true),
                    attributes,
                })
            }
            _ => Err(ApiError::invalid(Vec::new())),
        }
    }
}

/// What to change; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchProductRequest {
    pub sku: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub price_cents: Option<i64>,
    pub currency: Option<String>,
    /// A category of the owner, or `null` to take the product out of its category.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Uuid>, nullable)]
    pub category_id: Option<Option<Uuid>>,
    pub active: Option<bool>,
    /// Replaces every attribute.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<serde_json::Value>,
}

impl TryFrom<PatchProductRequest> for ProductPatch {
    type Error = ApiError;

    fn try_from(req: PatchProductRequest) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let patch = ProductPatch {
            sku: req.sku.and_then(|s| errors.check("sku", Sku::parse(&s))),
            title: req.title.and_then(|s| errors.check("title", Title::parse(&s))),
            description: req.description.and_then(|s| errors.check("description", Description::parse(&s))),
            price: req.price_cents.and_then(|n| errors.check("price_cents", Cents::parse(n))),
            currency: req.currency.and_then(|c| errors.check("currency", Currency::parse(&c))),
            category_id: req.category_id,
            active: req.active,
            attributes: req.attributes.and_then(|a| errors.check("attributes", Attributes::parse(a))),
        };
        errors.into_result()?;
        Ok(patch)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductResponse {
    pub id: Uuid,
    /// The seller's user id.
    pub owner_id: Uuid,
    pub sku: String,
    pub title: String,
    pub description: String,
    pub price_cents: i64,
    #[schema(example = "BRL")]
    pub currency: &'static str,
    pub category_id: Option<Uuid>,
    pub active: bool,
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
    /// Units that can be sold now (`on_hand - reserved`).
    pub available: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<&ProductView> for ProductResponse {
    fn from(v: &ProductView) -> Self {
        let p = &v.product;
        ProductResponse {
            id: p.id,
            owner_id: p.owner_id,
            sku: p.sku.as_str().to_string(),
            title: p.title.as_str().to_string(),
            description: p.description.as_str().to_string(),
            price_cents: p.price.get(),
            currency: p.currency.code(),
            category_id: p.category_id,
            active: p.active,
            attributes: p.attributes.to_json(),
            available: v.available,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductPage {
    pub items: Vec<ProductResponse>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Uuid>,
}

/// Creates a product, with no stock (the owner's seller, or an admin).
#[utoipa::path(
    post, path = "/owners/{id}/products", tag = "products",
    request_body = CreateProductRequest,
    params(
        ("id" = Uuid, Path, description = "the seller's user id"),
        ("Idempotency-Key" = Option<String>, Header, description = "replays the first response for the same key and body"),
        CallerHeaders,
    ),
    responses(
        (status = 201, description = "created", body = ProductResponse, headers(("Location" = String, description = "the product's URL"))),
        (status = 400, description = "invalid input", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "not this seller, nor an admin", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "the owner has no profile yet", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "the owner already has this SKU", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "wrong JSON types, or the key was used with another body", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_product(
    State(st): State<AppState>,
    caller: Caller,
    Path(owner_id): Path<Uuid>,
    body: Result<Json<CreateProductRequest>, ApiError>,
) -> Result<Response, ApiError> {
    app::authorize_owner(&caller, owner_id)?;
    let Json(req) = body?;
    let new = NewProduct::try_from(req)?;
    let product = app::create_product(&st.db, &st.cache, &caller, owner_id, new).await?;
    Ok(platform::http::created(format!("/products/{}", product.product.id), ProductResponse::from(&product)))
}

/// A product: active ones are public; an inactive one only its seller and
/// admins see (404 for others).
#[utoipa::path(
    get, path = "/products/{id}", tag = "products",
    params(("id" = Uuid, Path), CallerHeaders),
    responses(
        (status = 200, description = "the product", body = ProductResponse),
        (status = 404, description = "no such product for this caller", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_product(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<ProductResponse>, ApiError> {
    let product = app::get_product(&st.db_read, &st.cache, &caller, id).await?;
    Ok(Json(ProductResponse::from(&product)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only this seller's products.
    pub owner_id: Option<Uuid>,
    /// Only the products of this category.
    pub category_id: Option<Uuid>,
    /// Words in the title or description (web search syntax: `"a phrase"`,
    /// `-without`, `or`); up to 200 characters.
    pub q: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// Active products, newest first, with keyset pagination (public).
#[utoipa::path(
    get, path = "/products", tag = "products",
    params(ListQuery),
    responses(
        (status = 200, description = "a page of products", body = ProductPage),
        (status = 400, description = "invalid parameters", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_products(
    State(st): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ProductPage>, ApiError> {
    let mut errors = FieldErrors::default();
    let text = errors.check("q", SearchText::parse(q.q.as_deref().unwrap_or_default()));
    errors.into_result()?;
    let filter = ProductFilter { owner_id: q.owner_id, category_id: q.category_id, text: text.flatten() };
    let (products, next_cursor) = app::list_products(&st.db_read, &st.cache, &filter, q.cursor, q.limit).await?;
    Ok(Json(ProductPage { items: products.iter().map(ProductResponse::from).collect(), next_cursor }))
}

/// Changes a product (its seller, or an admin; anyone else gets 404).
#[utoipa::path(
    patch, path = "/products/{id}", tag = "products",
    request_body = PatchProductRequest,
    params(("id" = Uuid, Path), CallerHeaders),
    responses(
        (status = 200, description = "the product as it is now", body = ProductResponse),
        (status = 400, description = "invalid input", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "the owner lacks the seller role", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such product for this caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "the owner already has this SKU", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "wrong JSON types", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update_product(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: Result<Json<PatchProductRequest>, ApiError>,
) -> Result<Response, ApiError> {
    caller.require_user()?;
    let Json(req) = body?;
    let patch = ProductPatch::try_from(req)?;
    let product = app::update_product(&st.db, &st.cache, &caller, id, patch).await?;
    Ok(Json(ProductResponse::from(&product)).into_response())
}

/// Deletes a product (its seller, or an admin; anyone else gets 404).
#[utoipa::path(
    delete, path = "/products/{id}", tag = "products",
    params(("id" = Uuid, Path), CallerHeaders),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "the owner lacks the seller role", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such product for this caller", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_product(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    app::delete_product(&st.db, &st.cache, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
