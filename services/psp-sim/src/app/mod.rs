//! Use cases: open a transaction, apply the domain, write through `repo`,
//! commit. Requests with an `Idempotency-Key` claim it in the same
//! transaction, so a replay answers what the first request answered.

pub mod charges;
pub mod pix;
pub mod refunds;

use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use crate::PspError;
use crate::repo::idempotency::{self, Claim};

/// An answer to send: what the first request with the key answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
    /// A replay of an earlier request with the same key.
    pub replayed: bool,
}

/// Claims `key`; `Some` is the stored answer to replay (the same request
/// sent again), `None` means this request does the work and must call
/// [`finish`] before committing.
async fn begin(conn: &mut PgConnection, scope: &str, key: &str, fingerprint: &str) -> Result<Option<Answer>, PspError> {
    let hash = Sha256::digest(fingerprint.as_bytes()).to_vec();
    match idempotency::claim_key(conn, scope, key, &hash).await? {
        Claim::Claimed => Ok(None),
        Claim::Existing { request_hash, .. } if request_hash != hash => Err(PspError::Idempotency(format!(
            "keys for idempotent requests can only be used with the same parameters they were first used with; \
             key {key:?} was used with different ones"
        ))),
        Claim::Existing { status_code: Some(status), response: Some(body), .. } => {
            Ok(Some(Answer { status: u16::try_from(status).unwrap_or(500), body, replayed: true }))
        }
        // Only reachable if a claim was committed without its answer.
        Claim::Existing { .. } => Err(PspError::InProgress),
    }
}

/// Stores the answer of a claimed key.
async fn finish(conn: &mut PgConnection, scope: &str, key: &str, answer: &Answer) -> Result<(), PspError> {
    idempotency::store_response(conn, scope, key, answer.status as i16, &answer.body).await?;
    Ok(())
}
