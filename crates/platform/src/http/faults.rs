//! Run-time switchable faults for the simulators of outside parties (the
//! payment provider, the carrier), so tests and operators can make them slow,
//! flaky or down while they run.
//!
//! A simulator keeps one [`Faults`], applies [`layer`] to its `/v1/*` routes
//! and merges [`admin_router`] (`GET`/`PUT`/`DELETE /admin/faults`):
//!
//! ```ignore
//! let faults = Faults::new().stop_hanging_on(svc.shutdown.clone());
//! let v1 = v1.layer(axum::middleware::from_fn_with_state(faults.clone(), faults::layer));
//! let api = v1.merge(faults::admin_router(faults));
//! ```
//!
//! What each setting does to a `/v1` request, checked in this order:
//! - `outage`: every request answers 503 at once.
//! - `fail_next` (POST requests only, counted down per request), by
//!   `fail_mode`: `error` answers 500 without processing; `timeout_before`
//!   waits `hang_ms` without processing, then answers 504; `timeout_after`
//!   processes the request (the charge or booking is recorded), then waits
//!   `hang_ms` before answering: the provider did the work but the answer
//!   never reached the caller in time.
//! - `error_rate`: that fraction of requests answers 500 without processing.
//! - `latency_ms`: every request that is processed waits that long after
//!   processing, before answering.
//!
//! Error answers have the provider's own shape,
//! `{"error":{"type":"api_error","message":...}}` as `application/json`
//! (see [`provider_error`]), not the platform's problem+json: the
//! simulators speak the outside party's protocol.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorKind};
use crate::http::Json;

/// The longest `hang_ms` or `latency_ms` accepted (10 minutes).
pub const MAX_DELAY_MS: u64 = 600_000;

/// How the next `fail_next` POST requests fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Answer 500 without processing.
    #[default]
    Error,
    /// Wait `hang_ms` without processing, then answer 504.
    TimeoutBefore,
    /// Process the request, then wait `hang_ms` before answering.
    TimeoutAfter,
}

/// The switchable settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FaultSettings {
    /// Delay added to every processed `/v1` request, after processing.
    pub latency_ms: u64,
    /// Fraction (0.0 to 1.0) of `/v1` requests that answer 500 unprocessed.
    pub error_rate: f64,
    /// Every `/v1` request answers 503 at once.
    pub outage: bool,
    /// How many of the next `/v1` POST requests fail (by `fail_mode`).
    pub fail_next: u32,
    pub fail_mode: FailMode,
    /// How long a `timeout_before` / `timeout_after` failure hangs.
    pub hang_ms: u64,
}

impl Default for FaultSettings {
    fn default() -> Self {
        FaultSettings {
            latency_ms: 0,
            error_rate: 0.0,
            outage: false,
            fail_next: 0,
            fail_mode: FailMode::Error,
            hang_ms: 30_000,
        }
    }
}

/// A change to the settings: fields left out keep their value.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultPatch {
    pub latency_ms: Option<u64>,
    pub error_rate: Option<f64>,
    pub outage: Option<bool>,
    pub fail_next: Option<u32>,
    pub fail_mode: Option<FailMode>,
    pub hang_ms: Option<u64>,
}

/// The settings and what they have done so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FaultsView {
    #[serde(flatten)]
    pub settings: FaultSettings,
    /// `/v1` requests seen since start (or the last reset).
    pub requests_total: u64,
    /// Of those, the ones a fault failed (outage, error, either timeout).
    pub failed_total: u64,
}

/// What the switch does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// 503 at once.
    Outage,
    /// 500 without processing.
    Fail,
    /// Wait this long without processing, then 504.
    TimeoutBefore(Duration),
    /// Process, wait `hang` (a `timeout_after` failure) and `latency`, answer.
    Proceed { hang: Option<Duration>, latency: Duration },
}

#[derive(Debug, Default)]
struct FaultState {
    settings: FaultSettings,
    requests_total: u64,
    failed_total: u64,
}

