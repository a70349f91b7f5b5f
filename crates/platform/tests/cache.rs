//! `platform::cache` against the real Redis on 127.0.0.1:6379, each test
//! under its own key prefix (deleted at the end), and through a fault proxy
//! for the outages.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fault_proxy::FaultProxy;
use platform::cache::{Cache, CacheOptions};
use platform::testing::{RedisPrefix, eventually};
use serde::{Deserialize, Serialize};

const TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Product {
    sku: String,
    price_cents: i64,
}

fn product(price_cents: i64) -> Product {
    Product { sku: "ABC-1".into(), price_cents }
}

/// A loader that counts its calls and answers `value`.
#[derive(Clone, Default)]
struct Source {
    calls: Arc<AtomicUsize>,
}

impl Source {
    async fn load<T>(&self, value: T) -> Result<T, std::convert::Infallible> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(value)
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// A cache with a short cool-down, so tests see recovery quickly, and a
/// timeout generous enough that a busy CI machine does not look like an
/// outage (a hung Redis still costs a read at most that).
fn cache_at(url: &str, prefix: &str) -> Cache {
    let options = CacheOptions {
        cooldown: Duration::from_millis(200),
        timeout: Duration::from_secs(1),
        ..CacheOptions::default()
    };
    Cache::with_options(url, prefix, options)
}

fn redis_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 6379))
}

/// The value of a metric of this cache in the Prometheus exposition.
fn metric(cache: &Cache, name: &str, label: Option<(&str, &str)>) -> f64 {
    let text = platform::http::metrics_handle().render();
    let cache_label = format!("cache=\"{}\"", cache.name());
    let wanted = label.map(|(k, v)| format!("{k}=\"{v}\""));
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&cache_label))
        .filter(|l| wanted.as_ref().is_none_or(|w| l.contains(w.as_str())))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn requests(cache: &Cache, result: &str) -> f64 {
    metric(cache, "cache_requests_total", Some(("result", result)))
}

#[tokio::test]
async fn a_second_read_is_served_from_redis_without_calling_the_loader() {
    let _ = platform::http::metrics_handle();
    let ns = RedisPrefix::new();
    let cache = cache_at(&ns.url, &ns.prefix);
    let db = Source::default();

    let first = cache.get_or_load("product:1", TTL, db.load(product(1990))).await.unwrap();
    let second = cache.get_or_load("product:1", TTL, db.load(product(0))).await.unwrap();

    assert_eq!(first, product(1990));
    assert_eq!(second, product(1990), "the second read answers the cached value");
    assert_eq!(db.calls(), 1, "the loader ran once");
    assert_eq!(requests(&cache, "miss"), 1.0);
    assert_eq!(requests(&cache, "hit"), 1.0);
    assert_eq!(metric(&cache, "cache_available", None), 1.0);
    assert!(cache.is_available().await);
    assert!(ns.cleanup().await.unwrap() >= 1, "the entry was stored under the test's prefix");
}

#[tokio::test]
async fn a_loader_error_is_returned_and_not_cached() {
    let ns = RedisPrefix::new();
    let cache = cache_at(&ns.url, &ns.prefix);

    let failed: Result<Product, &str> = cache.get_or_load("product:2", TTL, async { Err("database down") }).await;
    assert_eq!(failed, Err("database down"));
    let db = Source::default();
    let loaded = cache.get_or_load("product:2", TTL, db.load(product(5))).await.unwrap();
    assert_eq!(loaded, product(5));
    assert_eq!(db.calls(), 1, "the failed load left nothing in the cache");
}

#[tokio::test]
async fn invalidating_a_key_makes_the_next_read_load_it_again() {
    let ns = RedisPrefix::new();
    let cache = cache_at(&ns.url, &ns.prefix);
    let db = Source::default();

    cache.get_or_load("product:1", TTL, db.load(product(1990))).await.unwrap();
    cache.get_or_load("product:2", TTL, db.load(product(500))).await.unwrap();
    cache.invalidate(&["product:1"]).await;

    let after = cache.get_or_load("product:1", TTL, db.load(product(2490))).await.unwrap();
    let other = cache.get_or_load("product:2", TTL, db.load(product(0))).await.unwrap();
    assert_eq!(after, product(2490), "the invalidated key answers the new value");
    assert_eq!(other, product(500), "other keys stay cached");
    assert_eq!(db.calls(), 3);
}

