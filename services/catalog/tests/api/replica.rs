//! Reads from a streaming replica (`FEIRA_CATALOG_READ_DATABASE_URL`, the
//! hot standby of `scripts/pg-replica.sh`): public reads are served by it,
//! as its own statistics show; writes and their answers by the primary.

use platform::testing::{ReplicaInfo, eventually, replica};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::{Connection, PgConnection};

use crate::helpers::{Caller, WAIT, id_of, product_body, spawn_app_with};

/// Scans of the `products` table counted by the server behind `replica`'s
/// copy of `database` (a fresh session, so the statistics are current).
async fn product_scans(replica: &ReplicaInfo, database: &str) -> Option<i64> {
    let mut conn = PgConnection::connect_with(&replica.database(database)).await.ok()?;
    let scans = sqlx::query_scalar(
        "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = 'products'",
    )
    .fetch_one(&mut conn)
    .await
    .ok();
    let _ = conn.close().await;
    scans
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_reads_are_served_by_the_read_replica_and_a_writes_answer_by_the_primary() {
    let replica = replica().await.expect("the replica starts (scripts/pg-replica.sh)");
    let app = spawn_app_with(|env| {
        env.read_from(&replica);
    })
    .await;
    let config = app.env().config();
    let service = config.service(catalog::SPEC.name).unwrap();
    assert_eq!(service.read_database.as_ref().map(|r| r.get_port()), Some(replica.port), "reads go to the replica");
    let database = service.database.get_database().unwrap().to_string();

    // Writes go to the primary, and answer what they wrote at once, whether
    // or not the replica has replayed it yet.
    let ana = Caller::seller();
    app.owner(&ana).await;
    let created = app.product_from(&ana, &product_body("CAN-1")).await;
    let product = id_of(&created);
    assert_eq!((created["title"].as_str(), created["available"].as_i64()), (Some("Caneca CAN-1"), Some(0)));
    let patch = json!({"title": "Caneca nova", "price_cents": 4990});
    let patched = app.patch(&format!("/products/{product}"), &ana, &patch).await;
    let patched = patched.expect(StatusCode::OK);
    assert_eq!((patched["title"].as_str(), patched["price_cents"].as_i64()), (Some("Caneca nova"), Some(4990)));
    let stock = app.put(&format!("/products/{product}/stock"), &ana, &json!({"on_hand": 6})).await;
    assert_eq!(stock.expect(StatusCode::OK)["available"], 6);

    replica.wait_replicated().await.unwrap();
    let before = product_scans(&replica, &database).await.expect("the replica's statistics");

    // The public reads (each one a cache miss) are answered by the replica.
    let detail = app.get(&format!("/products/{product}"), &Caller::Anonymous).await;
    let list = app.get(&format!("/products?owner_id={}", ana.id()), &Caller::Anonymous).await;
    let catalog = app.get(&format!("/owners/{}/catalog", ana.id()), &Caller::Anonymous).await;

    let detail = detail.expect(StatusCode::OK);
    assert_eq!((detail["title"].as_str(), detail["available"].as_i64()), (Some("Caneca nova"), Some(6)));
    let listed: Vec<_> = list.expect(StatusCode::OK)["items"].as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(listed, [product]);
    let in_catalog = &catalog.expect(StatusCode::OK)["uncategorized"][0];
    assert_eq!((id_of(in_catalog), in_catalog["price_cents"].as_i64()), (product, Some(4990)));
    // A session's statistics reach the view when it flushes them: at the end
    // of a transaction a second after its last flush, else ten seconds after
    // it went idle. Reading the owner (not cached, and no scan of products)
    // runs such transactions on the read pool's sessions.
    eventually(30, "the replica to count the three reads of products", || async {
        app.get(&format!("/owners/{}", ana.id()), &Caller::Anonymous).await.expect(StatusCode::OK);
        let scans = product_scans(&replica, &database).await?;
        (scans >= before + 3).then_some(())
    })
    .await;

    // With the reads cached, a change still shows: invalidated after the
    // commit, and again once the replica has replayed it.
    app.patch(&format!("/products/{product}"), &ana, &json!({"title": "Caneca azul"})).await.expect(StatusCode::OK);
    eventually(WAIT, "the public read to show the change", || async {
        let read = app.get(&format!("/products/{product}"), &Caller::Anonymous).await;
        (read.expect(StatusCode::OK)["title"] == "Caneca azul").then_some(())
    })
    .await;
}
