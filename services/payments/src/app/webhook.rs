//! The provider's webhook: a signed notice that a (PIX) charge was paid or
//! failed. Nothing changes unless the signature is valid and fresh.

use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::webhook::{self, SignatureError};
use crate::psp::ChargeDto;
use crate::{PaymentsError, repo};

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    data: ChargeDto,
}

/// What a valid webhook did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// The payment moved (and its reply, if any, is in the outbox).
    Applied,
    /// Already known: a repeated delivery.
    Unchanged,
    /// Not about one of our payments, or an event we do not act on.
    Ignored,
}

impl Received {
    pub fn as_str(self) -> &'static str {
        match self {
            Received::Applied => "applied",
            Received::Unchanged => "unchanged",
            Received::Ignored => "ignored",
        }
    }
}

fn rejected(reason: &'static str, detail: &dyn std::fmt::Display) {
    metrics::counter!("payments_webhook_rejected_total", "reason" => reason).increment(1);
    tracing::warn!(reason, detail = %detail, "psp webhook rejected");
}

/// Verifies `body` against `signature` with `secret` at unix time `now`,
/// then applies the event.
#[tracing::instrument(skip_all)]
pub async fn receive(
    db: &PgPool,
    secret: &str,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<Received, PaymentsError> {
    if let Err(e) = webhook::verify(secret, signature, body, now) {
        rejected(e.reason(), &e);
        return Err(PaymentsError::Webhook(e));
    }
    let event: Event = serde_json::from_slice(body).map_err(|e| {
        rejected("malformed_body", &e);
        PaymentsError::BadWebhook(format!("the event is not a charge event: {e}"))
    })?;
    let Some(order_id) = event.data.order_ref.as_deref().and_then(|r| Uuid::parse_str(r).ok()) else {
        tracing::warn!(kind = %event.kind, charge = %event.data.id, "psp webhook names no order of ours; ignored");
        return Ok(Received::Ignored);
    };
    let mut tx = db.begin().await?;
    let Some(mut payment) = repo::lock_by_order(&mut tx, order_id).await? else {
        tracing::warn!(kind = %event.kind, %order_id, "psp webhook for an unknown order; ignored");
        return Ok(Received::Ignored);
    };
    let before = payment.clone();
    let now_ts = kernel::time::now();
    let reply = match (event.kind.as_str(), event.data.status.as_str()) {
        ("charge.succeeded", "succeeded") => payment.on_paid(&event.data.id, now_ts),
        ("charge.failed" | "charge.expired", _) => payment.on_unpaid(event.data.failure_code.as_deref(), now_ts),
        (kind, status) => {
            tracing::info!(kind, status, %order_id, "psp webhook event not acted on");
            return Ok(Received::Ignored);
        }
    };
    if payment == before {
        tracing::info!(kind = %event.kind, %order_id, status = payment.status.as_str(), "psp webhook repeated; nothing changes");
        return Ok(Received::Unchanged);
    }
    repo::update_payment(&mut tx, &payment).await?;
    if let Some(reply) = reply {
        let cause = crate::app::cause_of(&payment, &reply);
        crate::app::announce(&mut tx, reply, cause).await?;
    }
    if payment.status.is_due_work() {
        repo::notify_work(&mut tx).await?;
    }
    tx.commit().await?;
    tracing::info!(kind = %event.kind, %order_id, payment_id = %payment.id, status = payment.status.as_str(), "psp webhook applied");
    Ok(Received::Applied)
}

impl From<SignatureError> for PaymentsError {
    fn from(e: SignatureError) -> Self {
        PaymentsError::Webhook(e)
    }
}
