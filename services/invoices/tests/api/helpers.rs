//! A running invoices service on a private database and broker namespace,
//! and the few operations the tests need: publish confirmed orders the way
//! the orders relay does, read invoices over HTTP and SQL, look at the
//! dead-letter queue.

use std::sync::OnceLock;

use contracts::Envelope;
use contracts::orders::{AddressV1, OrderConfirmedV1, OrderLineV1, ShippingV1};
use platform::config::LogFormat;
use platform::messaging::Broker;
use platform::messaging::dlq::{self, DeadLetter};
use platform::telemetry::{self, TelemetryGuard};
use platform::testing::{self, RunningService, TestEnv, eventually};
use reqwest::StatusCode;
use serde::Deserialize;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

/// Seconds any single wait may take before the test fails.
pub const WAIT: u64 = 20;

/// An invoice as `GET /invoices` answers it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct InvoiceDto {
    pub id: Uuid,
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub series: String,
    pub number: i64,
    pub currency: String,
    pub freight_cents: i64,
    pub total_cents: i64,
    pub lines: Vec<LineDto>,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct LineDto {
    pub sku: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
    pub line_total_cents: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PageDto {
    pub items: Vec<InvoiceDto>,
    pub next_cursor: Option<Uuid>,
}

/// Who calls the HTTP API.
#[derive(Debug, Clone, Copy)]
pub enum As {
    Customer(Uuid),
    Admin,
    Anonymous,
}

/// One test's invoices service, database pool and broker handle.
pub struct Harness {
    pub env: TestEnv,
    pub svc: Option<RunningService>,
    pub db: PgPool,
    pub broker: Broker,
    pub http: reqwest::Client,
}

impl Harness {
    /// A fresh environment with the service running and consuming.
    pub async fn start() -> Harness {
        Harness::start_with(|_| {}).await
    }

    /// As [`Harness::start`], with `configure` changing the environment's
    /// variables first.
    pub async fn start_with(configure: impl FnOnce(&mut TestEnv)) -> Harness {
        if std::env::var_os("INVOICES_TEST_LOGS").is_some() {
            install_telemetry();
        }
        let mut env = TestEnv::new(&[invoices::SPEC]);
        configure(&mut env);
        let db = env.db(&invoices::SPEC).await.expect("create the invoices database");
        let broker = env.broker();
        eprintln!("test namespace: {}", env.namespace);
        let mut h = Harness { env, svc: None, db, broker, http: reqwest::Client::new() };
        h.spawn().await;
        h
    }

    /// Stops the service, then removes the database and the namespace. (On
    /// a panic, `Drop` does the same without waiting for the service.)
    pub async fn close(mut self) {
        if self.svc.is_some() {
            self.stop().await;
        }
        self.db.close().await;
        self.broker.close().await;
        self.env.cleanup().await.expect("clean up the test environment");
    }

    /// Starts the service and waits until it is ready and consuming.
    pub async fn spawn(&mut self) {
        assert!(self.svc.is_none(), "the service is already running");
        let svc = self.env.spawn(&invoices::SPEC).await.expect("start invoices");
        self.svc = Some(svc);
        let queue = self.broker.topology().queue(invoices::events::order_confirmed::CONSUMER.name);
        let svc = self.svc.as_ref().expect("the service is running");
        svc.wait_consuming(&self.broker, &queue, WAIT).await;
    }

    /// Stops the service gracefully, as on SIGTERM.
    pub async fn stop(&mut self) {
        let svc = self.svc.take().expect("the service is running");
        svc.stop().await.expect("invoices stopped cleanly");
    }

    pub fn url(&self, path: &str) -> String {
        self.svc.as_ref().expect("the service is running").url(path)
    }

    /// `GET path` as `who`: the status and the body.
    pub async fn get(&self, path: &str, who: As) -> (StatusCode, serde_json::Value) {
        let mut req = self.http.get(self.url(path));
        match who {
            As::Customer(id) => req = req.header("x-feira-user-id", id.to_string()).header("x-feira-roles", "customer"),
            As::Admin => {
                req = req.header("x-feira-user-id", Uuid::now_v7().to_string()).header("x-feira-roles", "admin")
            }
            As::Anonymous => {}
        }
        let res = req.send().await.expect("send request");
        let status = res.status();
        let body = res.bytes().await.expect("read body");
        let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    /// `GET /invoices?order_id=` as `who`, which must answer 200.
    pub async fn invoices_of_order(&self, order_id: Uuid, who: As) -> Vec<InvoiceDto> {
        let (status, body) = self.get(&format!("/invoices?order_id={order_id}"), who).await;
        assert_eq!(status, StatusCode::OK, "GET /invoices?order_id: {body}");
        let page: PageDto = serde_json::from_value(body).expect("an invoice page");
        assert!(page.next_cursor.is_none());
        page.items
    }

    /// Publishes `envelope` as the orders relay does and waits for the confirm.
    pub async fn publish<T: contracts::Message>(&self, envelope: &Envelope<T>) {
        testing::publish(&self.broker, envelope).await;
    }

    /// Publishes any body with the properties and routing key of a confirmed order.
    pub async fn publish_raw(&self, message_id: &str, message_type: &str, body: &[u8]) {
        testing::publish_raw(
            &self.broker,
            <OrderConfirmedV1 as contracts::Message>::ROUTING_KEY,
            message_id,
            message_type,
            body,
        )
        .await;
    }

    /// Publishes a fresh confirmed order and returns its envelope.
    pub async fn confirm(&self) -> Envelope<OrderConfirmedV1> {
        let e = Envelope::new(order(Uuid::now_v7()));
        self.publish(&e).await;
        e
    }

    /// The invoices of `order_id`, straight from the database.
    pub async fn db_invoices_of(&self, order_id: Uuid) -> Vec<(Uuid, i64)> {
        sqlx::query_as("SELECT id, number FROM invoices WHERE order_id = $1")
            .bind(order_id)
            .fetch_all(&self.db)
            .await
            .expect("query invoices")
    }

    /// Every invoice number, ascending.
    pub async fn numbers(&self) -> Vec<i64> {
        sqlx::query_scalar("SELECT number FROM invoices WHERE series = '1' ORDER BY number")
            .fetch_all(&self.db)
            .await
            .expect("query numbers")
    }

    pub async fn count(&self, sql: &'static str, id: Uuid) -> i64 {
        sqlx::query_scalar(sql).bind(id).fetch_one(&self.db).await.expect("count")
    }

    /// Waits until each of `orders` has an invoice.
    pub async fn wait_invoiced(&self, orders: &[Uuid]) {
        let ids = orders.to_vec();
        let db = self.db.clone();
        eventually(WAIT, &format!("{} orders invoiced", ids.len()), || {
            let (ids, db) = (ids.clone(), db.clone());
            async move {
                let n: i64 =
                    sqlx::query_scalar("SELECT count(DISTINCT order_id) FROM invoices WHERE order_id = ANY($1)")
                        .bind(&ids)
                        .fetch_one(&db)
                        .await
                        .ok()?;
                (n == ids.len() as i64).then_some(())
            }
        })
        .await;
    }

    /// Publishes a fresh confirmed order and waits for its invoice: the consumer takes
    /// its queue in order, so everything published before has been applied
    /// (committed, or rolled back on its way to a retry or dead-letter queue,
    /// which may still take a moment) by then.
    pub async fn barrier(&self) {
        let e = self.confirm().await;
        self.wait_invoiced(&[e.payload.order_id]).await;
    }

    pub async fn dead_letters(&self) -> Vec<DeadLetter> {
        dlq::list(&self.broker, &[invoices::events::order_confirmed::CONSUMER], 100).await.expect("list the DLQ")
    }

    /// Waits until the DLQ holds exactly `n` messages and returns them.
    pub async fn wait_dead_letters(&self, n: usize) -> Vec<DeadLetter> {
        let broker = self.broker.clone();
        eventually(WAIT, &format!("{n} messages in the DLQ"), || {
            let broker = broker.clone();
            async move {
                let l = dlq::list(&broker, &[invoices::events::order_confirmed::CONSUMER], 100).await.ok()?;
                (l.len() == n).then_some(l)
            }
        })
        .await
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(svc) = &self.svc {
            svc.shutdown.cancel();
        }
    }
}

/// Installs the platform's real log and trace subscriber for this process
/// (as `feira run` does). Once per process; later calls do nothing.
pub fn install_telemetry() {
    static GUARD: OnceLock<Option<TelemetryGuard>> = OnceLock::new();
    GUARD.get_or_init(|| telemetry::init("invoices-test", LogFormat::Json).ok());
}

/// A consistent confirmed order of `customer` with two lines and freight.
pub fn order(customer: Uuid) -> OrderConfirmedV1 {
    let q = i32::from(Uuid::new_v4().as_bytes()[0] % 5) + 1;
    let lines = vec![
        OrderLineV1 {
            product_id: None,
            sku: "SKU-A".into(),
            quantity: q,
            unit_price_cents: 1990,
            line_total_cents: 1990 * i64::from(q),
        },
        OrderLineV1 {
            product_id: None,
            sku: "SKU-B".into(),
            quantity: 1,
            unit_price_cents: 350,
            line_total_cents: 350,
        },
    ];
    let freight_cents = 1500;
    OrderConfirmedV1 {
        order_id: Uuid::now_v7(),
        customer_id: customer,
        currency: "BRL".into(),
        total_cents: lines.iter().map(|l| l.line_total_cents).sum::<i64>() + freight_cents,
        lines,
        payment_id: Uuid::now_v7(),
        contact_email: None,
        shipping: Some(ShippingV1 { quote_id: Uuid::now_v7(), freight_cents, address: AddressV1::example() }),
        confirmed_at: OffsetDateTime::now_utc(),
    }
}

/// Asserts that `inv` is the invoice of `order`, numbered `number` in series "1".
pub fn assert_invoice_matches(inv: &InvoiceDto, order: &OrderConfirmedV1, number: i64) {
    assert_eq!(inv.order_id, order.order_id);
    assert_eq!(inv.customer_id, order.customer_id);
    assert_eq!(inv.series, "1");
    assert_eq!(inv.number, number);
    assert_eq!(inv.currency, order.currency);
    assert_eq!(inv.freight_cents, order.shipping.as_ref().map_or(0, |s| s.freight_cents));
    assert_eq!(inv.total_cents, order.total_cents);
    let lines: Vec<LineDto> = order
        .lines
        .iter()
        .map(|l| LineDto {
            sku: l.sku.clone(),
            quantity: l.quantity,
            unit_price_cents: l.unit_price_cents,
            line_total_cents: l.line_total_cents,
        })
        .collect();
    assert_eq!(inv.lines, lines);
}
