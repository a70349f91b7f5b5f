//! The orders API, end to end: the real service on a private database and a
//! private RabbitMQ namespace per test (see `helpers::spawn_app`).

#![allow(clippy::unwrap_used)]

mod helpers;
mod saga;

use std::collections::HashSet;

use helpers::{Answer, Caller, TestApp, order_with, spawn_app, valid_order};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

fn order_id(order: &Value) -> Uuid {
    order["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("the order has a UUID id: {order}"))
}

/// The order without its `created_at`, and its `created_at`.
fn split_created_at(order: &Value) -> (Value, OffsetDateTime) {
    let mut order = order.clone();
    let created_at = order
        .as_object_mut()
        .and_then(|o| o.remove("created_at"))
        .and_then(|v| OffsetDateTime::parse(v.as_str()?, &Rfc3339).ok())
        .unwrap_or_else(|| panic!("the order has an RFC 3339 created_at: {order}"));
    (order, created_at)
}

fn ids_of(page: &Value) -> Vec<Uuid> {
    page["items"].as_array().unwrap_or_else(|| panic!("a page has items: {page}")).iter().map(order_id).collect()
}

// ---------------------------------------------------------------------------
// Placing an order
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placing_a_valid_order_creates_a_pending_order_with_its_total() {
    let app = spawn_app().await;
    let alice = Caller::customer();

    let answer = app.place_order(&alice, &valid_order(alice.id())).await;

    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    assert!(answer.content_type().starts_with("application/json"), "{answer:?}");
    let order = &answer.json;
    let id = order_id(order);
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["total_cents"], 3980);
    assert_eq!(order["currency"], "BRL");
    assert_eq!(order["customer_id"], json!(alice.id()));
    assert_eq!(
        order["items"],
        json!([{
            "product_id": order["items"][0]["product_id"],
            "sku": "ABC-1", "quantity": 2, "unit_price_cents": 1990, "line_total_cents": 3980
        }])
    );
    let created_at = order["created_at"].as_str().expect("created_at is a string");
    OffsetDateTime::parse(created_at, &Rfc3339).expect("created_at is RFC 3339");
    assert_eq!(answer.location(), Some(format!("/orders/{id}").as_str()));
    assert_eq!(app.count("orders").await, 1);
    assert_eq!(app.count("order_lines").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placed_order_can_be_read_back_at_its_location() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let placed = app.place_order(&alice, &valid_order(alice.id())).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{placed:?}");

    let location = placed.location().expect("a Location header");
    let read = app.get(location, &alice).await;

    assert_eq!(read.status, StatusCode::OK, "{read:?}");
    let (read_order, read_at) = split_created_at(&read.json);
    let (placed_order, placed_at) = split_created_at(&placed.json);
    assert_eq!(read_order, placed_order, "GET {location} returns the order that was placed");
    // To PostgreSQL's microsecond: the POST answers nanoseconds (a bug, see
    // `an_order_reads_back_exactly_as_it_was_placed`).
    assert!((read_at - placed_at).abs() < time::Duration::microseconds(1), "created_at {read_at} vs {placed_at}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_reads_back_exactly_as_it_was_placed() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let placed = app.place_order(&alice, &valid_order(alice.id())).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{placed:?}");

    let read = app.get(placed.location().unwrap(), &alice).await;

    assert_eq!(read.json, placed.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placing_an_order_announces_it_once_and_the_announcement_is_published() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let order = app.placed_order(&alice).await;
    let id = order_id(&order).to_string();

    let announcements: Vec<(String, Value)> = sqlx::query_as(
        "SELECT message_type, envelope FROM outbox
              WHERE envelope->'payload'->>'order_id' = $1 AND message_type = 'orders.order_placed'",
    )
    .bind(&id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(announcements.len(), 1, "exactly one event for the order");
    let (message_type, envelope) = &announcements[0];
    assert_eq!(message_type, "orders.order_placed");
    assert_eq!(envelope["payload"]["customer_id"], json!(alice.id()));
    assert_eq!(envelope["payload"]["total_cents"], 3980);
    let others: Vec<String> =
        sqlx::query_scalar("SELECT message_type FROM outbox WHERE message_type <> 'orders.order_placed'")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(others, ["catalog.reserve_stock"], "and the saga's first command, nothing else");

    // RabbitMQ is real: the relay publishes it and marks it sent.
    platform::testing::eventually(15, "the order's event to be published", || async {
        let published: bool = sqlx::query_scalar(
            "SELECT published_at IS NOT NULL FROM outbox
              WHERE envelope->'payload'->>'order_id' = $1 AND message_type = 'orders.order_placed'",
        )
        .bind(&id)
        .fetch_one(&app.db)
        .await
        .unwrap();
        published.then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_may_place_an_order_for_a_customer() {
    let app = spawn_app().await;
    let customer = Uuid::new_v4();

    let answer = app.place_order(&Caller::admin(), &valid_order(customer)).await;

    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    assert_eq!(answer.json["customer_id"], json!(customer));
    let read = app.get(answer.location().unwrap(), &Caller::Customer(customer)).await;
    assert_eq!(read.status, StatusCode::OK, "the customer sees the order: {read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_total_is_the_sum_of_every_line() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let body = order_with(
        alice.id(),
        "EUR",
        json!([
            {"sku": "ABC-1", "quantity": 2, "unit_price_cents": 1990},
            {"sku": "book_2.pt", "quantity": 3, "unit_price_cents": 500},
            {"sku": "FREE", "quantity": 1, "unit_price_cents": 0}
        ]),
    );

    let answer = app.place_order(&alice, &body).await;

    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    assert_eq!(answer.json["total_cents"], 3980 + 1500);
    assert_eq!(answer.json["currency"], "EUR");
    let skus: Vec<&str> = answer.json["items"].as_array().unwrap().iter().map(|i| i["sku"].as_str().unwrap()).collect();
    assert_eq!(skus, ["ABC-1", "book_2.pt", "FREE"], "lines keep their order");
    let read = app.get(answer.location().unwrap(), &alice).await;
    assert_eq!(read.json["items"], answer.json["items"]);
}

// ---------------------------------------------------------------------------
// Idempotency-Key
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placing_an_order_twice_with_one_key_returns_the_first_order() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let body = valid_order(alice.id());

    let first = app.place_order_with_key(&alice, "checkout-1", &body).await;
    let second = app.place_order_with_key(&alice, "checkout-1", &body).await;

    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    assert_eq!(second.status, first.status);
    assert_eq!(second.text, first.text, "the same order, byte for byte");
    assert_eq!(second.location(), first.location());
    assert_eq!(first.header("idempotent-replayed"), None);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.count("orders").await, 1);
    assert_eq!(app.announced().await, 1, "announced once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_a_key_with_another_body_is_refused_and_places_nothing() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let first = app.place_order_with_key(&alice, "checkout-1", &valid_order(alice.id())).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    let mut other = valid_order(alice.id());
    other["items"][0]["quantity"] = json!(3);

    let second = app.place_order_with_key(&alice, "checkout-1", &other).await;

    second.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.count("orders").await, 1);
    assert_eq!(app.announced().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_key_place_one_order() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let body = valid_order(alice.id());
    let request = || app.request(Method::POST, "/orders", &alice).header("idempotency-key", "double-click").json(&body);

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let req = request();
        tasks.spawn(async move { Answer::of(req.send().await).await });
    }
    let answers = tasks.join_all().await;

    let mut ids = HashSet::new();
    for answer in &answers {
        match answer.status {
            StatusCode::CREATED => {
                ids.insert(order_id(&answer.json));
            }
            StatusCode::CONFLICT => answer.assert_problem(StatusCode::CONFLICT),
            _ => panic!("expected 201 or 409: {answer:?}"),
        }
    }
    assert_eq!(ids.len(), 1, "every 201 is the same order: {ids:?}");
    let originals =
        answers.iter().filter(|a| a.status == StatusCode::CREATED && a.header("idempotent-replayed").is_none());
    assert_eq!(originals.count(), 1, "one request placed it, the others were told so");
    assert_eq!(app.count("orders").await, 1, "exactly one order");
    assert_eq!(app.announced().await, 1, "announced once");
    // Once the first request finished, a retry replays it.
    let retry = Answer::of(request().send().await).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{retry:?}");
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert!(ids.contains(&order_id(&retry.json)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_used_by_two_customers_places_two_orders() {
    let app = spawn_app().await;
    let (alice, bob) = (Caller::customer(), Caller::customer());

    let a = app.place_order_with_key(&alice, "cart", &valid_order(alice.id())).await;
    let b = app.place_order_with_key(&bob, "cart", &valid_order(bob.id())).await;

    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    assert_eq!(b.status, StatusCode::CREATED, "{b:?}");
    assert_eq!(b.header("idempotent-replayed"), None);
    assert_ne!(order_id(&a.json), order_id(&b.json));
    assert_eq!(b.json["customer_id"], json!(bob.id()));
    assert_eq!(app.count("orders").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_an_admin_used_for_a_customer_does_not_answer_the_customers_own_order() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let by_admin = app.place_order_with_key(&Caller::admin(), "cart", &valid_order(alice.id())).await;
    assert_eq!(by_admin.status, StatusCode::CREATED, "{by_admin:?}");
    let mut mine = valid_order(alice.id());
    mine["items"][0]["quantity"] = json!(7);

    let answer = app.place_order_with_key(&alice, "cart", &mine).await;

    match answer.status {
        StatusCode::CREATED => {
            assert_eq!(answer.json["items"][0]["quantity"], 7, "a 201 must be the order Alice asked for: {answer:?}")
        }
        _ => answer.assert_problem(StatusCode::UNPROCESSABLE_ENTITY),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_idempotency_key_is_refused() {
    let app = spawn_app().await;
    let alice = Caller::customer();

    let answer = app.place_order_with_key(&alice, " ", &valid_order(alice.id())).await;

    answer.assert_problem(StatusCode::BAD_REQUEST);
    app.assert_nothing_stored().await;
}

// ---------------------------------------------------------------------------
// Bad input: a problem, and nothing stored
// ---------------------------------------------------------------------------

/// Places `body` as `caller` and checks the answer is a `status` problem and
/// that nothing was stored.
async fn assert_refused(app: &TestApp, caller: &Caller, body: &Value, status: StatusCode) -> Answer {
    let answer = app.place_order(caller, body).await;
    answer.assert_problem(status);
    app.assert_nothing_stored().await;
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quantity_of_the_wrong_type_is_refused() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let mut body = valid_order(alice.id());
    body["items"][0]["quantity"] = json!("two");

    let answer = assert_refused(&app, &alice, &body, StatusCode::UNPROCESSABLE_ENTITY).await;

    let detail = answer.json["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("items[0].quantity"), "the detail names the field: {detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_without_a_currency_is_refused() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let mut body = valid_order(alice.id());
    body.as_object_mut().unwrap().remove("currency");

    let answer = assert_refused(&app, &alice, &body, StatusCode::UNPROCESSABLE_ENTITY).await;

    let detail = answer.json["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("currency"), "the detail names the field: {detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_without_items_is_refused() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let mut body = valid_order(alice.id());
    body.as_object_mut().unwrap().remove("items");

    let answer = assert_refused(&app, &alice, &body, StatusCode::UNPROCESSABLE_ENTITY).await;

    let detail = answer.json["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("items"), "the detail names the field: {detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_field_is_refused() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let mut body = valid_order(alice.id());
    body["discount_cents"] = json!(1000);

    let answer = assert_refused(&app, &alice, &body, StatusCode::UNPROCESSABLE_ENTITY).await;

    let detail = answer.json["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("discount_cents"), "the detail names the field: {detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_quantity_is_refused() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let mut body = valid_order(alice.id());
    body["items"][0]["quantity"] = json!(0);

    let answer = assert_refused(&app, &alice, &body, StatusCode::BAD_REQUEST).await;

    assert_eq!(answer.error_fields(), ["items[0].quantity"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negative_quantity_is_refused() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let mut body = valid_order(alice.id());
    body["items"]
        .as_array_mut()
        .unwrap()
        .push(json!({"product_id": Uuid::new_v4(), "sku": "X", "quantity": -1, "unit_price_cents": 1}));

    let answer = assert_refused(&app, &alice, &body, StatusCode::BAD_REQUEST).await;

    assert_eq!(answer.error_fields(), ["items[1].quantity"], "the second line is at fault");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quantity_above_ten_thousand_is_refused() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let mut body = valid_order(alice.id());
    body["items"][0]["quantity"] = json!(10_001);

    let answer = assert_refused(&app, &alice, &body, StatusCode::BAD_REQUEST).await;

    assert_eq!(answer.error_fields(), ["items[0].quantity"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negative_price_is_refused() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let mut body = valid_order(alice.id());
    body["items"][0]["unit_price_cents"] = json!(-1990);

    let answer = assert_refused(&app, &alice, &body, StatusCode::BAD_REQUEST).await;

    assert_eq!(answer.error_fields(), ["items[0].unit_price_cents"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_total_past_the_maximum_is_refused() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let mut body = valid_order(alice.id());
    body["items"][0]["quantity"] = json!(10_000);
    body["items"][0]["unit_price_cents"] = json!(10_000_000_000_000_i64);

    let answer = assert_refused(&app, &alice, &body, StatusCode::BAD_REQUEST).await;

    assert_eq!(answer.error_fields(), ["items[0]"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_sku_is_refused() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let mut body = valid_order(alice.id());
    body["items"][0]["sku"] = json!("ABC 1");

    let answer = assert_refused(&app, &alice, &body, StatusCode::BAD_REQUEST).await;

    assert_eq!(answer.error_fields(), ["items[0].sku"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_currency_is_refused() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let mut body = valid_order(alice.id());
    body["currency"] = json!("XYZ");

    let answer = assert_refused(&app, &alice, &body, StatusCode::BAD_REQUEST).await;

    assert_eq!(answer.error_fields(), ["currency"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalid_field_is_named_at_once() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let body = order_with(
        alice.id(),
        "brl",
        json!([
            {"sku": "ABC-1", "quantity": 1, "unit_price_cents": 1},
            {"sku": "", "quantity": 0, "unit_price_cents": -1}
        ]),
    );

    let answer = assert_refused(&app, &alice, &body, StatusCode::BAD_REQUEST).await;

    let fields: HashSet<String> = answer.error_fields().into_iter().collect();
    let expected: HashSet<String> =
        ["currency", "items[1].sku", "items[1].quantity", "items[1].unit_price_cents"].map(String::from).into();
    assert_eq!(fields, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_with_no_items_is_refused() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let mut body = valid_order(alice.id());
    body["items"] = json!([]);

    let answer = assert_refused(&app, &alice, &body, StatusCode::BAD_REQUEST).await;

    assert_eq!(answer.error_fields(), ["items"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_with_a_hundred_items_is_placed_but_one_more_is_refused() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let item = json!({"product_id": Uuid::new_v4(), "sku": "ABC-1", "quantity": 1, "unit_price_cents": 100});
    let mut body = valid_order(alice.id());

    body["items"] = Value::Array(vec![item.clone(); 101]);
    let answer = assert_refused(&app, &alice, &body, StatusCode::BAD_REQUEST).await;
    assert_eq!(answer.error_fields(), ["items"]);

    body["items"] = Value::Array(vec![item; 100]);
    let answer = app.place_order(&alice, &body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    assert_eq!(answer.json["total_cents"], 10_000);
    assert_eq!(app.count("order_lines").await, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_size_limit_is_refused() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let padding = "x".repeat(2 * 1024 * 1024);
    let body = format!(
        r#"{{"customer_id":"{}","currency":"BRL","items":[{{"sku":"ABC-1","quantity":2,"unit_price_cents":1990}}],"note":"{padding}"}}"#,
        alice.id()
    );

    let answer = app.place_order_raw(&alice, body).await;

    answer.assert_problem(StatusCode::PAYLOAD_TOO_LARGE);
    app.assert_nothing_stored().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_refused() {
    let app = spawn_app().await;
    let alice = Caller::customer();

    let answer = app.place_order_raw(&alice, r#"{"customer_id":"#).await;

    answer.assert_problem(StatusCode::BAD_REQUEST);
    app.assert_nothing_stored().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_declared_as_json_is_refused() {
    let app = spawn_app().await;
    let alice = Caller::customer();

    let answer = Answer::of(
        app.request(Method::POST, "/orders", &alice)
            .header("content-type", "text/plain")
            .body(valid_order(alice.id()).to_string())
            .send()
            .await,
    )
    .await;

    answer.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    app.assert_nothing_stored().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_route_answers_not_found() {
    let app = spawn_app().await;
    let alice = Caller::customer();

    let answer =
        Answer::of(app.request(Method::POST, "/order", &alice).json(&valid_order(alice.id())).send().await).await;

    answer.assert_problem(StatusCode::NOT_FOUND);
    app.assert_nothing_stored().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_method_answers_method_not_allowed() {
    let app = spawn_app().await;
    let alice = Caller::customer();

    let answer =
        Answer::of(app.request(Method::PUT, "/orders", &alice).json(&valid_order(alice.id())).send().await).await;

    answer.assert_problem(StatusCode::METHOD_NOT_ALLOWED);
    let allow = answer.header("allow").unwrap_or_default();
    assert!(allow.contains("POST") && allow.contains("GET"), "Allow lists the methods: {allow:?}");
    app.assert_nothing_stored().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_id_that_is_not_a_uuid_is_refused() {
    let app = spawn_app().await;
    let caller = Caller::Raw { user_id: "alice".into(), roles: "customer".into() };

    assert_refused(&app, &caller, &valid_order(Uuid::new_v4()), StatusCode::BAD_REQUEST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_caller_may_not_place_an_order() {
    let app = spawn_app().await;

    assert_refused(&app, &Caller::Anonymous, &valid_order(Uuid::new_v4()), StatusCode::UNAUTHORIZED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_may_not_place_an_order_for_another_customer() {
    let app = spawn_app().await;
    let alice = Caller::customer();

    assert_refused(&app, &alice, &valid_order(Uuid::new_v4()), StatusCode::FORBIDDEN).await;
}

// ---------------------------------------------------------------------------
// Property: no input makes the service fail
// ---------------------------------------------------------------------------

/// Any JSON value, with keys that often are the API's own.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::from),
        Just(json!("BRL")),
        Just(json!(Uuid::nil())),
    ];
    let key = prop_oneof![
        Just("customer_id".to_string()),
        Just("currency".to_string()),
        Just("items".to_string()),
        Just("sku".to_string()),
        Just("quantity".to_string()),
        Just("unit_price_cents".to_string()),
        ".{0,8}",
    ];
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An integer as JSON: often in range, often at the edges, sometimes not an
/// integer at all.
fn any_amount() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => (1_i64..=10_000).prop_map(Value::from),
        2 => any::<i64>().prop_map(Value::from),
        2 => prop::sample::select(vec![
            i64::MIN, i64::MIN + 1, -1, 0, 1, 10_000, 10_001, 10_000_000_000_000, 10_000_000_000_001, i64::MAX,
        ])
        .prop_map(Value::from),
        1 => prop::sample::select(vec![
            json!(u64::MAX), json!(1.5), json!(-0.0), json!(1e300), json!("2"), json!(null), json!([1]), json!(true),
        ]),
    ]
}

/// Text matching `valid`, or any text, or any JSON.
fn any_text(valid: &'static str) -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => valid.prop_map(Value::from),
        1 => ".{0,80}".prop_map(Value::from),
        1 => any_json(),
    ]
}

/// A line: mostly valid (so that whole orders often are), now and then
/// anything at all.
fn any_item() -> impl Strategy<Value = Value> {
    let quantity = prop_oneof![8 => 1_i64..=10, 1 => 1_i64..=10_000];
    let price = prop_oneof![8 => 0_i64..=100_000, 1 => 0_i64..=10_000_000_000_000];
    let valid = ("[A-Za-z0-9._-]{1,64}", quantity, price)
        .prop_map(|(sku, quantity, price)| json!({"sku": sku, "quantity": quantity, "unit_price_cents": price}));
    let broken = (any_text("[A-Za-z0-9._-]{1,64}"), any_amount(), any_amount(), prop::option::of(any_json())).prop_map(
        |(sku, quantity, price, extra)| {
            let mut item = json!({"sku": sku, "quantity": quantity, "unit_price_cents": price});
            if let Some(extra) = extra {
                item["extra"] = extra;
            }
            item
        },
    );
    prop_oneof![12 => valid, 1 => broken]
}

/// An order for `customer`, with each part possibly broken.
fn mutated_order(customer: Uuid) -> impl Strategy<Value = Value> {
    let customer_id = prop_oneof![
        8 => Just(json!(customer)),
        1 => any::<u128>().prop_map(|n| json!(Uuid::from_u128(n))),
        1 => any_json(),
    ];
    let currency = prop_oneof![
        6 => prop::sample::select(vec!["BRL", "USD", "EUR"]).prop_map(Value::from),
        1 => any_text("[A-Z]{3}"),
    ];
    let items = prop_oneof![
        3 => prop::collection::vec(any_item(), 1..=5),
        1 => prop::collection::vec(any_item(), 0..=120),
    ];
    let missing = prop_oneof![
        12 => Just(None),
        1 => prop::sample::select(vec!["customer_id", "currency", "items"]).prop_map(Some),
    ];
    (customer_id, currency, items, missing).prop_map(|(customer_id, currency, items, missing)| {
        let mut order = order_with(customer_id, currency, Value::Array(items));
        if let (Some(field), Some(order)) = (missing, order.as_object_mut()) {
            order.remove(field);
        }
        order
    })
}

#[test]
fn no_request_body_makes_the_service_fail() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let app = rt.block_on(spawn_app());
    let alice = Caller::customer();
    let body = prop_oneof![
        2 => any_json().prop_map(|v| v.to_string()),
        5 => mutated_order(alice.id()).prop_map(|v| v.to_string()),
        1 => ".{0,64}",
    ];
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    });
    let created = std::cell::Cell::new(0_i64);

    let result = runner.run(&body, |body| {
        let answer = rt.block_on(app.place_order_raw(&alice, body.clone()));
        if answer.status.is_success() {
            prop_assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer);
            created.set(created.get() + 1);
        } else {
            prop_assert!(!answer.status.is_server_error(), "a server error: {:?}", answer);
            prop_assert!(answer.is_problem(), "not problem+json: {:?}", answer);
            prop_assert_eq!(&answer.json["status"], &json!(answer.status.as_u16()), "{:?}", answer);
        }
        Ok::<(), TestCaseError>(())
    });

    let (orders, events) = rt.block_on(async { (app.count("orders").await, app.announced().await) });
    rt.block_on(app.stop());
    if let Err(e) = result {
        panic!("{e}");
    }
    assert_eq!(orders, created.get(), "one order per 201, none otherwise");
    assert_eq!(events, created.get(), "one event per 201, none otherwise");
}

// ---------------------------------------------------------------------------
// Who may see which order
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_cannot_see_another_customers_order() {
    let app = spawn_app().await;
    let (alice, bob) = (Caller::customer(), Caller::customer());
    let order = app.placed_order(&alice).await;
    let path = format!("/orders/{}", order_id(&order));

    let answer = app.get(&path, &bob).await;

    answer.assert_problem(StatusCode::NOT_FOUND);
    let missing = app.get(&format!("/orders/{}", Uuid::now_v7()), &bob).await;
    missing.assert_problem(StatusCode::NOT_FOUND);
    assert_eq!(answer.json, missing.json, "another's order looks like no order at all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sees_any_customers_order() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let order = app.placed_order(&alice).await;

    let answer = app.get(&format!("/orders/{}", order_id(&order)), &Caller::admin()).await;

    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(order_id(&answer.json), order_id(&order));
    assert_eq!(answer.json["customer_id"], json!(alice.id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_caller_cannot_read_orders() {
    let app = spawn_app().await;
    let order = app.placed_order(&Caller::customer()).await;

    app.get("/orders", &Caller::Anonymous).await.assert_problem(StatusCode::UNAUTHORIZED);
    app.get(&format!("/orders/{}", order_id(&order)), &Caller::Anonymous)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_id_that_is_not_a_uuid_is_refused() {
    let app = spawn_app().await;

    let answer = app.get("/orders/not-a-uuid", &Caller::customer()).await;

    answer.assert_problem(StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_lists_only_their_own_orders() {
    let app = spawn_app().await;
    let (alice, bob) = (Caller::customer(), Caller::customer());
    let mine = [app.placed_order(&alice).await, app.placed_order(&alice).await];
    app.placed_order(&bob).await;

    let page = app.get("/orders", &alice).await;

    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    let listed: HashSet<Uuid> = ids_of(&page.json).into_iter().collect();
    let expected: HashSet<Uuid> = mine.iter().map(order_id).collect();
    assert_eq!(listed, expected);
    let explicit = app.get(&format!("/orders?customer_id={}", alice.id()), &alice).await;
    assert_eq!(explicit.status, StatusCode::OK, "{explicit:?}");
    assert_eq!(ids_of(&explicit.json), ids_of(&page.json));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_cannot_list_another_customers_orders() {
    let app = spawn_app().await;
    let (alice, bob) = (Caller::customer(), Caller::customer());
    app.placed_order(&bob).await;

    let answer = app.get(&format!("/orders?customer_id={}", bob.id()), &alice).await;

    answer.assert_problem(StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_lists_everyones_orders_or_one_customers() {
    let app = spawn_app().await;
    let (alice, bob, admin) = (Caller::customer(), Caller::customer(), Caller::admin());
    let a = order_id(&app.placed_order(&alice).await);
    let b = order_id(&app.placed_order(&bob).await);

    let all = app.get("/orders", &admin).await;
    let bobs = app.get(&format!("/orders?customer_id={}", bob.id()), &admin).await;

    assert_eq!(all.status, StatusCode::OK, "{all:?}");
    assert_eq!(ids_of(&all.json), [b, a], "newest first");
    assert_eq!(ids_of(&bobs.json), [b]);
}

// ---------------------------------------------------------------------------
// Keyset pagination
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_next_cursor_lists_every_order_once_newest_first() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let mut placed = Vec::new();
    for _ in 0..5 {
        placed.push(order_id(&app.placed_order(&alice).await));
    }
    app.placed_order(&Caller::customer()).await; // someone else's

    let mut pages = Vec::new();
    let mut path = "/orders?limit=2".to_string();
    loop {
        let page = app.get(&path, &alice).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        let next = page.json.get("next_cursor").cloned();
        pages.push(ids_of(&page.json));
        match next {
            Some(cursor) => path = format!("/orders?limit=2&cursor={}", cursor.as_str().unwrap()),
            None => break,
        }
        assert!(pages.len() < 10, "the pages never end");
    }

    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1]);
    let listed: Vec<Uuid> = pages.concat();
    let newest_first: Vec<Uuid> = placed.iter().rev().copied().collect();
    assert_eq!(listed, newest_first, "every order once, newest first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_out_of_range_is_clamped_between_one_and_a_hundred() {
    let app = spawn_app().await;
    let alice = Caller::customer();
    let item = json!({"product_id": Uuid::new_v4(), "sku": "ABC-1", "quantity": 1, "unit_price_cents": 100});
    let body = order_with(alice.id(), "USD", json!([item]));
    for _ in 0..101 {
        let answer = app.place_order(&alice, &body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    }

    let at_least_one = app.get("/orders?limit=0", &alice).await;
    let negative = app.get("/orders?limit=-5", &alice).await;
    let at_most_a_hundred = app.get("/orders?limit=1000", &alice).await;
    let default = app.get("/orders", &alice).await;

    assert_eq!(at_least_one.status, StatusCode::OK, "{at_least_one:?}");
    assert_eq!(ids_of(&at_least_one.json).len(), 1);
    assert!(at_least_one.json["next_cursor"].is_string());
    assert_eq!(ids_of(&negative.json).len(), 1);
    assert_eq!(at_most_a_hundred.status, StatusCode::OK, "{at_most_a_hundred:?}");
    assert_eq!(ids_of(&at_most_a_hundred.json).len(), 100);
    assert!(at_most_a_hundred.json["next_cursor"].is_string(), "one order is left");
    assert_eq!(ids_of(&default.json).len(), 20, "20 by default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_that_is_not_a_number_is_refused() {
    let app = spawn_app().await;

    let answer = app.get("/orders?limit=abc", &Caller::customer()).await;

    answer.assert_problem(StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_that_is_not_a_uuid_is_refused() {
    let app = spawn_app().await;

    let answer = app.get("/orders?cursor=42", &Caller::customer()).await;

    answer.assert_problem(StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_places_orders_only_through_the_carts_checkout() {
    let app = spawn_app().await;
    let alice = Uuid::now_v7();
    let direct = Caller::Raw { user_id: alice.to_string(), roles: "customer".into() };

    let answer = app.place_order(&direct, &valid_order(alice)).await;

    answer.assert_problem(StatusCode::FORBIDDEN);
    assert_eq!(app.count("orders").await, 0, "a customer cannot set their own prices");
    let admin = app.place_order(&Caller::Admin(Uuid::now_v7()), &valid_order(alice)).await;
    assert_eq!(admin.status, StatusCode::CREATED, "an admin may: {admin:?}");
}
