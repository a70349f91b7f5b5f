//! The publisher's claim on an owner, against the real database without the
//! service running, so the test decides every step's timing: one publisher
//! at a time per owner, consumers never wait for it, and a change that lands
//! during a publication keeps the owner dirty for a fresh period.

use std::time::Duration;

use catalog_publisher::repo;
use platform::testing::TestEnv;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_owner_is_skipped_by_other_publishers_and_a_change_during_its_publication_keeps_it_dirty() {
    let mut env = TestEnv::new(&[catalog_publisher::SPEC]);
    let db = env.db(&catalog_publisher::SPEC).await.expect("create the database");
    let owner = Uuid::now_v7();
    let mut conn = db.acquire().await.expect("connection");
    repo::mark_dirty(&mut conn, owner).await.expect("mark dirty");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Due by its quiet window.
    let mut publisher = db.begin().await.expect("begin");
    let claim = repo::claim_due_owner(&mut publisher, Duration::ZERO, Duration::from_secs(3600))
        .await
        .expect("claim")
        .expect("the owner is due");
    assert_eq!((claim.owner_id, claim.version, claim.changes), (owner, 0, 1));

    // Another publisher (a replica) skips it instead of waiting.
    let mut other = db.begin().await.expect("begin");
    let second = tokio::time::timeout(
        Duration::from_secs(2),
        repo::claim_due_owner(&mut other, Duration::ZERO, Duration::from_secs(3600)),
    )
    .await
    .expect("a second publisher does not wait")
    .expect("claim");
    assert!(second.is_none(), "{second:?}");
    other.rollback().await.expect("rollback");

    // A consumer marks the owner again meanwhile, without waiting.
    tokio::time::timeout(Duration::from_secs(2), repo::mark_dirty(&mut conn, owner))
        .await
        .expect("a consumer does not wait for the publisher")
        .expect("mark dirty");

    // The publisher cannot clear the mark: the new change is not in its document.
    assert!(!repo::clear_dirty(&mut publisher, &claim).await.expect("clear"));
    publisher.commit().await.expect("commit");
    let (first_dirty_at, changes): (time::OffsetDateTime, i64) =
        sqlx::query_as("SELECT first_dirty_at, changes FROM dirty_owners WHERE owner_id = $1")
            .bind(owner)
            .fetch_one(&db)
            .await
            .expect("the dirty mark stays");
    assert_eq!(changes, 2);
    assert_eq!(first_dirty_at, claim.claimed_at, "the dirty period restarts at the claim");

    // So under churn it is due again after the longest delay from the claim,
    // not at once: with a 10 s longest delay and a long window, not yet
    // (10 s, not less: a busy machine must not make it due by itself)...
    let mut tx = db.begin().await.expect("begin");
    let again =
        repo::claim_due_owner(&mut tx, Duration::from_secs(3600), Duration::from_secs(10)).await.expect("claim");
    assert!(again.is_none(), "{again:?}");
    // ... and with a 200 ms one, once 200 ms have passed since the claim.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let again =
        repo::claim_due_owner(&mut tx, Duration::from_secs(3600), Duration::from_millis(200)).await.expect("claim");
    assert_eq!(again.map(|c| c.changes), Some(2));
    tx.rollback().await.expect("rollback");

    // With nothing new, the mark is cleared.
    let mut tx = db.begin().await.expect("begin");
    let claim = repo::claim_due_owner(&mut tx, Duration::ZERO, Duration::ZERO).await.expect("claim").expect("due");
    assert!(repo::clear_dirty(&mut tx, &claim).await.expect("clear"));
    tx.commit().await.expect("commit");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM dirty_owners").fetch_one(&db).await.expect("count");
    assert_eq!(left, 0);

    drop(conn);
    db.close().await;
    env.cleanup().await.expect("clean up");
}
