//! A running payments service on a private database and broker namespace,
//! in front of a scripted PSP stub, and the operations the tests need:
//! send the saga's commands, read the replies, the API, the database and
//! the metrics.

use std::sync::OnceLock;

use contracts::payments::{
    ChargePaymentV1, PaymentFailedV1, PaymentMethodV1, PaymentPendingV1, PaymentRefundedV1, PaymentSucceededV1,
    RefundPaymentV1,
};
use contracts::{Envelope, Message};
use platform::config::LogFormat;
use platform::messaging::Broker;
use platform::telemetry::{self, TelemetryGuard};
use platform::testing::{self, Answer, RunningService, Subscription, TestEnv, eventually};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::psp_stub::PspStub;

/// Seconds any single wait may take before the test fails.
pub const WAIT: u64 = 30;

/// The default webhook secret.
pub const SECRET: &str = "whsec_feira_local";

/// Who calls the HTTP API.
#[derive(Debug, Clone, Copy)]
pub enum As {
    Customer(Uuid),
    Admin,
    Anonymous,
}

pub struct Harness {
    pub env: TestEnv,
    pub svc: Option<RunningService>,
    pub db: PgPool,
    pub broker: Broker,
    pub http: reqwest::Client,
    pub psp: PspStub,
    /// Every reply payments publishes, from the start.
    pub replies: Subscription,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(&[]).await
    }

    /// As [`Harness::start`], with some variables set first.
    pub async fn start_with(vars: &[(&str, &str)]) -> Harness {
        if std::env::var_os("PAYMENTS_TEST_LOGS").is_some() {
            install_telemetry();
        }
        let psp = PspStub::start().await;
        let mut env = TestEnv::new(&[payments::SPEC]);
        env.set("FEIRA_PAYMENTS_PSP_URL", psp.url.clone());
        env.set("FEIRA_PAYMENTS_PSP_TIMEOUT", "1s");
        env.set("FEIRA_PAYMENTS_CLAIM_LEASE", "3s");
        for (k, v) in vars {
            env.set(k, *v);
        }
        let db = env.db(&payments::SPEC).await.expect("create the payments database");
        let broker = env.broker();
        eprintln!("test namespace: {}", env.namespace);
        let svc = env.spawn(&payments::SPEC).await.expect("start payments");
        for c in payments::SPEC.consumers {
            svc.wait_consuming(&broker, &broker.topology().queue(c.name), WAIT).await;
        }
        // The service has declared the events exchange by now.
        let replies = testing::subscribe(
            &broker,
            &[
                PaymentSucceededV1::ROUTING_KEY,
                PaymentPendingV1::ROUTING_KEY,
                PaymentFailedV1::ROUTING_KEY,
                PaymentRefundedV1::ROUTING_KEY,
            ],
        )
        .await;
        Harness { env, svc: Some(svc), db, broker, http: reqwest::Client::new(), psp, replies }
    }

    pub async fn close(mut self) {
        if let Some(svc) = self.svc.take() {
            svc.stop().await.expect("payments stopped cleanly");
        }
        self.db.close().await;
        self.broker.close().await;
        self.env.cleanup().await.expect("clean up the test environment");
    }

    /// Starts the service and waits until both consumers consume.
    pub async fn spawn(&mut self) {
        assert!(self.svc.is_none(), "the service is already running");
        let svc = self.env.spawn(&payments::SPEC).await.expect("start payments");
        for c in payments::SPEC.consumers {
            svc.wait_consuming(&self.broker, &self.broker.topology().queue(c.name), WAIT).await;
        }
        self.svc = Some(svc);
    }

    /// Kills the service as a crash would: nothing of it runs any more and
    /// nothing is finished (its worker abandons the provider calls in
    /// flight, leaving their leases).
    pub async fn crash(&mut self) {
        let svc = self.svc.take().expect("the service is running");
        svc.shutdown.cancel();
        svc.handle.abort();
        let _ = svc.handle.await;
    }

    pub fn url(&self, path: &str) -> String {
        self.svc.as_ref().expect("the service is running").url(path)
    }

    pub async fn get(&self, path: &str, who: As) -> Answer {
        let mut req = self.http.get(self.url(path));
        match who {
            As::Customer(id) => req = req.header("x-feira-user-id", id.to_string()).header("x-feira-roles", "customer"),
            As::Admin => {
                req = req.header("x-feira-user-id", Uuid::now_v7().to_string()).header("x-feira-roles", "admin")
            }
            As::Anonymous => {}
        }
        Answer::of(req.send().await).await
    }

    /// The order's payment as an admin sees it (`Null` when there is none).
    pub async fn payment_of(&self, order_id: Uuid) -> Value {
        let a = self.get(&format!("/payments?order_id={order_id}"), As::Admin).await;
        assert_eq!(a.status, 200, "{}", a.text);
        a.json["items"].get(0).cloned().unwrap_or(Value::Null)
    }

    /// Waits until the order's payment has `status`, and returns it.
    pub async fn wait_status(&self, order_id: Uuid, status: &str) -> Value {
        eventually(WAIT, &format!("payment of {order_id} {status}"), || async move {
            let p = self.payment_of(order_id).await;
            (p["status"] == status).then_some(p)
        })
        .await
    }

    /// `POST /payments/webhooks/psp` with `body` and an optional signature.
    pub async fn webhook(&self, body: &str, signature: Option<String>) -> Answer {
        let mut req = self
            .http
            .post(self.url("/payments/webhooks/psp"))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(s) = signature {
            req = req.header("Psp-Signature", s);
        }
        Answer::of(req.send().await).await
    }

    pub async fn metrics(&self) -> String {
        let res = self.http.get(self.url("/metrics")).send().await.expect("GET /metrics");
        res.text().await.expect("metrics text")
    }

    /// The value of the metric line that starts with `series` (name and
    /// labels exactly as rendered), if any.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.metrics().await;
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    pub async fn charge(&self, cmd: &Envelope<ChargePaymentV1>) {
        testing::publish(&self.broker, cmd).await;
    }

    pub async fn refund(&self, order_id: Uuid) -> Envelope<RefundPaymentV1> {
        let cmd = Envelope::new(RefundPaymentV1 { order_id, reason: "stock unavailable".into() });
        testing::publish(&self.broker, &cmd).await;
        cmd
    }

    /// The next reply: its type and envelope.
    pub async fn next_reply(&self) -> (String, Envelope<Value>) {
        let e: Envelope<Value> = self.replies.next_envelope().await;
        (e.message_type.clone(), e)
    }

    /// The next reply, which must be of type `T`.
    pub async fn reply<T: Message>(&self) -> Envelope<T> {
        let (kind, e) = self.next_reply().await;
        assert_eq!(kind, T::TYPE, "unexpected reply {e:?}");
        let payload: T = serde_json::from_value(e.payload.clone()).expect("the reply's payload");
        Envelope {
            message_id: e.message_id,
            message_type: e.message_type,
            version: e.version,
            occurred_at: e.occurred_at,
            correlation_id: e.correlation_id,
            causation_id: e.causation_id,
            traceparent: e.traceparent,
            payload,
        }
    }

    /// Replies of type `T` about `order_id` in the outbox (published or not).
    pub async fn outbox_count<T: Message>(&self, order_id: Uuid) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM outbox WHERE message_type = $1 AND envelope->'payload'->>'order_id' = $2",
        )
        .bind(T::TYPE)
        .bind(order_id.to_string())
        .fetch_one(&self.db)
        .await
        .expect("count the outbox")
    }

    pub async fn payment_rows(&self, order_id: Uuid) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM payments WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(&self.db)
            .await
            .expect("count payments")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(svc) = &self.svc {
            svc.shutdown.cancel();
        }
    }
}

pub fn install_telemetry() {
    static GUARD: OnceLock<Option<TelemetryGuard>> = OnceLock::new();
    GUARD.get_or_init(|| telemetry::init("payments-test", LogFormat::Json).ok());
}

/// A charge command for a fresh order.
pub fn charge_cmd(method: PaymentMethodV1) -> Envelope<ChargePaymentV1> {
    Envelope::new(ChargePaymentV1 {
        order_id: Uuid::now_v7(),
        customer_id: Uuid::now_v7(),
        amount_cents: 15_990,
        currency: "BRL".into(),
        method,
    })
}

pub fn card(token: &str) -> PaymentMethodV1 {
    PaymentMethodV1::Card { token: token.into() }
}

/// A webhook body for `charge` and its signature at unix time `t`.
pub fn signed(kind: &str, charge: &Value, secret: &str, t: i64) -> (String, String) {
    let body = serde_json::json!({"type": kind, "data": charge}).to_string();
    let sig = payments::domain::webhook::sign(secret, t, body.as_bytes()).expect("sign");
    (body, sig)
}

pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
