//! Publishing one dirty owner: claim → build → hash → write → record.
//!
//! One transaction per owner. It claims the owner's publication row
//! (`FOR UPDATE SKIP LOCKED`, so replicas never publish one owner at once and
//! consumers never wait for it), reads the read model, builds the document
//! and compares its SHA-256 with the last published one. Only a new hash is
//! written: the versioned copy, then the current object. Then, in the same
//! transaction, the version is recorded, `CatalogPublishedV1` is written to
//! the outbox, and the dirty mark is cleared unless a change arrived since the
//! claim. A crash after the write and before the commit leaves objects that
//! the next attempt rewrites (same version number, current content): nothing
//! was announced for them. A failed write commits only the failure count and
//! the time of the next attempt; the owner stays dirty.

use std::time::Duration;

use contracts::Envelope;
use platform::messaging::outbox;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{self, CatalogDocument, Coalescing, Decision};
use crate::events;
use crate::repo::{self, Claim};
use crate::store::CatalogStore;

/// What one attempt did.
#[derive(Debug)]
pub enum Outcome {
    /// No owner is due.
    Idle,
    Published {
        owner_id: Uuid,
        version: i64,
        sha256: String,
    },
    /// The document is byte for byte the published one.
    Unchanged {
        owner_id: Uuid,
    },
    /// No `OwnerChangedV1` yet: nothing is published until the owner is
    /// known (its event marks it dirty again).
    UnknownOwner {
        owner_id: Uuid,
    },
    /// Writing to the store failed; the owner stays dirty and is retried
    /// after `retry_in`.
    Failed {
        owner_id: Uuid,
        attempt: u32,
        retry_in: Duration,
        error: anyhow::Error,
    },
}

/// Publishes the due owner that has waited longest, if any.
pub async fn publish_next(db: &PgPool, store: &CatalogStore, rules: Coalescing) -> anyhow::Result<Outcome> {
    let mut tx = db.begin().await?;
    let Some(claim) = repo::claim_due_owner(&mut tx, rules.window, rules.max_delay).await? else {
        tx.rollback().await?;
        return Ok(Outcome::Idle);
    };
    let outcome = publish_owner(&mut tx, store, rules, claim).await?;
    tx.commit().await?;
    Ok(outcome)
}

#[tracing::instrument(skip_all, fields(owner_id = %claim.owner_id))]
async fn publish_owner(
    tx: &mut PgConnection,
    store: &CatalogStore,
    rules: Coalescing,
    claim: Claim,
) -> anyhow::Result<Outcome> {
    let owner_id = claim.owner_id;
    let Some(owner) = repo::fetch_owner(tx, owner_id).await? else {
        repo::clear_dirty(tx, &claim).await?;
        return Ok(Outcome::UnknownOwner { owner_id });
    };
    let categories = repo::fetch_categories(tx, owner_id).await?;
    let products = repo::fetch_products(tx, owner_id).await?;
    let rendered = CatalogDocument::build(&owner, &categories, &products).render();
    let version = match domain::decide(claim.version, claim.sha256.as_deref(), &rendered.sha256) {
        Decision::Unchanged => {
            if claim.failures > 0 {
                repo::reset_failures(tx, owner_id).await?;
            }
            repo::clear_dirty(tx, &claim).await?;
            return Ok(Outcome::Unchanged { owner_id });
        }
        Decision::Publish { version } => version,
    };

    let key = domain::latest_key(owner_id);
    let versioned_key = domain::versioned_key(owner_id, version);
    let written = async {
        store.put_json(&versioned_key, rendered.bytes.clone()).await?;
        store.put_json(&key, rendered.bytes).await
    }
    .await;
    if let Err(error) = written {
        let attempt = u32::try_from(claim.failures).unwrap_or(0).saturating_add(1);
        let retry_in = domain::retry_delay(attempt, rules.window);
        repo::record_failure(tx, owner_id, retry_in, &format!("{error:#}")).await?;
        return Ok(Outcome::Failed { owner_id, attempt, retry_in, error });
    }

    // Kept to the microsecond, as stored, so the event and the API agree.
    let now = OffsetDateTime::now_utc();
    let published_at = kernel::time::stored(now);
    repo::record_version(tx, owner_id, version, &rendered.sha256, published_at).await?;
    let event = events::catalog_published(owner_id, version, key, versioned_key, rendered.sha256.clone(), published_at);
    outbox::enqueue(tx, &Envelope::new(event)).await?;
    repo::clear_dirty(tx, &claim).await?;
    Ok(Outcome::Published { owner_id, version, sha256: rendered.sha256 })
}
