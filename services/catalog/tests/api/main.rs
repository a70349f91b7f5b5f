//! The catalog, end to end: the real service (HTTP, consumers, outbox relay,
//! expiry sweeper) on a private database, RabbitMQ namespace and Redis key
//! prefix per test (see `helpers::spawn_app`). Its cache is in `cache.rs`,
//! its reads from a replica in `replica.rs`.

#![allow(clippy::unwrap_used)]

mod cache;
mod helpers;
mod replica;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use contracts::catalog::{
    CategoryChangedV1, CommitStockV1, OwnerChangedV1, ProductChangedV1, ReleaseStockV1, ReserveStockV1, StockChangedV1,
    StockCommittedV1, StockLineV1, StockRejectedV1, StockReleasedV1, StockReservedV1,
};
use contracts::{Envelope, Message};
use helpers::{Answer, Caller, TestApp, WAIT, id_of, product_body, spawn_app, spawn_app_with};
use platform::testing::eventually;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

fn ids_of(page: &Value) -> Vec<Uuid> {
    page["items"].as_array().unwrap_or_else(|| panic!("a page has items: {page}")).iter().map(id_of).collect()
}

fn reserve_command(order_id: Uuid, lines: &[(Uuid, i64)]) -> Envelope<ReserveStockV1> {
    let lines = lines.iter().map(|(product_id, quantity)| StockLineV1 { product_id: *product_id, quantity: *quantity });
    Envelope::new(ReserveStockV1 { order_id, lines: lines.collect() })
}

