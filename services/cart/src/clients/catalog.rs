//! `GET /products/{id}` on the catalog (a public read, cached there), through
//! the `catalog` circuit breaker. A 404 is an answer (the product is not
//! sold: unknown, inactive or deleted); a timeout, a refused connection, a
//! 5xx or an answer that does not parse is a failure of the catalog.

use std::time::Duration;

use kernel::money::{Cents, Currency};
use platform::resilience::{BreakerConfig, CircuitBreaker};
use serde::Deserialize;
use uuid::Uuid;

use crate::domain::{Price, Snapshot};

/// The name of the breaker (the `breaker` label of `circuit_breaker_state`).
pub const BREAKER: &str = "catalog";

/// The product as the catalog answers it (other fields are ignored).
#[derive(Debug, Deserialize)]
struct ProductJson {
    sku: String,
    title: String,
    price_cents: i64,
    currency: String,
    active: bool,
    /// Units that can be sold now (`on_hand - reserved`).
    available: Option<i64>,
}

/// The catalog could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum CatalogDown {
    #[error("the catalog's circuit breaker is open")]
    Open,
    #[error("the catalog failed: {0}")]
    Failed(String),
}

#[derive(Clone)]
pub struct CatalogClient {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
    breaker: CircuitBreaker,
}

impl CatalogClient {
    /// A client with the `catalog` breaker (5 consecutive failures open it
    /// for 10 s).
    pub fn new(http: reqwest::Client, base: &str, timeout: Duration) -> Self {
        CatalogClient {
            http,
            base: base.to_string(),
            timeout,
            breaker: CircuitBreaker::new(BREAKER, BreakerConfig::default()),
        }
    }

    /// What the catalog says about one product now.
    #[tracing::instrument(skip(self))]
    pub async fn product(&self, id: Uuid) -> Result<Price, CatalogDown> {
        let permit = self.breaker.try_acquire().map_err(|_| CatalogDown::Open)?;
        match self.fetch(id).await {
            Ok(price) => {
                permit.success();
                Ok(price)
            }
            Err(reason) => {
                permit.failure();
                tracing::warn!(product_id = %id, %reason, "catalog call failed");
                Err(CatalogDown::Failed(reason))
            }
        }
    }

    /// One [`Price`] per id, asked concurrently; [`Price::Unknown`] where the
    /// catalog could not be asked.
    pub async fn prices(&self, ids: impl IntoIterator<Item = Uuid>) -> Vec<Price> {
        let calls = ids.into_iter().map(|id| async move { self.product(id).await.unwrap_or(Price::Unknown) });
        futures_util::future::join_all(calls).await
    }

    async fn fetch(&self, id: Uuid) -> Result<Price, String> {
        let res = self
            .http
            .get(super::url(&self.base, &format!("/products/{id}")))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match res.status().as_u16() {
            200 => {}
            404 | 410 => return Ok(Price::Gone),
            other => return Err(format!("status {other}")),
        }
        let p: ProductJson = res.json().await.map_err(|e| format!("the product does not parse: {e}"))?;
        let unit_price_cents = Cents::parse(p.price_cents).map_err(|e| format!("price_cents {e}"))?;
        let currency = Currency::parse(&p.currency).map_err(|e| e.to_string())?;
        Ok(Price::Current {
            snapshot: Snapshot { sku: p.sku, title: p.title, unit_price_cents, currency },
            active: p.active,
            available: p.available,
        })
    }
}