#[tokio::test]
async fn two_instances_see_each_others_invalidations_and_bumps() {
    let ns = RedisPrefix::new();
    // Two replicas of a service: same Redis, same prefix.
    let a = cache_at(&ns.url, &ns.prefix);
    let b = cache_at(&ns.url, &ns.prefix);
    let db = Source::default();

    b.get_or_load("product:1", TTL, db.load(product(100))).await.unwrap();
    assert_eq!(a.get_or_load("product:1", TTL, db.load(product(0))).await.unwrap(), product(100));
    assert_eq!(db.calls(), 1, "A is served what B cached");

    a.invalidate(&["product:1"]).await;
    assert_eq!(b.get_or_load("product:1", TTL, db.load(product(200))).await.unwrap(), product(200));
    assert_eq!(db.calls(), 2, "B reloads after A's invalidation");

    let page1 = b.get_or_load_in("products", "products:list:p1", TTL, db.load(vec![product(200)])).await.unwrap();
    b.get_or_load_in("products", "products:list:p2", TTL, db.load(vec![product(300)])).await.unwrap();
    let gen_before = a.generation("products").await.unwrap();
    assert_eq!(
        a.get_or_load_in("products", "products:list:p1", TTL, db.load(Vec::<Product>::new())).await.unwrap(),
        page1
    );
    assert_eq!(db.calls(), 4, "A reads the lists B cached");

    a.bump("products").await;
    assert!(b.generation("products").await.unwrap() > gen_before);
    let p1 = b.get_or_load_in("products", "products:list:p1", TTL, db.load(vec![product(250)])).await.unwrap();
    let p2 = b.get_or_load_in("products", "products:list:p2", TTL, db.load(vec![product(350)])).await.unwrap();
    assert_eq!((p1, p2), (vec![product(250)], vec![product(350)]), "one bump invalidated every page");
    assert_eq!(db.calls(), 6);
}

#[tokio::test]
async fn a_bump_leaves_other_scopes_cached() {
    let ns = RedisPrefix::new();
    let cache = cache_at(&ns.url, &ns.prefix);
    let db = Source::default();

    cache.get_or_load_in("owner:1", "list", TTL, db.load(1)).await.unwrap();
    cache.get_or_load_in("owner:2", "list", TTL, db.load(2)).await.unwrap();
    cache.bump("owner:1").await;

    assert_eq!(cache.get_or_load_in("owner:1", "list", TTL, db.load(10)).await.unwrap(), 10);
    assert_eq!(cache.get_or_load_in("owner:2", "list", TTL, db.load(20)).await.unwrap(), 2);
    assert_eq!(db.calls(), 3);
}

#[tokio::test]
async fn a_load_that_overlaps_an_invalidation_does_not_store_its_stale_value() {
    let ns = RedisPrefix::new();
    let cache = cache_at(&ns.url, &ns.prefix);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();

    // A reader misses and reads the old row from the database...
    let reader = tokio::spawn({
        let cache = cache.clone();
        async move {
            cache
                .get_or_load("product:1", TTL, async move {
                    let _ = started_tx.send(());
                    let _ = release_rx.await;
                    Ok::<_, std::convert::Infallible>(product(100))
                })
                .await
        }
    });
    started_rx.await.unwrap();
    // ...meanwhile a writer commits a new price and invalidates...
    cache.invalidate(&["product:1"]).await;
    // ...then the reader finishes with the old price.
    let _ = release_tx.send(());
    assert_eq!(reader.await.unwrap().unwrap(), product(100));

    let db = Source::default();
    let next = cache.get_or_load("product:1", TTL, db.load(product(200))).await.unwrap();
    assert_eq!(next, product(200), "the stale value was not cached");
    assert_eq!(db.calls(), 1);
}

