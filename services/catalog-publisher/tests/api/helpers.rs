//! A running catalog publisher on a private database, broker namespace and
//! store folder, and the few operations the tests need: publish catalog
//! events the way the catalog's relay does, wait for them to be applied and
//! published, read the published objects, the outbox and the metrics.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use catalog_publisher::events::CONSUMER;
use contracts::catalog::{CategoryChangedV1, OwnerChangedV1, ProductChangedV1, StockChangedV1};
use contracts::{Envelope, Message};
use platform::config::LogFormat;
use platform::messaging::Broker;
use platform::messaging::dlq::{self, DeadLetter};
use platform::telemetry::{self, TelemetryGuard};
use platform::testing::{self, RawMessage, RunningService, TestEnv, eventually};
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

/// Seconds any single wait may take before the test fails.
pub const WAIT: u64 = 20;

/// One message as it travels: its id, type, routing key and body. Sending the
/// same `Wire` twice is a redelivery (same message id).
pub type Wire = RawMessage;

/// A fresh envelope around `payload`, ready to send.
pub fn wire<T: Message>(payload: T) -> Wire {
    RawMessage::of(&Envelope::new(payload))
}

/// One test's catalog publisher, database pool, broker handle and store folder.
pub struct Harness {
    pub env: TestEnv,
    pub svc: Option<RunningService>,
    pub db: PgPool,
    pub broker: Broker,
    pub http: reqwest::Client,
    /// Removed by `close` (and on drop).
    pub scratch: PathBuf,
    /// The local store's folder (inside `scratch`), unless the test chose another store.
    pub store_dir: PathBuf,
}

impl Harness {
    /// A fresh environment with the service running on a local store and a
    /// 200 ms window.
    pub async fn start() -> Harness {
        Harness::start_with(|_, _| {}).await
    }

    /// As [`Harness::start`], with `configure` changing the variables first
    /// (it gets the scratch folder).
    pub async fn start_with(configure: impl FnOnce(&mut TestEnv, &Path)) -> Harness {
        if std::env::var_os("CATALOG_PUBLISHER_TEST_LOGS").is_some() {
            install_telemetry();
        }
        let mut env = TestEnv::new(&[catalog_publisher::SPEC]);
        let scratch = std::env::temp_dir().join(format!("feira-catalog-publisher-{}", env.namespace));
        std::fs::create_dir_all(&scratch).expect("create the scratch folder");
        let store_dir = scratch.join("objects");
        env.set("FEIRA_CATALOG_PUBLISHER_STORE", format!("file://{}", store_dir.display()));
        env.set("FEIRA_CATALOG_PUBLISHER_WINDOW", "200ms");
        configure(&mut env, &scratch);
        let db = env.db(&catalog_publisher::SPEC).await.expect("create the catalog-publisher database");
        let broker = env.broker();
        eprintln!("test namespace: {}", env.namespace);
        let mut h = Harness { env, svc: None, db, broker, http: reqwest::Client::new(), scratch, store_dir };
        h.spawn().await;
        h
    }

    /// Stops the service, then removes the database, the namespace and the
    /// scratch folder.
    pub async fn close(mut self) {
        if self.svc.is_some() {
            self.stop().await;
        }
        self.db.close().await;
        self.broker.close().await;
        self.env.cleanup().await.expect("clean up the test environment");
        let _ = std::fs::remove_dir_all(&self.scratch);
    }

    /// Starts the service and waits until it is ready and consuming.
    pub async fn spawn(&mut self) {
        assert!(self.svc.is_none(), "the service is already running");
        let svc = self.env.spawn(&catalog_publisher::SPEC).await.expect("start catalog-publisher");
        self.svc = Some(svc);
        let queue = self.broker.topology().queue(CONSUMER.name);
        let svc = self.svc.as_ref().expect("the service is running");
        svc.wait_consuming(&self.broker, &queue, WAIT).await;
    }

    /// Stops the service gracefully, as on SIGTERM.
    pub async fn stop(&mut self) {
        let svc = self.svc.take().expect("the service is running");
        svc.stop().await.expect("catalog-publisher stopped cleanly");
    }

