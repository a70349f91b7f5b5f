//! End-to-end tests: whole flows across services, with the real `feira`
//! binary, PostgreSQL and RabbitMQ. Each test has its own databases and
//! broker namespace (`platform::testing::TestEnv`).
//!
//! They live in the `feira` package (not a separate `tests/e2e` crate)
//! because they drive its binary, which Cargo only exposes to the tests of
//! the package that builds it (`CARGO_BIN_EXE_feira`).

mod checkout;
mod helpers;
mod shop;

use std::time::Duration;

use fault_proxy::FaultProxy;
use futures_util::StreamExt as _;
use helpers::{Feira, command, invoice_stats, invoices_of, place_order};
use opentelemetry_sdk::trace::InMemorySpanExporter;
use platform::messaging::dlq;
use platform::testing::{TestEnv, eventually};
use serde_json::Value;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feira_up_serves_both_services_and_an_order_gets_exactly_one_invoice() {
    let env = all_targets();
    let mut feira = Feira::start(&env, &["up"], &["orders", "invoices"]).await;
    let client = reqwest::Client::new();

    let customer = Uuid::now_v7();
    let order = place_order(&client, &feira.url("orders", ""), customer).await;
    let invoices_url = feira.url("invoices", "");
    let invoices = eventually(30, "the order's invoice", || async {
        let v = invoices_of(&client, &invoices_url, order).await;
        (!v.is_empty()).then_some(v)
    })
    .await;
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0]["total_cents"], 2 * 1990 + 500);
    assert_eq!(invoices[0]["customer_id"], customer.to_string());
    let db = env.db(&invoices::SPEC).await.expect("invoices db");
    assert_eq!(invoice_stats(&db).await, (1, 1, 1, 1));

    for service in ["orders", "invoices"] {
        let spec: Value =
            client.get(feira.url(service, "/openapi.json")).send().await.expect("openapi").json().await.expect("json");
        assert!(spec["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{service}: {}", spec["openapi"]);
        assert!(spec["paths"].as_object().is_some_and(|p| !p.is_empty()));
        assert_docs_are_self_hosted(&client, &feira.url(service, "/docs/")).await;
    }

    let status = feira.terminate().await;
    assert!(status.success(), "feira exits 0 on SIGTERM, got {status:?}");
    assert!(feira.logs().contains("feira stopped"));
}

/// A test environment with every target of `feira up`, each with its own
/// database, port 0 and a private object store folder.
fn all_targets() -> TestEnv {
    let mut env = TestEnv::new(feira::targets::TARGETS);
    let store = std::env::temp_dir().join(format!("feira-e2e-store-{}", env.namespace));
    env.set("FEIRA_CATALOG_PUBLISHER_STORE", format!("file://{}", store.display()));
    env
}

/// Swagger UI loads, and every asset it references is served by the service.
async fn assert_docs_are_self_hosted(client: &reqwest::Client, docs: &str) {
    let res = client.get(docs).send().await.expect("GET /docs/");
    assert_eq!(res.status(), 200);
    let html = res.text().await.expect("html");
    assert!(html.contains("swagger"), "{html}");
    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            if let Some(end) = part.find('"') {
                assets.push(part[..end].to_string());
            }
        }
    }
    assert!(assets.iter().any(|a| a.ends_with("swagger-ui-bundle.js")), "{assets:?}");
    for asset in &assets {
        assert!(!asset.contains("//"), "asset {asset} is not served by the service");
        let url = format!("{docs}{}", asset.trim_start_matches("./"));
        let res = client.get(&url).send().await.expect("GET asset");
        assert_eq!(res.status(), 200, "{url}");
    }
    let init = client
        .get(format!("{docs}swagger-initializer.js"))
        .send()
        .await
        .expect("initializer")
        .text()
        .await
        .expect("text");
    assert!(init.contains("/openapi.json"), "{init}");
}

/// The value of one series in a Prometheus text exposition.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// `amqp://user:pass@host:port/vhost` with `host:port` replaced.
fn amqp_via(url: &str, addr: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (auth, after) = match rest.rsplit_once('@') {
        Some((a, r)) => (format!("{a}@"), r),
        None => (String::new(), rest),
    };
    let path = after.find('/').map(|i| &after[i..]).unwrap_or("/%2f");
    format!("{scheme}://{auth}{addr}{path}")
}

