//! The edge, end to end (issue 5): real identity tokens through the real
//! gateway in front of every service — login, checkout, object-level
//! authorization (BOLA), forged caller headers, logout and key rotation.

#![allow(clippy::unwrap_used)]

use platform::testing::{Answer, eventually};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::shop::{Shop, WAIT};

const ADMIN_EMAIL: &str = "root@feira.test";
const ADMIN_PASSWORD: &str = "admin-password-123";

/// A logged-in user: their id and tokens.
struct User {
    id: Uuid,
    token: String,
    refresh: String,
}

async fn edge() -> Shop {
    Shop::start_targets(
        |env| {
            env.set("FEIRA_IDENTITY_ADMIN_EMAIL", ADMIN_EMAIL);
            env.set("FEIRA_IDENTITY_ADMIN_PASSWORD", ADMIN_PASSWORD);
        },
        &[],
    )
    .await
}

/// A request through the gateway, with `user`'s token if any.
fn via(shop: &Shop, method: Method, path: &str, user: Option<&User>) -> RequestBuilder {
    let req = shop.client.request(method, shop.url("gateway", path));
    match user {
        Some(u) => req.bearer_auth(&u.token),
        None => req,
    }
}

async fn send(req: RequestBuilder) -> Answer {
    Answer::of(req.send().await).await
}

async fn login(shop: &Shop, email: &str, password: &str) -> User {
    let a =
        send(via(shop, Method::POST, "/auth/login", None).json(&json!({"email": email, "password": password}))).await;
    let tokens = a.expect(StatusCode::OK).clone();
    let token = tokens["access_token"].as_str().expect("an access token").to_string();
    let refresh = tokens["refresh_token"].as_str().expect("a refresh token").to_string();
    // Right after a key rotation the gateway learns the new key within
    // FEIRA_GATEWAY_JWKS_MIN_REFETCH (5 s).
    let id = eventually(WAIT, "GET /me with the new token", || async {
        let me = send(shop.client.get(shop.url("gateway", "/me")).bearer_auth(&token)).await;
        me.json["id"].as_str().and_then(|s| s.parse::<Uuid>().ok())
    })
    .await;
    User { id, token, refresh }
}

async fn customer(shop: &Shop) -> User {
    let email = format!("c{}@example.com", &Uuid::new_v4().simple().to_string()[..10]);
    let password = "a-long-enough-password";
    let r = send(via(shop, Method::POST, "/auth/register", None).json(&json!({"email": email, "password": password})))
        .await;
    assert!(r.status.is_success(), "register: {r:?}");
    login(shop, &email, password).await
}

