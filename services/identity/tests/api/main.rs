//! identity, end to end: the real service on a private database and Redis
//! key prefix per test (see `helpers::spawn_app`).

#![allow(clippy::unwrap_used)]

mod helpers;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use helpers::{As, PASSWORD, Session, TestApp, spawn_app, spawn_app_with};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use platform::testing::eventually;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

const ADMIN_EMAIL: &str = "root@feira.example";
const ADMIN_PASSWORD: &str = "admin password 123";

async fn spawn_with_admin() -> TestApp {
    spawn_app_with(|env| {
        env.set("FEIRA_IDENTITY_ADMIN_EMAIL", ADMIN_EMAIL).set("FEIRA_IDENTITY_ADMIN_PASSWORD", ADMIN_PASSWORD);
    })
    .await
}

/// Verifies an access token with nothing but the published JWKS and a plain
/// `jsonwebtoken` decode, as a third party would.
fn verify_with_jwks(jwks: &Value, token: &str) -> jsonwebtoken::errors::Result<Value> {
    let set: JwkSet = serde_json::from_value(jwks.clone()).expect("a JWK set");
    let kid = jsonwebtoken::decode_header(token)?.kid.expect("a kid");
    let jwk = set.find(&kid).ok_or(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["feira-identity"]);
    validation.set_audience(&["feira"]);
    Ok(jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk)?, &validation)?.claims)
}