impl FaultState {
    /// Decides one request's fate; `roll` is uniform in `[0, 1)`.
    fn decide(&mut self, is_post: bool, roll: f64) -> Decision {
        let s = &mut self.settings;
        self.requests_total += 1;
        let decision = if s.outage {
            Decision::Outage
        } else if is_post && s.fail_next > 0 {
            s.fail_next -= 1;
            let hang = Duration::from_millis(s.hang_ms);
            match s.fail_mode {
                FailMode::Error => Decision::Fail,
                FailMode::TimeoutBefore => Decision::TimeoutBefore(hang),
                FailMode::TimeoutAfter => {
                    Decision::Proceed { hang: Some(hang), latency: Duration::from_millis(s.latency_ms) }
                }
            }
        } else if roll < s.error_rate {
            Decision::Fail
        } else {
            Decision::Proceed { hang: None, latency: Duration::from_millis(s.latency_ms) }
        };
        if !matches!(decision, Decision::Proceed { hang: None, .. }) {
            self.failed_total += 1;
        }
        decision
    }

    fn apply(&mut self, patch: &FaultPatch) -> Result<(), String> {
        if let Some(rate) = patch.error_rate
            && !(0.0..=1.0).contains(&rate)
        {
            return Err(format!("error_rate must be between 0.0 and 1.0, got {rate}"));
        }
        for (name, value) in [("latency_ms", patch.latency_ms), ("hang_ms", patch.hang_ms)] {
            if let Some(v) = value
                && v > MAX_DELAY_MS
            {
                return Err(format!("{name} must be at most {MAX_DELAY_MS}, got {v}"));
            }
        }
        let s = &mut self.settings;
        s.latency_ms = patch.latency_ms.unwrap_or(s.latency_ms);
        s.error_rate = patch.error_rate.unwrap_or(s.error_rate);
        s.outage = patch.outage.unwrap_or(s.outage);
        s.fail_next = patch.fail_next.unwrap_or(s.fail_next);
        s.fail_mode = patch.fail_mode.unwrap_or(s.fail_mode);
        s.hang_ms = patch.hang_ms.unwrap_or(s.hang_ms);
        Ok(())
    }

    fn view(&self) -> FaultsView {
        FaultsView {
            settings: self.settings.clone(),
            requests_total: self.requests_total,
            failed_total: self.failed_total,
        }
    }
}

/// The fault switch of one simulator; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    state: Arc<Mutex<FaultState>>,
    /// Cancels hangs and delays, so a shutdown never waits for them.
    shutdown: CancellationToken,
}

impl Faults {
    /// No faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Hangs and delays end early when `shutdown` is cancelled.
    pub fn stop_hanging_on(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    fn lock(&self) -> MutexGuard<'_, FaultState> {
        // The state stays consistent even if a holder panicked.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides one `/v1` request's fate and counts it; `roll` is uniform in
    /// `[0, 1)` (the middleware passes a random one).
    pub fn decide(&self, is_post: bool, roll: f64) -> Decision {
        self.lock().decide(is_post, roll)
    }

    /// Changes the settings named in `patch`; an invalid value changes nothing.
    pub fn apply(&self, patch: &FaultPatch) -> Result<FaultsView, String> {
        let mut state = self.lock();
        state.apply(patch)?;
        Ok(state.view())
    }

    /// No faults, counters at zero.
    pub fn reset(&self) -> FaultsView {
        let mut state = self.lock();
        *state = FaultState::default();
        state.view()
    }

    pub fn view(&self) -> FaultsView {
        self.lock().view()
    }

    /// Waits `d`, or less if the service shuts down.
    pub async fn delay(&self, d: Duration) {
        if d.is_zero() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.shutdown.cancelled() => {}
        }
    }
}

/// An error answer of an outside party: `{"error":{"type","message"}}`, the
/// shape the simulated providers use.
pub fn provider_error(status: StatusCode, error_type: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": { "type": error_type, "message": message.into() } });
    foreign(status, body.to_string())
}

