//! carrier-sim's API, over real HTTP.

mod helpers;

use std::time::Duration;

use helpers::{booking, key, reference, spawn_app};
use platform::testing::eventually;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn a_quote_offers_pac_and_a_dearer_faster_sedex() {
    let app = spawn_app().await;
    let body = json!({"origin_cep": "01310-100", "destination_cep": "90010000", "weight_grams": 1500});
    let a = app.quote(&body).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let options = a.json["options"].as_array().expect("options");
    assert_eq!(options.len(), 2);
    let (pac, sedex) = (&options[0], &options[1]);
    assert_eq!((pac["service"].as_str(), sedex["service"].as_str()), (Some("PAC"), Some("SEDEX")));
    assert!(sedex["price_cents"].as_i64() > pac["price_cents"].as_i64());
    assert!(sedex["days"].as_u64() < pac["days"].as_u64());
    assert_eq!(app.quote(&body).await.json, a.json, "deterministic");

    let near =
        app.quote(&json!({"origin_cep": "01310-100", "destination_cep": "01310-200", "weight_grams": 1500})).await;
    assert!(
        near.json["options"][0]["price_cents"].as_i64() < pac["price_cents"].as_i64(),
        "the same region is cheaper"
    );
    let heavy =
        app.quote(&json!({"origin_cep": "01310-100", "destination_cep": "90010000", "weight_grams": 9000})).await;
    assert!(heavy.json["options"][0]["price_cents"].as_i64() > pac["price_cents"].as_i64(), "heavier costs more");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_ceps_and_weights_are_refused() {
    let app = spawn_app().await;
    let bad = [
        json!({"origin_cep": "0131-100", "destination_cep": "90010000", "weight_grams": 100}),
        json!({"origin_cep": "01310-100", "destination_cep": "9001000X", "weight_grams": 100}),
        json!({"origin_cep": "01310--100", "destination_cep": "90010000", "weight_grams": 100}),
        json!({"origin_cep": "01310-100", "destination_cep": "90010000", "weight_grams": 0}),
        json!({"origin_cep": "01310-100", "destination_cep": "90010000", "weight_grams": 30001}),
        json!({"origin_cep": "01310-100", "destination_cep": "90010000", "weight_grams": "heavy"}),
        json!({"origin_cep": "01310-100", "weight_grams": 100}),
    ];
    for body in bad {
        let a = app.quote(&body).await;
        assert_eq!(a.status, 400, "{body}: {}", a.text);
        assert_eq!(a.json["error"]["type"], "invalid_request_error", "{body}");
        assert!(a.json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn booking_gives_a_tracking_code_and_one_key_books_once() {
    let app = spawn_app().await;
    let r = reference();
    let k = key();
    let a = app.book(Some(&k), &booking("SEDEX", &r)).await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert!(a.json["id"].as_str().is_some_and(|id| id.starts_with("sh_")));
    let code = a.json["tracking_code"].as_str().expect("a tracking code");
    assert!(
        code.len() == 13
            && code[..2].bytes().all(|b| b.is_ascii_uppercase())
            && code[2..11].bytes().all(|b| b.is_ascii_digit())
            && code.ends_with("BR"),
        "{code}"
    );
    assert_eq!(a.json["service"], "SEDEX");
    assert_eq!(a.json["reference"], r.as_str());
    let estimate = a.json["estimated_delivery"].as_str().expect("an estimate");
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let estimate = time::Date::parse(estimate, &format).expect("YYYY-MM-DD");
    assert!(estimate > time::OffsetDateTime::now_utc().date());
    assert!(a.json["created_at"].is_string());

    let again = app.book(Some(&k), &booking("SEDEX", &r)).await;
    assert_eq!((again.status, &again.json), (a.status, &a.json));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let other = app.book(Some(&k), &booking("PAC", &r)).await;
    assert_eq!(other.status, 400);
    assert_eq!(other.json["error"]["type"], "idempotency_error");
    assert_eq!(app.shipments(&r).await, vec![a.json.clone()]);
    let id = a.json["id"].as_str().expect("an id");
    assert_eq!(app.get(&format!("/v1/shipments/{id}")).await.json, a.json);
    assert_eq!(app.get("/v1/shipments/sh_nope").await.status, 404);

    let second = app.book(Some(&key()), &booking("PAC", &r)).await;
    assert_eq!(second.status, 201);
    let listed: Vec<Value> = app.shipments(&r).await.iter().map(|s| s["id"].clone()).collect();
    assert_eq!(listed, [a.json["id"].clone(), second.json["id"].clone()], "oldest first");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_bookings_with_one_key_book_once() {
    let app = spawn_app().await;
    let r = reference();
    let k = key();
    let body = booking("PAC", &r);
    let answers = futures_util::future::join_all((0..10).map(|_| app.book(Some(&k), &body))).await;
    assert!(answers.iter().all(|a| a.status == 201 && a.json["id"] == answers[0].json["id"]));
    assert_eq!(app.shipments(&r).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bookings_are_refused() {
    let app = spawn_app().await;
    let r = reference();
    assert_eq!(app.book(None, &booking("PAC", &r)).await.status, 400, "the key is required");
    let bad = [
        booking("CARTA", &r),
        json!({"service": "PAC", "origin_cep": "1", "destination_cep": "90010000", "weight_grams": 10, "reference": r}),
        json!({"service": "PAC", "origin_cep": "01310100", "destination_cep": "90010000", "weight_grams": 10}),
    ];
    for body in bad {
        let a = app.book(Some(&key()), &body).await;
        assert_eq!(a.status, 400, "{body}: {}", a.text);
        assert_eq!(a.json["error"]["type"], "invalid_request_error");
    }
    assert!(app.shipments(&r).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_make_the_carrier_fail_and_recover() {
    let app = spawn_app().await;
    let quote = json!({"origin_cep": "01310-100", "destination_cep": "90010000", "weight_grams": 100});

    app.set_faults(json!({"outage": true})).await;
    let down = app.quote(&quote).await;
    assert_eq!(down.status, 503);
    assert_eq!(down.json["error"], json!({"type": "api_error", "message": "service unavailable"}));
    app.set_faults(json!({"outage": false, "fail_next": 1})).await;
    assert_eq!(app.quote(&quote).await.status, 500);
    assert_eq!(app.quote(&quote).await.status, 200, "only the next one failed");

    let r = reference();
    app.set_faults(json!({"fail_next": 1, "fail_mode": "timeout_before", "hang_ms": 200})).await;
    assert_eq!(app.book(Some(&key()), &booking("PAC", &r)).await.status, 504);
    assert!(app.shipments(&r).await.is_empty(), "nothing was booked");

    let view = app.get("/admin/faults").await.json;
    assert_eq!(view["failed_total"], 3);
    let reset = app.client.delete(app.url("/admin/faults")).send().await.expect("reset");
    assert_eq!(reset.status(), 200);
    assert_eq!(app.get("/admin/faults").await.json["requests_total"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_after_books_and_a_retry_with_the_key_finds_the_booking() {
    let app = spawn_app().await;
    let r = reference();
    app.set_faults(json!({"fail_next": 1, "fail_mode": "timeout_after", "hang_ms": 5000})).await;
    let k = key();
    let body = booking("SEDEX", &r);
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().expect("a client");
    let err = impatient
        .post(app.url("/v1/shipments"))
        .header("Idempotency-Key", &k)
        .json(&body)
        .send()
        .await
        .expect_err("the answer never arrives in time");
    assert!(err.is_timeout(), "{err}");

    let booked = eventually(10, "the recorded booking", || async {
        let s = app.shipments(&r).await;
        (!s.is_empty()).then_some(s)
    })
    .await;
    let retry = app.book(Some(&k), &body).await;
    assert_eq!(retry.status, 201);
    assert_eq!(retry.json["id"], booked[0]["id"]);
    assert_eq!(app.shipments(&r).await.len(), 1);
}
