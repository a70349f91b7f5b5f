//! Creating and reading charges.

use sqlx::PgPool;

use super::{Answer, begin, finish};
use crate::PspError;
use crate::domain::{Charge, ChargeStatus, NewCharge, new_id};
use crate::repo;

const SCOPE: &str = "charges";
/// The most charges one list answers.
pub const LIST_LIMIT: i64 = 1000;

/// Charges `req` once per `key`: 201 with the charge, or 402 with the failed
/// charge for a declined card (both recorded and replayed for the key).
#[tracing::instrument(skip_all, fields(order_ref = %req.order_ref))]
pub async fn create_charge(db: &PgPool, key: &str, req: &NewCharge) -> Result<Answer, PspError> {
    let mut tx = db.begin().await?;
    if let Some(replay) = begin(&mut tx, SCOPE, key, &req.fingerprint()).await? {
        return Ok(replay);
    }
    let charge = Charge::open(new_id("ch"), req, kernel::time::now());
    repo::charges::insert_charge(&mut tx, &charge).await?;
    let status = if charge.status == ChargeStatus::Failed { 402 } else { 201 };
    let answer = Answer { status, body: serde_json::to_value(&charge).map_err(anyhow::Error::from)?, replayed: false };
    finish(&mut tx, SCOPE, key, &answer).await?;
    tx.commit().await?;
    tracing::info!(charge = %charge.id, status = charge.status.as_str(), "charge created");
    Ok(answer)
}

pub async fn get_charge(db: &PgPool, id: &str) -> Result<Charge, PspError> {
    let mut conn = db.acquire().await?;
    repo::charges::fetch_charge(&mut conn, id).await?.ok_or_else(|| PspError::NoSuchCharge(id.to_string()))
}

pub async fn list_charges(db: &PgPool, order_ref: Option<&str>) -> Result<Vec<Charge>, PspError> {
    let mut conn = db.acquire().await?;
    Ok(repo::charges::list_charges(&mut conn, order_ref, LIST_LIMIT).await?)
}
