//! The payment provider's HTTP API, behind a circuit breaker named `psp`.
//!
//! Each call is one attempt with its own timeout; retrying is the worker's
//! business (it reschedules the payment with a backoff instead of sleeping).
//! Timeouts, refused connections, 5xx answers and unreadable bodies are
//! failures of the provider (they count for the breaker); a 4xx is an
//! answer. Metrics: `payments_psp_requests_total{operation,outcome}` and
//! `payments_psp_request_duration_seconds{operation}`.

use std::time::{Duration, Instant};

use platform::resilience::{BreakerConfig, CircuitBreaker};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::{ChargeStatus, Method, Payment, ProviderCharge, ProviderRefund};

/// How to reach the provider.
#[derive(Debug, Clone)]
pub struct PspSettings {
    pub base_url: String,
    /// Where the provider sends webhooks (`<public url>/payments/webhooks/psp`).
    pub notify_url: String,
    pub timeout: Duration,
    pub breaker: BreakerConfig,
}

/// Why a call gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PspError {
    /// Timeout, connection failure, 5xx, or an answer we cannot read: try
    /// again later.
    #[error("the payment provider is unavailable: {0}")]
    Unavailable(String),
    /// The breaker refused the call without trying.
    #[error("the payment provider's circuit breaker is open")]
    Open,
    /// The provider refused the request (4xx): trying again cannot help.
    #[error("the payment provider refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
}

impl PspError {
    /// True when a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        !matches!(self, PspError::Rejected { .. })
    }
}

/// The provider's client; clones share the connection pool and the breaker.
#[derive(Debug, Clone)]
pub struct Psp {
    http: reqwest::Client,
    base: String,
    notify_url: String,
    breaker: CircuitBreaker,
}

#[derive(Debug, Serialize)]
struct ChargeBody<'a> {
    amount_cents: i64,
    currency: &'a str,
    source: Source<'a>,
    order_ref: String,
    notify_url: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Source<'a> {
    Card { token: &'a str },
    Pix,
}

#[derive(Debug, Serialize)]
struct RefundBody<'a> {
    charge: &'a str,
}