// ---------------------------------------------------------------------------
// Owners, categories, products
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seller_creates_their_profile_and_renames_it_and_anyone_reads_it() {
    let app = spawn_app().await;
    let ana = Caller::seller();
    let path = format!("/owners/{}", ana.id());

    let created = app.put(&path, &ana, &json!({"name": "  Loja da Ana "})).await;
    let renamed = app.put(&path, &ana, &json!({"name": "Ana Cerâmicas"})).await;
    let unchanged = app.put(&path, &ana, &json!({"name": "Ana Cerâmicas"})).await;
    let public = app.get(&path, &Caller::Anonymous).await;

    assert_eq!(created.expect(StatusCode::CREATED)["name"], "Loja da Ana", "trimmed");
    assert_eq!(created.location(), Some(path.as_str()));
    assert_eq!(renamed.expect(StatusCode::OK)["name"], "Ana Cerâmicas");
    assert_eq!(unchanged.expect(StatusCode::OK), renamed.expect(StatusCode::OK));
    assert_eq!(public.expect(StatusCode::OK), renamed.expect(StatusCode::OK));
    assert_eq!(public.json["id"], json!(ana.id()));
    let names: Vec<String> = app.outbox::<OwnerChangedV1>().await.into_iter().map(|e| e.payload.name).collect();
    assert_eq!(names, ["Loja da Ana", "Ana Cerâmicas"], "one event per change, none for no change");
    app.get(&format!("/owners/{}", Uuid::now_v7()), &Caller::Anonymous).await.assert_problem(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_is_created_in_a_category_and_anyone_reads_it_back() {
    let app = spawn_app().await;
    let ana = Caller::seller();
    app.owner(&ana).await;
    let mugs = app.category(&ana, "Canecas").await;
    let mut body = product_body("CAN-001");
    body["category_id"] = json!(mugs);

    let created = app.post(&format!("/owners/{}/products", ana.id()), &ana, &body).await;

    let product = created.expect(StatusCode::CREATED).clone();
    let id = id_of(&product);
    assert_eq!(created.location(), Some(format!("/products/{id}").as_str()));
    assert_eq!(product["owner_id"], json!(ana.id()));
    assert_eq!(product["sku"], "CAN-001");
    assert_eq!(product["price_cents"], 3590);
    assert_eq!(product["currency"], "BRL");
    assert_eq!(product["category_id"], json!(mugs));
    assert_eq!(product["active"], true);
    assert_eq!(product["attributes"], json!({"color": "azul", "capacity_ml": 350}));
    assert_eq!(product["available"], 0, "no stock yet");
    let read = app.get(&format!("/products/{id}"), &Caller::Anonymous).await;
    assert_eq!(read.expect(StatusCode::OK), &product, "reads back exactly as created");
    assert_eq!(app.stock_row(id).await, (0, 0, 0));
    app.get(&format!("/products/{}", Uuid::now_v7()), &Caller::Anonymous).await.assert_problem(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inactive_product_is_seen_only_by_its_seller_and_admins() {
    let app = spawn_app().await;
    let (ana, bia) = (Caller::seller(), Caller::seller());
    app.owner(&ana).await;
    let mut body = product_body("HIDDEN-1");
    body["active"] = json!(false);
    let id = id_of(&app.product_from(&ana, &body).await);
    let path = format!("/products/{id}");

    app.get(&path, &ana).await.expect(StatusCode::OK);
    app.get(&path, &Caller::admin()).await.expect(StatusCode::OK);
    app.get(&path, &Caller::Anonymous).await.assert_problem(StatusCode::NOT_FOUND);
    app.get(&path, &bia).await.assert_problem(StatusCode::NOT_FOUND);
    app.get(&path, &Caller::customer()).await.assert_problem(StatusCode::NOT_FOUND);
    let listed = app.get(&format!("/products?owner_id={}", ana.id()), &ana).await;
    assert!(ids_of(listed.expect(StatusCode::OK)).is_empty(), "listings show active products only");

    app.patch(&path, &ana, &json!({"active": true})).await.expect(StatusCode::OK);

    app.get(&path, &Caller::Anonymous).await.expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patching_a_product_changes_only_what_it_names_and_null_takes_it_out_of_its_category() {
    let app = spawn_app().await;
    let ana = Caller::seller();
    app.owner(&ana).await;
    let mugs = app.category(&ana, "Canecas").await;
    let id = app.product(&ana, "CAN-001").await;
    let path = format!("/products/{id}");

    let moved = app.patch(&path, &ana, &json!({"price_cents": 3990, "category_id": mugs})).await;
    let same = app.patch(&path, &ana, &json!({"price_cents": 3990})).await;
    let cleared = app.patch(&path, &ana, &json!({"category_id": null, "attributes": {"color": "verde"}})).await;

    let moved = moved.expect(StatusCode::OK);
    assert_eq!((moved["price_cents"].clone(), moved["category_id"].clone()), (json!(3990), json!(mugs)));
    assert_eq!(moved["title"], "Caneca CAN-001", "untouched");
    assert_eq!(same.expect(StatusCode::OK), moved, "the same value changes nothing");
    let cleared = cleared.expect(StatusCode::OK);
    assert_eq!(cleared["category_id"], Value::Null);
    assert_eq!(cleared["attributes"], json!({"color": "verde"}), "attributes are replaced whole");
    assert_eq!(cleared["price_cents"], 3990);
    let events = app.outbox::<ProductChangedV1>().await;
    let categories: Vec<Option<Uuid>> = events.iter().map(|e| e.payload.category_id).collect();
    assert_eq!(categories, [None, Some(mugs), None], "created, moved, cleared; nothing for the no-op");
    let last = &events[2].payload;
    assert_eq!(last.description, "Caneca de cerâmica esmaltada", "events carry the whole product");
    assert_eq!(last.attributes, json!({"color": "verde"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skus_and_category_names_are_unique_per_owner() {
    let app = spawn_app().await;
    let (ana, bia) = (Caller::seller(), Caller::seller());
    app.owner(&ana).await;
    app.owner(&bia).await;
    let first = app.product(&ana, "CAN-001").await;
    app.category(&ana, "Canecas").await;

    let twice = app.post(&format!("/owners/{}/products", ana.id()), &ana, &product_body("CAN-001")).await;
    let other_owner = app.post(&format!("/owners/{}/products", bia.id()), &bia, &product_body("CAN-001")).await;
    let same_name = app.post(&format!("/owners/{}/categories", ana.id()), &ana, &json!({"name": "CANECAS"})).await;
    let second = app.product(&ana, "CAN-002").await;
    let renamed_onto = app.patch(&format!("/products/{second}"), &ana, &json!({"sku": "CAN-001"})).await;

    twice.assert_problem(StatusCode::CONFLICT);
    other_owner.expect(StatusCode::CREATED);
    same_name.assert_problem(StatusCode::CONFLICT);
    renamed_onto.assert_problem(StatusCode::CONFLICT);
    assert_eq!(app.count("products").await, 3);
    assert_eq!(app.count("categories").await, 1);
    // A deleted product's SKU is free again.
    app.delete(&format!("/products/{first}"), &ana).await.expect(StatusCode::NO_CONTENT);
    app.post(&format!("/owners/{}/products", ana.id()), &ana, &product_body("CAN-001"))
        .await
        .expect(StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_cannot_go_into_another_owners_category() {
    let app = spawn_app().await;
    let (ana, bia) = (Caller::seller(), Caller::seller());
    app.owner(&ana).await;
    app.owner(&bia).await;
    let bias = app.category(&bia, "Livros").await;
    let mut body = product_body("CAN-001");
    body["category_id"] = json!(bias);
    let events_before = app.count("outbox").await;

    let created = app.post(&format!("/owners/{}/products", ana.id()), &ana, &body).await;
    let id = app.product(&ana, "CAN-002").await;
    let patched = app.patch(&format!("/products/{id}"), &ana, &json!({"category_id": bias})).await;
    let unknown = app.patch(&format!("/products/{id}"), &ana, &json!({"category_id": Uuid::now_v7()})).await;

    created.assert_problem(StatusCode::BAD_REQUEST);
    assert_eq!(created.error_fields(), ["category_id"]);
    patched.assert_problem(StatusCode::BAD_REQUEST);
    unknown.assert_problem(StatusCode::BAD_REQUEST);
    assert_eq!(app.count("products").await, 1, "only CAN-002");
    assert_eq!(app.count("outbox").await, events_before + 1, "only CAN-002 announced");
    let read = app.get(&format!("/products/{id}"), &ana).await;
    assert_eq!(read.expect(StatusCode::OK)["category_id"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_category_keeps_its_products_without_a_category() {
    let app = spawn_app().await;
    let ana = Caller::seller();
    app.owner(&ana).await;
    let mugs = app.category(&ana, "Canecas").await;
    let mut body = product_body("CAN-001");
    body["category_id"] = json!(mugs);
    let id = id_of(&app.product_from(&ana, &body).await);

    let renamed = app.put(&format!("/categories/{mugs}"), &ana, &json!({"name": "Xícaras"})).await;
    let deleted = app.delete(&format!("/categories/{mugs}"), &ana).await;

    assert_eq!(renamed.expect(StatusCode::OK)["name"], "Xícaras");
    deleted.expect(StatusCode::NO_CONTENT);
    app.get(&format!("/categories/{mugs}"), &Caller::Anonymous).await.assert_problem(StatusCode::NOT_FOUND);
    let product = app.get(&format!("/products/{id}"), &Caller::Anonymous).await;
    assert_eq!(product.expect(StatusCode::OK)["category_id"], Value::Null);
    let categories = app.outbox::<CategoryChangedV1>().await;
    let seen: Vec<(String, bool)> = categories.iter().map(|e| (e.payload.name.clone(), e.payload.deleted)).collect();
    assert_eq!(seen, [("Canecas".into(), false), ("Xícaras".into(), false), ("Xícaras".into(), true)]);
    let products = app.outbox::<ProductChangedV1>().await;
    assert_eq!(products.len(), 2, "created, then taken out of the category");
    assert_eq!((products[1].payload.category_id, products[1].payload.deleted), (None, false));
    app.delete(&format!("/categories/{mugs}"), &ana).await.assert_problem(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_product_is_gone_for_everyone() {
    let app = spawn_app().await;
    let ana = Caller::seller();
    app.owner(&ana).await;
    let id = app.product(&ana, "CAN-001").await;
    let path = format!("/products/{id}");

    app.delete(&path, &ana).await.expect(StatusCode::NO_CONTENT);

    for who in [&ana, &Caller::admin(), &Caller::Anonymous] {
        app.get(&path, who).await.assert_problem(StatusCode::NOT_FOUND);
    }
    app.get(&format!("{path}/stock"), &ana).await.assert_problem(StatusCode::NOT_FOUND);
    app.patch(&path, &ana, &json!({"price_cents": 1})).await.assert_problem(StatusCode::NOT_FOUND);
    app.delete(&path, &ana).await.assert_problem(StatusCode::NOT_FOUND);
    assert!(ids_of(app.get("/products", &Caller::Anonymous).await.expect(StatusCode::OK)).is_empty());
    let events = app.outbox::<ProductChangedV1>().await;
    let deleted: Vec<bool> = events.iter().map(|e| e.payload.deleted).collect();
    assert_eq!(deleted, [false, true]);
    assert_eq!(events[1].payload.sku, "CAN-001", "the deletion carries the product");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_and_categories_need_the_owner_profile_first() {
    let app = spawn_app().await;
    let ana = Caller::seller();

    let product = app.post(&format!("/owners/{}/products", ana.id()), &ana, &product_body("CAN-001")).await;
    let category = app.post(&format!("/owners/{}/categories", ana.id()), &ana, &json!({"name": "Canecas"})).await;

    product.assert_problem(StatusCode::NOT_FOUND);
    category.assert_problem(StatusCode::NOT_FOUND);
    assert_eq!(app.count("products").await + app.count("categories").await + app.count("outbox").await, 0);
}

// ---------------------------------------------------------------------------
// Bad input: a problem naming the fields, and nothing stored
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalid_product_field_is_named_at_once_and_nothing_is_stored() {
    let app = spawn_app().await;
    let ana = Caller::seller();
    app.owner(&ana).await;
    let before = app.count("outbox").await;
    let body = json!({
        "sku": "CAN 001",
        "title": "   ",
        "description": "x".repeat(5_001),
        "price_cents": -1,
        "currency": "XYZ",
        "attributes": ["not", "an", "object"]
    });

    let answer = app.post(&format!("/owners/{}/products", ana.id()), &ana, &body).await;

    answer.assert_problem(StatusCode::BAD_REQUEST);
    assert_eq!(answer.error_fields(), ["attributes", "currency", "description", "price_cents", "sku", "title"]);
    assert_eq!(app.count("products").await, 0);
    assert_eq!(app.count("stock").await, 0);
    assert_eq!(app.count("outbox").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_parameters_and_ids_are_problems_that_store_nothing() {
    let app = spawn_app().await;
    let (ana, product) = app.stocked_product(5).await;
    let before = (app.count("outbox").await, app.count("products").await, app.stock_row(product).await);
    let products = format!("/owners/{}/products", ana.id());
    let raw = |path: &str, content_type: Option<&'static str>, body: &'static str| {
        let req = app.request(Method::POST, path, &ana).body(body);
        match content_type {
            Some(ct) => req.header("content-type", ct),
            None => req,
        }
    };

    let malformed = Answer::of(raw(&products, Some("application/json"), "{\"sku\": ").send().await).await;
    let no_type = Answer::of(raw(&products, None, "{}").send().await).await;
    let mut wrong = product_body("CAN-9");
    wrong["price_cents"] = json!("cheap");
    let wrong_type = app.post(&products, &ana, &wrong).await;
    let mut extra = product_body("CAN-9");
    extra["discount"] = json!(10);
    let unknown_field = app.post(&products, &ana, &extra).await;
    let negative_stock = app.put(&format!("/products/{product}/stock"), &ana, &json!({"on_hand": -1})).await;
    let zero = app.reserve(Uuid::now_v7(), &[(product, 0)]).await;
    let no_lines = app.reserve(Uuid::now_v7(), &[]).await;
    let long_query = app.get(&format!("/products?q={}", "a".repeat(201)), &Caller::Anonymous).await;
    let bad_limit = app.get("/products?limit=many", &Caller::Anonymous).await;
    let bad_id = app.get("/products/not-a-uuid", &Caller::Anonymous).await;
    let no_owner = app.get("/categories", &Caller::Anonymous).await;
    let empty_name = app.put(&format!("/owners/{}", ana.id()), &ana, &json!({"name": ""})).await;

    malformed.assert_problem(StatusCode::BAD_REQUEST);
    no_type.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    wrong_type.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong_type.json["detail"].as_str().unwrap().contains("price_cents"), "{wrong_type:?}");
    unknown_field.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(unknown_field.json["detail"].as_str().unwrap().contains("discount"), "{unknown_field:?}");
    negative_stock.assert_problem(StatusCode::BAD_REQUEST);
    assert_eq!(negative_stock.error_fields(), ["on_hand"]);
    zero.assert_problem(StatusCode::BAD_REQUEST);
    assert_eq!(zero.error_fields(), ["lines[0].quantity"]);
    no_lines.assert_problem(StatusCode::BAD_REQUEST);
    assert_eq!(no_lines.error_fields(), ["lines"]);
    long_query.assert_problem(StatusCode::BAD_REQUEST);
    assert_eq!(long_query.error_fields(), ["q"]);
    bad_limit.assert_problem(StatusCode::BAD_REQUEST);
    bad_id.assert_problem(StatusCode::BAD_REQUEST);
    no_owner.assert_problem(StatusCode::BAD_REQUEST);
    empty_name.assert_problem(StatusCode::BAD_REQUEST);
    assert_eq!(empty_name.error_fields(), ["name"]);
    let after = (app.count("outbox").await, app.count("products").await, app.stock_row(product).await);
    assert_eq!(after, before, "nothing stored or announced");
    assert_eq!(app.count("reservations").await, 0);
}

// ---------------------------------------------------------------------------
// Who may do what
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_callers_cannot_write_or_see_stock() {
    let app = spawn_app().await;
    let (ana, product) = app.stocked_product(5).await;
    let category = app.category(&ana, "Canecas").await;
    let anon = Caller::Anonymous;
    let before = app.count("outbox").await;

    let answers = [
        app.put(&format!("/owners/{}", ana.id()), &anon, &json!({"name": "x"})).await,
        app.post(&format!("/owners/{}/categories", ana.id()), &anon, &json!({"name": "x"})).await,
        app.post(&format!("/owners/{}/products", ana.id()), &anon, &product_body("X-1")).await,
        app.put(&format!("/categories/{category}"), &anon, &json!({"name": "x"})).await,
        app.delete(&format!("/categories/{category}"), &anon).await,
        app.patch(&format!("/products/{product}"), &anon, &json!({"price_cents": 1})).await,
        app.delete(&format!("/products/{product}"), &anon).await,
        app.get(&format!("/products/{product}/stock"), &anon).await,
        app.put(&format!("/products/{product}/stock"), &anon, &json!({"on_hand": 1})).await,
        app.post(
            "/reservations",
            &anon,
            &json!({"order_id": Uuid::now_v7(), "lines": [{"product_id": product, "quantity": 1}]}),
        )
        .await,
        app.post(&format!("/reservations/{}/release", Uuid::now_v7()), &anon, &json!({})).await,
    ];
    // The body is not even looked at: an invalid one gets 401 too.
    let invalid = app.post(&format!("/owners/{}/products", ana.id()), &anon, &json!({"sku": ""})).await;

    for answer in answers.iter().chain([&invalid]) {
        answer.assert_problem(StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.count("outbox").await, before);
    assert_eq!(app.stock_row(product).await, (5, 0, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seller_cannot_touch_another_sellers_catalog_or_learn_it_exists() {
    let app = spawn_app().await;
    let (ana, product) = app.stocked_product(5).await;
    let category = app.category(&ana, "Canecas").await;
    let bia = Caller::seller();
    app.owner(&bia).await;
    let before = app.count("outbox").await;

    let creating = [
        app.put(&format!("/owners/{}", ana.id()), &bia, &json!({"name": "mine now"})).await,
        app.post(&format!("/owners/{}/categories", ana.id()), &bia, &json!({"name": "x"})).await,
        app.post(&format!("/owners/{}/products", ana.id()), &bia, &product_body("X-1")).await,
    ];
    let touching = [
        app.put(&format!("/categories/{category}"), &bia, &json!({"name": "x"})).await,
        app.delete(&format!("/categories/{category}"), &bia).await,
        app.patch(&format!("/products/{product}"), &bia, &json!({"price_cents": 1})).await,
        app.delete(&format!("/products/{product}"), &bia).await,
        app.get(&format!("/products/{product}/stock"), &bia).await,
        app.put(&format!("/products/{product}/stock"), &bia, &json!({"on_hand": 0})).await,
    ];
    // Exactly what a product that does not exist answers.
    let missing = Uuid::now_v7();
    let absent = [
        app.patch(&format!("/products/{missing}"), &bia, &json!({"price_cents": 1})).await,
        app.get(&format!("/products/{missing}/stock"), &bia).await,
    ];

    for answer in &creating {
        answer.assert_problem(StatusCode::FORBIDDEN);
    }
    for answer in touching.iter().chain(&absent) {
        answer.assert_problem(StatusCode::NOT_FOUND);
    }
    assert_eq!(touching[2].json["detail"], absent[0].json["detail"]);
    assert_eq!(app.count("outbox").await, before, "nothing changed");
    assert_eq!(app.stock_row(product).await, (5, 0, 5));
    let read = app.get(&format!("/products/{product}"), &ana).await;
    assert_eq!(read.expect(StatusCode::OK)["price_cents"], 3590);
    // An admin may manage anyone's catalog.
    let admin = Caller::admin();
    app.patch(&format!("/products/{product}"), &admin, &json!({"price_cents": 1})).await.expect(StatusCode::OK);
    app.put(&format!("/products/{product}/stock"), &admin, &json!({"on_hand": 7})).await.expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_cannot_write_even_under_their_own_id() {
    let app = spawn_app().await;
    let (_ana, product) = app.stocked_product(5).await;
    let carla = Caller::customer();
    let before = app.count("outbox").await;

    let own = [
        app.put(&format!("/owners/{}", carla.id()), &carla, &json!({"name": "Carla"})).await,
        app.post(&format!("/owners/{}/products", carla.id()), &carla, &product_body("X-1")).await,
        app.post(&format!("/owners/{}/categories", carla.id()), &carla, &json!({"name": "x"})).await,
    ];
    let operating = [
        app.post(
            "/reservations",
            &carla,
            &json!({"order_id": Uuid::now_v7(), "lines": [{"product_id": product, "quantity": 1}]}),
        )
        .await,
        app.get(&format!("/reservations/{}", Uuid::now_v7()), &carla).await,
        app.post(&format!("/reservations/{}/commit", Uuid::now_v7()), &carla, &json!({})).await,
    ];
    let others = [
        app.patch(&format!("/products/{product}"), &carla, &json!({"price_cents": 1})).await,
        app.get(&format!("/products/{product}/stock"), &carla).await,
    ];

    for answer in own.iter().chain(&operating) {
        answer.assert_problem(StatusCode::FORBIDDEN);
    }
    for answer in &others {
        answer.assert_problem(StatusCode::NOT_FOUND);
    }
    assert_eq!(app.count("outbox").await, before, "nothing changed");
    assert_eq!(app.count("owners").await, 1, "only the seller's");
    assert_eq!(app.stock_row(product).await, (5, 0, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_count_only_with_a_user_id_and_a_malformed_id_is_refused() {
    let app = spawn_app().await;
    let (ana, product) = app.stocked_product(5).await;
    let admin_without_id = Caller::Raw { user_id: None, roles: Some("admin,seller".into()) };
    let malformed = Caller::Raw { user_id: Some("not-a-uuid".into()), roles: Some("admin".into()) };
    let owner_without_role = Caller::Raw { user_id: Some(ana.id().to_string()), roles: Some("customer".into()) };
    let unknown_role = Caller::Raw { user_id: Some(Uuid::now_v7().to_string()), roles: Some("root, superuser".into()) };
    let before = app.count("outbox").await;

    let no_user = app.patch(&format!("/products/{product}"), &admin_without_id, &json!({"price_cents": 1})).await;
    let no_user_stock = app.get(&format!("/products/{product}/stock"), &admin_without_id).await;
    let bad_id = app.patch(&format!("/products/{product}"), &malformed, &json!({"price_cents": 1})).await;
    let bad_id_read = app.get(&format!("/products/{product}"), &malformed).await;
    let demoted = app.patch(&format!("/products/{product}"), &owner_without_role, &json!({"price_cents": 1})).await;
    // An invalid body: an admin is told so, someone without a known role is refused first.
    let admin_empty = app.reserve(Uuid::now_v7(), &[]).await;
    let pretender = app.post("/reservations", &unknown_role, &json!({"order_id": Uuid::now_v7(), "lines": []})).await;

    no_user.assert_problem(StatusCode::UNAUTHORIZED);
    no_user_stock.assert_problem(StatusCode::UNAUTHORIZED);
    bad_id.assert_problem(StatusCode::BAD_REQUEST);
    bad_id_read.assert_problem(StatusCode::BAD_REQUEST);
    demoted.assert_problem(StatusCode::FORBIDDEN);
    admin_empty.assert_problem(StatusCode::BAD_REQUEST);
    pretender.assert_problem(StatusCode::FORBIDDEN);
    assert_eq!(app.count("outbox").await, before);
    assert_eq!(app.get(&format!("/products/{product}"), &ana).await.expect(StatusCode::OK)["price_cents"], 3590);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stock_endpoints_show_the_seller_their_stock_and_its_reservations() {
    let app = spawn_app().await;
    let (ana, product) = app.stocked_product(10).await;
    let order = Uuid::now_v7();
    app.reserve(order, &[(product, 4)]).await.expect(StatusCode::CREATED);

    let stock = app.get(&format!("/products/{product}/stock"), &ana).await;
    let below = app.put(&format!("/products/{product}/stock"), &ana, &json!({"on_hand": 3})).await;
    let raised = app.put(&format!("/products/{product}/stock"), &ana, &json!({"on_hand": 12})).await;

    let stock = stock.expect(StatusCode::OK);
    assert_eq!(
        (stock["on_hand"].clone(), stock["reserved"].clone(), stock["available"].clone()),
        (json!(10), json!(4), json!(6))
    );
    assert_eq!(stock["reservations"].as_array().unwrap().len(), 1);
    assert_eq!(stock["reservations"][0]["order_id"], json!(order));
    assert_eq!(stock["reservations"][0]["quantity"], 4);
    below.assert_problem(StatusCode::CONFLICT);
    let raised = raised.expect(StatusCode::OK);
    assert_eq!((raised["on_hand"].clone(), raised["available"].clone()), (json!(12), json!(8)));
    assert_eq!(app.stock_row(product).await, (12, 4, 8));
    let public = app.get(&format!("/products/{product}"), &Caller::Anonymous).await;
    assert_eq!(public.expect(StatusCode::OK)["available"], 8, "the public sees what it can buy");
    let levels: Vec<(i64, i64)> =
        app.outbox::<StockChangedV1>().await.iter().map(|e| (e.payload.on_hand, e.payload.reserved)).collect();
    assert_eq!(levels, [(10, 0), (10, 4), (12, 4)], "set, reserved, raised; nothing for the refused change");
}

// ---------------------------------------------------------------------------
// Listing, search and the catalog document
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_next_cursor_lists_every_active_product_once_newest_first() {
    let app = spawn_app().await;
    let (ana, bia) = (Caller::seller(), Caller::seller());
    app.owner(&ana).await;
    app.owner(&bia).await;
    let mugs = app.category(&ana, "Canecas").await;
    let mut anas = Vec::new();
    for n in 0..5 {
        let mut body = product_body(&format!("CAN-{n}"));
        if n % 2 == 0 {
            body["category_id"] = json!(mugs);
        }
        anas.push(id_of(&app.product_from(&ana, &body).await));
    }
    let mut hidden = product_body("HIDDEN");
    hidden["active"] = json!(false);
    app.product_from(&ana, &hidden).await;
    let bias = app.product(&bia, "LIV-1").await;

    let mut pages = Vec::new();
    let mut path = format!("/products?owner_id={}&limit=2", ana.id());
    loop {
        let page = app.get(&path, &Caller::Anonymous).await;
        let page = page.expect(StatusCode::OK).clone();
        pages.push(ids_of(&page));
        match page.get("next_cursor") {
            Some(cursor) => {
                path = format!("/products?owner_id={}&limit=2&cursor={}", ana.id(), cursor.as_str().unwrap())
            }
            None => break,
        }
        assert!(pages.len() < 10, "the pages never end");
    }
    let in_category = app.get(&format!("/products?category_id={mugs}"), &Caller::Anonymous).await;
    let everyone = app.get("/products", &Caller::Anonymous).await;

    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1]);
    let newest_first: Vec<Uuid> = anas.iter().rev().copied().collect();
    assert_eq!(pages.concat(), newest_first, "every active product once, newest first");
    assert_eq!(ids_of(in_category.expect(StatusCode::OK)), [anas[4], anas[2], anas[0]]);
    let all = ids_of(everyone.expect(StatusCode::OK));
    assert_eq!(all.len(), 6);
    assert_eq!(all[0], bias);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searching_finds_words_in_titles_and_descriptions() {
    let app = spawn_app().await;
    let ana = Caller::seller();
    app.owner(&ana).await;
    let make = |sku: &str, title: &str, description: &str| json!({"sku": sku, "title": title, "description": description, "price_cents": 100});
    let blue = id_of(&app.product_from(&ana, &make("A", "Caneca azul", "Cerâmica")).await);
    let big = id_of(&app.product_from(&ana, &make("B", "Caneca azul grande", "Porcelana")).await);
    let book = id_of(&app.product_from(&ana, &make("C", "Livro de receitas", "Capa azul, 200 páginas")).await);
    let search = |q: &'static str| {
        let app = &app;
        async move {
            let answer = app.get(&format!("/products?q={q}"), &Caller::Anonymous).await;
            let mut ids = ids_of(answer.expect(StatusCode::OK));
            ids.sort();
            ids
        }
    };
    let sorted = |mut v: Vec<Uuid>| {
        v.sort();
        v
    };

    assert_eq!(search("caneca").await, sorted(vec![blue, big]), "case does not matter");
    assert_eq!(search("azul").await, sorted(vec![blue, big, book]), "descriptions count");
    assert_eq!(search("azul%20-grande").await, sorted(vec![blue, book]), "web search syntax excludes words");
    assert_eq!(search("%22azul%20grande%22").await, vec![big], "a quoted phrase");
    assert_eq!(search("porcelana%20or%20receitas").await, sorted(vec![big, book]));
    assert!(search("inexistente").await.is_empty());
    assert_eq!(search("%20%20").await.len(), 3, "a blank search lists everything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_catalog_has_each_category_with_its_active_products_and_stock_in_a_stable_order() {
    let app = spawn_app().await;
    let ana = Caller::seller();
    app.put(&format!("/owners/{}", ana.id()), &ana, &json!({"name": "Loja da Ana"})).await.expect(StatusCode::CREATED);
    let mugs = app.category(&ana, "Canecas").await;
    let books = app.category(&ana, "Livros").await;
    let empty = app.category(&ana, "Agendas").await;
    let in_mugs = |sku: &str, active: bool, attributes: Value| {
        let mut b = product_body(sku);
        b["category_id"] = json!(mugs);
        b["active"] = json!(active);
        b["attributes"] = attributes;
        b
    };
    let z = id_of(&app.product_from(&ana, &in_mugs("Z-1", true, json!({"z": 1, "a": [2, 1]}))).await);
    let a = id_of(&app.product_from(&ana, &in_mugs("A-1", true, json!({}))).await);
    app.product_from(&ana, &in_mugs("H-1", false, json!({}))).await;
    let loose = app.product(&ana, "SOLTO-1").await;
    app.stock(&ana, a, 7).await;
    app.reserve(Uuid::now_v7(), &[(a, 2)]).await.expect(StatusCode::CREATED);
    // Someone else's catalog does not leak in.
    let bia = Caller::seller();
    app.owner(&bia).await;
    app.product(&bia, "B-1").await;

    let first = app.get(&format!("/owners/{}/catalog", ana.id()), &Caller::Anonymous).await;
    let second = app.get(&format!("/owners/{}/catalog", ana.id()), &Caller::customer()).await;

    let doc = first.expect(StatusCode::OK);
    assert_eq!(first.text, second.text, "the same catalog, byte for byte");
    assert_eq!(doc["owner"], json!({"id": ana.id(), "name": "Loja da Ana"}));
    let categories: Vec<(Uuid, &str)> =
        doc["categories"].as_array().unwrap().iter().map(|c| (id_of(c), c["name"].as_str().unwrap())).collect();
    assert_eq!(categories, [(empty, "Agendas"), (mugs, "Canecas"), (books, "Livros")], "by name");
    let mug_products = doc["categories"][1]["products"].as_array().unwrap();
    assert_eq!(mug_products.iter().map(id_of).collect::<Vec<_>>(), [a, z], "active only, by SKU");
    assert_eq!(
        mug_products[0],
        json!({
            "id": a, "sku": "A-1", "title": "Caneca A-1", "description": "Caneca de cerâmica esmaltada",
            "price_cents": 3590, "currency": "BRL", "attributes": {}, "available": 5
        })
    );
    assert_eq!(mug_products[1]["attributes"], json!({"a": [2, 1], "z": 1}));
    assert!(doc["categories"][0]["products"].as_array().unwrap().is_empty());
    assert_eq!(doc["uncategorized"].as_array().unwrap().iter().map(id_of).collect::<Vec<_>>(), [loose]);
    app.get(&format!("/owners/{}/catalog", Uuid::now_v7()), &Caller::Anonymous)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------------------
// Reservations
// ---------------------------------------------------------------------------

/// Keeps reading the stock row while `work` runs and returns the lowest
/// `available` it saw.
async fn lowest_available_during<F: std::future::Future>(app: &TestApp, product: Uuid, work: F) -> (F::Output, i64) {
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (db, done) = (app.db.clone(), done.clone());
        tokio::spawn(async move {
            let mut lowest = i64::MAX;
            while !done.load(Ordering::Acquire) {
                let (on_hand, reserved): (i64, i64) =
                    sqlx::query_as("SELECT on_hand, reserved FROM stock WHERE product_id = $1")
                        .bind(product)
                        .fetch_one(&db)
                        .await
                        .unwrap();
                lowest = lowest.min(on_hand - reserved);
            }
            lowest
        })
    };
    let out = work.await;
    done.store(true, Ordering::Release);
    (out, watcher.await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_reservations_over_http_sell_exactly_the_ten_in_stock() {
    let app = spawn_app().await;
    let (_ana, product) = app.stocked_product(10).await;
    let orders: Vec<Uuid> = (0..50).map(|_| Uuid::now_v7()).collect();

    let (answers, lowest) = lowest_available_during(&app, product, async {
        let mut tasks = tokio::task::JoinSet::new();
        for order in &orders {
            let req = app
                .request(Method::POST, "/reservations", &Caller::admin())
                .json(&json!({"order_id": order, "lines": [{"product_id": product, "quantity": 1}]}));
            tasks.spawn(async move { Answer::of(req.send().await).await });
        }
        tasks.join_all().await
    })
    .await;

    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for answer in &answers {
        let r = answer.expect(StatusCode::CREATED);
        let key = format!("{}:{}", r["status"].as_str().unwrap(), r["reason"].as_str().unwrap_or("-"));
        *outcomes.entry(key).or_default() += 1;
        if r["status"] == "rejected" {
            assert_eq!(r["short_lines"], json!([{"product_id": product, "requested": 1, "available": 0}]));
        }
    }
    assert_eq!(outcomes, BTreeMap::from([("rejected:out_of_stock".into(), 40), ("reserved:-".into(), 10)]));
    assert_eq!(app.stock_row(product).await, (10, 10, 0));
    assert!(lowest >= 0, "available went down to {lowest}");
    let reserved: i64 = sqlx::query_scalar("SELECT count(*) FROM reservations WHERE status = 'reserved'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(reserved, 10);
    assert_eq!(app.outbox::<StockReservedV1>().await.len(), 10);
    assert_eq!(app.outbox::<StockRejectedV1>().await.len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reserve_commands_over_rabbitmq_sell_exactly_the_ten_in_stock() {
    let app = spawn_app().await;
    let (_ana, product) = app.stocked_product(10).await;
    let replies = app.subscribe(&[StockReservedV1::ROUTING_KEY, StockRejectedV1::ROUTING_KEY]).await;
    let commands: Vec<Envelope<ReserveStockV1>> =
        (0..50).map(|_| reserve_command(Uuid::now_v7(), &[(product, 1)])).collect();

    let (received, lowest) = lowest_available_during(&app, product, async {
        for c in &commands {
            app.publish(c).await;
        }
        replies.take(50).await
    })
    .await;

    let by_order: BTreeMap<Uuid, &Envelope<ReserveStockV1>> =
        commands.iter().map(|c| (c.payload.order_id, c)).collect();
    let (mut reserved, mut rejected) = (HashSet::new(), HashSet::new());
    for r in &received {
        let order = Uuid::parse_str(r.envelope.payload["order_id"].as_str().unwrap()).unwrap();
        let command = by_order[&order];
        assert_eq!(r.envelope.causation_id, Some(command.message_id), "a reply is caused by its command");
        assert_eq!(r.envelope.correlation_id, command.correlation_id);
        if r.routing_key == StockReservedV1::ROUTING_KEY {
            let reply: StockReservedV1 = r.payload();
            assert_eq!(reply.lines, [StockLineV1 { product_id: product, quantity: 1 }]);
            reserved.insert(order);
        } else {
            let reply: StockRejectedV1 = r.payload();
            assert_eq!(reply.reason, "out_of_stock");
            assert_eq!((reply.short_lines[0].requested, reply.short_lines[0].available), (1, 0));
            rejected.insert(order);
        }
    }
    assert_eq!((reserved.len(), rejected.len()), (10, 40), "one reply per order");
    assert_eq!(app.stock_row(product).await, (10, 10, 0));
    assert!(lowest >= 0, "available went down to {lowest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_over_http_and_rabbitmq_at_once_never_oversell_two_products() {
    let app = spawn_app().await;
    let (ana, mugs) = app.stocked_product(10).await;
    let books = app.product(&ana, "LIV-1").await;
    app.stock(&ana, books, 10).await;
    let replies = app.subscribe(&[StockReservedV1::ROUTING_KEY, StockRejectedV1::ROUTING_KEY]).await;
    // The commands name the products in the other order.
    let commands: Vec<Envelope<ReserveStockV1>> =
        (0..30).map(|_| reserve_command(Uuid::now_v7(), &[(books, 1), (mugs, 1)])).collect();

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let req = app.request(Method::POST, "/reservations", &Caller::admin()).json(&json!({
            "order_id": Uuid::now_v7(),
            "lines": [{"product_id": mugs, "quantity": 1}, {"product_id": books, "quantity": 1}]
        }));
        tasks.spawn(async move { Answer::of(req.send().await).await });
    }
    for c in &commands {
        app.publish(c).await;
    }
    let answers = tasks.join_all().await;
    // The HTTP reservations are announced too: 60 messages in all.
    let received = replies.take(60).await;

    let by_http = answers.iter().filter(|a| a.expect(StatusCode::CREATED)["status"] == "reserved").count();
    let command_ids: HashSet<Uuid> = commands.iter().map(|c| c.message_id).collect();
    let by_command = received
        .iter()
        .filter(|r| r.routing_key == StockReservedV1::ROUTING_KEY)
        .filter(|r| r.envelope.causation_id.is_some_and(|id| command_ids.contains(&id)))
        .count();
    assert_eq!(by_http + by_command, 10, "{by_http} over HTTP and {by_command} by command");
    assert_eq!(app.stock_row(mugs).await, (10, 10, 0));
    assert_eq!(app.stock_row(books).await, (10, 10, 0));
    let lines: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM reservation_lines l JOIN reservations r USING (order_id) WHERE r.status = 'reserved'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(lines, 20, "each reserved order holds both products");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeating_a_reservation_changes_nothing_and_answers_the_first_outcome() {
    let app = spawn_app().await;
    let (ana, product) = app.stocked_product(3).await;
    let replies = app.subscribe(&[StockReservedV1::ROUTING_KEY, StockRejectedV1::ROUTING_KEY]).await;
    let (kept, refused) = (Uuid::now_v7(), Uuid::now_v7());

    // Over HTTP: the same request answers the same reservation, byte for byte.
    let first = app.reserve(kept, &[(product, 2)]).await;
    let again = app.reserve(kept, &[(product, 2)]).await;
    let other_lines = app.reserve(kept, &[(product, 1)]).await;
    let too_many = app.reserve(refused, &[(product, 5)]).await;
    app.stock(&ana, product, 10).await;
    let too_many_again = app.reserve(refused, &[(product, 5)]).await;

    first.expect(StatusCode::CREATED);
    assert_eq!(again.expect(StatusCode::OK), first.expect(StatusCode::CREATED));
    assert_eq!(again.text, first.text);
    other_lines.assert_problem(StatusCode::CONFLICT);
    assert_eq!(too_many.expect(StatusCode::CREATED)["reason"], "out_of_stock");
    assert_eq!(too_many_again.expect(StatusCode::OK), too_many.expect(StatusCode::CREATED), "the first outcome stands");
    assert_eq!(app.stock_row(product).await, (10, 2, 8));

    // Over RabbitMQ: new commands for the same orders re-announce the outcomes.
    let kept_again = reserve_command(kept, &[(product, 2)]);
    let refused_again = reserve_command(refused, &[(product, 5)]);
    app.publish(&kept_again).await;
    app.publish(&refused_again).await;
    // The HTTP outcomes are published too (caused by nothing): four in all.
    let received = replies.take(4).await;
    let caused_by = |c: &Envelope<ReserveStockV1>| {
        received.iter().find(|r| r.envelope.causation_id == Some(c.message_id)).expect("a reply to the command")
    };

    let announced: Vec<StockReservedV1> =
        app.outbox::<StockReservedV1>().await.into_iter().map(|e| e.payload).collect();
    assert_eq!(announced.len(), 2, "HTTP announced once, the command once more");
    assert_eq!(announced[1], announced[0], "the same reservation, the same expiry");
    let reply = caused_by(&kept_again);
    assert_eq!(reply.routing_key, StockReservedV1::ROUTING_KEY);
    assert_eq!(reply.payload::<StockReservedV1>(), announced[0]);
    let rejection = caused_by(&refused_again);
    assert_eq!(rejection.routing_key, StockRejectedV1::ROUTING_KEY);
    assert_eq!(rejection.payload::<StockRejectedV1>().reason, "out_of_stock");
    assert_eq!(rejection.payload::<StockRejectedV1>().short_lines[0].available, 1, "as it was when decided");
    assert_eq!(app.stock_row(product).await, (10, 2, 8), "nothing moved");
    assert_eq!(app.count("reservations").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_takes_every_line_or_none_and_names_every_short_line() {
    let app = spawn_app().await;
    let (ana, mugs) = app.stocked_product(5).await;
    let books = app.product(&ana, "LIV-1").await;
    app.stock(&ana, books, 1).await;
    let mut hidden = product_body("HIDDEN");
    hidden["active"] = json!(false);
    let inactive = id_of(&app.product_from(&ana, &hidden).await);
    app.stock(&ana, inactive, 9).await;
    let ghost = Uuid::now_v7();

    let short = app.reserve(Uuid::now_v7(), &[(mugs, 3), (books, 2)]).await;
    let unknown = app.reserve(Uuid::now_v7(), &[(mugs, 1), (ghost, 1), (inactive, 1)]).await;
    let merged = app.reserve(Uuid::now_v7(), &[(books, 1), (mugs, 2), (mugs, 3)]).await;

    let short = short.expect(StatusCode::CREATED);
    assert_eq!((short["status"].as_str(), short["reason"].as_str()), (Some("rejected"), Some("out_of_stock")));
    assert_eq!(short["short_lines"], json!([{"product_id": books, "requested": 2, "available": 1}]));
    assert!(short.get("expires_at").is_none());
    let unknown = unknown.expect(StatusCode::CREATED);
    assert_eq!(unknown["reason"], "unknown_product");
    let mut short_ids: Vec<Uuid> = unknown["short_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["product_id"].as_str().unwrap().parse().unwrap())
        .collect();
    short_ids.sort();
    let mut expected = vec![ghost, inactive];
    expected.sort();
    assert_eq!(short_ids, expected, "unknown and inactive products are short");
    let merged = merged.expect(StatusCode::CREATED);
    assert_eq!(merged["status"], "reserved");
    let mut lines: Vec<(String, i64)> = merged["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["product_id"].as_str().unwrap().to_string(), l["quantity"].as_i64().unwrap()))
        .collect();
    lines.sort();
    let mut want = vec![(mugs.to_string(), 5), (books.to_string(), 1)];
    want.sort();
    assert_eq!(lines, want, "lines of one product are added up");
    assert!(merged["expires_at"].is_string());
    assert_eq!(app.stock_row(mugs).await, (5, 5, 0));
    assert_eq!(app.stock_row(books).await, (1, 1, 0));
    assert_eq!(app.stock_row(inactive).await, (9, 0, 9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committing_sells_held_stock_once_releasing_gives_it_back_once_and_a_sale_can_be_returned() {
    let app = spawn_app().await;
    let (_ana, product) = app.stocked_product(10).await;
    let (sold, given_back) = (Uuid::now_v7(), Uuid::now_v7());
    app.reserve(sold, &[(product, 3)]).await.expect(StatusCode::CREATED);
    app.reserve(given_back, &[(product, 2)]).await.expect(StatusCode::CREATED);
    assert_eq!(app.stock_row(product).await, (10, 5, 5));
    let admin = Caller::admin();
    let op = |order: Uuid, what: &str| format!("/reservations/{order}/{what}");

    let commit = app.post(&op(sold, "commit"), &admin, &json!({})).await;
    let commit_again = app.post(&op(sold, "commit"), &admin, &json!({})).await;
    let release_sold = app.post(&op(sold, "release"), &admin, &json!({})).await;
    let release = app.post(&op(given_back, "release"), &admin, &json!({})).await;
    let release_again = app.post(&op(given_back, "release"), &admin, &json!({})).await;
    let commit_released = app.post(&op(given_back, "commit"), &admin, &json!({})).await;
    let unknown_commit = app.post(&op(Uuid::now_v7(), "commit"), &admin, &json!({})).await;
    let unknown_release = app.post(&op(Uuid::now_v7(), "release"), &admin, &json!({})).await;

    assert_eq!(commit.expect(StatusCode::OK)["status"], "committed");
    assert_eq!(commit_again.expect(StatusCode::OK)["status"], "committed");
    assert_eq!(release_sold.expect(StatusCode::OK)["status"], "returned", "a sale undone before shipment");
    assert_eq!(release.expect(StatusCode::OK)["status"], "released");
    assert_eq!(release_again.expect(StatusCode::OK)["status"], "released");
    commit_released.assert_problem(StatusCode::CONFLICT);
    unknown_commit.assert_problem(StatusCode::NOT_FOUND);
    unknown_release.assert_problem(StatusCode::NOT_FOUND);
    assert_eq!(app.stock_row(product).await, (10, 0, 10), "3 sold once and returned once, 2 given back once");
    let read = app.get(&format!("/reservations/{sold}"), &admin).await;
    assert_eq!(read.expect(StatusCode::OK)["status"], "returned");
    assert_eq!(app.outbox::<StockCommittedV1>().await.len(), 1);
    let released: Vec<String> = app.outbox::<StockReleasedV1>().await.into_iter().map(|e| e.payload.reason).collect();
    assert_eq!(released, ["returned", "released"]);
    let levels: Vec<(i64, i64)> =
        app.outbox::<StockChangedV1>().await.iter().map(|e| (e.payload.on_hand, e.payload.reserved)).collect();
    assert_eq!(levels, [(10, 0), (10, 3), (10, 5), (7, 2), (10, 2), (10, 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_and_commit_commands_are_answered_with_what_happened() {
    let app = spawn_app().await;
    let (_ana, product) = app.stocked_product(10).await;
    let replies = app
        .subscribe(&[StockReservedV1::ROUTING_KEY, StockReleasedV1::ROUTING_KEY, StockCommittedV1::ROUTING_KEY])
        .await;
    let (sold, given_back, never) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    app.publish(&reserve_command(sold, &[(product, 4)])).await;
    app.publish(&reserve_command(given_back, &[(product, 1)])).await;
    assert_eq!(replies.take(2).await.len(), 2);

    let commands = [
        (sold, "commit", Command::commit(sold)),
        (sold, "commit again", Command::commit(sold)),
        (given_back, "release", Command::release(given_back, "payment_declined")),
        (given_back, "commit after release", Command::commit(given_back)),
        (never, "release unknown", Command::release(never, "timeout")),
    ];
    let mut answers = BTreeMap::new();
    for (order, what, command) in &commands {
        command.publish(&app).await;
        // Each answer before the next command: the two queues are not ordered
        // with each other.
        let reply = replies.take(1).await.remove(0);
        assert_eq!(reply.envelope.causation_id, Some(command.message_id()), "{what}");
        assert_eq!(reply.envelope.payload["order_id"], json!(order), "{what}");
        answers
            .insert(*what, (reply.routing_key.clone(), reply.envelope.payload["reason"].as_str().map(str::to_string)));
    }

    let released = Some("released".to_string());
    assert_eq!(answers["commit"], (StockCommittedV1::ROUTING_KEY.to_string(), None));
    assert_eq!(answers["commit again"], (StockCommittedV1::ROUTING_KEY.to_string(), None));
    assert_eq!(answers["release"], (StockReleasedV1::ROUTING_KEY.to_string(), released.clone()));
    assert_eq!(answers["commit after release"], (StockReleasedV1::ROUTING_KEY.to_string(), released));
    assert_eq!(answers["release unknown"], (StockReleasedV1::ROUTING_KEY.to_string(), Some("nothing_reserved".into())));
    assert_eq!(app.stock_row(product).await, (6, 0, 6), "4 sold once, 1 given back");
    assert_eq!(app.reservation_status(given_back).await.as_deref(), Some("released"));
    let reason: Option<String> = sqlx::query_scalar("SELECT reason FROM reservations WHERE order_id = $1")
        .bind(given_back)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(reason.as_deref(), Some("payment_declined"), "the saga's reason is kept");
    assert_eq!(app.reservation_status(never).await, None, "nothing recorded for an unknown order");
}

/// A saga command of either kind.
enum Command {
    Commit(Envelope<CommitStockV1>),
    Release(Envelope<ReleaseStockV1>),
}

impl Command {
    fn commit(order_id: Uuid) -> Self {
        Command::Commit(Envelope::new(CommitStockV1 { order_id }))
    }

    fn release(order_id: Uuid, reason: &str) -> Self {
        Command::Release(Envelope::new(ReleaseStockV1 { order_id, reason: reason.into() }))
    }

    fn message_id(&self) -> Uuid {
        match self {
            Command::Commit(e) => e.message_id,
            Command::Release(e) => e.message_id,
        }
    }

    async fn publish(&self, app: &TestApp) {
        match self {
            Command::Commit(e) => app.publish(e).await,
            Command::Release(e) => app.publish(e).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_reserve_command_is_rejected_as_invalid_request_and_stores_nothing() {
    let app = spawn_app().await;
    let (_ana, product) = app.stocked_product(10).await;
    let replies = app.subscribe(&[StockRejectedV1::ROUTING_KEY]).await;
    let empty = reserve_command(Uuid::now_v7(), &[]);
    let zero = reserve_command(Uuid::now_v7(), &[(product, 0)]);

    app.publish(&empty).await;
    app.publish(&zero).await;
    let received = replies.take(2).await;

    for (reply, command) in received.iter().zip([&empty, &zero]) {
        let rejected: StockRejectedV1 = reply.payload();
        assert_eq!(rejected.order_id, command.payload.order_id);
        assert_eq!(rejected.reason, "invalid_request");
        assert!(rejected.short_lines.is_empty());
        assert_eq!(reply.envelope.causation_id, Some(command.message_id));
    }
    assert_eq!(app.count("reservations").await, 0);
    assert_eq!(app.stock_row(product).await, (10, 0, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_neither_committed_nor_released_expires_and_gives_its_stock_back() {
    let app = spawn_app_with(|env| {
        env.set("FEIRA_CATALOG_RESERVATION_TTL", "1s");
    })
    .await;
    let (_ana, product) = app.stocked_product(5).await;
    let replies = app.subscribe(&[StockReleasedV1::ROUTING_KEY]).await;
    let by_http = Uuid::now_v7();
    let by_command = reserve_command(Uuid::now_v7(), &[(product, 1)]);
    app.reserve(by_http, &[(product, 3)]).await.expect(StatusCode::CREATED);
    app.publish(&by_command).await;
    let db = app.db.clone();
    eventually(WAIT, "the command's reservation", || async {
        app.reservation_status(by_command.payload.order_id).await.map(|_| ())
    })
    .await;

    eventually(WAIT, "both reservations to expire", || {
        let db = db.clone();
        async move {
            let expired: i64 = sqlx::query_scalar("SELECT count(*) FROM reservations WHERE status = 'expired'")
                .fetch_one(&db)
                .await
                .ok()?;
            (expired == 2).then_some(())
        }
    })
    .await;
    let released = replies.take(2).await;

    assert_eq!(app.stock_row(product).await, (5, 0, 5), "the stock is back");
    for r in &released {
        assert_eq!(r.payload::<StockReleasedV1>().reason, "expired");
    }
    let from_command = released
        .iter()
        .find(|r| r.envelope.payload["order_id"] == json!(by_command.payload.order_id))
        .expect("the command's reservation expired");
    assert_eq!(from_command.envelope.correlation_id, by_command.correlation_id, "the saga's flow is kept");
    let levels: Vec<i64> = app.outbox::<StockChangedV1>().await.iter().map(|e| e.payload.reserved).collect();
    assert_eq!(levels.last(), Some(&0));
    // Committing an expired reservation sells nothing.
    let late = app.post(&format!("/reservations/{by_http}/commit"), &Caller::admin(), &json!({})).await;
    late.assert_problem(StatusCode::CONFLICT);
    assert_eq!(app.stock_row(product).await, (5, 0, 5));
    let read = app.get(&format!("/reservations/{by_http}"), &Caller::admin()).await;
    assert_eq!(read.expect(StatusCode::OK)["status"], "expired");
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_leaves_its_event_in_the_outbox_and_the_relay_publishes_it() {
    let app = spawn_app().await;
    let all = app.subscribe(&["catalog.*.v1"]).await;
    let ana = Caller::seller();

    app.owner(&ana).await;
    let mugs = app.category(&ana, "Canecas").await;
    let mut body = product_body("CAN-001");
    body["category_id"] = json!(mugs);
    let product = id_of(&app.product_from(&ana, &body).await);
    app.stock(&ana, product, 4).await;
    app.patch(&format!("/products/{product}"), &ana, &json!({"title": "Caneca nova"})).await.expect(StatusCode::OK);
    app.reserve(Uuid::now_v7(), &[(product, 1)]).await.expect(StatusCode::CREATED);
    app.delete(&format!("/categories/{mugs}"), &ana).await.expect(StatusCode::NO_CONTENT);
    app.delete(&format!("/products/{product}"), &ana).await.expect(StatusCode::NO_CONTENT);

    let expected = [
        OwnerChangedV1::TYPE,
        CategoryChangedV1::TYPE,
        ProductChangedV1::TYPE,
        StockChangedV1::TYPE,
        ProductChangedV1::TYPE,
        StockChangedV1::TYPE,
        StockReservedV1::TYPE,
        ProductChangedV1::TYPE,
        CategoryChangedV1::TYPE,
        ProductChangedV1::TYPE,
    ];
    assert_eq!(app.outbox_types().await, expected);
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT message_id, routing_key FROM outbox ORDER BY seq").fetch_all(&app.db).await.unwrap();
    let received = all.take(rows.len()).await;
    let mut published: Vec<(Uuid, String)> =
        received.iter().map(|r| (r.envelope.message_id, r.routing_key.clone())).collect();
    let mut stored = rows.clone();
    published.sort();
    stored.sort();
    assert_eq!(published, stored, "every outbox row was published with its routing key");
    let db = app.db.clone();
    eventually(WAIT, "every outbox row marked published", || {
        let db = db.clone();
        async move {
            let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&db)
                .await
                .ok()?;
            (unsent == 0).then_some(())
        }
    })
    .await;
    let last = app.outbox::<ProductChangedV1>().await.pop().unwrap().payload;
    assert_eq!((last.product_id, last.deleted, last.title.as_str()), (product, true, "Caneca nova"));
    assert_eq!(last.attributes, json!({"color": "azul", "capacity_ml": 350}));
}
