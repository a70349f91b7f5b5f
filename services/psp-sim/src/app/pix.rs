//! The customer pays a PIX charge; the provider tells the merchant with a
//! signed callback to the charge's `notify_url`, retried with backoff.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::domain::{Charge, new_id, webhook};
use crate::repo::{self, deliveries::Delivery};
use crate::{AppState, PspError};

/// Waits before each delivery attempt: six attempts over about 15 seconds.
pub const RETRY_DELAYS: [Duration; 6] = [
    Duration::ZERO,
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];

/// Marks the pending PIX charge paid, and starts delivering its callback in
/// the background (when it has a `notify_url`).
#[tracing::instrument(skip_all, fields(charge = %id))]
pub async fn pay(state: &AppState, id: &str) -> Result<Charge, PspError> {
    let mut tx = state.db.begin().await?;
    let mut charge =
        repo::charges::lock_charge(&mut tx, id).await?.ok_or_else(|| PspError::NoSuchCharge(id.to_string()))?;
    charge.pay_pix(kernel::time::now())?;
    repo::charges::update_charge(&mut tx, &charge).await?;
    tx.commit().await?;
    tracing::info!("pix charge paid");
    if let Some(url) = charge.notify_url.clone() {
        let callback = Callback {
            db: state.db.clone(),
            client: state.http.clone(),
            secret: state.webhook_secret.clone(),
            shutdown: state.shutdown.clone(),
        };
        tokio::spawn(callback.deliver(charge.clone(), url));
    }
    Ok(charge)
}

pub async fn deliveries(db: &PgPool, id: &str) -> Result<Vec<Delivery>, PspError> {
    let mut conn = db.acquire().await?;
    if repo::charges::fetch_charge(&mut conn, id).await?.is_none() {
        return Err(PspError::NoSuchCharge(id.to_string()));
    }
    Ok(repo::deliveries::list_deliveries(&mut conn, id).await?)
}

struct Callback {
    db: PgPool,
    client: reqwest::Client,
    secret: Arc<str>,
    shutdown: CancellationToken,
}

impl Callback {
    /// Posts `{"id","type":"charge.succeeded","data":<charge>}` until the
    /// receiver answers 2xx or the attempts run out; records every attempt.
    async fn deliver(self, charge: Charge, url: String) {
        let event = serde_json::json!({"id": new_id("evt"), "type": "charge.succeeded", "data": &charge});
        let body = event.to_string().into_bytes();
        for (i, delay) in RETRY_DELAYS.iter().enumerate() {
            tokio::select! {
                _ = tokio::time::sleep(*delay) => {}
                _ = self.shutdown.cancelled() => return,
            }
            let t = time::OffsetDateTime::now_utc().unix_timestamp();
            let sent = self
                .client
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(webhook::SIGNATURE_HEADER, webhook::signature_header(&self.secret, t, &body))
                .body(body.clone())
                .send()
                .await;
            let (status_code, error) = match &sent {
                Ok(res) => (Some(i32::from(res.status().as_u16())), None),
                Err(e) => (None, Some(error_chain(e))),
            };
            let delivery = Delivery {
                attempt: i as i32 + 1,
                url: url.clone(),
                status_code,
                error,
                attempted_at: kernel::time::now(),
            };
            self.record(&charge.id, &delivery).await;
            if sent.as_ref().is_ok_and(|r| r.status().is_success()) {
                tracing::info!(charge = %charge.id, attempt = delivery.attempt, "pix callback delivered");
                return;
            }
            tracing::warn!(charge = %charge.id, attempt = delivery.attempt, status = ?status_code, error = ?delivery.error, "pix callback failed");
        }
        tracing::error!(charge = %charge.id, %url, "pix callback not delivered; attempts exhausted");
    }

    async fn record(&self, charge_id: &str, d: &Delivery) {
        let result = async {
            let mut conn = self.db.acquire().await?;
            repo::deliveries::insert_delivery(&mut conn, charge_id, d).await
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, charge = %charge_id, "could not record a pix callback attempt");
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