    pub fn url(&self, path: &str) -> String {
        self.svc.as_ref().expect("the service is running").url(path)
    }

    /// `GET path`: the status and the JSON body (`Null` when not JSON).
    pub async fn get(&self, path: &str) -> (StatusCode, serde_json::Value) {
        let res = self.http.get(self.url(path)).send().await.expect("send request");
        let status = res.status();
        let body = res.bytes().await.expect("read body");
        (status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
    }

    /// Publishes every message as the catalog's relay would, all at once
    /// (pipelined), then waits for the broker's confirms.
    pub async fn send(&self, wires: &[Wire]) {
        testing::publish_all(&self.broker, wires).await;
    }

    /// Waits until the consumer has recorded every message in its inbox
    /// (applied, or found stale: both commit the inbox record).
    pub async fn wait_applied(&self, wires: &[Wire]) {
        let ids: Vec<Uuid> = wires.iter().map(|w| w.message_id).collect();
        let db = self.db.clone();
        eventually(WAIT, &format!("{} messages applied", ids.len()), || {
            let (ids, db) = (ids.clone(), db.clone());
            async move {
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE message_id = ANY($1)")
                    .bind(&ids)
                    .fetch_one(&db)
                    .await
                    .ok()?;
                (n == ids.len() as i64).then_some(())
            }
        })
        .await;
    }

    /// Sends a message about another owner and waits for it: the consumer
    /// takes its queue in order, so everything sent before has been handled.
    /// (A stock change of an owner never named: it publishes nothing.)
    pub async fn barrier(&self) {
        let w = wire(StockChangedV1 {
            product_id: Uuid::now_v7(),
            owner_id: Uuid::now_v7(),
            on_hand: 0,
            reserved: 0,
            available: 0,
            changed_at: OffsetDateTime::now_utc(),
        });
        self.send(std::slice::from_ref(&w)).await;
        self.wait_applied(&[w]).await;
    }

    /// Waits until the owner has no dirty mark: the publisher has dealt with
    /// every applied change (published it, or found the document unchanged).
    pub async fn wait_quiet(&self, owner_id: Uuid) {
        let db = self.db.clone();
        eventually(WAIT, "the owner's dirty mark cleared", || {
            let db = db.clone();
            async move {
                let dirty: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM dirty_owners WHERE owner_id = $1)")
                    .bind(owner_id)
                    .fetch_one(&db)
                    .await
                    .ok()?;
                (!dirty).then_some(())
            }
        })
        .await;
    }

    /// Sends `wires`, waits until they are applied and the publisher is done
    /// with the owner.
    pub async fn settle(&self, owner_id: Uuid, wires: &[Wire]) {
        self.send(wires).await;
        self.wait_applied(wires).await;
        self.wait_quiet(owner_id).await;
    }

    /// The owner's last published version (0: none).
    pub async fn version(&self, owner_id: Uuid) -> i64 {
        sqlx::query_scalar("SELECT COALESCE((SELECT version FROM publications WHERE owner_id = $1), 0)")
            .bind(owner_id)
            .fetch_one(&self.db)
            .await
            .expect("read the version")
    }

    /// Waits until the owner's version reaches `version`, and returns it.
    pub async fn wait_version(&self, owner_id: Uuid, version: i64) -> i64 {
        let db = self.db.clone();
        eventually(WAIT, &format!("version {version} published"), || {
            let db = db.clone();
            async move {
                let v: i64 = sqlx::query_scalar("SELECT version FROM publications WHERE owner_id = $1")
                    .bind(owner_id)
                    .fetch_optional(&db)
                    .await
                    .ok()??;
                (v >= version).then_some(v)
            }
        })
        .await
    }

    /// `(version, sha256)` of every published version of the owner.
    pub async fn versions(&self, owner_id: Uuid) -> Vec<(i64, String)> {
        sqlx::query_as("SELECT version, sha256 FROM catalog_versions WHERE owner_id = $1 ORDER BY version")
            .bind(owner_id)
            .fetch_all(&self.db)
            .await
            .expect("read the versions")
    }

