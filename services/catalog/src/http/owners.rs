//! `/owners`: seller profiles and their public catalog document.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use platform::ApiError;
use platform::error::FieldErrors;
use platform::http::{Caller, Json};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::CallerHeaders;
use crate::AppState;
use crate::app;
use crate::domain::{CatalogSection, Owner, OwnerCatalog, OwnerName, ProductView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(put_owner, get_owner)).routes(routes!(get_owner_catalog))
}

/// A seller's profile.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerRequest {
    /// 1 to 120 characters.
    #[schema(example = "Loja da Ana")]
    pub name: String,
}

impl TryFrom<OwnerRequest> for OwnerName {
    type Error = ApiError;

    fn try_from(req: OwnerRequest) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let name = errors.check("name", OwnerName::parse(&req.name));
        errors.into_result()?;
        name.ok_or_else(|| ApiError::invalid(Vec::new()))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OwnerResponse {
    /// The seller's user id.
    pub id: Uuid,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<&Owner> for OwnerResponse {
    fn from(o: &Owner) -> Self {
        OwnerResponse {
            id: o.id,
            name: o.name.as_str().to_string(),
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// Creates the seller's profile, or renames it (the seller themself, or an admin).
#[utoipa::path(
    put, path = "/owners/{id}", tag = "owners",
    request_body = OwnerRequest,
    params(("id" = Uuid, Path, description = "the seller's user id"), CallerHeaders),
    responses(
        (status = 201, description = "created", body = OwnerResponse, headers(("Location" = String, description = "the owner's URL"))),
        (status = 200, description = "renamed, or unchanged", body = OwnerResponse),
        (status = 400, description = "invalid input", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "not this seller, nor an admin", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "wrong JSON types", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_owner(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: Result<Json<OwnerRequest>, ApiError>,
) -> Result<Response, ApiError> {
    app::authorize_owner(&caller, id)?;
    let Json(req) = body?;
    let name = OwnerName::try_from(req)?;
    let (owner, created) = app::put_owner(&st.db, &st.cache, &caller, id, name).await?;
    let body = OwnerResponse::from(&owner);
    Ok(if created { platform::http::created(format!("/owners/{id}"), body) } else { Json(body).into_response() })
}

/// A seller's public profile.
#[utoipa::path(
    get, path = "/owners/{id}", tag = "owners",
    params(("id" = Uuid, Path, description = "the seller's user id")),
    responses(
        (status = 200, description = "the owner", body = OwnerResponse),
        (status = 404, description = "no such owner", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_owner(State(st): State<AppState>, Path(id): Path<Uuid>) -> Result<Json<OwnerResponse>, ApiError> {
    let owner = app::get_owner(&st.db_read, id).await?;
    Ok(Json(OwnerResponse::from(&owner)))
}

/// An owner's public catalog: every category (by name) with its active
/// products (by SKU), then the active products without a category.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogDocument {
    pub owner: CatalogOwner,
    pub categories: Vec<CatalogCategory>,
    pub uncategorized: Vec<CatalogProduct>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogOwner {
    pub id: Uuid,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogCategory {
    pub id: Uuid,
    pub name: String,
    pub products: Vec<CatalogProduct>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogProduct {
    pub id: Uuid,
    pub sku: String,
    pub title: String,
    pub description: String,
    pub price_cents: i64,
    pub currency: &'static str,
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
    /// Units that can be sold now.
    pub available: i64,
}

impl From<&ProductView> for CatalogProduct {
    fn from(v: &ProductView) -> Self {
        let p = &v.product;
        CatalogProduct {
            id: p.id,
            sku: p.sku.as_str().to_string(),
            title: p.title.as_str().to_string(),
            description: p.description.as_str().to_string(),
            price_cents: p.price.get(),
            currency: p.currency.code(),
            attributes: p.attributes.to_json(),
            available: v.available,
        }
    }
}

impl From<&OwnerCatalog> for CatalogDocument {
    fn from(c: &OwnerCatalog) -> Self {
        let section = |s: &CatalogSection| CatalogCategory {
            id: s.category.id,
            name: s.category.name.as_str().to_string(),
            products: s.products.iter().map(CatalogProduct::from).collect(),
        };
        CatalogDocument {
            owner: CatalogOwner { id: c.owner.id, name: c.owner.name.as_str().to_string() },
            categories: c.categories.iter().map(section).collect(),
            uncategorized: c.uncategorized.iter().map(CatalogProduct::from).collect(),
        }
    }
}

/// The owner's catalog document (public). The same catalog always answers
/// the same bytes.
#[utoipa::path(
    get, path = "/owners/{id}/catalog", tag = "owners",
    params(("id" = Uuid, Path, description = "the seller's user id")),
    responses(
        (status = 200, description = "the catalog document", body = CatalogDocument),
        (status = 404, description = "no such owner", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_owner_catalog(
    State(st): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<CatalogDocument>, ApiError> {
    let catalog = app::owner_catalog(&st.db_read, &st.cache, id).await?;
    Ok(Json(CatalogDocument::from(&catalog)))
}
