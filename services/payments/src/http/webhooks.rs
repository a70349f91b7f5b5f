//! `POST /payments/webhooks/psp`: the provider's signed notices. Public
//! (the provider has no feira identity): the signature is the credential.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use platform::ApiError;
use platform::http::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::app::webhook;
use crate::domain::webhook::SIGNATURE_HEADER;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(receive_psp_webhook))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAnswer {
    pub received: bool,
    /// `applied`, `unchanged` (a repeated delivery) or `ignored`.
    #[schema(example = "applied")]
    pub result: String,
}

/// A charge event from the payment provider, signed with
/// `Psp-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
/// A missing, forged or stale (over 5 minutes) signature answers 400 and
/// changes nothing; a repeated event answers 200 and changes nothing.
#[utoipa::path(
    post, path = "/payments/webhooks/psp", tag = "webhooks",
    request_body(content = String, description = r#"`{"type":"charge.succeeded","data":<charge>}`"#, content_type = "application/json"),
    params(("Psp-Signature" = String, Header, description = "t=<unix>,v1=<hex>")),
    responses(
        (status = 200, description = "received", body = WebhookAnswer),
        (status = 400, description = "bad or missing signature, stale timestamp, or not a charge event", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn receive_psp_webhook(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAnswer>, ApiError> {
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let received = webhook::receive(&st.db, &st.webhook_secret, signature, &body, now).await?;
    Ok(Json(WebhookAnswer { received: true, result: received.as_str().to_string() }))
}
