//! The carrier's HTTP API (Correios-like; `carrier-sim` locally), every call
//! through one circuit breaker named `carrier` and bounded by a timeout.
//!
//! A timeout, a refused connection, a 5xx, a 408 or a 429 is a failure of
//! the carrier: it counts towards opening the breaker. Any other 4xx is an
//! answer (the carrier refused this request), which the breaker counts as a
//! success: the carrier is up.

use std::future::Future;
use std::time::Duration;

use platform::resilience::CircuitBreaker;
use serde::{Deserialize, Serialize};
use time::Date;

use crate::domain::{Booked, CarrierService, Rate};

time::serde::format_description!(plain_date, Date, "[year]-[month]-[day]");

/// Why a carrier call gave no result.
#[derive(Debug, thiserror::Error)]
pub enum CarrierError {
    #[error("the carrier's circuit breaker is open")]
    Open,
    #[error("the carrier did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the carrier is unreachable: {0}")]
    Unreachable(#[source] reqwest::Error),
    #[error("the carrier failed with status {status}: {body}")]
    Failed { status: u16, body: String },
    #[error("the carrier's answer is malformed: {0}")]
    Malformed(String),
    /// The carrier is up and refused this request: retrying will not help.
    #[error("the carrier refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
}

impl CarrierError {
    /// True when the carrier itself is down or slow (so a fallback answer,
    /// or a later retry, is right).
    pub fn is_outage(&self) -> bool {
        !matches!(self, CarrierError::Refused { .. })
    }
}

#[derive(Debug, Serialize)]
struct QuoteBody<'a> {
    origin_cep: &'a str,
    destination_cep: &'a str,
    weight_grams: i64,
}

#[derive(Debug, Deserialize)]
struct QuoteAnswer {
    options: Vec<QuoteOption>,
}

#[derive(Debug, Deserialize)]
struct QuoteOption {
    service: String,
    price_cents: i64,
    days: i32,
}

/// A booking request.
#[derive(Debug, Clone, Serialize)]
pub struct Booking {
    pub service: &'static str,
    pub origin_cep: String,
    pub destination_cep: String,
    pub weight_grams: i64,
    /// Our reference: the order id.
    pub reference: String,
}

#[derive(Debug, Deserialize)]
struct BookingAnswer {
    id: String,
    tracking_code: String,
    #[serde(with = "plain_date")]
    estimated_delivery: Date,
}

#[derive(Debug, Deserialize)]
struct ErrorAnswer {
    error: ErrorBody,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    message: String,
}

/// The carrier client; clones share the breaker and the connection pool.
#[derive(Debug, Clone)]
pub struct Carrier {
    http: reqwest::Client,
    base_url: String,
    timeout: Duration,
    breaker: CircuitBreaker,
}

impl Carrier {
    pub fn new(base_url: &str, timeout: Duration, breaker: CircuitBreaker) -> anyhow::Result<Carrier> {
        let http = reqwest::Client::builder().connect_timeout(timeout).build()?;
        Ok(Carrier { http, base_url: base_url.trim_end_matches('/').to_string(), timeout, breaker })
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The carrier's price and time for `service`.
    #[tracing::instrument(skip_all, fields(destination_cep = %destination_cep, weight_grams = weight_grams, service = service.as_str()))]
    pub async fn quote(
        &self,
        origin_cep: &str,
        destination_cep: &str,
        weight_grams: i64,
        service: CarrierService,
    ) -> Result<Rate, CarrierError> {
        let url = format!("{}/v1/quotes", self.base_url);
        let body = QuoteBody { origin_cep, destination_cep, weight_grams };
        self.guarded(async {
            let res = self.http.post(url).json(&body).send().await.map_err(CarrierError::Unreachable)?;
            let answer: QuoteAnswer = read(res, 200).await?;
            answer
                .options
                .iter()
                .find(|o| o.service == service.as_str())
                .filter(|o| o.price_cents >= 0 && o.days > 0)
                .map(|o| Rate { price_cents: o.price_cents, days: o.days })
                .ok_or_else(|| CarrierError::Malformed(format!("no valid {} option", service.as_str())))
        })
        .await
    }

    /// Books a shipment; the same `idempotency_key` always gives the same
    /// shipment.
    #[tracing::instrument(skip_all, fields(reference = %booking.reference, service = booking.service))]
    pub async fn book(&self, idempotency_key: &str, booking: &Booking) -> Result<Booked, CarrierError> {
        let url = format!("{}/v1/shipments", self.base_url);
        self.guarded(async {
            let res = self
                .http
                .post(url)
                .header("Idempotency-Key", idempotency_key)
                .json(booking)
                .send()
                .await
                .map_err(CarrierError::Unreachable)?;
            let answer: BookingAnswer = read(res, 201).await?;
            if answer.tracking_code.trim().is_empty() {
                return Err(CarrierError::Malformed("empty tracking code".into()));
            }
            Ok(Booked {
                carrier_shipment_id: answer.id,
                tracking_code: answer.tracking_code,
                estimated_delivery: answer.estimated_delivery,
            })
        })
        .await
    }

    /// Runs `call` if the breaker lets it, within the timeout, and tells the
    /// breaker how it went.
    async fn guarded<T>(&self, call: impl Future<Output = Result<T, CarrierError>>) -> Result<T, CarrierError> {
        let permit = self.breaker.try_acquire().map_err(|_| CarrierError::Open)?;
        let outcome = match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(CarrierError::Timeout(self.timeout)),
        };
        match &outcome {
            Err(e) if e.is_outage() => permit.failure(),
            _ => permit.success(),
        }
        outcome
    }
}

/// The body of a `want` answer, or the error the status means.
async fn read<T: serde::de::DeserializeOwned>(res: reqwest::Response, want: u16) -> Result<T, CarrierError> {
    let status = res.status().as_u16();
    let bytes = res.bytes().await.map_err(CarrierError::Unreachable)?;
    if status == want || (want == 201 && status == 200) {
        return serde_json::from_slice(&bytes).map_err(|e| CarrierError::Malformed(e.to_string()));
    }
    let text = String::from_utf8_lossy(&bytes).chars().take(300).collect::<String>();
    match status {
        400..=499 if status != 408 && status != 429 => {
            let message = serde_json::from_slice::<ErrorAnswer>(&bytes)
                .map(|e| {
                    if e.error.kind.is_empty() {
                        e.error.message
                    } else {
                        format!("{}: {}", e.error.kind, e.error.message)
                    }
                })
                .unwrap_or(text);
            Err(CarrierError::Refused { status, message })
        }
        _ => Err(CarrierError::Failed { status, body: text }),
    }
}