    /// The `CatalogPublishedV1` envelopes in the outbox for the owner, oldest first.
    pub async fn announced(&self, owner_id: Uuid) -> Vec<Envelope<contracts::catalog::CatalogPublishedV1>> {
        let rows: Vec<serde_json::Value> = sqlx::query_scalar(
            "SELECT envelope FROM outbox
              WHERE message_type = 'catalog.catalog_published' AND (envelope->'payload'->>'owner_id')::uuid = $1
              ORDER BY seq",
        )
        .bind(owner_id)
        .fetch_all(&self.db)
        .await
        .expect("read the outbox");
        rows.into_iter().map(|v| serde_json::from_value(v).expect("a CatalogPublishedV1 envelope")).collect()
    }

    /// The bytes of `key` in the local store.
    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.store_dir.join(key)).ok()
    }

    /// The value of an unlabelled counter or gauge on `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.http.get(self.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    pub async fn dead_letters(&self) -> Vec<DeadLetter> {
        dlq::list(&self.broker, &[CONSUMER], 100).await.expect("list the DLQ")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(svc) = &self.svc {
            svc.shutdown.cancel();
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// Installs the platform's real log subscriber for this process (set
/// `CATALOG_PUBLISHER_TEST_LOGS=1` to see the service's logs).
pub fn install_telemetry() {
    static GUARD: OnceLock<Option<TelemetryGuard>> = OnceLock::new();
    GUARD.get_or_init(|| telemetry::init("catalog-publisher-test", LogFormat::Json).ok());
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One owner's catalog, as the catalog service would announce it. Times are
/// seconds after a fixed base an hour ago, so tests choose their order.
pub struct Shop {
    pub owner_id: Uuid,
    base: OffsetDateTime,
}

impl Shop {
    pub fn new() -> Shop {
        let now = OffsetDateTime::now_utc() - time::Duration::hours(1);
        Shop { owner_id: Uuid::now_v7(), base: now.replace_nanosecond(0).expect("whole seconds") }
    }

    pub fn at(&self, secs: i64) -> OffsetDateTime {
        self.base + time::Duration::seconds(secs)
    }

    pub fn owner(&self, name: &str, at: i64) -> Wire {
        wire(OwnerChangedV1 { owner_id: self.owner_id, name: name.into(), changed_at: self.at(at) })
    }

    pub fn category(&self, id: Uuid, name: &str, deleted: bool, at: i64) -> Wire {
        wire(CategoryChangedV1 {
            category_id: id,
            owner_id: self.owner_id,
            name: name.into(),
            deleted,
            changed_at: self.at(at),
        })
    }

    pub fn product(&self, p: &ProductChangedV1) -> Wire {
        wire(ProductChangedV1 { owner_id: self.owner_id, ..p.clone() })
    }

    /// A product of the shop, active, in `category`, changed at `at`.
    pub fn new_product(&self, sku: &str, category: Option<Uuid>, price_cents: i64, at: i64) -> ProductChangedV1 {
        ProductChangedV1 {
            product_id: Uuid::now_v7(),
            owner_id: self.owner_id,
            sku: sku.into(),
            title: format!("Produto {sku}"),
            description: format!("Descrição de {sku}"),
            price_cents,
            currency: "BRL".into(),
            category_id: category,
            attributes: json!({"origem": "BR", "cores": ["azul", "verde"]}),
            active: true,
            deleted: false,
            changed_at: self.at(at),
        }
    }

    pub fn stock(&self, product_id: Uuid, available: i64, at: i64) -> Wire {
        wire(StockChangedV1 {
            product_id,
            owner_id: self.owner_id,
            on_hand: available + 1,
            reserved: 1,
            available,
            changed_at: self.at(at),
        })
    }
}

/// The document entry a product is expected to have.
pub fn product_json(p: &ProductChangedV1, available: i64) -> serde_json::Value {
    json!({
        "id": p.product_id,
        "sku": p.sku,
        "title": p.title,
        "description": p.description,
        "price_cents": p.price_cents,
        "currency": p.currency,
        "attributes": p.attributes,
        "available": available,
    })
}