#[tokio::test]
async fn redis_refusing_connections_falls_back_to_the_loader_and_recovers() {
    let _ = platform::http::metrics_handle();
    let ns = RedisPrefix::new();
    let proxy = FaultProxy::start(redis_addr()).await.unwrap();
    let cache = cache_at(&format!("redis://{}", proxy.addr()), &ns.prefix);
    let db = Source::default();
    cache.get_or_load("product:1", TTL, db.load(product(1))).await.unwrap();
    assert!(cache.is_available().await);

    proxy.refuse();
    for _ in 0..5 {
        assert_eq!(cache.get_or_load("product:1", TTL, db.load(product(1))).await.unwrap(), product(1));
    }
    assert_eq!(db.calls(), 6, "every read was answered by the loader");
    assert!(!cache.is_available().await);
    assert_eq!(metric(&cache, "cache_available", None), 0.0);
    assert!(metric(&cache, "cache_errors_total", None) >= 1.0);
    assert!(requests(&cache, "error") >= 1.0);
    assert!(requests(&cache, "bypass") >= 1.0, "reads during the cool-down skip Redis");
    // Invalidations and generations fail softly.
    cache.invalidate(&["product:2"]).await;
    cache.bump("products").await;
    assert_eq!(cache.generation("products").await, None);

    proxy.restore();
    eventually(10, "the cache to use Redis again", || async { cache.is_available().await.then_some(()) }).await;
    let calls = db.calls();
    assert_eq!(cache.get_or_load("product:1", TTL, db.load(product(0))).await.unwrap(), product(1));
    assert_eq!(db.calls(), calls, "served from Redis again");
    assert_eq!(metric(&cache, "cache_available", None), 1.0);
}

#[tokio::test]
async fn a_hung_redis_is_skipped_and_used_again_once_it_answers() {
    let ns = RedisPrefix::new();
    let proxy = FaultProxy::start(redis_addr()).await.unwrap();
    let cache = cache_at(&format!("redis://{}", proxy.addr()), &ns.prefix);
    let db = Source::default();
    cache.get_or_load("product:1", TTL, db.load(product(1))).await.unwrap();

    proxy.blackhole();
    for _ in 0..3 {
        assert_eq!(cache.get_or_load("product:1", TTL, db.load(product(1))).await.unwrap(), product(1));
    }
    assert_eq!(db.calls(), 4);
    assert!(!cache.is_available().await);

    proxy.restore();
    eventually(10, "the cache to use Redis again", || async { cache.is_available().await.then_some(()) }).await;
    let calls = db.calls();
    assert_eq!(cache.get_or_load("product:1", TTL, db.load(product(0))).await.unwrap(), product(1));
    assert_eq!(db.calls(), calls, "served from Redis again");
}

#[tokio::test]
async fn a_redis_that_was_never_there_answers_from_the_loader() {
    let ns = RedisPrefix::new();
    let unused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let cache = cache_at(&format!("redis://{unused}"), &ns.prefix);
    let db = Source::default();

    for price in [1, 2, 3] {
        assert_eq!(cache.get_or_load("product:1", TTL, db.load(product(price))).await.unwrap(), product(price));
    }
    assert_eq!(cache.get_or_load_in("products", "list", TTL, db.load(7)).await.unwrap(), 7);
    assert_eq!(db.calls(), 4);
    assert!(!cache.is_available().await);
    assert_eq!(cache.generation("products").await, None);
    cache.invalidate(&["product:1"]).await;
}

#[tokio::test]
async fn an_invalidation_missed_during_an_outage_is_applied_when_redis_is_back() {
    let ns = RedisPrefix::new();
    let proxy = FaultProxy::start(redis_addr()).await.unwrap();
    // A cannot reach Redis for a while; B (another replica) can.
    let a = cache_at(&format!("redis://{}", proxy.addr()), &ns.prefix);
    let b = cache_at(&ns.url, &ns.prefix);
    let db = Source::default();
    b.get_or_load("product:1", TTL, db.load(product(100))).await.unwrap();
    b.get_or_load_in("products", "list", TTL, db.load(vec![product(100)])).await.unwrap();
    assert!(a.is_available().await);

    proxy.refuse();
    a.invalidate(&["product:1"]).await;
    a.bump("products").await;
    assert_eq!(b.get_or_load("product:1", TTL, db.load(product(0))).await.unwrap(), product(100), "still stale");

    proxy.restore();
    eventually(10, "A to replay its invalidations", || async {
        a.is_available().await;
        let fresh = b.get_or_load("product:1", TTL, db.load(product(200))).await.unwrap();
        (fresh == product(200)).then_some(())
    })
    .await;
    eventually(10, "the scope to be bumped too", || async {
        let list = b.get_or_load_in("products", "list", TTL, db.load(vec![product(200)])).await.unwrap();
        (list == vec![product(200)]).then_some(())
    })
    .await;
}
