//! The cart, end to end: the real service on a private database and Redis
//! key prefix per test, with stand-ins for catalog, shipping and orders
//! (see `helpers`).

#![allow(clippy::unwrap_used)]

mod helpers;

use std::collections::HashSet;

use helpers::{Caller, OrdersMode, checkout_body, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

const WEEK: i64 = 7 * 24 * 3600;

// ---------------------------------------------------------------------------
// The cart
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_adds_changes_removes_and_clears_items() {
    let app = spawn_app().await;
    let ana = Caller::customer();
    let mug = app.stubs.product("CAN-1", 1990, "BRL");
    let cup = app.stubs.product("XIC-1", 500, "BRL");

    let empty = app.get_cart(&ana).await;
    assert_eq!(
        empty.expect(StatusCode::OK),
        &json!({"items": [], "currency": null, "items_cents": 0, "price_stale": false})
    );

    let added = app.put_item(&ana, mug, 2).await;
    let cart = added.expect(StatusCode::OK);
    assert_eq!(cart["items"][0]["product_id"], json!(mug));
    assert_eq!(cart["items"][0]["sku"], "CAN-1");
    assert_eq!(cart["items"][0]["title"], "Caneca CAN-1");
    assert_eq!(cart["items"][0]["quantity"], 2);
    assert_eq!(cart["items"][0]["unit_price_cents"], 1990);
    assert_eq!(cart["items"][0]["line_total_cents"], 3980);
    assert_eq!(cart["items"][0]["available"], true);
    assert_eq!(cart["currency"], "BRL");
    assert_eq!(cart["items_cents"], 3980);

    app.put_item(&ana, cup, 3).await.expect(StatusCode::OK);
    let changed = app.put_item(&ana, mug, 5).await;
    assert_eq!(changed.expect(StatusCode::OK)["items_cents"], 5 * 1990 + 3 * 500);

    app.delete(&format!("/cart/items/{mug}"), &ana).await.expect(StatusCode::NO_CONTENT);
    let after_remove = app.get_cart(&ana).await;
    let items = after_remove.expect(StatusCode::OK)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["product_id"], json!(cup));
    app.delete(&format!("/cart/items/{mug}"), &ana).await.expect(StatusCode::NO_CONTENT);

    app.delete("/cart", &ana).await.expect(StatusCode::NO_CONTENT);
    assert_eq!(app.get_cart(&ana).await.expect(StatusCode::OK)["items"], json!([]));
    assert_eq!(app.ttl(&ana).await, -2, "an emptied cart leaves no key behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cart_shows_the_catalogs_price_now() {
    let app = spawn_app().await;
    let ana = Caller::customer();
    let mug = app.stubs.product("CAN-1", 1990, "BRL");
    app.put_item(&ana, mug, 2).await.expect(StatusCode::OK);

    app.stubs.set_product(mug, "price_cents", json!(2500));
    app.stubs.set_product(mug, "available", json!(1));
    let cart = app.get_cart(&ana).await;

    let cart = cart.expect(StatusCode::OK);
    assert_eq!(cart["items"][0]["unit_price_cents"], 2500);
    assert_eq!(cart["items_cents"], 5000);
    assert_eq!(cart["items"][0]["available"], false, "2 wanted, 1 in stock");
    assert_eq!(cart["price_stale"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_sets_the_carts_expiry_again() {
    let app = spawn_app().await;
    let ana = Caller::customer();
    let mug = app.stubs.product("CAN-1", 1990, "BRL");

    app.put_item(&ana, mug, 1).await.expect(StatusCode::OK);
    let ttl = app.ttl(&ana).await;
    assert!((WEEK - 60..=WEEK).contains(&ttl), "a new cart lives 7 days: {ttl}");

    app.expire(&ana, 100).await;
    app.put_item(&ana, mug, 2).await.expect(StatusCode::OK);
    let ttl = app.ttl(&ana).await;
    assert!((WEEK - 60..=WEEK).contains(&ttl), "a change starts the 7 days again: {ttl}");

    let cup = app.stubs.product("XIC-1", 500, "BRL");
    app.put_item(&ana, cup, 1).await.expect(StatusCode::OK);
    app.expire(&ana, 100).await;
    app.delete(&format!("/cart/items/{cup}"), &ana).await.expect(StatusCode::NO_CONTENT);
    let ttl = app.ttl(&ana).await;
    assert!((WEEK - 60..=WEEK).contains(&ttl), "removing a line is a change too: {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cart_lives_as_long_as_configured() {
    let app = spawn_app_with(|env| {
        env.set("FEIRA_CART_TTL", "1h");
    })
    .await;
    let ana = Caller::customer();
    let mug = app.stubs.product("CAN-1", 1990, "BRL");

    app.put_item(&ana, mug, 1).await.expect(StatusCode::OK);

    let ttl = app.ttl(&ana).await;
    assert!((3600 - 60..=3600).contains(&ttl), "{ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_are_all_kept() {
    let app = spawn_app().await;
    let ana = Caller::customer();
    let products: Vec<Uuid> = (0..20).map(|i| app.stubs.product(&format!("P-{i}"), 100, "BRL")).collect();

    let puts = products.iter().map(|p| app.put_item(&ana, *p, 1));
    let answers = futures_util::future::join_all(puts).await;

    assert!(answers.iter().all(|a| a.status == StatusCode::OK), "{answers:?}");
    let cart = app.get_cart(&ana).await;
    let ids: HashSet<String> = cart.expect(StatusCode::OK)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["product_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 20, "no change lost another");
    assert_eq!(cart.json["items_cents"], 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_quantities_unknown_products_and_a_second_currency_are_refused() {
    let app = spawn_app().await;
    let ana = Caller::customer();
    let mug = app.stubs.product("CAN-1", 1990, "BRL");
    let dollars = app.stubs.product("USD-1", 700, "USD");
    let shelved = app.stubs.product("OFF-1", 700, "BRL");
    app.stubs.set_product(shelved, "active", json!(false));

    for quantity in [0, 100, -1] {
        let answer = app.put_item(&ana, mug, quantity).await;
        answer.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(answer.error_fields(), ["quantity"], "{quantity}");
    }
    let missing = app.send(Method::PUT, &format!("/cart/items/{mug}"), &ana, None, Some(&json!({}))).await;
    missing.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(missing.error_fields(), ["quantity"]);
    app.put_item(&ana, Uuid::now_v7(), 1).await.assert_problem(StatusCode::NOT_FOUND);
    app.put_item(&ana, shelved, 1).await.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);

    app.put_item(&ana, mug, 1).await.expect(StatusCode::OK);
    let mixed = app.put_item(&ana, dollars, 1).await;
    mixed.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(mixed.json["detail"].as_str().unwrap().contains("BRL"), "{mixed:?}");

    let cart = app.get_cart(&ana).await;
    assert_eq!(cart.expect(StatusCode::OK)["items"].as_array().unwrap().len(), 1, "nothing refused was kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_caller_is_refused_everywhere() {
    let app = spawn_app().await;
    let mug = app.stubs.product("CAN-1", 1990, "BRL");
    let anon = Caller::Anonymous;

    app.get_cart(&anon).await.assert_problem(StatusCode::UNAUTHORIZED);
    app.put_item(&anon, mug, 1).await.assert_problem(StatusCode::UNAUTHORIZED);
    app.delete(&format!("/cart/items/{mug}"), &anon).await.assert_problem(StatusCode::UNAUTHORIZED);
    app.delete("/cart", &anon).await.assert_problem(StatusCode::UNAUTHORIZED);
    let quote = app.stubs.quote("01310100", 1500);
    app.checkout(&anon, Some("k-anon"), &checkout_body(quote)).await.assert_problem(StatusCode::UNAUTHORIZED);
    assert_eq!(app.stubs.catalog_calls(), 0);
    assert!(app.stubs.order_calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_customer_never_sees_or_changes_anothers_cart() {
    let app = spawn_app().await;
    let ana = Caller::customer();
    let bia = Caller::customer();
    let mug = app.stubs.product("CAN-1", 1990, "BRL");
    app.put_item(&ana, mug, 2).await.expect(StatusCode::OK);

    let seen_by_bia = app.get_cart(&bia).await;
    app.delete("/cart", &bia).await.expect(StatusCode::NO_CONTENT);
    app.delete(&format!("/cart/items/{mug}"), &bia).await.expect(StatusCode::NO_CONTENT);

    assert_eq!(seen_by_bia.expect(StatusCode::OK)["items"], json!([]));
    let anas = app.get_cart(&ana).await;
    assert_eq!(anas.expect(StatusCode::OK)["items"][0]["quantity"], 2, "ana's cart is untouched");
}

// ---------------------------------------------------------------------------
// The catalog down
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_catalog_down_the_breaker_opens_the_cart_reads_stale_and_adding_waits() {
    let app = spawn_app().await;
    let ana = Caller::customer();
    let mug = app.stubs.product("CAN-1", 1990, "BRL");
    let cup = app.stubs.product("XIC-1", 500, "BRL");
    app.put_item(&ana, mug, 2).await.expect(StatusCode::OK);

    app.stubs.catalog_down(true);
    for _ in 0..5 {
        let answer = app.put_item(&ana, cup, 1).await;
        answer.assert_problem(StatusCode::SERVICE_UNAVAILABLE);
        assert!(answer.header("retry-after").is_some(), "{answer:?}");
    }
    let calls_when_open = app.stubs.catalog_calls();
    let refused = app.put_item(&ana, cup, 1).await;
    let stale = app.get_cart(&ana).await;
    let quote = app.stubs.quote("01310100", 1500);
    let checkout = app.checkout(&ana, Some("k-down"), &checkout_body(quote)).await;

    refused.assert_problem(StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.header("retry-after").is_some(), "{refused:?}");
    assert_eq!(app.stubs.catalog_calls(), calls_when_open, "the open breaker keeps calls away from the catalog");
    let cart = stale.expect(StatusCode::OK);
    assert_eq!(cart["price_stale"], true);
    assert_eq!(cart["items"][0]["unit_price_cents"], 1990, "the last known price");
    assert_eq!(cart["items_cents"], 3980);
    assert!(cart["items"][0].get("available").is_none(), "unknown without the catalog: {cart}");
    assert_eq!(cart["items"].as_array().unwrap().len(), 1, "nothing was added");
    checkout.assert_problem(StatusCode::SERVICE_UNAVAILABLE);
    assert!(app.stubs.order_calls().is_empty());
    let metrics = app.metrics().await;
    assert!(metrics.lines().any(|l| l == r#"circuit_breaker_state{breaker="catalog"} 1"#), "{metrics}");
}

// ---------------------------------------------------------------------------
// Checkout
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_places_the_repriced_order_with_the_quotes_freight_and_empties_the_cart() {
    let app = spawn_app().await;
    let ana = Caller::customer();
    let mug = app.stubs.product("CAN-1", 1990, "BRL");
    let cup = app.stubs.product("XIC-1", 500, "BRL");
    app.put_item(&ana, mug, 2).await.expect(StatusCode::OK);
    app.put_item(&ana, cup, 1).await.expect(StatusCode::OK);
    app.stubs.set_product(mug, "price_cents", json!(2100));
    let quote = app.stubs.quote("01310100", 1500);

    let answer = app.checkout(&ana, Some("checkout-1"), &checkout_body(quote)).await;

    let placed = answer.expect(StatusCode::ACCEPTED).clone();
    let order_id = placed["order_id"].as_str().unwrap().to_string();
    assert_eq!(placed["status"], "PENDING");
    assert_eq!(placed["total_cents"], 2 * 2100 + 500 + 1500);
    assert_eq!(placed["links"]["order"], format!("/orders/{order_id}"));
    assert_eq!(answer.location(), Some(format!("/orders/{order_id}").as_str()));

    let calls = app.stubs.order_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.headers["idempotency-key"], "checkout-1");
    assert_eq!(call.headers["x-feira-user-id"], ana.id().to_string());
    assert_eq!(call.headers["x-feira-roles"], "customer");
    let mut lines = call.body["lines"].as_array().unwrap().clone();
    lines.sort_by_key(|l| l["sku"].as_str().unwrap().to_string());
    assert_eq!(
        lines,
        [
            json!({"product_id": mug, "sku": "CAN-1", "quantity": 2, "unit_price_cents": 2100}),
            json!({"product_id": cup, "sku": "XIC-1", "quantity": 1, "unit_price_cents": 500}),
        ]
    );
    assert_eq!(call.body["customer_id"], json!(ana.id()));
    assert_eq!(call.body["currency"], "BRL");
    assert_eq!(call.body["shipping"]["quote_id"], json!(quote));
    assert_eq!(call.body["shipping"]["freight_cents"], 1500);
    assert_eq!(
        call.body["shipping"]["address"],
        json!({"recipient": "Ana Souza", "street": "Avenida Paulista", "number": "1000", "complement": "apto 12",
               "district": "Bela Vista", "city": "São Paulo", "state": "SP", "cep": "01310-100"})
    );
    assert_eq!(call.body["payment"], json!({"type": "card", "token": "tok_visa"}));
    assert_eq!(call.body["contact_email"], "ana@example.com");

    assert_eq!(app.get_cart(&ana).await.expect(StatusCode::OK)["items"], json!([]), "the cart is emptied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checking_out_twice_with_one_key_places_one_order_and_another_body_is_refused() {
    let app = spawn_app().await;
    let ana = Caller::customer();
    let mug = app.stubs.product("CAN-1", 1990, "BRL");
    app.put_item(&ana, mug, 1).await.expect(StatusCode::OK);
    let quote = app.stubs.quote("01310-100", 1500);
    let body = checkout_body(quote);

    let first = app.checkout(&ana, Some("same-key"), &body).await;
    let again = app.checkout(&ana, Some("same-key"), &body).await;
    let mut other = body.clone();
    other["shipping_address"]["number"] = json!("2000");
    let different = app.checkout(&ana, Some("same-key"), &other).await;

    assert_eq!(first.expect(StatusCode::ACCEPTED), again.expect(StatusCode::ACCEPTED), "the same answer");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.location(), first.location());
    different.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.stubs.order_calls().len(), 1, "one POST reached orders");
    assert_eq!(app.stubs.orders_placed(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_needs_an_idempotency_key() {
    let app = spawn_app().await;
    let ana = Caller::customer();
    let mug = app.stubs.product("CAN-1", 1990, "BRL");
    app.put_item(&ana, mug, 1).await.expect(StatusCode::OK);
    let quote = app.stubs.quote("01310100", 1500);

    let answer = app.checkout(&ana, None, &checkout_body(quote)).await;

    answer.assert_problem(StatusCode::BAD_REQUEST);
    assert!(answer.json["detail"].as_str().unwrap().contains("Idempotency-Key"), "{answer:?}");
    assert!(app.stubs.order_calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_checkout_fields_are_all_named_and_nothing_reaches_orders() {
    let app = spawn_app().await;
    let ana = Caller::customer();
    let mug = app.stubs.product("CAN-1", 1990, "BRL");
    app.put_item(&ana, mug, 1).await.expect(StatusCode::OK);
    let quote = app.stubs.quote("01310100", 1500);
    let mut body = checkout_body(quote);
    body["shipping_address"]["cep"] = json!("00000-000");
    body["shipping_address"]["state"] = json!("XX");
    body["shipping_address"]["recipient"] = json!("   ");
    body["contact_email"] = json!("ana-at-example");
    body["payment"] = json!({"type": "card"});

    let answer = app.checkout(&ana, Some("bad-fields"), &body).await;

    answer.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        answer.error_fields(),
        [
            "contact_email",
            "payment.token",
            "shipping_address.cep",
            "shipping_address.recipient",
            "shipping_address.state"
        ]
    );
    let missing = app.checkout(&ana, Some("no-fields"), &json!({})).await;
    missing.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(missing.error_fields(), ["contact_email", "payment", "shipping_address", "shipping_quote_id"]);
    for cep in ["1310-100", "013101000", "01310-10a"] {
        let mut body = checkout_body(quote);
        body["shipping_address"]["cep"] = json!(cep);
        let answer = app.checkout(&ana, Some(&format!("cep-{cep}")), &body).await;
        assert_eq!(answer.error_fields(), ["shipping_address.cep"], "{cep}: {answer:?}");
    }
    assert!(app.stubs.order_calls().is_empty());
    assert_eq!(app.stubs.quote_calls.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing was asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_cart_a_product_no_longer_sold_and_bad_quotes_are_refused() {
    let app = spawn_app().await;
    let ana = Caller::customer();
    let quote = app.stubs.quote("01310100", 1500);

    let empty = app.checkout(&ana, Some("empty"), &checkout_body(quote)).await;
    empty.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.json["detail"].as_str().unwrap().contains("empty"), "{empty:?}");

    let mug = app.stubs.product("CAN-1", 1990, "BRL");
    app.put_item(&ana, mug, 1).await.expect(StatusCode::OK);
    let unknown = app.checkout(&ana, Some("unknown-quote"), &checkout_body(Uuid::now_v7())).await;
    let expired = app.checkout(&ana, Some("expired-quote"), &checkout_body(app.stubs.expired_quote())).await;
    let elsewhere = app.stubs.quote("20040-020", 1500);
    let other_cep = app.checkout(&ana, Some("other-cep"), &checkout_body(elsewhere)).await;
    app.stubs.remove_product(mug);
    let gone = app.checkout(&ana, Some("gone"), &checkout_body(quote)).await;

    unknown.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    expired.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(expired.json["detail"], "quote expired");
    other_cep.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(other_cep.json["detail"].as_str().unwrap().contains("CEP"), "{other_cep:?}");
    gone.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(gone.json["detail"].as_str().unwrap().contains(&mug.to_string()), "{gone:?}");
    assert!(app.stubs.order_calls().is_empty());
    assert_eq!(app.get_cart(&ana).await.json["items"].as_array().unwrap().len(), 1, "the cart is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_orders_down_checkout_answers_503_keeps_the_cart_and_a_retry_places_the_same_order() {
    let app = spawn_app().await;
    let ana = Caller::customer();
    let mug = app.stubs.product("CAN-1", 1990, "BRL");
    app.put_item(&ana, mug, 2).await.expect(StatusCode::OK);
    let quote = app.stubs.quote("01310100", 1500);
    app.stubs.orders_mode(OrdersMode::Down);

    let down = app.checkout(&ana, Some("retry-me"), &checkout_body(quote)).await;

    down.assert_problem(StatusCode::SERVICE_UNAVAILABLE);
    assert!(down.header("retry-after").is_some());
    assert_eq!(app.get_cart(&ana).await.json["items"][0]["quantity"], 2, "the cart is kept");

    // Prices move before the retry: the retry still sends the first body.
    app.stubs.set_product(mug, "price_cents", json!(9999));
    app.stubs.orders_mode(OrdersMode::Up);
    let retried = app.checkout(&ana, Some("retry-me"), &checkout_body(quote)).await;

    assert_eq!(retried.expect(StatusCode::ACCEPTED)["total_cents"], 2 * 1990 + 1500);
    let calls = app.stubs.order_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].raw, calls[1].raw, "the same bytes, so orders can replay");
    assert_eq!(app.get_cart(&ana).await.json["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_orders_placed_the_order_but_its_answer_was_lost_gets_the_same_order() {
    let app = spawn_app().await;
    let ana = Caller::customer();
    let mug = app.stubs.product("CAN-1", 1990, "BRL");
    app.put_item(&ana, mug, 1).await.expect(StatusCode::OK);
    let quote = app.stubs.quote("01310100", 1500);
    app.stubs.orders_mode(OrdersMode::PlacesThenFails);

    let lost = app.checkout(&ana, Some("lost-answer"), &checkout_body(quote)).await;
    lost.assert_problem(StatusCode::SERVICE_UNAVAILABLE);
    app.stubs.orders_mode(OrdersMode::Up);
    let retried = app.checkout(&ana, Some("lost-answer"), &checkout_body(quote)).await;
    let replayed = app.checkout(&ana, Some("lost-answer"), &checkout_body(quote)).await;

    let placed = retried.expect(StatusCode::ACCEPTED);
    assert_eq!(app.stubs.orders_placed(), 1, "one order");
    assert_eq!(replayed.expect(StatusCode::ACCEPTED)["order_id"], placed["order_id"]);
    assert_eq!(app.get_cart(&ana).await.json["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_whose_first_answer_was_never_stored_answers_the_recorded_order_without_ordering_again() {
    let app = spawn_app().await;
    let ana = Caller::customer();
    let mug = app.stubs.product("CAN-1", 1990, "BRL");
    app.put_item(&ana, mug, 1).await.expect(StatusCode::OK);
    let quote = app.stubs.quote("01310100", 1500);
    let first = app.checkout(&ana, Some("unstored"), &checkout_body(quote)).await;
    let placed = first.expect(StatusCode::ACCEPTED).clone();
    // The customer fills a new cart meanwhile.
    app.put_item(&ana, mug, 3).await.expect(StatusCode::OK);

    app.forget_idempotent_answers().await;
    let retried = app.checkout(&ana, Some("unstored"), &checkout_body(quote)).await;

    assert_eq!(retried.expect(StatusCode::ACCEPTED), &placed);
    assert_eq!(retried.header("idempotent-replayed"), None, "answered by the handler, not the middleware");
    assert_eq!(app.stubs.order_calls().len(), 1, "orders was not asked again");
    assert_eq!(app.get_cart(&ana).await.json["items"][0]["quantity"], 3, "the new cart is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_from_orders_reaches_the_customer_as_it_is() {
    let app = spawn_app().await;
    let ana = Caller::customer();
    let mug = app.stubs.product("CAN-1", 1990, "BRL");
    app.put_item(&ana, mug, 1).await.expect(StatusCode::OK);
    let quote = app.stubs.quote("01310100", 1500);
    app.stubs.orders_mode(OrdersMode::Rejects);

    let refused = app.checkout(&ana, Some("refused"), &checkout_body(quote)).await;

    refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.error_fields(), ["lines[0].sku"]);
    assert_eq!(app.get_cart(&ana).await.json["items"].as_array().unwrap().len(), 1, "the cart is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_the_routes() {
    let app = spawn_app().await;
    let doc: serde_json::Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    for path in ["/cart", "/cart/items/{product_id}", "/cart/checkout"] {
        assert!(doc["paths"].get(path).is_some(), "{path} in {doc}");
    }
}
