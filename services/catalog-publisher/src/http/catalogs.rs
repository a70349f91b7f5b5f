//! `/catalogs/{owner_id}`: where an owner's published catalog is and which
//! version it is, for operators. The catalog itself is public (it is served
//! from object storage), so this answers without a caller.

use axum::extract::{Path, State};
use platform::ApiError;
use platform::http::Json;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::repo::Publication;
use crate::{AppState, app, domain};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_catalog))
}

/// The last published version of an owner's catalog.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogResponse {
    pub owner_id: Uuid,
    /// Increases by one with every published change.
    #[schema(example = 3)]
    pub version: i64,
    /// Object key of the current document.
    #[schema(example = "catalogs/0190a0a0-0000-7000-8000-000000000001.json")]
    pub key: String,
    /// Object key of this version's copy.
    #[schema(example = "catalogs/0190a0a0-0000-7000-8000-000000000001/v3.json")]
    pub versioned_key: String,
    /// Hex SHA-256 of the document's bytes.
    pub sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub published_at: OffsetDateTime,
}

impl From<&Publication> for CatalogResponse {
    fn from(p: &Publication) -> Self {
        CatalogResponse {
            owner_id: p.owner_id,
            version: p.version,
            key: domain::latest_key(p.owner_id),
            versioned_key: domain::versioned_key(p.owner_id, p.version),
            sha256: p.sha256.clone(),
            published_at: p.published_at,
        }
    }
}

/// The owner's last published catalog version; 404 until one is published.
#[utoipa::path(
    get, path = "/catalogs/{owner_id}", tag = "catalogs",
    params(("owner_id" = Uuid, Path, description = "the owner (seller) whose catalog it is")),
    responses(
        (status = 200, description = "the last published version", body = CatalogResponse),
        (status = 400, description = "the owner id is not a UUID", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "nothing published for this owner yet", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_catalog(
    State(st): State<AppState>,
    Path(owner_id): Path<Uuid>,
) -> Result<Json<CatalogResponse>, ApiError> {
    let publication = app::get_publication(&st.db, owner_id).await?;
    Ok(Json(CatalogResponse::from(&publication)))
}
