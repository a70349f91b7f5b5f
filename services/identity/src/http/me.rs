//! `/me`: the caller's own account.

use axum::extract::State;
use axum::http::HeaderMap;
use platform::http::{Caller, Json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{CallerHeaders, UserResponse, authenticate};
use crate::{AppState, IdentityError, app};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_me))
}

/// The caller's account, by Bearer access token (verified here) or by the
/// gateway's caller headers.
#[utoipa::path(
    get, path = "/me", tag = "accounts",
    params(CallerHeaders),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "the caller's account", body = UserResponse),
        (status = 401, description = "no caller, or an invalid, expired or logged-out token", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "the account no longer exists", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_me(
    State(st): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
) -> Result<Json<UserResponse>, IdentityError> {
    let principal = authenticate(&st, &headers, &caller).await?.ok_or(IdentityError::Unauthenticated)?;
    let user = app::get_user(&st.db, principal.user_id).await?;
    Ok(Json(UserResponse::from(&user)))
}