/// A charge as the provider serializes it.
#[derive(Debug, Clone, Deserialize)]
pub struct ChargeDto {
    pub id: String,
    pub status: String,
    pub amount_cents: i64,
    #[serde(default)]
    pub order_ref: Option<String>,
    #[serde(default)]
    pub failure_code: Option<String>,
    #[serde(default)]
    pub pix: Option<PixDto>,
    #[serde(default)]
    pub refunded_cents: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PixDto {
    pub code: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl ChargeDto {
    /// The domain's view, or `None` for a status the domain does not know.
    pub fn to_domain(&self) -> Option<ProviderCharge> {
        let status = match self.status.as_str() {
            "succeeded" => ChargeStatus::Succeeded,
            "pending" => ChargeStatus::Pending,
            "failed" => ChargeStatus::Failed,
            _ => return None,
        };
        Some(ProviderCharge {
            id: self.id.clone(),
            status,
            amount_cents: self.amount_cents,
            failure_code: self.failure_code.clone(),
            pix_code: self.pix.as_ref().and_then(|p| p.code.clone()),
            pix_expires_at: self.pix.as_ref().and_then(|p| p.expires_at),
            refunded_cents: self.refunded_cents,
        })
    }
}

#[derive(Debug, Deserialize)]
struct ChargeList {
    data: Vec<ChargeDto>,
}

#[derive(Debug, Deserialize)]
struct RefundDto {
    id: String,
    amount_cents: i64,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
}

impl Psp {
    pub fn new(settings: &PspSettings) -> anyhow::Result<Psp> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent("feira-payments")
            .build()?;
        // Touch the counters so dashboards see them from the start.
        metrics::counter!("payments_psp_requests_total", "operation" => "charge", "outcome" => "ok").increment(0);
        Ok(Psp {
            http,
            base: settings.base_url.trim_end_matches('/').to_string(),
            notify_url: settings.notify_url.clone(),
            breaker: CircuitBreaker::new("psp", settings.breaker),
        })
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// `POST /v1/charges` with the payment's idempotency key: a repeated
    /// attempt gets the charge the first one made. A decline (402) is an
    /// answer: the charge, failed.
    pub async fn create_charge(&self, p: &Payment) -> Result<ProviderCharge, PspError> {
        let source = match &p.method {
            Method::Card { token } => Source::Card { token },
            Method::Pix => Source::Pix,
        };
        let body = ChargeBody {
            amount_cents: p.amount_cents,
            currency: &p.currency,
            source,
            order_ref: p.order_id.to_string(),
            notify_url: &self.notify_url,
        };
        let req = self
            .http
            .post(format!("{}/v1/charges", self.base))
            .header("Idempotency-Key", &p.idempotency_key)
            .json(&body);
        let (status, bytes) = self.send("charge", req).await?;
        if status == StatusCode::CREATED || status == StatusCode::OK || status == StatusCode::PAYMENT_REQUIRED {
            let dto: ChargeDto = parse("charge", &bytes)?;
            return dto.to_domain().ok_or_else(|| unexpected("charge", &format!("status {:?}", dto.status)));
        }
        Err(rejected(status, &bytes))
    }

    /// `GET /v1/charges?order_ref=`: every charge the provider has for the order.
    pub async fn charges_of_order(&self, order_id: uuid::Uuid) -> Result<Vec<ProviderCharge>, PspError> {
        // A UUID needs no escaping in a query string.
        let req = self.http.get(format!("{}/v1/charges?order_ref={order_id}", self.base));
        let (status, bytes) = self.send("list_charges", req).await?;
        if !status.is_success() {
            return Err(rejected(status, &bytes));
        }
        let list: ChargeList = parse("list_charges", &bytes)?;
        list.data
            .iter()
            .filter(|c| c.order_ref.as_deref().is_none_or(|r| r == order_id.to_string()))
            .map(|c| c.to_domain().ok_or_else(|| unexpected("list_charges", &format!("status {:?}", c.status))))
            .collect()
    }

    /// `POST /v1/refunds` of the whole charge, with the order's refund key.
    pub async fn refund(&self, charge_id: &str, key: &str) -> Result<ProviderRefund, PspError> {
        let req = self
            .http
            .post(format!("{}/v1/refunds", self.base))
            .header("Idempotency-Key", key)
            .json(&RefundBody { charge: charge_id });
        let (status, bytes) = self.send("refund", req).await?;
        if !status.is_success() {
            return Err(rejected(status, &bytes));
        }
        let dto: RefundDto = parse("refund", &bytes)?;
        Ok(ProviderRefund { id: dto.id, amount_cents: dto.amount_cents })
    }

    /// One attempt through the breaker: the status and body of any answer
    /// below 500, or the reason there is none.
    async fn send(
        &self,
        operation: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), PspError> {
        let Ok(permit) = self.breaker.try_acquire() else {
            count(operation, "breaker_open");
            return Err(PspError::Open);
        };
        let started = Instant::now();
        let result = async {
            let res = req.send().await?;
            let status = res.status();
            let body = res.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>((status, body))
        }
        .await;
        metrics::histogram!("payments_psp_request_duration_seconds", "operation" => operation)
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok((status, _)) if status.is_server_error() => {
                permit.failure();
                count(operation, "server_error");
                Err(PspError::Unavailable(format!("{operation}: the provider answered {status}")))
            }
            Ok((status, body)) => {
                permit.success();
                let outcome = match status.as_u16() {
                    200..=299 => "ok",
                    402 => "declined",
                    _ => "rejected",
                };
                count(operation, outcome);
                Ok((status, body))
            }
            Err(e) => {
                permit.failure();
                let outcome = if e.is_timeout() { "timeout" } else { "unreachable" };
                count(operation, outcome);
                Err(PspError::Unavailable(format!("{operation}: {outcome}: {e}")))
            }
        }
    }
}

fn count(operation: &'static str, outcome: &'static str) {
    metrics::counter!("payments_psp_requests_total", "operation" => operation, "outcome" => outcome).increment(1);
}

fn parse<T: serde::de::DeserializeOwned>(operation: &str, bytes: &[u8]) -> Result<T, PspError> {
    serde_json::from_slice(bytes).map_err(|e| unexpected(operation, &e.to_string()))
}

fn unexpected(operation: &str, what: &str) -> PspError {
    PspError::Unavailable(format!("{operation}: unexpected answer from the provider: {what}"))
}

fn rejected(status: StatusCode, bytes: &[u8]) -> PspError {
    let message = serde_json::from_slice::<ErrorBody>(bytes)
        .map(|b| b.error.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(bytes).chars().take(200).collect());
    // 409 (the same key in flight elsewhere) and 429 (slow down) are worth
    // another try.
    if status == StatusCode::CONFLICT || status == StatusCode::TOO_MANY_REQUESTS {
        return PspError::Unavailable(format!("the provider answered {status}: {message}"));
    }
    PspError::Rejected { status: status.as_u16(), message }
}
