//! End-to-end tests: whole flows across services, with the real `feira`
//! binary, PostgreSQL, RabbitMQ and Redis. Each test has its own databases,
//! broker namespace and Redis prefix (`platform::testing::TestEnv`).
//!
//! They live in the `feira` package (not a separate `tests/e2e` crate)
//! because they drive its binary, which Cargo only exposes to the tests of
//! the package that builds it (`CARGO_BIN_EXE_feira`).
//!
//! An order is confirmed by the saga (cart → orders → catalog reserves the
//! stock → payments charges psp-sim → orders confirms), and invoices issues
//! one invoice per `OrderConfirmedV1`. Tests about the whole flow go through
//! the cart ([`shop::Shop`]); tests about the invoices consumer alone play
//! the orders service and publish `OrderConfirmedV1` themselves.

mod checkout;
mod edge;
mod helpers;
mod shop;

use std::sync::Arc;
use std::time::Duration;

use fault_proxy::FaultProxy;
use helpers::{Feira, command, invoice_stats, invoices_of, order_confirmed};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use platform::messaging::dlq;
use platform::service::ServiceSpec;
use platform::testing::{RawMessage, RunningService, TestEnv, eventually, publish, publish_all};
use serde_json::Value;
use shop::{Shop, WAIT, shop_env};
use uuid::Uuid;

