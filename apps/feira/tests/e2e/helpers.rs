//! Helpers for end-to-end tests: the real `feira` binary as a child process,
//! confirmed orders as the orders service announces them, and reads from the
//! services' own databases.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use contracts::Envelope;
use contracts::orders::{OrderConfirmedV1, ShippingV1};
use platform::testing::TestEnv;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;

pub const ADMIN: &str = "admin";

/// The `feira` binary running as a child process.
pub struct Feira {
    child: Child,
    pub urls: BTreeMap<String, String>,
    pub log: PathBuf,
}

impl Feira {
    /// Runs `feira <args>` with the test's configuration and waits until it
    /// has printed the URL of each of `services`.
    pub async fn start(env: &TestEnv, args: &[&str], services: &[&str]) -> Feira {
        let log = std::env::temp_dir().join(format!("feira-e2e-{}-{}.log", env.namespace, Uuid::new_v4().simple()));
        let log_file = std::fs::File::create(&log).expect("create the log file");
        let mut cmd = command(env);
        cmd.args(args).stdout(Stdio::piped()).stderr(log_file).kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn feira");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let mut urls = BTreeMap::new();
        let read = async {
            while urls.len() < services.len() {
                let Some(line) = lines.next_line().await.expect("read stdout") else {
                    break;
                };
                let mut words = line.split_whitespace();
                if let (Some(name), Some(url)) = (words.next(), words.next())
                    && url.starts_with("http://")
                    && services.contains(&name)
                {
                    urls.insert(name.to_string(), url.to_string());
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(60), read).await.is_err() || urls.len() < services.len() {
            let _ = child.start_kill();
            panic!("feira {args:?} did not print its URLs; log: {}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let feira = Feira { child, urls, log };
        for name in services {
            feira.wait_ready(name).await;
        }
        feira
    }

    pub fn url(&self, service: &str, path: &str) -> String {
        format!("{}{path}", self.urls[service])
    }

    async fn wait_ready(&self, service: &str) {
        let url = self.url(service, "/health/ready");
        platform::testing::eventually(30, &format!("{service} ready"), || {
            let url = url.clone();
            async move {
                let r = reqwest::get(&url).await.ok()?;
                r.status().is_success().then_some(())
            }
        })
        .await;
    }

    /// SIGKILL: no shutdown hook runs, unacked messages go back to the queue.
    pub async fn kill9(&mut self) {
        self.child.start_kill().expect("kill");
        let _ = self.child.wait().await;
    }

    /// SIGTERM, then the exit status.
    pub async fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().expect("still running");
        let ok = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("run kill");
        assert!(ok.success());
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("feira stops within 30 s of SIGTERM")
            .expect("wait for feira")
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Feira {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// `feira` with the test's variables (and no others of ours).
pub fn command(env: &TestEnv) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_feira"));
    for (k, _) in std::env::vars() {
        if k.starts_with("FEIRA_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(&env.vars).env("FEIRA_LOG_FORMAT", "json").env("RUST_LOG", "info");
    cmd
}

/// The invoices of an order, as an admin sees them.
pub async fn invoices_of(client: &reqwest::Client, invoices_url: &str, order: Uuid) -> Vec<Value> {
    let res = client
        .get(format!("{invoices_url}/invoices?order_id={order}"))
        .header("x-feira-user-id", Uuid::now_v7().to_string())
        .header("x-feira-roles", ADMIN)
        .send()
        .await
        .expect("GET /invoices");
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.expect("json");
    page["items"].as_array().cloned().unwrap_or_default()
}

/// (invoices, distinct orders invoiced, min number, max number) in a database.
pub async fn invoice_stats(db: &sqlx::PgPool) -> (i64, i64, i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(DISTINCT order_id), coalesce(min(number), 0), coalesce(max(number), 0) FROM invoices",
    )
    .fetch_one(db)
    .await
    .expect("invoice stats")
}

/// `OrderConfirmedV1` for a new order of `customer`, as the orders service
/// publishes it when its saga ends (2 × 19.90 plus 5.00 freight).
pub fn order_confirmed(customer: Uuid) -> Envelope<OrderConfirmedV1> {
    let example = OrderConfirmedV1::example();
    let shipping = example.shipping.clone().map(|s| ShippingV1 { quote_id: Uuid::now_v7(), freight_cents: 500, ..s });
    Envelope::new(OrderConfirmedV1 {
        order_id: Uuid::now_v7(),
        customer_id: customer,
        total_cents: 2 * 1990 + 500,
        payment_id: Uuid::now_v7(),
        shipping,
        confirmed_at: time::OffsetDateTime::now_utc(),
        ..example
    })
}