/// An answer in the outside party's own JSON, passed through the scaffold's
/// problem+json conversion unchanged (see [`crate::http::ForeignError`]).
pub fn foreign(status: StatusCode, body: String) -> Response {
    let mut res = (status, body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.extensions_mut().insert(crate::http::ForeignError);
    res
}

/// Middleware for the `/v1/*` routes: apply with
/// `axum::middleware::from_fn_with_state(faults, faults::layer)`.
pub async fn layer(State(faults): State<Faults>, req: Request, next: Next) -> Response {
    let decision = faults.decide(req.method() == Method::POST, fastrand::f64());
    let injected = |kind: &'static str| metrics::counter!("faults_injected_total", "kind" => kind).increment(1);
    match decision {
        Decision::Outage => {
            injected("outage");
            provider_error(StatusCode::SERVICE_UNAVAILABLE, "api_error", "service unavailable")
        }
        Decision::Fail => {
            injected("error");
            provider_error(StatusCode::INTERNAL_SERVER_ERROR, "api_error", "internal error (injected fault)")
        }
        Decision::TimeoutBefore(hang) => {
            injected("timeout_before");
            faults.delay(hang).await;
            provider_error(StatusCode::GATEWAY_TIMEOUT, "api_error", "timed out (injected fault)")
        }
        Decision::Proceed { hang, latency } => {
            let res = next.run(req).await;
            if let Some(hang) = hang {
                injected("timeout_after");
                faults.delay(hang).await;
            }
            faults.delay(latency).await;
            res
        }
    }
}

/// `GET`/`PUT`/`DELETE /admin/faults`.
pub fn admin_router<S: Clone + Send + Sync + 'static>(faults: Faults) -> OpenApiRouter<S> {
    OpenApiRouter::new().routes(routes!(get_faults, put_faults, delete_faults)).with_state(faults)
}

/// The fault settings and counters.
#[utoipa::path(get, path = "/admin/faults", tag = "faults", responses((status = 200, description = "the fault settings and counters", body = FaultsView)))]
async fn get_faults(State(faults): State<Faults>) -> Json<FaultsView> {
    Json(faults.view())
}

/// Changes the fault settings; fields left out keep their value.
#[utoipa::path(
    put,
    path = "/admin/faults",
    tag = "faults",
    request_body = FaultPatch,
    responses(
        (status = 200, description = "the fault settings and counters", body = FaultsView),
        (status = 400, description = "an invalid setting")
    )
)]
async fn put_faults(
    State(faults): State<Faults>,
    body: Result<Json<FaultPatch>, ApiError>,
) -> Result<Json<FaultsView>, ApiError> {
    let Json(patch) = body?;
    let view = faults.apply(&patch).map_err(|e| ApiError::new(ErrorKind::BadRequest, e))?;
    tracing::info!(settings = ?view.settings, "fault settings changed");
    Ok(Json(view))
}

