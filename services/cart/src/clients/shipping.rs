//! `GET /shipping/quotes/{id}` on shipping: 200 the quote, 404 unknown, 410
//! expired; anything else (or no answer in time) means shipping is down.

use std::time::Duration;

use kernel::money::{Cents, Currency};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::Quote;

#[derive(Debug, Deserialize)]
struct QuoteJson {
    id: Uuid,
    destination_cep: String,
    price_cents: i64,
    currency: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

/// What shipping says about a quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuoteLookup {
    Found(Quote),
    Unknown,
    Expired,
}

#[derive(Debug, thiserror::Error)]
#[error("shipping is unavailable: {0}")]
pub struct ShippingDown(pub String);

#[derive(Clone)]
pub struct ShippingClient {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
}

impl ShippingClient {
    pub fn new(http: reqwest::Client, base: &str, timeout: Duration) -> Self {
        ShippingClient { http, base: base.to_string(), timeout }
    }

    #[tracing::instrument(skip(self))]
    pub async fn quote(&self, id: Uuid) -> Result<QuoteLookup, ShippingDown> {
        let res = self
            .http
            .get(super::url(&self.base, &format!("/shipping/quotes/{id}")))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| ShippingDown(e.to_string()))?;
        match res.status().as_u16() {
            200 => {}
            404 => return Ok(QuoteLookup::Unknown),
            410 => return Ok(QuoteLookup::Expired),
            other => return Err(ShippingDown(format!("status {other}"))),
        }
        let q: QuoteJson = res.json().await.map_err(|e| ShippingDown(format!("the quote does not parse: {e}")))?;
        Ok(QuoteLookup::Found(Quote {
            id: q.id,
            destination_cep: q.destination_cep,
            price: Cents::parse(q.price_cents).map_err(|e| ShippingDown(format!("price_cents {e}")))?,
            currency: Currency::parse(&q.currency).map_err(|e| ShippingDown(e.to_string()))?,
            expires_at: q.expires_at,
        }))
    }
}