/// The name of every target of `feira up`.
fn target_names() -> Vec<&'static str> {
    feira::targets::TARGETS.iter().map(|t| t.name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feira_up_serves_every_target_and_a_checkout_gets_exactly_one_invoice() {
    let shop = Shop::attach(shop_env(|_| {}));
    let names = target_names();
    let mut feira = Feira::start(&shop.env, &["up"], &names).await;
    for name in &names {
        assert_eq!(feira.url(name, ""), shop.url(name, ""), "{name} listens where the other services look for it");
    }

    let mug = shop.product(1990, 10).await;
    let ana = Uuid::now_v7();
    let (order, freight) = shop.buy_confirmed(ana, &mug, 2).await;
    let invoices = shop.invoiced(order).await;
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0]["total_cents"], 2 * 1990 + freight, "items plus freight");
    assert_eq!(invoices[0]["customer_id"], ana.to_string());
    let db = shop.env.db(&invoices::SPEC).await.expect("invoices db");
    assert_eq!(invoice_stats(&db).await, (1, 1, 1, 1), "one invoice, number 1");

    let client = &shop.client;
    for service in &names {
        let spec: Value =
            client.get(feira.url(service, "/openapi.json")).send().await.expect("openapi").json().await.expect("json");
        assert!(spec["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{service}: {}", spec["openapi"]);
        assert!(spec["paths"].as_object().is_some_and(|p| !p.is_empty()), "{service} documents its API");
        assert_docs_are_self_hosted(client, &feira.url(service, "/docs/")).await;
    }
    let merged = client.get(feira.url("gateway", "/gateway/openapi.json")).send().await.expect("merged openapi");
    assert_eq!(merged.status(), 200);
    let merged: Value = merged.json().await.expect("the gateway's merged document is JSON");
    assert!(merged["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", merged["openapi"]);
    assert!(merged["paths"].as_object().is_some_and(|p| p.keys().any(|k| k.contains("/orders"))), "{merged}");

    let status = feira.terminate().await;
    assert!(status.success(), "feira exits 0 on SIGTERM, got {status:?}");
    assert!(feira.logs().contains("feira stopped"));
    shop.stop().await;
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

/// Starts `spec` in this process as [`TestEnv::spawn`] does, but speaking
/// AMQP to `amqp_url` (e.g. through a [`FaultProxy`]).
async fn spawn_via(env: &TestEnv, spec: &ServiceSpec, amqp_url: String) -> RunningService {
    let mut config = env.config();
    config.amqp_url = amqp_url;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let svc = platform::service::start(spec, Arc::new(config), shutdown.clone())
        .await
        .unwrap_or_else(|e| panic!("{} starts: {e:#}", spec.name));
    let addr = svc.local_addr();
    let running = RunningService { addr, shutdown, handle: tokio::spawn((spec.run)(svc)) };
    let ready = running.url("/health/ready");
    eventually(30, &format!("{} ready", spec.name), || async {
        reqwest::get(&ready).await.ok()?.status().is_success().then_some(())
    })
    .await;
    running
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_placed_while_the_broker_is_unreachable_all_get_their_invoice_once_it_is_back() {
    const DURING: usize = 20;
    let direct = TestEnv::new(&[]).config().amqp_url;
    let proxy = FaultProxy::start(amqp_addr(&direct)).await.expect("proxy");
    // The outage is about the outbox, not the saga's deadlines: orders must
    // not time out while the broker is away on a loaded machine.
    let shop = Shop::start_with(
        |env| {
            env.set("FEIRA_ORDERS_RESERVE_TIMEOUT", "5m");
        },
        &["orders"],
    )
    .await;
    let orders = spawn_via(&shop.env, &orders::SPEC, amqp_via(&direct, proxy.addr())).await;
    let orders_db = shop.env.db(&orders::SPEC).await.expect("orders db");
    let invoices_db = shop.env.db(&invoices::SPEC).await.expect("invoices db");
    let client = &shop.client;
    let mug = shop.product(1000, 100).await;
    let unsent = || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&orders_db)
            .await
            .expect("count");
        n
    };

    let (first, _) = shop.buy_confirmed(Uuid::now_v7(), &mug, 1).await;
    shop.invoiced(first).await;
    eventually(WAIT, "orders' outbox to be empty", || async { (unsent().await == 0).then_some(()) }).await;

    proxy.refuse();
    let mut placed = Vec::new();
    for _ in 0..DURING {
        placed.push(shop.buy(Uuid::now_v7(), &mug, 1, "tok_visa").await);
    }
    assert_eq!(
        unsent().await,
        2 * DURING as i64,
        "with the broker unreachable each order's OrderPlacedV1 and ReserveStockV1 wait in the outbox"
    );
    for id in &placed {
        assert_eq!(shop.order(*id).await["status"], "PENDING");
    }
    let ready: Value = client.get(orders.url("/health/ready")).send().await.expect("ready").json().await.expect("json");
    assert_eq!(ready["status"], "ready", "orders stays ready: the outbox absorbs the outage");
    assert_eq!(ready["checks"]["broker"], "unreachable");
    eventually(10, "the outbox backlog in /metrics", || async {
        let age = shop.metric("orders", "outbox_oldest_unsent_age_seconds{service=\"orders\"}").await?;
        let rows = shop.metric("orders", "outbox_unsent_rows{service=\"orders\"}").await?;
        (age > 0.0 && rows >= 2.0 * DURING as f64).then_some(())
    })
    .await;

    proxy.restore();
    for id in &placed {
        let order = shop.settled(*id).await;
        assert_eq!(order["status"], "CONFIRMED", "{order}");
    }
    let stats = eventually(WAIT, "21 invoices", || async {
        let s = invoice_stats(&invoices_db).await;
        (s.0 > DURING as i64).then_some(s)
    })
    .await;
    assert_eq!(stats, (21, 21, 1, 21), "one invoice per order, numbers 1..=21");
    for id in &placed {
        assert_eq!(shop.invoices(*id).await.len(), 1);
    }
    orders.stop().await.expect("orders stops");
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_invoices_process_in_the_middle_of_1000_orders_loses_and_duplicates_no_invoice() {
    const ORDERS: usize = 1000;
    let env = TestEnv::new(&[invoices::SPEC]);
    let mut first = Feira::start(&env, &["run", "invoices"], &["invoices"]).await;
    let db = env.db(&invoices::SPEC).await.expect("invoices db");

    // This test plays the orders service: 1000 orders confirmed, in batches.
    let messages: Vec<RawMessage> = (0..ORDERS).map(|_| RawMessage::of(&order_confirmed(Uuid::now_v7()))).collect();
    let broker = env.broker();
    let publishing = tokio::spawn(async move {
        for batch in messages.chunks(100) {
            publish_all(&broker, batch).await;
        }
        broker.close().await;
    });
    eventually(120, "the first 100 invoices", || async { (invoice_stats(&db).await.0 >= 100).then_some(()) }).await;
    first.kill9().await;
    let killed_at = invoice_stats(&db).await.0;

    let mut second = Feira::start(&env, &["run", "invoices"], &["invoices"]).await;
    publishing.await.expect("publishing the orders");
    let stats = eventually(180, "1000 invoices", || async {
        let s = invoice_stats(&db).await;
        (s.0 >= ORDERS as i64).then_some(s)
    })
    .await;
    assert!(killed_at < ORDERS as i64, "the kill happened mid-stream ({killed_at} invoiced)");
    assert_eq!(stats, (ORDERS as i64, ORDERS as i64, 1, ORDERS as i64), "one invoice per order, numbers 1..=1000");
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox").fetch_one(&db).await.expect("inbox");
    assert_eq!(inbox, ORDERS as i64);
    assert!(second.terminate().await.success());
}

fn trace_id(span: &SpanData) -> String {
    span.span_context.trace_id().to_string()
}

fn span_id(span: &SpanData) -> String {
    span.span_context.span_id().to_string()
}

/// `span` and its ancestors, nearest first, following the parent ids
/// through `spans` (the walk ends at a root, or at a parent never exported).
fn lineage<'a>(spans: &'a [SpanData], span: &'a SpanData) -> Vec<&'a SpanData> {
    let mut line = vec![span];
    let mut current = span;
    while let Some(parent) =
        spans.iter().find(|s| trace_id(s) == trace_id(current) && span_id(s) == current.parent_span_id.to_string())
    {
        line.push(parent);
        current = parent;
    }
    line
}

/// `name (span id ← parent id)` of each span, one per line.
fn describe<'a>(spans: impl IntoIterator<Item = &'a SpanData>) -> String {
    spans
        .into_iter()
        .map(|s| format!("  {} ({} ← {})", s.name, span_id(s), s.parent_span_id))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `expected` (nearest first) are, in this order, among `line`'s names.
#[track_caller]
fn assert_descends(line: &[&SpanData], expected: &[&str]) {
    let mut names = line.iter().map(|s| s.name.as_ref());
    for want in expected {
        assert!(
            names.any(|n| n == *want),
            "{want:?} is not an ancestor (in order) of {:?}; its lineage:\n{}",
            line[0].name,
            describe(line.iter().copied())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_runs_from_post_orders_through_the_relay_into_the_invoices_consumer() {
    let exporter = InMemorySpanExporter::default();
    let _telemetry = platform::telemetry::init_with_exporter("e2e", exporter.clone()).expect("telemetry");
    let shop = Shop::start().await;
    let mug = shop.product(1990, 10).await;

    let (order, _) = shop.buy_confirmed(Uuid::now_v7(), &mug, 1).await;
    shop.invoiced(order).await;

    let spans = eventually(10, "the invoices consumer's span", || async {
        let spans = exporter.get_finished_spans().ok()?;
        spans.iter().any(|s| s.name == "invoices.order_confirmed process").then_some(spans)
    })
    .await;
    let one = |name: &str| -> &SpanData {
        let mut found = spans.iter().filter(|s| s.name == name);
        let span = found.next().unwrap_or_else(|| panic!("no span {name:?}"));
        assert!(found.next().is_none(), "one {name:?} span for one order");
        span
    };

    // The checkout's trace: cart → orders over HTTP, the relay's publish,
    // catalog's reservation, orders' saga, the charge command into payments.
    let checkout = one("POST /cart/checkout");
    assert_eq!(checkout.parent_span_id.to_string(), "0000000000000000", "the checkout starts the trace");
    let charge = lineage(&spans, one("payments.charge_payment process"));
    assert_descends(
        &charge,
        &[
            "payments.charge_payment process",
            "payments.charge_payment.v1 publish",
            "orders.saga process",
            "catalog.stock_reserved.v1 publish",
            "catalog.reserve_stock process",
            "catalog.reserve_stock.v1 publish",
            "POST /orders",
            "POST /cart/checkout",
        ],
    );
    assert_descends(&lineage(&spans, one("orders.order_placed.v1 publish")), &["POST /orders", "POST /cart/checkout"]);

    // The invoice's trace: the payment's outcome → orders' saga → invoices.
    let invoice = lineage(&spans, one("invoices.order_confirmed process"));
    assert_descends(
        &invoice,
        &[
            "invoices.order_confirmed process",
            "orders.order_confirmed.v1 publish",
            "orders.saga process",
            "payments.payment_succeeded.v1 publish",
        ],
    );
    // payments' worker continues the charge command's trace (the payment
    // row keeps its traceparent), so the invoice descends from the checkout.
    assert_descends(
        &invoice,
        &["payments.payment_succeeded.v1 publish", "payment work", "payments.charge_payment process"],
    );
    let root = invoice.last().expect("a lineage holds its span");
    assert_eq!(
        root.name,
        "POST /cart/checkout",
        "one trace from checkout to invoice:\n{}",
        describe(invoice.iter().copied())
    );
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_failing_is_parked_and_feira_dlq_replay_processes_it_exactly_once() {
    let env = TestEnv::new(&[invoices::SPEC]);
    let invoices = env.spawn(&invoices::SPEC).await.expect("invoices");
    let db = env.db(&invoices::SPEC).await.expect("invoices db");
    let broker = env.broker();
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

    // This test plays the orders service: four orders are confirmed.
    let poison = order_confirmed(unlucky);
    publish(&broker, &poison).await;
    let poison = poison.payload.order_id;
    let mut good = Vec::new();
    for _ in 0..3 {
        let confirmed = order_confirmed(Uuid::now_v7());
        publish(&broker, &confirmed).await;
        good.push(confirmed.payload.order_id);
    }
    for order in &good {
        eventually(30, "the orders behind it", || async {
            (!invoices_of(&client, &invoices.url(""), *order).await.is_empty()).then_some(())
        })
        .await;
    }
    let parked = eventually(30, "the failing message in the DLQ", || async {
        let items = dlq::list(&broker, invoices::SPEC.consumers, 10).await.ok()?;
        items.into_iter().next()
    })
    .await;
    assert_eq!(parked.attempts, 3, "first attempt + 2 retries (FEIRA_RETRY_DELAYS=200ms,400ms)");
    assert!(parked.error.contains("simulated fault"), "{}", parked.error);
    assert_eq!(parked.message_type, "orders.order_confirmed");
    assert!(parked.queue.contains("invoices.order_confirmed"), "{}", parked.queue);

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
    broker.close().await;
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
    // The child gets the test's variables: this one turns OTLP export on.
    let shop = Shop::attach(shop_env(|env| {
        env.vars.insert("OTEL_EXPORTER_OTLP_ENDPOINT".into(), format!("http://{collector}"));
    }));
    let mut feira = Feira::start(&shop.env, &["up"], &target_names()).await;
    let mug = shop.product(1990, 10).await;
    let (order, _) = shop.buy_confirmed(Uuid::now_v7(), &mug, 1).await;
    shop.invoiced(order).await;
    assert!(feira.terminate().await.success());

    let exported = seen.lock().expect("lock").clone();
    assert!(
        exported.iter().all(|(path, _)| path == "/v1/traces"),
        "{:?}",
        exported.iter().map(|e| &e.0).collect::<Vec<_>>()
    );
    let bodies: Vec<u8> = exported.into_iter().flat_map(|(_, b)| b).collect();
    let contains = |needle: &str| bodies.windows(needle.len()).any(|w| w == needle.as_bytes());
    for span in [
        "POST /cart/checkout",
        "POST /orders",
        "catalog.reserve_stock process",
        "payments.charge_payment process",
        "orders.order_confirmed.v1 publish",
        "invoices.order_confirmed process",
    ] {
        assert!(contains(span), "span {span:?} was exported");
    }
    assert!(contains(&order.to_string()), "span attributes carry the order id");
    shop.stop().await;
}
