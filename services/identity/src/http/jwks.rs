//! `/.well-known/jwks.json`: the public keys that verify access tokens.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use platform::http::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::keys::PublicJwk;
use crate::{AppState, IdentityError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_jwks))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JwkSet {
    pub keys: Vec<PublicJwk>,
}

/// The JWKS (RFC 7517): the active Ed25519 key and the superseded keys whose
/// tokens may still be valid. Cacheable for 5 minutes; a verifier that meets
/// an unknown `kid` should fetch it again.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "keys",
    responses((status = 200, description = "the key set", body = JwkSet, headers(("Cache-Control" = String, description = "public, max-age=300")))),
)]
pub async fn get_jwks(State(st): State<AppState>) -> Result<Response, IdentityError> {
    let keys = st.keys.jwks().await?;
    let mut res = Json(JwkSet { keys }).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    Ok(res)
}
