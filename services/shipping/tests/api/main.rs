//! Integration tests of the shipping service against the real PostgreSQL and
//! RabbitMQ (each test has its own database and broker namespace) and a
//! scripted carrier over real HTTP on 127.0.0.1.

mod helpers;

use std::time::Duration;

use contracts::shipping::ShipmentScheduledV1;
use contracts::{Envelope, Message as _};
use helpers::{As, CARRIER_PAC_CENTS, CARRIER_SEDEX_CENTS, Harness, Mode, WAIT, cancelled, confirmed, quote_body};
use platform::testing::{self, eventually};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quote_comes_from_the_carrier_and_can_be_read_back() {
    let h = Harness::start().await;
    let a = h.post_quote(&quote_body("20040-002", "SEDEX")).await;
    let q = a.expect(StatusCode::CREATED).clone();
    assert_eq!(q["source"], "carrier", "{q}");
    assert_eq!(q["service"], "SEDEX");
    assert_eq!(q["price_cents"], CARRIER_SEDEX_CENTS);
    assert_eq!(q["delivery_days"], 2);
    assert_eq!(q["currency"], "BRL");
    assert_eq!(q["destination_cep"], "20040002");
    assert_eq!(q["origin_cep"], "01310100");
    assert_eq!(q["weight_grams"], 750);
    let id = q["id"].as_str().expect("an id");
    assert_eq!(a.location(), Some(format!("/shipping/quotes/{id}").as_str()));

    // The carrier was asked for the parcel's total weight, from the origin.
    let asked = h.carrier.log(|l| l.quotes.clone());
    assert_eq!(asked, vec![json!({"origin_cep": "01310100", "destination_cep": "20040002", "weight_grams": 750})]);

    // The cart reads it back at checkout; PAC is the default service.
    let back = h.get(&format!("/shipping/quotes/{id}"), As::Anonymous).await;
    assert_eq!(back.expect(StatusCode::OK), &q);
    let pac = h.quote(&json!({"destination_cep": "01310100", "items": [{"quantity": 1, "weight_grams": 10}]})).await;
    assert_eq!((pac["service"].as_str(), pac["price_cents"].as_i64()), (Some("PAC"), Some(CARRIER_PAC_CENTS)));

    h.get(&format!("/shipping/quotes/{}", Uuid::now_v7()), As::Anonymous).await.assert_problem(StatusCode::NOT_FOUND);
    assert_eq!(h.metric("shipping_quotes_total{source=\"carrier\"}").await, Some(2.0));
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_quote_request_is_a_problem_naming_its_fields() {
    let h = Harness::start().await;
    let cases = [
        (
            json!({"destination_cep": "0131-0100", "items": [{"quantity": 1, "weight_grams": 10}]}),
            vec!["destination_cep"],
        ),
        (
            json!({"destination_cep": "00000-000", "items": [{"quantity": 1, "weight_grams": 10}]}),
            vec!["destination_cep"],
        ),
        (
            json!({"destination_cep": "01310-10", "items": [{"quantity": 1, "weight_grams": 10}]}),
            vec!["destination_cep"],
        ),
        (json!({"destination_cep": "01310-100", "items": []}), vec!["items"]),
        (
            json!({"destination_cep": "x", "items": [{"quantity": 0, "weight_grams": -5}], "service": "DRONE"}),
            vec!["destination_cep", "items[0].quantity", "items[0].weight_grams", "service"],
        ),
        (json!({"destination_cep": "01310100", "items": [{"quantity": 40, "weight_grams": 1000}]}), vec!["items"]),
    ];
    for (body, fields) in cases {
        let a = h.post_quote(&body).await;
        a.assert_problem(StatusCode::BAD_REQUEST);
        assert_eq!(a.error_fields(), fields, "{body}");
    }
    // Wrong JSON types and malformed JSON are problems too.
    let a = h.post_quote(&json!({"destination_cep": 1310100, "items": []})).await;
    a.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    let a =
        Harness::answer(h.http.post(h.url("/shipping/quotes")).header("content-type", "application/json").body("{"))
            .await;
    a.assert_problem(StatusCode::BAD_REQUEST);
    // So are ids that are not UUIDs.
    h.get("/shipping/quotes/not-a-uuid", As::Anonymous).await.assert_problem(StatusCode::BAD_REQUEST);
    let admin = As::Admin;
    h.get("/shipments?order_id=nope", admin).await.assert_problem(StatusCode::BAD_REQUEST);
    // A CEP the carrier refuses to serve is the carrier's answer, not an outage.
    let a = h.post_quote(&quote_body("99999-999", "PAC")).await;
    a.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(h.breaker_state().await, Some(0.0));
    assert!(h.carrier.log(|l| l.quotes.len()) == 1, "invalid requests never reach the carrier");
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_carrier_gets_fallback_answers_opens_the_breaker_and_a_probe_closes_it() {
    let h = Harness::start().await;
    h.carrier.set(Mode::Slow(Duration::from_secs(5)));
    // Each answer comes from the fallback table without waiting for the
    // carrier (the client gives up long before the carrier would answer).
    let impatient = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().expect("a client");
    for n in 1..=3 {
        let a = platform::testing::Answer::of(
            impatient.post(h.url("/shipping/quotes")).json(&quote_body("90010-000", "PAC")).send().await,
        )
        .await;
        let q = a.expect(StatusCode::CREATED);
        assert_eq!(q["source"], "fallback", "quote {n}: {q}");
        assert_eq!(q["price_cents"], 3_390, "the fallback table's PAC price to region 9, 750 g");
        assert_eq!(q["delivery_days"], 7);
    }
    // Three consecutive failures opened the breaker.
    assert_eq!(h.breaker_state().await, Some(1.0));
    assert_eq!(h.metric("shipping_quotes_total{source=\"fallback\"}").await, Some(3.0));

    // The carrier recovers; while the breaker is open it is not asked.
    assert_eq!(h.carrier.log(|l| l.quotes.len()), 3);
    h.carrier.set(Mode::Ok);
    let q = h.quote(&quote_body("90010-000", "SEDEX")).await;
    assert_eq!(q["source"], "fallback");
    assert_eq!(h.carrier.log(|l| l.quotes.len()), 3, "an open breaker does not call the carrier");

    // Once the breaker's open time is over, a probe goes through, succeeds and closes it.
    let q = eventually(WAIT, "a quote from the carrier again", || async {
        let q = h.quote(&quote_body("90010-000", "PAC")).await;
        (q["source"] == "carrier").then_some(q)
    })
    .await;
    assert_eq!(q["price_cents"], CARRIER_PAC_CENTS);
    assert_eq!(h.breaker_state().await, Some(0.0));
    let q = h.quote(&quote_body("90010-000", "SEDEX")).await;
    assert_eq!((q["source"].as_str(), q["price_cents"].as_i64()), (Some("carrier"), Some(CARRIER_SEDEX_CENTS)));
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_unreachable_carrier_gets_fallback_answers() {
    let mut h = Harness::start_with(|env| {
        env.set("FEIRA_SHIPPING_BREAKER_THRESHOLD", "100");
    })
    .await;
    h.carrier.set(Mode::Down);
    let q = h.quote(&quote_body("01310-100", "SEDEX")).await;
    assert_eq!((q["source"].as_str(), q["price_cents"].as_i64()), (Some("fallback"), Some(4_130)));
    h.carrier.stop().await;
    let q = h.quote(&quote_body("01310-100", "PAC")).await;
    assert_eq!((q["source"].as_str(), q["price_cents"].as_i64()), (Some("fallback"), Some(2_290)));
    h.carrier.restart().await;
    let q = h.quote(&quote_body("01310-100", "PAC")).await;
    assert_eq!(q["source"], "carrier");
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_quote_is_gone() {
    let h = Harness::start_with(|env| {
        env.set("FEIRA_SHIPPING_QUOTE_TTL", "300ms");
    })
    .await;
    let q = h.quote(&quote_body("01310-100", "PAC")).await;
    let path = format!("/shipping/quotes/{}", q["id"].as_str().expect("an id"));
    let a = eventually(WAIT, "the quote gone", || async {
        let a = h.get(&path, As::Anonymous).await;
        (a.status != StatusCode::OK).then_some(a)
    })
    .await;
    a.assert_problem(StatusCode::GONE);
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_order_is_booked_once_and_announced_with_its_tracking_code() {
    let h = Harness::start().await;
    let sub = testing::subscribe(&h.broker, &[ShipmentScheduledV1::ROUTING_KEY]).await;
    let q = h.quote(&quote_body("20040-002", "SEDEX")).await;
    let quote_id: Uuid = q["id"].as_str().and_then(|s| s.parse().ok()).expect("a quote id");
    let customer = Uuid::now_v7();
    let order = confirmed(customer, quote_id, "20040002");
    let order_id = order.payload.order_id;
    h.publish(&order).await;

    let event: Envelope<ShipmentScheduledV1> = sub.next_envelope().await;
    assert_eq!(event.causation_id, Some(order.message_id));
    assert_eq!(event.correlation_id, order.correlation_id);
    let s = &event.payload;
    assert_eq!((s.order_id, s.customer_id), (order_id, customer));
    assert_eq!((s.carrier.as_str(), s.service.as_str()), ("correios", "SEDEX"));
    assert_eq!(s.tracking_code, "SS000000001BR");
    assert_eq!(s.estimated_delivery, time::macros::date!(2026 - 12 - 01));

    // The carrier booked the quote's service and weight, with the order's key.
    let requests = h.carrier.log(|l| l.booking_requests.clone());
    assert_eq!(requests.len(), 1, "{requests:?}");
    let (key, body) = &requests[0];
    assert_eq!(key, &format!("order-{order_id}-shipment"));
    assert_eq!(
        body,
        &json!({"service": "SEDEX", "origin_cep": "01310100", "destination_cep": "20040002",
                "weight_grams": 750, "reference": order_id.to_string()})
    );

    // The customer sees the scheduled shipment.
    let a = h.get(&format!("/shipments/{}", s.shipment_id), As::Customer(customer)).await;
    let shipment = a.expect(StatusCode::OK);
    assert_eq!(shipment["status"], "scheduled");
    assert_eq!(shipment["tracking_code"], "SS000000001BR");
    assert_eq!(shipment["estimated_delivery"], "2026-12-01");
    assert_eq!(shipment["quote_id"], quote_id.to_string());
    assert_eq!(shipment["address"]["cep"], "20040002");
    let a = h.get(&format!("/shipments?order_id={order_id}"), As::Customer(customer)).await;
    assert_eq!(a.expect(StatusCode::OK)["items"][0]["id"], s.shipment_id.to_string());

    // The same message redelivered, and a second confirmation of the order,
    // make no second shipment, booking or event.
    h.publish(&order).await;
    let again = Envelope::new(order.payload.clone());
    h.publish(&again).await;
    let marker = confirmed(customer, quote_id, "20040002");
    h.publish(&marker).await;
    let marker_event: Envelope<ShipmentScheduledV1> = sub.next_envelope().await;
    assert_eq!(marker_event.payload.order_id, marker.payload.order_id, "no second event for the first order");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM shipments WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(&h.db)
        .await
        .expect("count");
    assert_eq!(n, 1);
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE (envelope->'payload'->>'order_id')::uuid = $1")
            .bind(order_id)
            .fetch_one(&h.db)
            .await
            .expect("count events");
    assert_eq!(events, 1, "one ShipmentScheduledV1 for the order");
    assert_eq!(h.carrier.shipments().len(), 2, "one carrier shipment per order");
    assert!(h.carrier.log(|l| l.booking_requests.iter().filter(|(k, _)| k == key).count()) == 1);

    // Cancelled after booking: flagged for a manual cancellation at the carrier.
    h.publish(&cancelled(&order.payload)).await;
    h.wait_status(order_id, "cancel_requested").await;
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_with_an_unknown_quote_ships_pac_with_the_default_weight() {
    let h = Harness::start().await;
    let order = confirmed(Uuid::now_v7(), Uuid::now_v7(), "30130000");
    h.publish(&order).await;
    h.wait_status(order.payload.order_id, "scheduled").await;
    let body = h.carrier.log(|l| l.booking_requests[0].1.clone());
    assert_eq!((body["service"].as_str(), body["weight_grams"].as_i64()), (Some("PAC"), Some(1_000)));
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_carrier_is_out_shipments_wait_and_are_booked_once_after_it_is_back() {
    let mut h = Harness::start().await;
    let sub = testing::subscribe(&h.broker, &[ShipmentScheduledV1::ROUTING_KEY]).await;
    h.carrier.stop().await;
    let order = confirmed(Uuid::now_v7(), Uuid::now_v7(), "01310100");
    let order_id = order.payload.order_id;
    h.publish(&order).await;

    // Several attempts fail; the shipment keeps waiting, nothing is dead-lettered.
    eventually(WAIT, "several failed booking attempts", || async {
        h.shipment_row(order_id).await.filter(|(_, status, attempts)| status == "booking" && *attempts >= 3)
    })
    .await;
    assert!(h.dead_letters().await.is_empty());
    assert!(sub.try_next().await.is_none(), "nothing announced while the carrier is out");

    h.carrier.restart().await;
    let event: Envelope<ShipmentScheduledV1> = sub.next_envelope().await;
    assert_eq!(event.payload.order_id, order_id);
    h.wait_status(order_id, "scheduled").await;
    let shipments = h.carrier.shipments();
    assert_eq!(shipments.len(), 1, "exactly one booking at the carrier: {shipments:?}");
    assert!(shipments.contains_key(&format!("order-{order_id}-shipment")));
    assert!(h.dead_letters().await.is_empty());
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_answering_500_delays_the_booking_until_it_recovers() {
    let h = Harness::start().await;
    h.carrier.set(Mode::Down);
    let order = confirmed(Uuid::now_v7(), Uuid::now_v7(), "01310100");
    h.publish(&order).await;
    eventually(WAIT, "the breaker opened by failed bookings", || async {
        (h.breaker_state().await == Some(1.0)).then_some(())
    })
    .await;
    let (_, status, attempts) = h.shipment_row(order.payload.order_id).await.expect("the shipment");
    assert_eq!(status, "booking");
    assert!(attempts >= 3, "{attempts} attempts");
    h.carrier.set(Mode::Ok);
    h.wait_status(order.payload.order_id, "scheduled").await;
    assert_eq!(h.carrier.shipments().len(), 1);
    assert_eq!(h.breaker_state().await, Some(0.0));
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_cancelled_before_booking_is_never_booked() {
    let mut h = Harness::start().await;
    h.carrier.stop().await;
    let order = confirmed(Uuid::now_v7(), Uuid::now_v7(), "01310100");
    let order_id = order.payload.order_id;
    h.publish(&order).await;
    h.wait_status(order_id, "booking").await;
    h.publish(&cancelled(&order.payload)).await;
    let id = h.wait_status(order_id, "cancelled").await;

    // A cancellation that arrives before its confirmation ships nothing either.
    let early = confirmed(Uuid::now_v7(), Uuid::now_v7(), "01310100");
    h.publish(&cancelled(&early.payload)).await;
    eventually(WAIT, "the early cancellation recorded", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM order_cancellations WHERE order_id = $1")
            .bind(early.payload.order_id)
            .fetch_one(&h.db)
            .await
            .ok()?;
        (n == 1).then_some(())
    })
    .await;
    h.publish(&early).await;

    // The carrier is back; a later order is booked, the cancelled ones never are.
    h.carrier.restart().await;
    let later = confirmed(Uuid::now_v7(), Uuid::now_v7(), "01310100");
    h.publish(&later).await;
    h.wait_status(later.payload.order_id, "scheduled").await;
    let keys: Vec<String> = h.carrier.log(|l| l.booking_requests.iter().map(|(k, _)| k.clone()).collect());
    assert_eq!(keys, vec![format!("order-{}-shipment", later.payload.order_id)]);
    assert!(h.shipment_row(early.payload.order_id).await.is_none());
    let a = h.get(&format!("/shipments/{id}"), As::Admin).await;
    let s = a.expect(StatusCode::OK);
    assert_eq!(s["status"], "cancelled");
    assert!(s["tracking_code"].is_null());
    assert!(h.dead_letters().await.is_empty());
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_its_customer_and_admins_see_a_shipment() {
    let h = Harness::start().await;
    let customer = Uuid::now_v7();
    let order = confirmed(customer, Uuid::now_v7(), "01310100");
    let order_id = order.payload.order_id;
    h.publish(&order).await;
    let id = h.wait_status(order_id, "scheduled").await;
    let path = format!("/shipments/{id}");

    h.get(&path, As::Customer(customer)).await.expect(StatusCode::OK);
    h.get(&path, As::Admin).await.expect(StatusCode::OK);
    let stranger = Uuid::now_v7();
    h.get(&path, As::Customer(stranger)).await.assert_problem(StatusCode::NOT_FOUND);
    h.get(&path, As::Anonymous).await.assert_problem(StatusCode::UNAUTHORIZED);
    h.get(&format!("/shipments/{}", Uuid::now_v7()), As::Admin).await.assert_problem(StatusCode::NOT_FOUND);

    let list = format!("/shipments?order_id={order_id}");
    let a = h.get(&list, As::Customer(stranger)).await;
    assert_eq!(a.expect(StatusCode::OK)["items"], json!([]));
    let a = h.get(&list, As::Admin).await;
    assert_eq!(a.expect(StatusCode::OK)["items"][0]["id"], id.to_string());
    let a = h.get("/shipments", As::Customer(customer)).await;
    assert_eq!(a.expect(StatusCode::OK)["items"].as_array().map(Vec::len), Some(1));
    h.get("/shipments", As::Anonymous).await.assert_problem(StatusCode::UNAUTHORIZED);
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_the_routes() {
    let doc = shipping::openapi();
    let paths: Vec<&String> = doc.paths.paths.keys().collect();
    for p in ["/shipping/quotes", "/shipping/quotes/{id}", "/shipments", "/shipments/{id}"] {
        assert!(doc.paths.paths.contains_key(p), "{p} missing from {paths:?}");
    }
}
