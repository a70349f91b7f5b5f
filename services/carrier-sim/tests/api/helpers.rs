//! `spawn_app` and the vocabulary the tests speak: quotes, bookings, the
//! fault switch.

use std::time::Duration;

use platform::testing::{Answer, RunningService, TestEnv};
use serde_json::{Value, json};
use uuid::Uuid;

/// The carrier-sim running in this test (stateless: no database).
pub struct TestApp {
    pub client: reqwest::Client,
    service: Option<RunningService>,
    _env: TestEnv,
}

pub async fn spawn_app() -> TestApp {
    let env = TestEnv::new(&[carrier_sim::SPEC]);
    let service = env.spawn(&carrier_sim::SPEC).await.expect("carrier-sim starts");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client");
    TestApp { client, service: Some(service), _env: env }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let Some(service) = self.service.take() else {
            return;
        };
        service.stop_in_drop();
    }
}

pub fn reference() -> String {
    format!("order-{}", Uuid::now_v7())
}

pub fn key() -> String {
    Uuid::new_v4().to_string()
}

pub fn booking(service: &str, reference: &str) -> Value {
    json!({"service": service, "origin_cep": "01310-100", "destination_cep": "90010-000", "weight_grams": 1500, "reference": reference})
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        self.service.as_ref().expect("running").url(path)
    }

    pub async fn get(&self, path: &str) -> Answer {
        Answer::of(self.client.get(self.url(path)).send().await).await
    }

    pub async fn quote(&self, body: &Value) -> Answer {
        Answer::of(self.client.post(self.url("/v1/quotes")).json(body).send().await).await
    }

    pub async fn book(&self, key: Option<&str>, body: &Value) -> Answer {
        let mut req = self.client.post(self.url("/v1/shipments")).json(body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        Answer::of(req.send().await).await
    }

    /// The shipments of a reference, oldest first.
    pub async fn shipments(&self, reference: &str) -> Vec<Value> {
        let a = self.get(&format!("/v1/shipments?reference={reference}")).await;
        assert_eq!(a.status, 200, "{}", a.text);
        a.json["data"].as_array().cloned().expect("a list")
    }

    pub async fn set_faults(&self, settings: Value) -> Value {
        let a = Answer::of(self.client.put(self.url("/admin/faults")).json(&settings).send().await).await;
        assert_eq!(a.status, 200, "{}", a.text);
        a.json
    }
}
