//! The Redis cache of public reads: shared by the replicas of the service,
//! invalidated by writes and by the service's own change events, and never
//! needed for a correct answer.

use contracts::Envelope;
use contracts::catalog::{ReserveStockV1, StockLineV1};
use fault_proxy::FaultProxy;
use platform::testing::eventually;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Caller, TestApp, WAIT, id_of, spawn_app_with, spawn_apps};

/// The sum of a metric's samples of this test's catalog cache (its label is
/// `<namespace>:catalog`) whose labels include `label`, from `/metrics`.
async fn metric(app: &TestApp, name: &str, label: Option<&str>) -> f64 {
    let text = app.get("/metrics", &Caller::Anonymous).await.text;
    let cache = format!("cache=\"{}:catalog\"", app.env().namespace);
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&cache))
        .filter(|l| label.is_none_or(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn cache_hits(app: &TestApp) -> f64 {
    metric(app, "cache_requests_total", Some("result=\"hit\"")).await
}

/// Reads every path through `app` until one round is answered entirely from
/// the cache (every read a hit; a busy machine may time a Redis call out
/// now and then, which reads from the database instead), and returns the
/// answers of that round.
async fn cached_reads(app: &TestApp, paths: &[&str]) -> Vec<Value> {
    eventually(WAIT, "a round of reads served by the cache", || async {
        let before = cache_hits(app).await;
        let mut answers = Vec::new();
        for path in paths {
            answers.push(app.get(path, &Caller::Anonymous).await.expect(StatusCode::OK).clone());
        }
        (cache_hits(app).await - before >= paths.len() as f64).then_some(answers)
    })
    .await
}

/// A seller with a profile and one product in stock; the paths of the
/// product, of the owner's products, of every product and of the owner's
/// catalog.
async fn seller_with_product(app: &TestApp, on_hand: i64) -> (Caller, Uuid, [String; 4]) {
    let ana = Caller::seller();
    app.owner(&ana).await;
    let product = app.product(&ana, "CAN-1").await;
    app.stock(&ana, product, on_hand).await;
    let paths = [
        format!("/products/{product}"),
        format!("/products?owner_id={}", ana.id()),
        "/products?limit=100".to_string(),
        format!("/owners/{}/catalog", ana.id()),
    ];
    (ana, product, paths)
}

/// What each of the four reads says about the product: its title and
/// availability (`None` where it is not listed).
fn seen(answers: &[Value], product: Uuid) -> Vec<Option<(String, i64)>> {
    let of = |p: &Value| (p["title"].as_str().unwrap().to_string(), p["available"].as_i64().unwrap());
    let in_list = |page: &Value| page["items"].as_array().unwrap().iter().find(|p| id_of(p) == product).map(of);
    let catalog = &answers[3];
    let in_catalog = catalog["uncategorized"].as_array().unwrap().iter().find(|p| id_of(p) == product).map(of);
    vec![Some(of(&answers[0])), in_list(&answers[1]), in_list(&answers[2]), in_catalog]
}

async fn read_all(app: &TestApp, paths: &[&str]) -> Vec<Value> {
    let mut answers = Vec::new();
    for path in paths {
        answers.push(app.get(path, &Caller::Anonymous).await.expect(StatusCode::OK).clone());
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_through_one_replica_is_read_at_once_through_another_despite_its_cache() {
    let apps = spawn_apps(2, |_| {}).await;
    let (a, b) = (&apps[0], &apps[1]);
    let (ana, product, paths) = seller_with_product(a, 10).await;
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let all_four = |title: &str, available: i64| vec![Some((title.to_string(), available)); 4];

    // B caches the product, the lists and the catalog: a second read is a hit.
    let first = read_all(b, &paths).await;
    assert_eq!(seen(&first, product), all_four("Caneca CAN-1", 10));
    let cached = cached_reads(b, &paths).await;
    assert_eq!(cached, first, "the cache answers what the database did");

    // A changes the product: B reads the change, whatever it had cached.
    let patched = a.patch(&format!("/products/{product}"), &ana, &json!({"title": "Caneca nova"})).await;
    assert_eq!(patched.expect(StatusCode::OK)["title"], "Caneca nova", "the write's answer");
    eventually(WAIT, "B to read the new title", || async {
        (seen(&read_all(b, &paths).await, product) == all_four("Caneca nova", 10)).then_some(())
    })
    .await;
    assert_eq!(seen(&cached_reads(b, &paths).await, product), all_four("Caneca nova", 10), "and caches it");

    // A reservation made through A changes what B shows as available.
    a.reserve(Uuid::now_v7(), &[(product, 3)]).await.expect(StatusCode::CREATED);
    eventually(WAIT, "B to read the reserved stock", || async {
        (seen(&read_all(b, &paths).await, product) == all_four("Caneca nova", 7)).then_some(())
    })
    .await;

    // A reservation made by the saga (a command, handled inside a consumer's
    // transaction) reaches B's cache through the change events.
    assert_eq!(seen(&cached_reads(b, &paths).await, product), all_four("Caneca nova", 7));
    let command = Envelope::new(ReserveStockV1 {
        order_id: Uuid::now_v7(),
        lines: vec![StockLineV1 { product_id: product, quantity: 2 }],
    });
    a.publish(&command).await;
    eventually(WAIT, "B to read the stock the saga reserved", || async {
        (seen(&read_all(b, &paths).await, product) == all_four("Caneca nova", 5)).then_some(())
    })
    .await;

    // Deactivated through A: gone from B's public reads.
    cached_reads(b, &paths).await;
    a.patch(&format!("/products/{product}"), &ana, &json!({"active": false})).await.expect(StatusCode::OK);
    eventually(WAIT, "the product to leave B's public reads", || async {
        let detail = b.get(paths[0], &Caller::Anonymous).await;
        let rest = read_all(b, &paths[1..]).await;
        let listed = |page: &Value| page["items"].as_array().unwrap().iter().any(|p| id_of(p) == product);
        let gone = detail.status == StatusCode::NOT_FOUND
            && !listed(&rest[0])
            && !listed(&rest[1])
            && rest[2]["uncategorized"].as_array().unwrap().is_empty();
        gone.then_some(())
    })
    .await;
    // Its seller still sees it (that view is never cached).
    let own = b.get(paths[0], &ana).await;
    assert_eq!(own.expect(StatusCode::OK)["active"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_go_on_from_the_database_while_redis_is_unreachable_and_the_cache_comes_back() {
    let proxy = FaultProxy::start(([127, 0, 0, 1], 6379).into()).await.expect("a proxy in front of Redis");
    let app = spawn_app_with(|env| {
        env.set("FEIRA_REDIS_URL", format!("redis://{}", proxy.addr()));
    })
    .await;
    let (ana, product, paths) = seller_with_product(&app, 4).await;
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let cached = cached_reads(&app, &paths).await;
    assert_eq!(seen(&cached, product), vec![Some(("Caneca CAN-1".to_string(), 4)); 4]);

    proxy.refuse();
    for _ in 0..3 {
        assert_eq!(read_all(&app, &paths).await, cached, "the database answers what the cache did");
    }
    let patched = app.patch(&format!("/products/{product}"), &ana, &json!({"title": "Caneca nova"})).await;
    assert_eq!(patched.expect(StatusCode::OK)["title"], "Caneca nova");
    app.stock(&ana, product, 9).await;
    let during = read_all(&app, &paths).await;
    assert_eq!(seen(&during, product), vec![Some(("Caneca nova".to_string(), 9)); 4], "fresh, from the database");
    let ready = app.get("/health/ready", &Caller::Anonymous).await;
    ready.expect(StatusCode::OK);
    assert_eq!(metric(&app, "cache_available", None).await, 0.0, "the outage shows");
    let without_redis = metric(&app, "cache_requests_total", Some("result=\"error\"")).await
        + metric(&app, "cache_requests_total", Some("result=\"bypass\"")).await;
    assert!(without_redis >= paths.len() as f64, "reads without Redis are counted: {without_redis}");

    // Back: the invalidations missed meanwhile are replayed (the entries
    // cached before the outage are not served any more) and caching resumes.
    proxy.restore();
    let fresh = vec![Some(("Caneca nova".to_string(), 9)); 4];
    eventually(WAIT, "the cache to serve the fresh data again", || async {
        let before = cache_hits(&app).await;
        let answers = read_all(&app, &paths).await;
        let hits = cache_hits(&app).await - before;
        (hits >= paths.len() as f64 && seen(&answers, product) == fresh).then_some(())
    })
    .await;
    assert_eq!(metric(&app, "cache_available", None).await, 1.0);
}