/// Removes every fault and zeroes the counters.
#[utoipa::path(delete, path = "/admin/faults", tag = "faults", responses((status = 200, description = "the fault settings and counters", body = FaultsView)))]
async fn delete_faults(State(faults): State<Faults>) -> Json<FaultsView> {
    tracing::info!("fault settings reset");
    Json(faults.reset())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NO_FAULT: Decision = Decision::Proceed { hang: None, latency: Duration::ZERO };

    fn with(patch: FaultPatch) -> Faults {
        let f = Faults::new();
        f.apply(&patch).unwrap();
        f
    }

    #[test]
    fn no_settings_means_no_faults() {
        let f = Faults::new();
        assert_eq!(f.decide(true, 0.0), NO_FAULT);
        assert_eq!(f.decide(false, 0.5), NO_FAULT);
        let v = f.view();
        assert_eq!((v.requests_total, v.failed_total), (2, 0));
    }

    #[test]
    fn an_outage_fails_every_request_before_anything_else() {
        let f = with(FaultPatch { outage: Some(true), fail_next: Some(1), ..Default::default() });
        assert_eq!(f.decide(true, 0.9), Decision::Outage);
        assert_eq!(f.decide(false, 0.9), Decision::Outage);
        // The outage did not use up the pending failure.
        assert_eq!(f.view().settings.fail_next, 1);
        assert_eq!(f.view().failed_total, 2);
    }

    #[test]
    fn fail_next_counts_down_on_posts_only() {
        let f = with(FaultPatch { fail_next: Some(2), ..Default::default() });
        assert_eq!(f.decide(false, 0.9), NO_FAULT);
        assert_eq!(f.decide(true, 0.9), Decision::Fail);
        assert_eq!(f.decide(true, 0.9), Decision::Fail);
        assert_eq!(f.decide(true, 0.9), NO_FAULT);
        let v = f.view();
        assert_eq!((v.settings.fail_next, v.requests_total, v.failed_total), (0, 4, 2));
    }

    #[test]
    fn the_fail_mode_decides_whether_the_request_is_processed() {
        let f = with(FaultPatch {
            fail_next: Some(1),
            fail_mode: Some(FailMode::TimeoutBefore),
            hang_ms: Some(250),
            ..Default::default()
        });
        assert_eq!(f.decide(true, 0.9), Decision::TimeoutBefore(Duration::from_millis(250)));
        f.apply(&FaultPatch { fail_next: Some(1), fail_mode: Some(FailMode::TimeoutAfter), ..Default::default() })
            .unwrap();
        assert_eq!(
            f.decide(true, 0.9),
            Decision::Proceed { hang: Some(Duration::from_millis(250)), latency: Duration::ZERO }
        );
        assert_eq!(f.view().failed_total, 2);
    }

    #[test]
    fn the_error_rate_fails_requests_whose_roll_is_below_it() {
        let f = with(FaultPatch { error_rate: Some(0.3), ..Default::default() });
        assert_eq!(f.decide(false, 0.29), Decision::Fail);
        assert_eq!(f.decide(true, 0.3), NO_FAULT);
        let always = with(FaultPatch { error_rate: Some(1.0), ..Default::default() });
        assert_eq!(always.decide(false, 0.999_999), Decision::Fail);
    }

    #[test]
    fn latency_applies_to_processed_requests() {
        let f = with(FaultPatch { latency_ms: Some(40), ..Default::default() });
        assert_eq!(f.decide(false, 0.5), Decision::Proceed { hang: None, latency: Duration::from_millis(40) });
        assert_eq!(f.view().failed_total, 0);
    }

    #[test]
    fn a_patch_keeps_unnamed_settings_and_rejects_invalid_ones_whole() {
        let f = with(FaultPatch { latency_ms: Some(10), outage: Some(true), ..Default::default() });
        let v = f.apply(&FaultPatch { outage: Some(false), ..Default::default() }).unwrap();
        assert_eq!(v.settings.latency_ms, 10);
        assert!(!v.settings.outage);
        assert!(f.apply(&FaultPatch { latency_ms: Some(5), error_rate: Some(1.5), ..Default::default() }).is_err());
        assert_eq!(f.view().settings.latency_ms, 10);
        assert!(f.apply(&FaultPatch { hang_ms: Some(MAX_DELAY_MS + 1), ..Default::default() }).is_err());
    }

    #[test]
    fn a_reset_clears_settings_and_counters() {
        let f = with(FaultPatch { outage: Some(true), ..Default::default() });
        f.decide(true, 0.5);
        assert_eq!(f.reset(), FaultsView { settings: FaultSettings::default(), requests_total: 0, failed_total: 0 });
    }

    #[test]
    fn settings_read_and_write_as_the_documented_json() {
        let v = serde_json::to_value(Faults::new().view()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"latency_ms": 0, "error_rate": 0.0, "outage": false, "fail_next": 0,
                "fail_mode": "error", "hang_ms": 30000, "requests_total": 0, "failed_total": 0})
        );
        let p: FaultPatch = serde_json::from_str(r#"{"fail_mode":"timeout_after","fail_next":3}"#).unwrap();
        assert_eq!((p.fail_mode, p.fail_next, p.outage), (Some(FailMode::TimeoutAfter), Some(3), None));
        assert!(serde_json::from_str::<FaultPatch>(r#"{"outgae":true}"#).is_err());
    }

    #[tokio::test]
    async fn provider_errors_have_the_providers_shape() {
        let res = provider_error(StatusCode::SERVICE_UNAVAILABLE, "api_error", "service unavailable");
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        assert!(res.extensions().get::<crate::http::ForeignError>().is_some(), "passed through as it is");
        let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, serde_json::json!({"error": {"type": "api_error", "message": "service unavailable"}}));
    }
}