// ---------------------------------------------------------------------------
// Registration, login, /me
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_registers_logs_in_and_reads_their_account() {
    let app = spawn_app().await;

    let registered = app
        .post(
            "/auth/register",
            &As::Anonymous,
            &json!({"email": "  Ana@Example.COM ", "password": PASSWORD, "name": " Ana Souza "}),
        )
        .await;
    let login = app.login("ana@example.com", PASSWORD).await;

    assert_eq!(registered.expect(StatusCode::ACCEPTED)["email"], "ana@example.com", "normalized");
    let tokens = login.expect(StatusCode::OK);
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    let session = Session::of(tokens);
    let me = app.me(&session.bearer()).await;
    let me = me.expect(StatusCode::OK);
    assert_eq!(me["email"], "ana@example.com");
    assert_eq!(me["name"], "Ana Souza");
    assert_eq!(me["roles"], json!(["customer"]));
    assert!(me["created_at"].is_string());
    let id: Uuid = me["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(session.claims()["sub"], json!(id));
    // The gateway's forwarded caller reads the same account.
    let forwarded = app.me(&As::Forwarded(id, "customer")).await;
    assert_eq!(forwarded.expect(StatusCode::OK), me);
    app.me(&As::Anonymous).await.assert_problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_a_taken_email_answers_exactly_like_a_fresh_registration_and_changes_nothing() {
    let app = spawn_app().await;

    let fresh = app.register("bia@example.com", PASSWORD).await;
    let again = app.register("BIA@example.com", "another password 42").await;

    assert_eq!(fresh.status, StatusCode::ACCEPTED);
    assert_eq!((again.status, &again.json), (fresh.status, &fresh.json));
    app.login("bia@example.com", PASSWORD).await.expect(StatusCode::OK);
    app.login("bia@example.com", "another password 42").await.assert_problem(StatusCode::UNAUTHORIZED);
    let accounts: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&app.db).await.unwrap();
    assert_eq!(accounts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_registrations_are_problems_naming_each_field() {
    let app = spawn_app().await;

    let bad = app
        .post(
            "/auth/register",
            &As::Anonymous,
            &json!({"email": "not-an-address", "password": "short", "name": "x".repeat(121)}),
        )
        .await;
    let too_long = app.register("cai@example.com", &"p".repeat(129)).await;
    let wrong_types = app.post("/auth/register", &As::Anonymous, &json!({"email": 42, "password": PASSWORD})).await;
    let no_json = Answer::of(app.client.post(app.url("/auth/register")).body("{").send().await).await;

    bad.assert_problem(StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_fields(), ["email", "name", "password"]);
    too_long.assert_problem(StatusCode::BAD_REQUEST);
    assert_eq!(too_long.error_fields(), ["password"]);
    assert!(wrong_types.is_problem() && wrong_types.status.is_client_error(), "{wrong_types:?}");
    assert!(no_json.is_problem() && no_json.status.is_client_error(), "{no_json:?}");
}

use helpers::Answer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = spawn_app().await;
    app.register("dani@example.com", PASSWORD).await.expect(StatusCode::ACCEPTED);

    let wrong_password = app.login("dani@example.com", "not the password").await;
    let unknown_email = app.login("nobody@example.com", "not the password").await;

    wrong_password.assert_problem(StatusCode::UNAUTHORIZED);
    assert_eq!((unknown_email.status, &unknown_email.json), (wrong_password.status, &wrong_password.json));
}

// ---------------------------------------------------------------------------
// Throttling
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_failures_lock_the_account_with_429_and_retry_after_even_for_the_right_password() {
    let app = spawn_app().await;
    app.register("edu@example.com", PASSWORD).await.expect(StatusCode::ACCEPTED);

    for _ in 0..5 {
        app.login("edu@example.com", "wrong password!").await.assert_problem(StatusCode::UNAUTHORIZED);
    }
    let locked = app.login("edu@example.com", PASSWORD).await;

    locked.assert_problem(StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = locked.header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    // Another account is not affected.
    app.customer("fabi@example.com").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_login_clears_the_accounts_failures() {
    let app = spawn_app().await;
    app.register("gil@example.com", PASSWORD).await.expect(StatusCode::ACCEPTED);

    for _ in 0..4 {
        app.login("gil@example.com", "wrong password!").await.assert_problem(StatusCode::UNAUTHORIZED);
    }
    app.login("gil@example.com", PASSWORD).await.expect(StatusCode::OK);
    for _ in 0..4 {
        app.login("gil@example.com", "wrong password!").await.assert_problem(StatusCode::UNAUTHORIZED);
    }

    app.login("gil@example.com", PASSWORD).await.expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_from_one_client_ip_lock_that_ip_for_every_account() {
    let app = spawn_app_with(|env| {
        env.set("FEIRA_IDENTITY_LOGIN_MAX_FAILURES_PER_IP", "3");
    })
    .await;
    app.register("hugo@example.com", PASSWORD).await.expect(StatusCode::ACCEPTED);

    for n in 0..3 {
        let email = format!("guess{n}@example.com");
        app.login_from("203.0.113.7", &email, "wrong password!").await.assert_problem(StatusCode::UNAUTHORIZED);
    }
    let from_attacker = app.login_from("203.0.113.7", "hugo@example.com", PASSWORD).await;
    let from_elsewhere = app.login_from("198.51.100.2", "hugo@example.com", PASSWORD).await;

    from_attacker.assert_problem(StatusCode::TOO_MANY_REQUESTS);
    assert!(from_attacker.header("retry-after").is_some());
    from_elsewhere.expect(StatusCode::OK);
    let key = app.redis_key("identity:login-failures:ip:203.0.113.7");
    assert_eq!(app.redis_get(&key).await.as_deref(), Some("3"));
}

// ---------------------------------------------------------------------------
// Refresh tokens
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_is_exchanged_once_for_a_new_pair() {
    let app = spawn_app().await;
    let first = app.customer("ines@example.com").await;

    let refreshed = app.refresh(&first.refresh_token).await;

    let second = Session::of(refreshed.expect(StatusCode::OK));
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.claims()["jti"], first.claims()["jti"]);
    assert_eq!(second.claims()["sub"], first.claims()["sub"]);
    app.me(&second.bearer()).await.expect(StatusCode::OK);
    let stored: Vec<(bool, bool)> =
        sqlx::query_as("SELECT used_at IS NOT NULL, revoked_at IS NOT NULL FROM refresh_tokens ORDER BY issued_at")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(stored, [(true, false), (false, false)], "the first is spent, the second live; none revoked");
    let raw: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE token_hash = convert_to($1, 'UTF8')")
        .bind(&first.refresh_token)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(raw, 0, "tokens are stored hashed");
    app.refresh("not-a-token").await.assert_problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_a_spent_refresh_token_revokes_the_whole_family() {
    let app = spawn_app().await;
    let first = app.customer("joao@example.com").await;
    let second = Session::of(app.refresh(&first.refresh_token).await.expect(StatusCode::OK));
    // Another login of the same person is another family, untouched.
    let other_device = app.session("joao@example.com", PASSWORD).await;

    let replayed = app.refresh(&first.refresh_token).await;
    let newest = app.refresh(&second.refresh_token).await;

    replayed.assert_problem(StatusCode::UNAUTHORIZED);
    newest.assert_problem(StatusCode::UNAUTHORIZED);
    app.refresh(&other_device.refresh_token).await.expect(StatusCode::OK);
}

// ---------------------------------------------------------------------------
// Logout
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_denylists_the_access_token_in_redis_and_revokes_the_refresh_token() {
    let app = spawn_app().await;
    let session = app.customer("lia@example.com").await;
    app.me(&session.bearer()).await.expect(StatusCode::OK);

    let out = app.post("/auth/logout", &session.bearer(), &json!({"refresh_token": session.refresh_token})).await;

    assert_eq!(out.status, StatusCode::NO_CONTENT, "{out:?}");
    let jti = session.claims()["jti"].as_str().unwrap().to_string();
    let key = app.redis_key(&format!("identity:denylist:{jti}"));
    assert_eq!(app.redis_get(&key).await.as_deref(), Some("1"));
    let ttl = app.redis_ttl(&key).await;
    // The token's 15 minutes, plus a minute past its expiry (more than
    // the gateway's 30 s clock leeway).
    assert!((901..=960).contains(&ttl), "expires a minute after the token: {ttl}");
    app.me(&session.bearer()).await.assert_problem(StatusCode::UNAUTHORIZED);
    app.refresh(&session.refresh_token).await.assert_problem(StatusCode::UNAUTHORIZED);
    // Logging out again with the dead token is refused too.
    app.post("/auth/logout", &session.bearer(), &json!({})).await.assert_problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_needs_a_bearer_token_and_its_body_is_optional() {
    let app = spawn_app().await;
    let session = app.customer("mel@example.com").await;
    let id: Uuid = session.claims()["sub"].as_str().unwrap().parse().unwrap();

    let anonymous = app.post("/auth/logout", &As::Anonymous, &json!({})).await;
    let forwarded = app.post("/auth/logout", &As::Forwarded(id, "customer"), &json!({})).await;
    let no_body = Answer::of(app.request(reqwest::Method::POST, "/auth/logout", &session.bearer()).send().await).await;

    anonymous.assert_problem(StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));
    forwarded.assert_problem(StatusCode::UNAUTHORIZED);
    assert_eq!(no_body.status, StatusCode::NO_CONTENT, "{no_body:?}");
    // The refresh token was not named: it still works.
    app.refresh(&session.refresh_token).await.expect(StatusCode::OK);
}

// ---------------------------------------------------------------------------
// Tokens and keys
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwks_publishes_the_key_that_verifies_the_tokens() {
    let app = spawn_app().await;
    let session = app.customer("nina@example.com").await;

    let jwks = app.jwks().await;

    assert_eq!(jwks.header("cache-control"), Some("public, max-age=300"));
    let keys = jwks.expect(StatusCode::OK)["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(
        (&key["kty"], &key["crv"], &key["alg"], &key["use"]),
        (&json!("OKP"), &json!("Ed25519"), &json!("EdDSA"), &json!("sig"))
    );
    assert_eq!(URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap().len(), 32);
    let header = session.header();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], key["kid"]);
    let claims = verify_with_jwks(&jwks.json, &session.access_token).expect("the token verifies with the JWKS");
    assert_eq!(claims["iss"], "feira-identity");
    assert_eq!(claims["aud"], "feira");
    assert_eq!(claims["roles"], json!(["customer"]));
    assert_eq!(claims["email"], "nina@example.com");
    assert!(claims["jti"].as_str().unwrap().parse::<Uuid>().is_ok());
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);
    // No private material in the JWKS.
    assert!(key.get("d").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_rotation_old_tokens_still_verify_and_new_tokens_carry_the_new_kid() {
    let app = spawn_with_admin().await;
    let admin = app.session(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let before = app.customer("olga@example.com").await;
    let old_kid = before.header()["kid"].clone();

    let rotated = app.post("/admin/keys/rotate", &admin.bearer(), &json!({})).await;

    let new_kid = rotated.expect(StatusCode::OK)["kid"].clone();
    assert_ne!(new_kid, old_kid);
    let jwks = app.jwks().await;
    let kids: Vec<&Value> = jwks.json["keys"].as_array().unwrap().iter().map(|k| &k["kid"]).collect();
    assert_eq!(kids, [&new_kid, &old_kid], "the new key first, the old one still published");
    verify_with_jwks(&jwks.json, &before.access_token).expect("a token signed before the rotation verifies");
    app.me(&before.bearer()).await.expect(StatusCode::OK);
    let after = app.session("olga@example.com", PASSWORD).await;
    assert_eq!(after.header()["kid"], new_kid);
    verify_with_jwks(&jwks.json, &after.access_token).expect("a new token verifies");
    let private_halves: Vec<bool> =
        sqlx::query_scalar("SELECT private_key IS NOT NULL FROM signing_keys ORDER BY created_at")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(private_halves, [false, true], "the superseded key lost its private half");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signing_key_rotates_by_itself_when_it_gets_old() {
    let app = spawn_app_with(|env| {
        env.set("FEIRA_IDENTITY_KEY_ROTATION", "2s");
    })
    .await;
    let before = app.customer("paula@example.com").await;

    let jwks = eventually(20, "a second key in the JWKS", || async {
        let jwks = app.jwks().await;
        (jwks.json["keys"].as_array().map(Vec::len) >= Some(2)).then_some(jwks.json)
    })
    .await;

    verify_with_jwks(&jwks, &before.access_token).expect("the old token still verifies");
    let after = app.session("paula@example.com", PASSWORD).await;
    assert_ne!(after.header()["kid"], before.header()["kid"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_keys_are_stored_encrypted_when_a_secret_is_configured() {
    let app = spawn_app_with(|env| {
        env.set("FEIRA_IDENTITY_KEY_ENCRYPTION_SECRET", "a long random secret");
    })
    .await;
    let session = app.customer("quim@example.com").await;

    let (encrypted, stored): (bool, Vec<u8>) =
        sqlx::query_as("SELECT encrypted, private_key FROM signing_keys").fetch_one(&app.db).await.unwrap();

    assert!(encrypted);
    // A PKCS#8 Ed25519 document starts with a DER SEQUENCE and the OID 1.3.101.112.
    let oid = [0x06, 0x03, 0x2b, 0x65, 0x70];
    assert!(!stored.windows(oid.len()).any(|w| w == oid), "no plain PKCS#8 in the database");
    verify_with_jwks(&app.jwks().await.json, &session.access_token).expect("tokens verify");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_refused() {
    let app = spawn_app_with(|env| {
        env.set("FEIRA_IDENTITY_ACCESS_TTL", "1s");
    })
    .await;
    let session = app.customer("rui@example.com").await;
    assert_eq!(session.claims()["exp"].as_i64().unwrap() - session.claims()["iat"].as_i64().unwrap(), 1);

    tokio::time::sleep(Duration::from_millis(2100)).await;

    app.me(&session.bearer()).await.assert_problem(StatusCode::UNAUTHORIZED);
    // The refresh token still opens a new access token.
    let fresh = Session::of(app.refresh(&session.refresh_token).await.expect(StatusCode::OK));
    app.me(&fresh.bearer()).await.expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tokens_are_refused() {
    let app = spawn_app().await;
    let session = app.customer("sara@example.com").await;
    let mut claims = session.claims();
    claims["roles"] = json!(["admin"]);
    let jwks = app.jwks().await.json;
    let key = &jwks["keys"][0];
    let kid = key["kid"].as_str().unwrap().to_string();
    let public_key = URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap();
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());

    let alg_none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})), b64(&claims));
    let mut hs256 = Header::new(Algorithm::HS256);
    hs256.kid = Some(kid.clone());
    let with_raw_key = jsonwebtoken::encode(&hs256, &claims, &EncodingKey::from_secret(&public_key)).unwrap();
    let with_x =
        jsonwebtoken::encode(&hs256, &claims, &EncodingKey::from_secret(key["x"].as_str().unwrap().as_bytes()))
            .unwrap();
    let mut parts: Vec<&str> = session.access_token.split('.').collect();
    let tampered_claims = b64(&claims);
    parts[1] = &tampered_claims;
    let tampered = parts.join(".");

    for (what, token) in [
        ("alg none", alg_none),
        ("HS256 with the raw public key", with_raw_key),
        ("HS256 with x", with_x),
        ("tampered claims", tampered),
        ("garbage", "abc".to_string()),
    ] {
        let answer = app.me(&As::Bearer(token)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{what}: {answer:?}");
        assert!(answer.is_problem(), "{what}");
    }
    let basic =
        Answer::of(app.client.get(app.url("/me")).header("authorization", "Basic dXNlcjpwYXNz").send().await).await;
    basic.assert_problem(StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------------------
// Admins
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_admin_exists_at_start_and_creates_sellers() {
    let app = spawn_with_admin().await;
    let admin = app.session(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(admin.claims()["roles"], json!(["admin"]));

    let created = app
        .post(
            "/admin/users",
            &admin.bearer(),
            &json!({"email": "Loja@Example.com", "password": PASSWORD, "name": "Loja", "roles": ["seller"]}),
        )
        .await;
    let again = app
        .post(
            "/admin/users",
            &admin.bearer(),
            &json!({"email": "loja@example.com", "password": PASSWORD, "name": "Loja", "roles": ["seller"]}),
        )
        .await;
    let bad_role = app
        .post(
            "/admin/users",
            &admin.bearer(),
            &json!({"email": "x@example.com", "password": PASSWORD, "roles": ["root"]}),
        )
        .await;

    let seller = created.expect(StatusCode::CREATED).clone();
    assert_eq!(seller["roles"], json!(["seller"]));
    assert_eq!(seller["email"], "loja@example.com");
    let path = format!("/admin/users/{}", seller["id"].as_str().unwrap());
    assert_eq!(created.location(), Some(path.as_str()));
    assert_eq!(app.get(&path, &admin.bearer()).await.expect(StatusCode::OK), &seller);
    again.assert_problem(StatusCode::CONFLICT);
    bad_role.assert_problem(StatusCode::BAD_REQUEST);
    assert_eq!(bad_role.error_fields(), ["roles"]);
    let seller_session = app.session("loja@example.com", PASSWORD).await;
    assert_eq!(seller_session.claims()["roles"], json!(["seller"]));
    app.get(&format!("/admin/users/{}", Uuid::now_v7()), &admin.bearer()).await.assert_problem(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_and_anonymous_callers_cannot_use_admin_routes() {
    let app = spawn_with_admin().await;
    let customer = app.customer("tati@example.com").await;
    let customer_id: Uuid = customer.claims()["sub"].as_str().unwrap().parse().unwrap();
    let body = json!({"email": "new@example.com", "password": PASSWORD, "roles": ["admin"]});
    let user_path = format!("/admin/users/{customer_id}");

    for who in [customer.bearer(), As::Forwarded(customer_id, "customer,seller")] {
        app.post("/admin/users", &who, &body).await.assert_problem(StatusCode::FORBIDDEN);
        app.get(&user_path, &who).await.assert_problem(StatusCode::FORBIDDEN);
        app.post("/admin/keys/rotate", &who, &json!({})).await.assert_problem(StatusCode::FORBIDDEN);
    }
    app.post("/admin/users", &As::Anonymous, &body).await.assert_problem(StatusCode::UNAUTHORIZED);
    app.post("/admin/keys/rotate", &As::Anonymous, &json!({})).await.assert_problem(StatusCode::UNAUTHORIZED);
    // An admin forwarded by the gateway may.
    app.get(&user_path, &As::Forwarded(Uuid::now_v7(), "admin")).await.expect(StatusCode::OK);
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM signing_keys").fetch_one(&app.db).await.unwrap();
    assert_eq!(keys, 1, "no rotation happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_cli_function_creates_an_admin_who_can_log_in() {
    let app = spawn_app().await;

    let id = identity::create_admin(&app.env().config(), "ops@feira.example", ADMIN_PASSWORD).await.unwrap();
    let twice = identity::create_admin(&app.env().config(), "ops@feira.example", ADMIN_PASSWORD).await;
    let weak = identity::create_admin(&app.env().config(), "ops2@feira.example", "short").await;

    let session = app.session("ops@feira.example", ADMIN_PASSWORD).await;
    assert_eq!(session.claims()["sub"], json!(id));
    assert_eq!(session.claims()["roles"], json!(["admin"]));
    assert!(twice.is_err());
    assert!(weak.is_err());
}
