//! `spawn_app` and the small vocabulary the tests speak: callers, order
//! bodies, answers and row counts.

use std::time::Duration;

use platform::testing::{RunningService, TestEnv};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

/// The orders service running in this test, on its own database and its own
/// broker namespace. Dropping it stops the service, then removes both.
pub struct TestApp {
    pub client: reqwest::Client,
    /// A pool on this test's orders database, to look at what was stored.
    pub db: PgPool,
    service: Option<RunningService>,
    // Dropped last: the service must be stopped before its database goes.
    _env: TestEnv,
}

/// Starts the real orders service on 127.0.0.1 with a free port.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// As [`spawn_app`], with `configure` changing the variables first.
pub async fn spawn_app_with(configure: impl FnOnce(&mut TestEnv)) -> TestApp {
    let mut env = TestEnv::new(&[orders::SPEC]);
    configure(&mut env);
    let service =
        env.spawn(&orders::SPEC).await.expect("the orders service starts (are PostgreSQL and RabbitMQ running?)");
    // The service created and migrated the database: a lazy pool on it is
    // enough (`env.db` would check the migrations again).
    let options = env.config().service(orders::SPEC.name).expect("the orders configuration").database.clone();
    let db = platform::db::pool(&options, 4);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    TestApp { client, db, service: Some(service), _env: env }
}

impl TestApp {
    /// The broker, in this test's namespace.
    pub fn broker(&self) -> platform::messaging::Broker {
        self._env.broker()
    }

    /// Stops the service (as on SIGTERM) and starts it again on the same
    /// database and queues.
    pub async fn restart(&mut self) {
        if let Some(s) = self.service.take() {
            s.stop().await.expect("the service stops cleanly");
        }
        self.service = Some(self._env.spawn(&orders::SPEC).await.expect("the orders service starts again"));
    }

    pub fn url(&self, path: &str) -> String {
        self.service.as_ref().expect("the service is running").url(path)
    }

    /// A request to the service, identified as `caller`.
    pub fn request(&self, method: Method, path: &str, caller: &Caller) -> RequestBuilder {
        caller.identify(self.client.request(method, self.url(path)))
    }

    pub async fn get(&self, path: &str, caller: &Caller) -> Answer {
        Answer::of(self.request(Method::GET, path, caller).send().await).await
    }

    /// `POST /orders` with a JSON body.
    pub async fn place_order(&self, caller: &Caller, body: &Value) -> Answer {
        Answer::of(self.request(Method::POST, "/orders", caller).json(body).send().await).await
    }

    /// `POST /orders` with a JSON body and an `Idempotency-Key`.
    pub async fn place_order_with_key(&self, caller: &Caller, key: &str, body: &Value) -> Answer {
        let req = self.request(Method::POST, "/orders", caller).header("idempotency-key", key).json(body);
        Answer::of(req.send().await).await
    }

    /// `POST /orders` with these exact bytes, sent as JSON.
    pub async fn place_order_raw(&self, caller: &Caller, body: impl Into<reqwest::Body>) -> Answer {
        let req = self.request(Method::POST, "/orders", caller).header(CONTENT_TYPE, "application/json").body(body);
        Answer::of(req.send().await).await
    }

    /// Places a valid order for `caller` and returns the created order.
    pub async fn placed_order(&self, caller: &Caller) -> Value {
        let answer = self.place_order(caller, &valid_order(caller.id())).await;
        assert_eq!(answer.status, StatusCode::CREATED, "placing a valid order: {answer:?}");
        answer.json
    }

    /// Rows in one of the service's tables.
    /// How many `OrderPlacedV1` are in the outbox.
    pub async fn announced(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE message_type = 'orders.order_placed'")
            .fetch_one(&self.db)
            .await
            .expect("count the announcements")
    }

    pub async fn count(&self, table: &str) -> i64 {
        assert!(["orders", "order_lines", "outbox", "idempotency_keys"].contains(&table), "unexpected table {table}");
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&self.db)
            .await
            .expect("counting rows")
    }

    /// Neither an order nor an event was stored.
    pub async fn assert_nothing_stored(&self) {
        assert_eq!(self.count("orders").await, 0, "no order should be stored");
        assert_eq!(self.count("order_lines").await, 0, "no order line should be stored");
        assert_eq!(self.count("outbox").await, 0, "no event should be stored");
    }

    /// Stops the service gracefully (the drop does the same, blocking).
    pub async fn stop(mut self) {
        if let Some(service) = self.service.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), service.stop()).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let Some(service) = self.service.take() else {
            return;
        };
        service.stop_in_drop();
    }
}

/// Who calls: the headers the gateway would set.
#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous,
    Customer(Uuid),
    Admin(Uuid),
    /// Headers exactly as given, for malformed identities.
    Raw {
        user_id: String,
        roles: String,
    },
}

impl Caller {
    /// A new customer.
    pub fn customer() -> Self {
        Caller::Customer(Uuid::new_v4())
    }

    /// A new admin.
    pub fn admin() -> Self {
        Caller::Admin(Uuid::new_v4())
    }

    /// The caller's user id (a fresh one for callers without a valid id).
    pub fn id(&self) -> Uuid {
        match self {
            Caller::Customer(id) | Caller::Admin(id) => *id,
            Caller::Anonymous | Caller::Raw { .. } => Uuid::new_v4(),
        }
    }

    fn identify(&self, req: RequestBuilder) -> RequestBuilder {
        const USER: &str = "x-feira-user-id";
        const ROLES: &str = "x-feira-roles";
        match self {
            Caller::Anonymous => req,
            // As the cart's checkout calls orders on the customer's behalf.
            Caller::Customer(id) => {
                req.header(USER, id.to_string()).header(ROLES, "customer").header("x-feira-channel", "cart")
            }
            Caller::Admin(id) => req.header(USER, id.to_string()).header(ROLES, "admin"),
            Caller::Raw { user_id, roles } => req.header(USER, user_id).header(ROLES, roles),
        }
    }
}

/// The order of the issue: 2 × ABC-1 at 19.90 BRL, free shipping, by card.
pub fn valid_order(customer_id: Uuid) -> Value {
    order_with(customer_id, "BRL", json!([{"sku": "ABC-1", "quantity": 2, "unit_price_cents": 1990}]))
}

/// An order of `items` (each given a product id unless it has one or is not
/// an object) with a valid checkout: address, free shipping, card, e-mail.
pub fn order_with(customer_id: impl serde::Serialize, currency: impl serde::Serialize, mut items: Value) -> Value {
    if let Some(items) = items.as_array_mut() {
        for item in items.iter_mut().filter_map(Value::as_object_mut) {
            item.entry("product_id").or_insert_with(|| json!(Uuid::new_v4()));
        }
    }
    json!({
        "customer_id": customer_id,
        "currency": currency,
        "items": items,
        "shipping": {
            "quote_id": Uuid::nil(),
            "freight_cents": 0,
            "address": {
                "recipient": "Ana Souza", "street": "Avenida Paulista", "number": "1000",
                "district": "Bela Vista", "city": "São Paulo", "state": "SP", "cep": "01310-100"
            }
        },
        "payment": {"type": "card", "token": "tok_visa"},
        "contact_email": "ana@example.com"
    })
}

pub use platform::testing::Answer;
