//! `spawn_app` and the vocabulary the tests speak: callers, requests and
//! answers, fixtures (owners, categories, products, stock), rows, and the
//! broker (publishing commands as the orders saga does, reading replies).

use std::sync::Arc;
use std::time::Duration;

use contracts::{Envelope, Message};
use platform::messaging::Broker;
use platform::testing::{self, RedisPrefix, RunningService, TestEnv};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

/// Seconds any single wait may take before the test fails.
pub const WAIT: u64 = 20;

/// The catalog service running in this test, on its own database, broker
/// namespace and Redis keys. Dropping it stops the service; the last
/// instance of a test dropped removes all three.
pub struct TestApp {
    pub client: reqwest::Client,
    /// A pool on this test's catalog database, to look at what was stored.
    pub db: PgPool,
    pub broker: Broker,
    service: Option<RunningService>,
    // Dropped after the service stopped (so nothing writes its keys again),
    // by the last instance of the test.
    _redis: Arc<RedisPrefix>,
    // Dropped last: the services must be stopped before their database goes.
    env: Arc<TestEnv>,
}

/// Starts the real catalog service (HTTP, consumers, relay, sweeper).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// As [`spawn_app`], with `configure` changing the variables first.
pub async fn spawn_app_with(configure: impl FnOnce(&mut TestEnv)) -> TestApp {
    spawn_apps(1, configure).await.pop().expect("one instance")
}

/// `n` replicas of the catalog service, as a deployment runs them: one
/// database, one broker namespace (they share each consumer's queue), one
/// Redis key prefix.
pub async fn spawn_apps(n: usize, configure: impl FnOnce(&mut TestEnv)) -> Vec<TestApp> {
    let mut env = TestEnv::new(&[catalog::SPEC]);
    configure(&mut env);
    // The real Redis, even when the service is given a proxy in front of it.
    let redis = Arc::new(RedisPrefix {
        url: std::env::var("FEIRA_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string()),
        prefix: catalog::app::cache::prefix(&env.namespace),
    });
    let env = Arc::new(env);
    let options = env.config().service(catalog::SPEC.name).expect("the catalog configuration").database.clone();
    let mut apps = Vec::with_capacity(n);
    for _ in 0..n {
        let service = env
            .spawn(&catalog::SPEC)
            .await
            .expect("the catalog service starts (are PostgreSQL, RabbitMQ and Redis running?)");
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client");
        apps.push(TestApp {
            client,
            db: platform::db::pool(&options, 4),
            broker: env.broker(),
            service: Some(service),
            _redis: redis.clone(),
            env: env.clone(),
        });
    }
    apps
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let Some(service) = self.service.take() else {
            return;
        };
        service.shutdown.cancel();
        // Wait for the relay and consumers to stop, so they cannot re-declare
        // the namespace after the environment deleted it. Never panic here.
        if let Ok(rt) = tokio::runtime::Handle::try_current()
            && rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        {
            tokio::task::block_in_place(|| {
                let _ = rt.block_on(tokio::time::timeout(Duration::from_secs(10), service.handle));
                rt.block_on(self.broker.close());
            });
        }
    }
}

/// Who calls: the headers the gateway would set.
#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous,
    Seller(Uuid),
    Customer(Uuid),
    Admin(Uuid),
    /// Headers exactly as given (`None`: header absent).
    Raw {
        user_id: Option<String>,
        roles: Option<String>,
    },
}

impl Caller {
    pub fn seller() -> Self {
        Caller::Seller(Uuid::now_v7())
    }

    pub fn customer() -> Self {
        Caller::Customer(Uuid::now_v7())
    }

    pub fn admin() -> Self {
        Caller::Admin(Uuid::now_v7())
    }

    /// The caller's user id.
    pub fn id(&self) -> Uuid {
        match self {
            Caller::Seller(id) | Caller::Customer(id) | Caller::Admin(id) => *id,
            Caller::Anonymous | Caller::Raw { .. } => panic!("{self:?} has no user id"),
        }
    }

