//! `/admin`: accounts with any roles, and signing-key rotation (admins only).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use platform::ApiError;
use platform::error::FieldErrors;
use platform::http::{Caller, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{CallerHeaders, UserResponse, require_admin};
use crate::app::{self, Rotation};
use crate::domain::{DisplayName, Email, NewUser, Password, Roles};
use crate::{AppState, IdentityError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_user)).routes(routes!(get_user)).routes(routes!(rotate_keys))
}

/// An account with chosen roles (sellers, admins).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    #[schema(example = "loja@example.com")]
    pub email: String,
    /// 10 to 128 characters.
    pub password: String,
    pub name: Option<String>,
    #[schema(example = json!(["seller"]))]
    pub roles: Vec<String>,
}

impl TryFrom<CreateUserRequest> for NewUser {
    type Error = ApiError;

    fn try_from(req: CreateUserRequest) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let email = errors.check("email", Email::parse(&req.email));
        let password = errors.check("password", Password::parse(&req.password));
        let name = errors.check("name", DisplayName::parse_optional(req.name.as_deref()));
        let roles = errors.check("roles", Roles::parse(&req.roles));
        errors.into_result()?;
        match (email, password, name, roles) {
            (Some(email), Some(password), Some(name), Some(roles)) => Ok(NewUser { email, name, password, roles }),
            _ => Err(ApiError::invalid(Vec::new())),
        }
    }
}

/// Creates an account with the given roles.
#[utoipa::path(
    post, path = "/admin/users", tag = "admin",
    request_body = CreateUserRequest,
    params(CallerHeaders),
    security(("bearer" = []), ()),
    responses(
        (status = 201, description = "created", body = UserResponse, headers(("Location" = String, description = "the account's URL"))),
        (status = 400, description = "invalid input", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "not an admin", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "the e-mail has an account", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "wrong JSON types", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_user(
    State(st): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    body: Result<Json<CreateUserRequest>, ApiError>,
) -> Result<Response, IdentityError> {
    let admin = require_admin(&st, &headers, &caller).await?;
    let Json(req) = body?;
    let new = NewUser::try_from(req)?;
    let user = app::admin_create_user(&st, new).await?;
    tracing::info!(admin_id = %admin.user_id, user_id = %user.id, roles = ?user.roles.names(), "account created by an admin");
    Ok(platform::http::created(format!("/admin/users/{}", user.id), UserResponse::from(&user)))
}

/// An account.
#[utoipa::path(
    get, path = "/admin/users/{id}", tag = "admin",
    params(("id" = Uuid, Path, description = "the user id"), CallerHeaders),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "the account", body = UserResponse),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "not an admin", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such account", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_user(
    State(st): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<UserResponse>, IdentityError> {
    require_admin(&st, &headers, &caller).await?;
    let user = app::get_user(&st.db, id).await?;
    Ok(Json(UserResponse::from(&user)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedKey {
    /// The new signing key's id (`kid` of the tokens issued from now on).
    pub kid: String,
}

/// Replaces the signing key now. Tokens signed by the previous key keep
/// verifying (it stays in the JWKS) until they expire.
#[utoipa::path(
    post, path = "/admin/keys/rotate", tag = "admin",
    params(CallerHeaders),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "the new active key", body = RotatedKey),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "not an admin", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rotate_keys(
    State(st): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
) -> Result<Json<RotatedKey>, IdentityError> {
    let admin = require_admin(&st, &headers, &caller).await?;
    let kid = st.keys.rotate(Rotation::Now).await?;
    tracing::info!(admin_id = %admin.user_id, kid = %kid, "signing key rotated by an admin");
    Ok(Json(RotatedKey { kid }))
}