fn amqp_addr(url: &str) -> std::net::SocketAddr {
    let rest = url.split_once("://").expect("a URL").1;
    let hostport = rest.rsplit_once('@').map(|(_, r)| r).unwrap_or(rest);
    let hostport = hostport.split('/').next().expect("host");
    let hostport = if hostport.contains(':') { hostport.to_string() } else { format!("{hostport}:5672") };
    let hostport = hostport.replace("localhost", "127.0.0.1");
    hostport.parse().expect("host:port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_placed_while_the_broker_is_unreachable_all_get_their_invoice_once_it_is_back() {
    let mut env = all_targets();
    let direct = env.config().amqp_url;
    let proxy = FaultProxy::start(amqp_addr(&direct)).await.expect("proxy");
    env.set("FEIRA_AMQP_URL", amqp_via(&direct, proxy.addr()));
    let orders = env.spawn(&orders::SPEC).await.expect("orders");
    env.set("FEIRA_AMQP_URL", direct);
    let invoices = env.spawn(&invoices::SPEC).await.expect("invoices");
    let orders_db = env.db(&orders::SPEC).await.expect("orders db");
    let invoices_db = env.db(&invoices::SPEC).await.expect("invoices db");
    let client = reqwest::Client::new();

    let first = place_order(&client, &orders.url(""), Uuid::now_v7()).await;
    eventually(30, "the first invoice", || async {
        (!invoices_of(&client, &invoices.url(""), first).await.is_empty()).then_some(())
    })
    .await;

    proxy.refuse();
    for _ in 0..20 {
        place_order(&client, &orders.url(""), Uuid::now_v7()).await;
    }
    let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(&orders_db)
        .await
        .expect("count");
    assert_eq!(unsent, 20, "with the broker unreachable the 20 events wait in the outbox");
    let ready: Value = client.get(orders.url("/health/ready")).send().await.expect("ready").json().await.expect("json");
    assert_eq!(ready["status"], "ready", "orders stays ready: the outbox absorbs the outage");
    assert_eq!(ready["checks"]["broker"], "unreachable");
    let metrics_url = orders.url("/metrics");
    eventually(10, "the outbox backlog in /metrics", || async {
        let text = client.get(&metrics_url).send().await.ok()?.text().await.ok()?;
        let age = metric(&text, "outbox_oldest_unsent_age_seconds{service=\"orders\"}")?;
        let rows = metric(&text, "outbox_unsent_rows{service=\"orders\"}")?;
        (age > 0.0 && rows >= 20.0).then_some(())
    })
    .await;

    proxy.restore();
    let stats = eventually(60, "21 invoices", || async {
        let s = invoice_stats(&invoices_db).await;
        (s.0 >= 21).then_some(s)
    })
    .await;
    assert_eq!(stats, (21, 21, 1, 21));
    orders.stop().await.expect("orders stops");
    invoices.stop().await.expect("invoices stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_invoices_process_in_the_middle_of_1000_orders_loses_and_duplicates_no_invoice() {
    const ORDERS: usize = 1000;
    let env = all_targets();
    let orders = env.spawn(&orders::SPEC).await.expect("orders");
    let mut first = Feira::start(&env, &["run", "invoices"], &["invoices"]).await;
    let db = env.db(&invoices::SPEC).await.expect("invoices db");
    let client = reqwest::Client::new();

    let url = orders.url("");
    let placing = tokio::spawn({
        let client = client.clone();
        async move {
            futures_util::stream::iter(0..ORDERS)
                .map(|_| place_order(&client, &url, Uuid::now_v7()))
                .buffer_unordered(16)
                .collect::<Vec<_>>()
                .await
        }
    });
    eventually(120, "the first 100 invoices", || async { (invoice_stats(&db).await.0 >= 100).then_some(()) }).await;
    first.kill9().await;
    let killed_at = invoice_stats(&db).await.0;

    let _second = Feira::start(&env, &["run", "invoices"], &["invoices"]).await;
    let placed = placing.await.expect("placing orders");
    assert_eq!(placed.len(), ORDERS);
    let stats = eventually(180, "1000 invoices", || async {
        let s = invoice_stats(&db).await;
        (s.0 >= ORDERS as i64).then_some(s)
    })
    .await;
    assert!(killed_at < ORDERS as i64, "the kill happened mid-stream ({killed_at} invoiced)");
    assert_eq!(stats, (ORDERS as i64, ORDERS as i64, 1, ORDERS as i64), "one invoice per order, numbers 1..=1000");
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox").fetch_one(&db).await.expect("inbox");
    assert_eq!(inbox, ORDERS as i64);
    orders.stop().await.expect("orders stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_runs_from_post_orders_through_the_relay_into_the_invoices_consumer() {
    let exporter = InMemorySpanExporter::default();
    let _telemetry = platform::telemetry::init_with_exporter("e2e", exporter.clone()).expect("telemetry");
    let env = all_targets();
    let orders = env.spawn(&orders::SPEC).await.expect("orders");
    let invoices = env.spawn(&invoices::SPEC).await.expect("invoices");
    let client = reqwest::Client::new();

    let order = place_order(&client, &orders.url(""), Uuid::now_v7()).await;
    eventually(30, "the invoice", || async {
        (!invoices_of(&client, &invoices.url(""), order).await.is_empty()).then_some(())
    })
    .await;

    let (http, publish, consume) = eventually(10, "the three spans", || async {
        let spans = exporter.get_finished_spans().ok()?;
        let http = spans.iter().find(|s| s.name == "POST /orders")?.clone();
        let trace = http.span_context.trace_id();
        let in_trace =
            |name: &str| spans.iter().find(|s| s.name == name && s.span_context.trace_id() == trace).cloned();
        Some((http.clone(), in_trace("orders.order_placed.v1 publish")?, in_trace("invoices.order_placed process")?))
    })
    .await;
    let trace = http.span_context.trace_id();
    assert_eq!(publish.span_context.trace_id(), trace);
    assert_eq!(consume.span_context.trace_id(), trace);
    assert_eq!(consume.parent_span_id, publish.span_context.span_id(), "the consumer continues the publish span");
    orders.stop().await.expect("orders stops");
    invoices.stop().await.expect("invoices stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_failing_is_parked_and_feira_dlq_replay_processes_it_exactly_once() {
    let env = all_targets();
    let orders = env.spawn(&orders::SPEC).await.expect("orders");
    let invoices = env.spawn(&invoices::SPEC).await.expect("invoices");
    let db = env.db(&invoices::SPEC).await.expect("invoices db");
    let client = reqwest::Client::new();

    // The cause: the invoices database refuses this customer's invoices.
    let unlucky = Uuid::now_v7();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.customer_id = '{unlucky}' THEN RAISE EXCEPTION 'simulated fault for %', NEW.order_id; END IF;
           RETURN NEW;
         END $$"
    )))
    .execute(&db)
    .await
    .expect("create function");
    sqlx::query("CREATE TRIGGER refuse BEFORE INSERT ON invoices FOR EACH ROW EXECUTE FUNCTION refuse()")
        .execute(&db)
        .await
        .expect("create trigger");

    let poison = place_order(&client, &orders.url(""), unlucky).await;
    let mut good = Vec::new();
    for _ in 0..3 {
        good.push(place_order(&client, &orders.url(""), Uuid::now_v7()).await);
    }
    for order in &good {
        eventually(30, "the orders behind it", || async {
            (!invoices_of(&client, &invoices.url(""), *order).await.is_empty()).then_some(())
        })
        .await;
    }
    let broker = env.broker();
    let parked = eventually(30, "the failing message in the DLQ", || async {
        let items = dlq::list(&broker, invoices::SPEC.consumers, 10).await.ok()?;
        items.into_iter().next()
    })
    .await;
    assert_eq!(parked.attempts, 3, "first attempt + 2 retries (FEIRA_RETRY_DELAYS=200ms,400ms)");
    assert!(parked.error.contains("simulated fault"), "{}", parked.error);
    assert_eq!(parked.message_type, "orders.order_placed");

    let listed = command(&env).args(["dlq", "list"]).output().await.expect("feira dlq list");
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert!(table.contains(&parked.message_id) && table.contains("simulated fault"), "{table}");

    let shown = command(&env).args(["dlq", "show", &parked.message_id]).output().await.expect("feira dlq show");
    let shown: Value = serde_json::from_slice(&shown.stdout).expect("dlq show prints JSON");
    assert_eq!(shown["attempts"], 3);
    assert_eq!(shown["body"]["payload"]["order_id"], poison.to_string());
    let refused = command(&env).args(["dlq", "purge"]).output().await.expect("feira dlq purge");
    assert!(!refused.status.success(), "purge without --yes is refused");

    // The fix, then the replay.
    sqlx::query("DROP TRIGGER refuse ON invoices").execute(&db).await.expect("drop trigger");
    let replayed = command(&env).args(["dlq", "replay", &parked.message_id]).output().await.expect("feira dlq replay");
    assert!(replayed.status.success(), "{}", String::from_utf8_lossy(&replayed.stderr));
    assert!(String::from_utf8_lossy(&replayed.stdout).contains(&parked.message_id));

    let invoices_url = invoices.url("");
    eventually(30, "the replayed order's invoice", || async {
        (!invoices_of(&client, &invoices_url, poison).await.is_empty()).then_some(())
    })
    .await;
    let again = command(&env).args(["dlq", "replay", &parked.message_id]).output().await.expect("replay again");
    assert!(!again.status.success(), "nothing is left to replay");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(invoice_stats(&db).await, (4, 4, 1, 4));
    assert_eq!(invoices_of(&client, &invoices_url, poison).await.len(), 1);
    let empty = command(&env).args(["dlq", "list"]).output().await.expect("feira dlq list");
    assert!(String::from_utf8_lossy(&empty.stdout).contains("no dead-lettered messages"));
    orders.stop().await.expect("orders stops");
    invoices.stop().await.expect("invoices stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_or_unknown_variable_stops_start_up_and_names_the_variable() {
    let env = TestEnv::new(&[]);
    for (name, value) in [("FEIRA_ORDERS_PORT", "eighty"), ("FEIRA_RETRY_DELAYS", "soon"), ("FEIRA_ORDRES_PORT", "1")] {
        let out = command(&env).env(name, value).arg("up").output().await.expect("feira up");
        assert!(!out.status.success(), "{name}={value} must stop start-up");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
}

/// A stand-in OpenTelemetry collector: answers 200 to every HTTP request and
/// keeps `(path, body)` of each.
async fn fake_collector() -> (std::net::SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = seen.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let keep = keep.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(socket);
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_string();
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line.trim().is_empty() {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    keep.lock().expect("lock").push((path, body));
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if reader.get_mut().write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_otlp_endpoint_the_whole_flow_is_exported_as_traces_and_flushed_on_shutdown() {
    let (collector, seen) = fake_collector().await;
    let mut env = all_targets();
    // The child gets the test's variables: this one turns OTLP export on.
    env.vars.insert("OTEL_EXPORTER_OTLP_ENDPOINT".into(), format!("http://{collector}"));
    let mut feira = Feira::start(&env, &["up"], &["orders", "invoices"]).await;
    let client = reqwest::Client::new();
    let order = place_order(&client, &feira.url("orders", ""), Uuid::now_v7()).await;
    let invoices_url = feira.url("invoices", "");
    eventually(30, "the invoice", || async {
        (!invoices_of(&client, &invoices_url, order).await.is_empty()).then_some(())
    })
    .await;
    assert!(feira.terminate().await.success());

    let exported = seen.lock().expect("lock").clone();
    assert!(
        exported.iter().all(|(path, _)| path == "/v1/traces"),
        "{:?}",
        exported.iter().map(|e| &e.0).collect::<Vec<_>>()
    );
    let bodies: Vec<u8> = exported.into_iter().flat_map(|(_, b)| b).collect();
    let contains = |needle: &str| bodies.windows(needle.len()).any(|w| w == needle.as_bytes());
    for span in ["POST /orders", "orders.order_placed.v1 publish", "invoices.order_placed process"] {
        assert!(contains(span), "span {span:?} was exported");
    }
    assert!(contains(&order.to_string()), "span attributes carry the order id");
}
