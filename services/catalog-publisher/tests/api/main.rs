//! Integration tests of the catalog publisher against the real PostgreSQL and
//! RabbitMQ: each test gets its own database, broker namespace and store
//! folder ([`helpers::Harness`]), runs the real service (HTTP, consumer,
//! publisher loop, outbox relay) and injects catalog events the way the
//! catalog's relay publishes them. `s3.rs` runs the S3 path against a real
//! S3-compatible server (moto).

mod claims;
mod helpers;
mod s3;

use std::sync::Arc;
use std::time::{Duration, Instant};

use catalog_publisher::events::CONSUMER;
use contracts::catalog::CatalogPublishedV1;
use contracts::{Envelope, Message as _};
use helpers::{Harness, Shop, WAIT, product_json, sha256_hex};
use platform::testing::{self, TestEnv, eventually};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

fn latest(owner: Uuid) -> String {
    format!("catalogs/{owner}.json")
}

fn versioned(owner: Uuid, v: i64) -> String {
    format!("catalogs/{owner}/v{v}.json")
}

fn parse(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("the object is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_changes_for_one_owner_is_published_once_as_the_expected_document() {
    // The default window: the burst must fit in it even on a busy machine.
    let h = Harness::start_with(|env, _| {
        env.set("FEIRA_CATALOG_PUBLISHER_WINDOW", "500ms");
    })
    .await;
    let shop = Shop::new();
    let (drinks, tools) = (Uuid::now_v7(), Uuid::now_v7());
    let mut burst = vec![
        shop.owner("Empório da Ana", 1),
        shop.category(drinks, "Bebidas", false, 1),
        shop.category(tools, "Acessórios", false, 1),
    ];
    // Ten products, then a second change of each: twenty product changes.
    let mut products: Vec<_> = (0..10)
        .map(|i| {
            let category = match i % 3 {
                0 => Some(drinks),
                1 => Some(tools),
                _ => None,
            };
            shop.new_product(&format!("SKU-{:02}", 9 - i), category, 1000 + i, 2)
        })
        .collect();
    for p in &products {
        burst.push(shop.product(p));
    }
    for (i, p) in products.iter_mut().enumerate() {
        p.price_cents += 1;
        p.changed_at = shop.at(3);
        if i == 4 {
            p.active = false; // hidden from the catalog
        }
        burst.push(shop.product(p));
    }
    burst.push(shop.stock(products[0].product_id, 5, 3));
    burst.push(shop.stock(products[1].product_id, 0, 3));
    assert_eq!(burst.iter().filter(|w| w.message_type == "catalog.product_changed").count(), 20);
    h.send(&burst).await;
    h.wait_applied(&burst).await;
    h.wait_version(shop.owner_id, 1).await;
    h.wait_quiet(shop.owner_id).await;

    // One version, announced once.
    let versions = h.versions(shop.owner_id).await;
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert_eq!(h.announced(shop.owner_id).await.len(), 1);

    // The document: categories by name, products by SKU, the inactive one left out.
    let stock = |i: usize| match i {
        0 => 5,
        _ => 0,
    };
    let in_category = |cat: Option<Uuid>| -> Vec<serde_json::Value> {
        let mut ps: Vec<(usize, &contracts::catalog::ProductChangedV1)> =
            products.iter().enumerate().filter(|(i, p)| *i != 4 && p.category_id == cat).collect();
        ps.sort_by(|a, b| a.1.sku.cmp(&b.1.sku));
        ps.into_iter().map(|(i, p)| product_json(p, stock(i))).collect()
    };
    let expected = json!({
        "owner": {"id": shop.owner_id, "name": "Empório da Ana"},
        "categories": [
            {"id": tools, "name": "Acessórios", "products": in_category(Some(tools))},
            {"id": drinks, "name": "Bebidas", "products": in_category(Some(drinks))},
        ],
        "uncategorized": in_category(None),
    });
    let bytes = h.object(&latest(shop.owner_id)).expect("the current catalog object");
    assert_eq!(parse(&bytes), expected);
    assert_eq!(h.object(&versioned(shop.owner_id, 1)).as_deref(), Some(bytes.as_slice()), "v1 is the same bytes");
    assert_eq!(versions[0], (1, sha256_hex(&bytes)));

    // The operators' view.
    let (status, body) = h.get(&format!("/catalogs/{}", shop.owner_id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["owner_id"], json!(shop.owner_id));
    assert_eq!(body["version"], 1);
    assert_eq!(body["key"], latest(shop.owner_id));
    assert_eq!(body["versioned_key"], versioned(shop.owner_id, 1));
    assert_eq!(body["sha256"], sha256_hex(&bytes));
    let (status, body) = h.get(&format!("/catalogs/{}", Uuid::now_v7())).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["status"], 404);
    let (status, body) = h.get("/catalogs/not-a-uuid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["status"], 400);
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_event_is_relayed_with_the_keys_and_the_sha256_of_the_stored_bytes() {
    let h = Harness::start().await;
    let sub = testing::subscribe(&h.broker, &[CatalogPublishedV1::ROUTING_KEY]).await;
    let shop = Shop::new();
    let p = shop.new_product("CANECA-1", None, 3590, 1);
    h.send(&[shop.owner("Ana", 1), shop.product(&p)]).await;
    h.wait_version(shop.owner_id, 1).await;
    let bytes = h.object(&latest(shop.owner_id)).expect("the catalog object");

    // In the outbox, in the transaction that recorded the version...
    let announced = h.announced(shop.owner_id).await;
    assert_eq!(announced.len(), 1);
    let event = &announced[0];
    assert_eq!(event.message_type, "catalog.catalog_published");
    let expected = CatalogPublishedV1 {
        owner_id: shop.owner_id,
        version: 1,
        key: latest(shop.owner_id),
        versioned_key: versioned(shop.owner_id, 1),
        sha256: sha256_hex(&bytes),
        published_at: event.payload.published_at,
    };
    assert_eq!(event.payload, expected);
    let (_, body) = h.get(&format!("/catalogs/{}", shop.owner_id)).await;
    let served = time::OffsetDateTime::parse(
        body["published_at"].as_str().expect("published_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    assert_eq!(served, event.payload.published_at, "the event and the API agree on the time");

    // ...relayed once the broker confirmed it, and delivered.
    let db = h.db.clone();
    let id = event.message_id;
    eventually(WAIT, "the outbox row marked published", || {
        let db = db.clone();
        async move {
            let sent: bool = sqlx::query_scalar("SELECT published_at IS NOT NULL FROM outbox WHERE message_id = $1")
                .bind(id)
                .fetch_one(&db)
                .await
                .ok()?;
            sent.then_some(())
        }
    })
    .await;
    let delivery = sub.next().await;
    assert_eq!(delivery.routing_key.as_str(), CatalogPublishedV1::ROUTING_KEY);
    assert_eq!(delivery.properties.message_id().as_ref().map(|s| s.to_string()), Some(id.to_string()));
    let received: Envelope<CatalogPublishedV1> = serde_json::from_slice(&delivery.data).expect("a CatalogPublishedV1");
    assert_eq!(received.payload, expected);
    assert_eq!(received.payload.sha256, sha256_hex(&h.object(&received.payload.versioned_key).expect("v1")));
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_or_invisible_changes_publish_nothing_and_a_real_change_publishes_version_2() {
    let h = Harness::start().await;
    let sub = testing::subscribe(&h.broker, &[CatalogPublishedV1::ROUTING_KEY]).await;
    let shop = Shop::new();
    let cat = Uuid::now_v7();
    let mut p = shop.new_product("LIVRO-1", Some(cat), 4990, 1);
    let first = vec![
        shop.owner("Sebo", 1),
        shop.category(cat, "Livros", false, 1),
        shop.product(&p),
        shop.stock(p.product_id, 3, 1),
    ];
    h.settle(shop.owner_id, &first).await;
    assert_eq!(h.version(shop.owner_id).await, 1);
    let v1 = h.object(&latest(shop.owner_id)).expect("v1");
    let unchanged_before = h.metric("catalog_publisher_unchanged_total").await;

    // The same messages again (same ids): the inbox drops them.
    h.send(&first).await;
    h.barrier().await;
    h.wait_quiet(shop.owner_id).await;
    assert_eq!(h.version(shop.owner_id).await, 1);

    // New messages with the same values and a newer changed_at: applied, the
    // owner is rebuilt, the bytes are the same, nothing is written or announced.
    p.changed_at = shop.at(2);
    let same = vec![
        shop.owner("Sebo", 2),
        shop.category(cat, "Livros", false, 2),
        shop.product(&p),
        shop.stock(p.product_id, 3, 2),
    ];
    h.settle(shop.owner_id, &same).await;
    assert_eq!(h.version(shop.owner_id).await, 1);
    assert_eq!(h.versions(shop.owner_id).await.len(), 1);
    assert_eq!(h.announced(shop.owner_id).await.len(), 1);
    assert_eq!(h.object(&latest(shop.owner_id)), Some(v1.clone()));
    assert!(h.object(&versioned(shop.owner_id, 2)).is_none());
    assert!(h.metric("catalog_publisher_unchanged_total").await > unchanged_before, "the rebuild was counted");

    // A real change: version 2, a new hash, both versions kept.
    p.price_cents = 3990;
    p.changed_at = shop.at(3);
    h.settle(shop.owner_id, &[shop.product(&p)]).await;
    assert_eq!(h.version(shop.owner_id).await, 2);
    let versions = h.versions(shop.owner_id).await;
    let v2 = h.object(&latest(shop.owner_id)).expect("v2");
    assert_eq!(versions, vec![(1, sha256_hex(&v1)), (2, sha256_hex(&v2))]);
    assert_ne!(versions[0].1, versions[1].1);
    assert_eq!(h.object(&versioned(shop.owner_id, 1)), Some(v1));
    assert_eq!(h.object(&versioned(shop.owner_id, 2)), Some(v2.clone()));
    assert_eq!(parse(&v2)["categories"][0]["products"][0]["price_cents"], 3990);
    let announced: Vec<(i64, String)> =
        h.announced(shop.owner_id).await.into_iter().map(|e| (e.payload.version, e.payload.sha256)).collect();
    assert_eq!(announced, versions);

    // Exactly two events reached the broker.
    let mut received = Vec::new();
    for _ in 0..2 {
        let d = sub.next().await;
        let e: Envelope<CatalogPublishedV1> = serde_json::from_slice(&d.data).expect("a CatalogPublishedV1");
        received.push((e.payload.owner_id, e.payload.version));
    }
    assert_eq!(received, vec![(shop.owner_id, 1), (shop.owner_id, 2)]);
    h.barrier().await;
    assert!(sub.try_next().await.is_none(), "no third CatalogPublishedV1");
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_arriving_out_of_order_never_move_the_catalog_back() {
    let h = Harness::start().await;
    let shop = Shop::new();
    let cat = Uuid::now_v7();
    let p = shop.new_product("CAFE-1", Some(cat), 2500, 10);
    let newest = vec![
        shop.owner("Nome novo", 10),
        shop.category(cat, "Cafés", false, 10),
        shop.product(&p),
        shop.stock(p.product_id, 7, 10),
    ];
    h.settle(shop.owner_id, &newest).await;
    assert_eq!(h.version(shop.owner_id).await, 1);
    let v1 = h.object(&latest(shop.owner_id)).expect("v1");
    let expected_v1 = json!({
        "owner": {"id": shop.owner_id, "name": "Nome novo"},
        "categories": [{"id": cat, "name": "Cafés", "products": [product_json(&p, 7)]}],
        "uncategorized": [],
    });
    assert_eq!(parse(&v1), expected_v1);

    // Older states of everything, and a different state with the same time.
    let mut old_p = p.clone();
    old_p.price_cents = 100;
    old_p.title = "antigo".into();
    old_p.changed_at = shop.at(5);
    let mut tie = p.clone();
    tie.price_cents = 999;
    let late = vec![
        shop.owner("Nome velho", 5),
        shop.category(cat, "Nome antigo", true, 5),
        shop.product(&old_p),
        shop.product(&tie),
        shop.stock(p.product_id, 1, 5),
        shop.stock(p.product_id, 2, 10),
    ];
    h.settle(shop.owner_id, &late).await;
    assert_eq!(h.version(shop.owner_id).await, 1, "nothing older or as old was applied");
    assert_eq!(h.object(&latest(shop.owner_id)), Some(v1));

    // A deletion, then an older state from before it: the product stays gone.
    let mut deleted = p.clone();
    deleted.deleted = true;
    deleted.changed_at = shop.at(20);
    h.settle(shop.owner_id, &[shop.product(&deleted)]).await;
    assert_eq!(h.version(shop.owner_id).await, 2);
    let mut resurrect = p.clone();
    resurrect.changed_at = shop.at(15);
    h.settle(shop.owner_id, &[shop.product(&resurrect)]).await;
    assert_eq!(h.version(shop.owner_id).await, 2);
    let v2 = parse(&h.object(&latest(shop.owner_id)).expect("v2"));
    assert_eq!(v2["categories"][0]["products"], json!([]));

    // Stock may come before its product: it is kept and shows up with it.
    let q = shop.new_product("CAFE-2", None, 1800, 30);
    h.settle(shop.owner_id, &[shop.stock(q.product_id, 4, 30)]).await;
    h.settle(shop.owner_id, &[shop.product(&q)]).await;
    assert_eq!(h.version(shop.owner_id).await, 3, "the lone stock changed no visible content");
    let v3 = parse(&h.object(&latest(shop.owner_id)).expect("v3"));
    assert_eq!(v3["uncategorized"], json!([product_json(&q, 4)]));
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_is_published_only_once_its_owner_event_arrived() {
    let h = Harness::start().await;
    let shop = Shop::new();
    let cat = Uuid::now_v7();
    let p = shop.new_product("PAO-1", Some(cat), 900, 1);
    let unknown_before = h.metric("catalog_publisher_unknown_owner_total").await;
    h.settle(shop.owner_id, &[shop.category(cat, "Padaria", false, 1), shop.product(&p)]).await;
    assert_eq!(h.version(shop.owner_id).await, 0);
    assert!(h.object(&latest(shop.owner_id)).is_none());
    assert!(h.announced(shop.owner_id).await.is_empty());
    let (status, _) = h.get(&format!("/catalogs/{}", shop.owner_id)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(h.metric("catalog_publisher_unknown_owner_total").await > unknown_before);

    // The owner's event arrives: its catalog is published with what waited.
    h.send(&[shop.owner("Padaria do Zé", 2)]).await;
    h.wait_version(shop.owner_id, 1).await;
    let doc = parse(&h.object(&latest(shop.owner_id)).expect("v1"));
    assert_eq!(doc["owner"], json!({"id": shop.owner_id, "name": "Padaria do Zé"}));
    assert_eq!(doc["categories"][0]["products"], json!([product_json(&p, 0)]));
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_fails_keeps_the_owner_dirty_and_publishes_once_it_is_back() {
    // The store's folder cannot be created: its parent is a file.
    let h = Harness::start_with(|env, scratch| {
        std::fs::write(scratch.join("blocked"), b"not a folder").expect("write the blocker");
        env.set("FEIRA_CATALOG_PUBLISHER_STORE", format!("file://{}", scratch.join("blocked/objects").display()));
    })
    .await;
    let shop = Shop::new();
    let p = shop.new_product("VASO-1", None, 12000, 1);
    let failures_before = h.metric("catalog_publisher_publish_failures_total").await;
    let wires = [shop.owner("Flora", 1), shop.product(&p)];
    h.send(&wires).await;
    h.wait_applied(&wires).await;

    // It fails, is retried, and stays dirty; nothing is recorded or announced.
    let db = h.db.clone();
    let owner = shop.owner_id;
    let last_error: String = eventually(WAIT, "two failed attempts", || {
        let db = db.clone();
        async move {
            let (failures, error): (i32, Option<String>) =
                sqlx::query_as("SELECT failures, last_error FROM publications WHERE owner_id = $1")
                    .bind(owner)
                    .fetch_optional(&db)
                    .await
                    .ok()??;
            (failures >= 2).then_some(error).flatten()
        }
    })
    .await;
    assert!(last_error.contains("blocked"), "{last_error}");
    let dirty: i64 = sqlx::query_scalar("SELECT count(*) FROM dirty_owners WHERE owner_id = $1")
        .bind(owner)
        .fetch_one(&h.db)
        .await
        .expect("dirty");
    assert_eq!(dirty, 1, "the owner stays dirty");
    assert_eq!(h.version(owner).await, 0);
    assert!(h.announced(owner).await.is_empty());
    assert!(h.metric("catalog_publisher_publish_failures_total").await >= failures_before + 2.0);
    let (status, _) = h.get(&format!("/catalogs/{owner}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The store comes back: the change is published, once.
    std::fs::remove_file(h.scratch.join("blocked")).expect("remove the blocker");
    h.wait_version(owner, 1).await;
    h.wait_quiet(owner).await;
    let bytes = std::fs::read(h.scratch.join("blocked/objects").join(latest(owner))).expect("the catalog object");
    assert_eq!(parse(&bytes)["uncategorized"], json!([product_json(&p, 0)]));
    assert_eq!(h.versions(owner).await, vec![(1, sha256_hex(&bytes))]);
    assert_eq!(h.announced(owner).await.len(), 1);
    let failures: i32 = sqlx::query_scalar("SELECT failures FROM publications WHERE owner_id = $1")
        .bind(owner)
        .fetch_one(&h.db)
        .await
        .expect("failures");
    assert_eq!(failures, 0, "a success forgets the failures");
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_can_never_be_applied_is_parked_and_the_ones_behind_it_flow() {
    let h = Harness::start().await;
    let shop = Shop::new();
    let mut bad = shop.new_product("ERRADO-1", None, 100, 1);
    bad.price_cents = -100;
    let good = shop.new_product("CERTO-1", None, 100, 1);
    let bad_wire = shop.product(&bad);
    h.send(&[shop.owner("Loja", 1), bad_wire.clone(), shop.product(&good)]).await;
    h.wait_version(shop.owner_id, 1).await;
    let doc = parse(&h.object(&latest(shop.owner_id)).expect("v1"));
    assert_eq!(doc["uncategorized"], json!([product_json(&good, 0)]));

    let parked = eventually(WAIT, "the bad change parked", || async {
        let l = h.dead_letters().await;
        (!l.is_empty()).then_some(l)
    })
    .await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].message_id, bad_wire.message_id.to_string());
    assert_eq!(parked[0].attempts, 1, "refused input is parked at once");
    assert!(parked[0].error.contains("price_cents"), "{}", parked[0].error);
    assert_eq!(parked[0].queue, h.broker.topology().queue(CONSUMER.name));
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constant_churn_is_still_published_every_ten_windows_or_so() {
    let h = Harness::start_with(|env, _| {
        env.set("FEIRA_CATALOG_PUBLISHER_WINDOW", "300ms");
    })
    .await;
    let shop = Shop::new();
    let p = shop.new_product("GIRO-1", None, 100, 0);
    h.send(&[shop.owner("Giro", 0), shop.product(&p)]).await;
    // A stock change every 50 ms for 5 s: never quiet for a 300 ms window.
    let started = Instant::now();
    let mut i = 0;
    let mut published_during_churn = 0;
    while started.elapsed() < Duration::from_secs(5) {
        i += 1;
        h.send(&[shop.stock(p.product_id, i, i)]).await;
        published_during_churn = h.version(shop.owner_id).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(published_during_churn >= 1, "nothing was published during 5 s of churn");
    // Every 3 s (ten windows), not at every poll; pauses of a busy machine may add a few.
    assert!(published_during_churn <= 8, "{published_during_churn} versions in 5 s");
    h.wait_quiet(shop.owner_id).await;
    let doc = parse(&h.object(&latest(shop.owner_id)).expect("the catalog"));
    assert_eq!(doc["uncategorized"][0]["available"], i, "the last change is published once churn stops");
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_store_or_window_stops_start_up_naming_the_variable() {
    for (var, value) in [
        ("FEIRA_CATALOG_PUBLISHER_STORE", "ftp://example.com/x"),
        ("FEIRA_CATALOG_PUBLISHER_STORE", "s3://Not_A_Bucket"),
        ("FEIRA_CATALOG_PUBLISHER_S3_ENDPOINT", "localhost:9000"),
        ("FEIRA_CATALOG_PUBLISHER_WINDOW", "soon"),
    ] {
        let mut env = TestEnv::new(&[catalog_publisher::SPEC]);
        if var == "FEIRA_CATALOG_PUBLISHER_S3_ENDPOINT" {
            env.set("FEIRA_CATALOG_PUBLISHER_STORE", "s3://feira-catalogs");
        }
        env.set(var, value);
        let token = tokio_util::sync::CancellationToken::new();
        let svc = platform::service::start(&catalog_publisher::SPEC, Arc::new(env.config()), token.clone())
            .await
            .expect("the platform part starts");
        let err = tokio::time::timeout(Duration::from_secs(10), (catalog_publisher::SPEC.run)(svc))
            .await
            .expect("run returns at once")
            .expect_err("an invalid value is refused");
        let text = format!("{err:#}");
        assert!(text.contains(var), "{var}={value}: {text}");
        token.cancel();
        env.cleanup().await.expect("clean up");
    }
}