async fn seller(shop: &Shop, admin: &User) -> User {
    let email = format!("s{}@example.com", &Uuid::new_v4().simple().to_string()[..10]);
    let password = "a-long-enough-password";
    let body = json!({"email": email, "password": password, "name": "Loja", "roles": ["seller"]});
    let created = send(via(shop, Method::POST, "/admin/users", Some(admin)).json(&body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    login(shop, &email, password).await
}

/// The seller's product with `on_hand` units; its id.
async fn stocked(shop: &Shop, s: &User, on_hand: i64) -> Uuid {
    let owner =
        send(via(shop, Method::PUT, &format!("/owners/{}", s.id), Some(s)).json(&json!({"name": "Loja"}))).await;
    assert!(owner.status.is_success(), "{owner:?}");
    let body = json!({"sku": format!("S-{}", &Uuid::new_v4().simple().to_string()[..8]), "title": "Caneca", "price_cents": 2500});
    let p = send(via(shop, Method::POST, &format!("/owners/{}/products", s.id), Some(s)).json(&body)).await;
    let id: Uuid = p.expect(StatusCode::CREATED)["id"].as_str().unwrap().parse().unwrap();
    let stock =
        send(via(shop, Method::PUT, &format!("/products/{id}/stock"), Some(s)).json(&json!({"on_hand": on_hand})))
            .await;
    assert!(stock.status.is_success(), "{stock:?}");
    id
}

/// Cart, quote and checkout through the gateway; the order id.
async fn buy(shop: &Shop, c: &User, product: Uuid) -> Uuid {
    let add =
        send(via(shop, Method::PUT, &format!("/cart/items/{product}"), Some(c)).json(&json!({"quantity": 1}))).await;
    assert_eq!(add.status, StatusCode::OK, "{add:?}");
    let q = send(via(shop, Method::POST, "/shipping/quotes", None).json(&json!({
        "destination_cep": "01310-100", "items": [{"quantity": 1, "weight_grams": 400}]
    })))
    .await;
    let quote = q.expect(StatusCode::CREATED)["id"].clone();
    let body = json!({
        "shipping_address": {"recipient": "Ana", "street": "Av. Paulista", "number": "1000",
                             "district": "Bela Vista", "city": "São Paulo", "state": "SP", "cep": "01310100"},
        "shipping_quote_id": quote,
        "payment": {"type": "card", "token": "tok_visa"},
        "contact_email": "ana@example.com",
    });
    let key = Uuid::new_v4().to_string();
    let a = send(via(shop, Method::POST, "/cart/checkout", Some(c)).header("idempotency-key", key).json(&body)).await;
    a.expect(StatusCode::ACCEPTED)["order_id"].as_str().unwrap().parse().unwrap()
}

async fn confirmed(shop: &Shop, c: &User, order: Uuid) -> Value {
    eventually(WAIT, "the order to be confirmed", || async {
        let o = send(via(shop, Method::GET, &format!("/orders/{order}"), Some(c))).await;
        (o.json["status"] == "CONFIRMED").then(|| o.json.clone())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_gateway_customers_check_out_and_never_see_each_others_things() {
    let shop = edge().await;
    let admin = login(&shop, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (ana_seller, bia_seller) = (seller(&shop, &admin).await, seller(&shop, &admin).await);
    let (ana, bob) = (customer(&shop).await, customer(&shop).await);
    let mug = stocked(&shop, &ana_seller, 10).await;

    let order = buy(&shop, &ana, mug).await;
    let mine = confirmed(&shop, &ana, order).await;
    assert_eq!(mine["customer_id"], ana.id.to_string(), "the gateway forwarded the token's user");
    let invoice = eventually(WAIT, "Ana's invoice", || async {
        let page = send(via(&shop, Method::GET, &format!("/invoices?order_id={order}"), Some(&ana))).await;
        page.json["items"].as_array()?.first().cloned()
    })
    .await;
    let invoice_id = invoice["id"].as_str().unwrap();

    // Bob, with his own valid token, on each of Ana's objects: not found.
    for path in [
        format!("/orders/{order}"),
        format!("/orders/{order}/timeline"),
        format!("/invoices/{invoice_id}"),
        format!("/products/{mug}/stock"),
    ] {
        send(via(&shop, Method::GET, &path, Some(&bob))).await.assert_problem(StatusCode::NOT_FOUND);
    }
    send(via(&shop, Method::POST, &format!("/orders/{order}/cancel"), Some(&bob)))
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    let listed = send(via(&shop, Method::GET, "/orders", Some(&bob))).await;
    assert_eq!(listed.expect(StatusCode::OK)["items"], json!([]), "Bob lists only his own orders");
    // Another seller cannot touch Ana's catalog.
    let edit = send(
        via(&shop, Method::PATCH, &format!("/products/{mug}"), Some(&bia_seller)).json(&json!({"price_cents": 1})),
    )
    .await;
    edit.assert_problem(StatusCode::NOT_FOUND);
    let restock = send(
        via(&shop, Method::PUT, &format!("/products/{mug}/stock"), Some(&bia_seller)).json(&json!({"on_hand": 0})),
    )
    .await;
    restock.assert_problem(StatusCode::NOT_FOUND);

    // Forged caller headers do nothing: Bob claiming to be Ana is still Bob,
    // and an anonymous client claiming to be admin is anonymous.
    let forged = send(
        via(&shop, Method::GET, &format!("/orders/{order}"), Some(&bob))
            .header("x-feira-user-id", ana.id.to_string())
            .header("x-feira-roles", "admin"),
    )
    .await;
    forged.assert_problem(StatusCode::NOT_FOUND);
    let anonymous = send(
        via(&shop, Method::GET, &format!("/orders/{order}"), None)
            .header("x-feira-user-id", ana.id.to_string())
            .header("x-feira-roles", "admin"),
    )
    .await;
    anonymous.assert_problem(StatusCode::UNAUTHORIZED);
    // And a customer cannot place an order with prices of their own choosing.
    let direct = send(via(&shop, Method::POST, "/orders", Some(&bob)).json(&json!({"customer_id": bob.id}))).await;
    direct.assert_problem(StatusCode::FORBIDDEN);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_and_refresh_token_reuse_take_effect_at_the_gateway_at_once() {
    let shop = edge().await;
    let ana = customer(&shop).await;
    send(via(&shop, Method::GET, "/cart", Some(&ana))).await.expect(StatusCode::OK);

    // A refresh token used twice revokes its whole family.
    let fresh =
        send(via(&shop, Method::POST, "/auth/refresh", None).json(&json!({"refresh_token": ana.refresh}))).await;
    let newer = fresh.expect(StatusCode::OK)["refresh_token"].as_str().unwrap().to_string();
    let reuse =
        send(via(&shop, Method::POST, "/auth/refresh", None).json(&json!({"refresh_token": ana.refresh}))).await;
    reuse.assert_problem(StatusCode::UNAUTHORIZED);
    let family = send(via(&shop, Method::POST, "/auth/refresh", None).json(&json!({"refresh_token": newer}))).await;
    family.assert_problem(StatusCode::UNAUTHORIZED);

    let out = send(via(&shop, Method::POST, "/auth/logout", Some(&ana)).json(&json!({}))).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{out:?}");
    let after = send(via(&shop, Method::GET, "/cart", Some(&ana))).await;
    after.assert_problem(StatusCode::UNAUTHORIZED);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_keeps_older_tokens_working_and_new_tokens_verify_at_once() {
    let shop = edge().await;
    let admin = login(&shop, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let before = customer(&shop).await;
    send(via(&shop, Method::GET, "/cart", Some(&before))).await.expect(StatusCode::OK);

    let rotated = send(via(&shop, Method::POST, "/admin/keys/rotate", Some(&admin))).await;
    assert!(rotated.status.is_success(), "{rotated:?}");
    let after = customer(&shop).await;

    // The gateway meets the new `kid` and fetches the JWKS again (at most
    // once per FEIRA_GATEWAY_JWKS_MIN_REFETCH, 5 s).
    eventually(WAIT, "a token signed with the new key to verify", || async {
        let a = send(via(&shop, Method::GET, "/cart", Some(&after))).await;
        (a.status == StatusCode::OK).then_some(())
    })
    .await;
    send(via(&shop, Method::GET, "/cart", Some(&before))).await.expect(StatusCode::OK);
    let jwks = send(via(&shop, Method::GET, "/.well-known/jwks.json", None)).await;
    assert_eq!(jwks.expect(StatusCode::OK)["keys"].as_array().unwrap().len(), 2, "old and new public keys");
    shop.stop().await;
}