    fn identify(&self, req: RequestBuilder) -> RequestBuilder {
        const USER: &str = "x-feira-user-id";
        const ROLES: &str = "x-feira-roles";
        match self {
            Caller::Anonymous => req,
            Caller::Seller(id) => req.header(USER, id.to_string()).header(ROLES, "seller"),
            Caller::Customer(id) => req.header(USER, id.to_string()).header(ROLES, "customer"),
            Caller::Admin(id) => req.header(USER, id.to_string()).header(ROLES, "admin"),
            Caller::Raw { user_id, roles } => {
                let req = match user_id {
                    Some(u) => req.header(USER, u),
                    None => req,
                };
                match roles {
                    Some(r) => req.header(ROLES, r),
                    None => req,
                }
            }
        }
    }
}

pub use platform::testing::Answer;

/// The id of a JSON resource (`id`, or `order_id`).
pub fn id_of(v: &Value) -> Uuid {
    v["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("a UUID id in {v}"))
}

/// A valid product of the tests: `sku`, 35.90 BRL, with two attributes.
pub fn product_body(sku: &str) -> Value {
    json!({
        "sku": sku,
        "title": format!("Caneca {sku}"),
        "description": "Caneca de cerâmica esmaltada",
        "price_cents": 3590,
        "currency": "BRL",
        "attributes": {"color": "azul", "capacity_ml": 350}
    })
}

impl TestApp {
    /// The test's environment (namespace, variables, configuration).
    pub fn env(&self) -> &TestEnv {
        &self.env
    }

    pub fn url(&self, path: &str) -> String {
        self.service.as_ref().expect("the service is running").url(path)
    }

    pub fn request(&self, method: Method, path: &str, caller: &Caller) -> RequestBuilder {
        caller.identify(self.client.request(method, self.url(path)))
    }

    pub async fn send(&self, method: Method, path: &str, caller: &Caller, body: Option<&Value>) -> Answer {
        let req = self.request(method, path, caller);
        let req = match body {
            Some(b) => req.json(b),
            None => req,
        };
        Answer::of(req.send().await).await
    }

    pub async fn get(&self, path: &str, caller: &Caller) -> Answer {
        self.send(Method::GET, path, caller, None).await
    }

    pub async fn post(&self, path: &str, caller: &Caller, body: &Value) -> Answer {
        self.send(Method::POST, path, caller, Some(body)).await
    }

    pub async fn put(&self, path: &str, caller: &Caller, body: &Value) -> Answer {
        self.send(Method::PUT, path, caller, Some(body)).await
    }

    pub async fn patch(&self, path: &str, caller: &Caller, body: &Value) -> Answer {
        self.send(Method::PATCH, path, caller, Some(body)).await
    }

    pub async fn delete(&self, path: &str, caller: &Caller) -> Answer {
        self.send(Method::DELETE, path, caller, None).await
    }

    /// Creates `seller`'s owner profile.
    pub async fn owner(&self, seller: &Caller) {
        let name = format!("Loja {}", &seller.id().simple().to_string()[..8]);
        let answer = self.put(&format!("/owners/{}", seller.id()), seller, &json!({"name": name})).await;
        assert_eq!(answer.status, StatusCode::CREATED, "creating the owner: {answer:?}");
    }

    /// Creates a category of `seller` and returns its id.
    pub async fn category(&self, seller: &Caller, name: &str) -> Uuid {
        let answer = self.post(&format!("/owners/{}/categories", seller.id()), seller, &json!({"name": name})).await;
        id_of(answer.expect(StatusCode::CREATED))
    }

    /// Creates a product of `seller` from `body` and returns it.
    pub async fn product_from(&self, seller: &Caller, body: &Value) -> Value {
        let answer = self.post(&format!("/owners/{}/products", seller.id()), seller, body).await;
        answer.expect(StatusCode::CREATED).clone()
    }

    /// Creates an active product of `seller` and returns its id.
    pub async fn product(&self, seller: &Caller, sku: &str) -> Uuid {
        id_of(&self.product_from(seller, &product_body(sku)).await)
    }

    /// Sets the units on hand of a product of `seller`.
    pub async fn stock(&self, seller: &Caller, product: Uuid, on_hand: i64) {
        let answer = self.put(&format!("/products/{product}/stock"), seller, &json!({"on_hand": on_hand})).await;
        answer.expect(StatusCode::OK);
    }

    /// A seller with a profile and one product with `on_hand` units.
    pub async fn stocked_product(&self, on_hand: i64) -> (Caller, Uuid) {
        let seller = Caller::seller();
        self.owner(&seller).await;
        let product = self.product(&seller, "STOCKED-1").await;
        self.stock(&seller, product, on_hand).await;
        (seller, product)
    }

    /// `(on_hand, reserved, available)` of a product's stock row.
    pub async fn stock_row(&self, product: Uuid) -> (i64, i64, i64) {
        sqlx::query_as("SELECT on_hand, reserved, available FROM stock WHERE product_id = $1")
            .bind(product)
            .fetch_one(&self.db)
            .await
            .expect("the product's stock row")
    }

    /// `POST /reservations` as an admin.
    pub async fn reserve(&self, order_id: Uuid, lines: &[(Uuid, i64)]) -> Answer {
        let lines: Vec<Value> = lines.iter().map(|(p, q)| json!({"product_id": p, "quantity": q})).collect();
        self.post("/reservations", &Caller::admin(), &json!({"order_id": order_id, "lines": lines})).await
    }

    /// The status of an order's reservation, straight from the database.
    pub async fn reservation_status(&self, order_id: Uuid) -> Option<String> {
        sqlx::query_scalar("SELECT status FROM reservations WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(&self.db)
            .await
            .expect("read the reservation")
    }

    /// Rows in one of the service's tables.
    pub async fn count(&self, table: &str) -> i64 {
        let known = ["owners", "categories", "products", "stock", "reservations", "reservation_lines", "outbox"];
        assert!(known.contains(&table), "unexpected table {table}");
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&self.db)
            .await
            .expect("counting rows")
    }

    /// The message types in the outbox, oldest first.
    pub async fn outbox_types(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT message_type FROM outbox ORDER BY seq").fetch_all(&self.db).await.expect("outbox")
    }

    /// The envelopes of one message type in the outbox, oldest first.
    pub async fn outbox<T: Message>(&self) -> Vec<Envelope<T>> {
        let rows: Vec<Value> = sqlx::query_scalar("SELECT envelope FROM outbox WHERE message_type = $1 ORDER BY seq")
            .bind(T::TYPE)
            .fetch_all(&self.db)
            .await
            .expect("outbox");
        rows.into_iter().map(|v| serde_json::from_value(v).expect("an envelope of its type")).collect()
    }

    /// Publishes a command as the orders saga's relay would, and waits for
    /// the broker's confirm.
    pub async fn publish<T: Message>(&self, envelope: &Envelope<T>) {
        testing::publish(&self.broker, envelope).await;
    }

    /// A private queue bound to each of `routing_keys`, gone with its channel.
    pub async fn subscribe(&self, routing_keys: &[&str]) -> Replies {
        Replies(testing::subscribe(&self.broker, routing_keys).await)
    }
}

/// Messages published on some routing keys.
pub struct Replies(testing::Subscription);

/// A message read from a subscription.
#[derive(Debug, Clone)]
pub struct Received {
    pub routing_key: String,
    pub envelope: Envelope<Value>,
}

impl Received {
    pub fn payload<T: Message>(&self) -> T {
        serde_json::from_value(self.envelope.payload.clone()).expect("a payload of its type")
    }
}

impl Replies {
    /// The next `n` messages, in the order they arrived.
    pub async fn take(&self, n: usize) -> Vec<Received> {
        let deliveries = self.0.take(n).await;
        deliveries
            .into_iter()
            .map(|d| Received {
                routing_key: d.routing_key.to_string(),
                envelope: serde_json::from_slice(&d.data).expect("an envelope"),
            })
            .collect()
    }
}
