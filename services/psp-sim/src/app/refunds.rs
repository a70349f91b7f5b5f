//! Refunding charges.

use sqlx::PgPool;

use super::{Answer, begin, finish};
use crate::PspError;
use crate::domain::{new_id, refund};
use crate::repo;

const SCOPE: &str = "refunds";

/// Refunds `amount_cents` of `charge_id` (the rest when `None`) once per `key`.
#[tracing::instrument(skip_all, fields(charge = %charge_id))]
pub async fn create_refund(
    db: &PgPool,
    key: &str,
    charge_id: &str,
    amount_cents: Option<i64>,
) -> Result<Answer, PspError> {
    let fingerprint = format!("refund|{charge_id}|{}", amount_cents.map(|a| a.to_string()).unwrap_or_default());
    let mut tx = db.begin().await?;
    if let Some(replay) = begin(&mut tx, SCOPE, key, &fingerprint).await? {
        return Ok(replay);
    }
    let mut charge = repo::charges::lock_charge(&mut tx, charge_id)
        .await?
        .ok_or_else(|| PspError::NoSuchCharge(charge_id.to_string()))?;
    let refund = refund::refund(&mut charge, amount_cents, new_id("re"), kernel::time::now())?;
    repo::charges::update_charge(&mut tx, &charge).await?;
    repo::refunds::insert_refund(&mut tx, &refund).await?;
    let answer =
        Answer { status: 201, body: serde_json::to_value(&refund).map_err(anyhow::Error::from)?, replayed: false };
    finish(&mut tx, SCOPE, key, &answer).await?;
    tx.commit().await?;
    tracing::info!(refund = %refund.id, amount_cents = refund.amount_cents, "charge refunded");
    Ok(answer)
}
