//! `/categories` and `/owners/{id}/categories`: an owner's categories.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use platform::ApiError;
use platform::error::FieldErrors;
use platform::http::{Caller, Json};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::CallerHeaders;
use crate::AppState;
use crate::app;
use crate::domain::{Category, CategoryName};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_category)).routes(routes!(list_categories)).routes(routes!(
        get_category,
        rename_category,
        delete_category
    ))
}

/// A category's name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryRequest {
    /// 1 to 80 characters, unique per owner regardless of case.
    #[schema(example = "Canecas")]
    pub name: String,
}

impl TryFrom<CategoryRequest> for CategoryName {
    type Error = ApiError;

    fn try_from(req: CategoryRequest) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let name = errors.check("name", CategoryName::parse(&req.name));
        errors.into_result()?;
        name.ok_or_else(|| ApiError::invalid(Vec::new()))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryResponse {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<&Category> for CategoryResponse {
    fn from(c: &Category) -> Self {
        CategoryResponse {
            id: c.id,
            owner_id: c.owner_id,
            name: c.name.as_str().to_string(),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryList {
    pub items: Vec<CategoryResponse>,
}

/// Creates a category (the owner's seller, or an admin).
#[utoipa::path(
    post, path = "/owners/{id}/categories", tag = "categories",
    request_body = CategoryRequest,
    params(("id" = Uuid, Path, description = "the seller's user id"), CallerHeaders),
    responses(
        (status = 201, description = "created", body = CategoryResponse, headers(("Location" = String, description = "the category's URL"))),
        (status = 400, description = "invalid input", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "not this seller, nor an admin", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "the owner has no profile yet", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "the owner already has a category of that name", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "wrong JSON types", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_category(
    State(st): State<AppState>,
    caller: Caller,
    Path(owner_id): Path<Uuid>,
    body: Result<Json<CategoryRequest>, ApiError>,
) -> Result<Response, ApiError> {
    app::authorize_owner(&caller, owner_id)?;
    let Json(req) = body?;
    let name = CategoryName::try_from(req)?;
    let category = app::create_category(&st.db, &st.cache, &caller, owner_id, name).await?;
    Ok(platform::http::created(format!("/categories/{}", category.id), CategoryResponse::from(&category)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Whose categories.
    pub owner_id: Uuid,
}

/// An owner's categories, by name (public).
#[utoipa::path(
    get, path = "/categories", tag = "categories",
    params(ListQuery),
    responses(
        (status = 200, description = "the owner's categories", body = CategoryList),
        (status = 400, description = "owner_id missing or not a UUID", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_categories(
    State(st): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<CategoryList>, ApiError> {
    let categories = app::list_categories(&st.db_read, q.owner_id).await?;
    Ok(Json(CategoryList { items: categories.iter().map(CategoryResponse::from).collect() }))
}

/// One category (public).
#[utoipa::path(
    get, path = "/categories/{id}", tag = "categories",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "the category", body = CategoryResponse),
        (status = 404, description = "no such category", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_category(
    State(st): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<CategoryResponse>, ApiError> {
    let category = app::get_category(&st.db_read, id).await?;
    Ok(Json(CategoryResponse::from(&category)))
}

/// Renames a category (its owner's seller, or an admin; anyone else gets 404).
#[utoipa::path(
    put, path = "/categories/{id}", tag = "categories",
    request_body = CategoryRequest,
    params(("id" = Uuid, Path), CallerHeaders),
    responses(
        (status = 200, description = "renamed, or unchanged", body = CategoryResponse),
        (status = 400, description = "invalid input", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "the owner lacks the seller role", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such category for this caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "the owner already has a category of that name", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "wrong JSON types", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rename_category(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: Result<Json<CategoryRequest>, ApiError>,
) -> Result<Response, ApiError> {
    caller.require_user()?;
    let Json(req) = body?;
    let name = CategoryName::try_from(req)?;
    let category = app::rename_category(&st.db, &st.cache, &caller, id, name).await?;
    Ok(axum::response::IntoResponse::into_response(Json(CategoryResponse::from(&category))))
}

/// Deletes a category; its products stay, without a category.
#[utoipa::path(
    delete, path = "/categories/{id}", tag = "categories",
    params(("id" = Uuid, Path), CallerHeaders),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "the owner lacks the seller role", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such category for this caller", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_category(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    app::delete_category(&st.db, &st.cache, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
