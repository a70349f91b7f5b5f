//! The gateway over real HTTP, in front of tiny upstreams, with a JWKS server
//! holding keys made at test time and the real Redis.

#![allow(clippy::unwrap_used)]

mod helpers;

use std::sync::Arc;

use helpers::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use platform::testing::eventually;
use serde_json::{Value, json};
use uuid::Uuid;

fn routes(upstream: &str) -> String {
    format!(
        r#"
        [rate_limits.default]
        rate = 1000
        per = "1s"
        burst = 1000

        [[routes]]
        name = "public"
        prefix = "/public"
        upstreams = ["{upstream}"]
        auth = "public"

        [[routes]]
        name = "catalog-read"
        prefix = "/products"
        methods = ["GET"]
        upstreams = ["{upstream}"]
        auth = "optional"

        [[routes]]
        name = "private"
        prefix = "/private"
        upstreams = ["{upstream}"]
        rate_limit = "default"

        [[routes]]
        name = "admin"
        prefix = "/admin"
        upstreams = ["{upstream}"]
        roles = ["admin"]

        [[routes]]
        name = "api"
        prefix = "/api"
        upstreams = ["{upstream}"]
        auth = "public"
        strip_prefix = true
        "#
    )
}

struct Setup {
    gw: Gateways,
    up: helpers::Upstream,
    jwks: Jwks,
    key: SigningKey,
}

async fn setup() -> Setup {
    setup_with(1, |_| {}).await
}

/// [`setup`] with `replicas` gateways and their environment changed by
/// `configure`.
async fn setup_with(replicas: usize, configure: impl FnOnce(&mut platform::testing::TestEnv)) -> Setup {
    let key = SigningKey::generate("k1");
    let jwks = Jwks::start(&[&key]).await;
    let up = helpers::Upstream::start("a").await;
    let gw = spawn_n(replicas, &routes(&up.url()), &jwks.url, configure).await;
    Setup { gw, up, jwks, key }
}

impl Setup {
    async fn call(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.gw.client.get(self.gw.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    /// The request as the upstream saw it.
    async fn echo(&self, path: &str, token: Option<&str>) -> Value {
        let res = self.call(path, token).await;
        assert_eq!(res.status(), 200, "{path}");
        res.json().await.unwrap()
    }
}

async fn assert_invalid_token(res: reqwest::Response, what: &str) {
    let challenge = res.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string());
    let (status, kind, _) = problem(res).await;
    assert_eq!((status, kind.as_str()), (401, "https://feira.dev/problems/unauthenticated"), "{what}");
    assert!(challenge.is_some_and(|c| c.starts_with("Bearer") && c.contains("error=\"invalid_token\"")), "{what}");
}

// Tokens ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_token_reaches_the_upstream_as_the_caller() {
    let s = setup().await;
    let user = Uuid::now_v7();
    let token = s.key.sign(&claims(user, &["customer", "seller"]));
    let echo = s.echo("/private/x", Some(&token)).await;
    assert_eq!(echo["headers"]["x-feira-user-id"], user.to_string());
    assert_eq!(echo["headers"]["x-feira-roles"], "customer,seller");
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_expired_and_foreign_tokens_are_refused_with_invalid_token() {
    let s = setup().await;
    let user = Uuid::now_v7();
    let good = claims(user, &["customer"]);

    // alg none, unsigned.
    let none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#), b64(good.to_string().as_bytes()));
    // HS256 with the public key as the HMAC secret (algorithm confusion).
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("k1".into());
    let confused = jsonwebtoken::encode(&hs, &good, &EncodingKey::from_secret(&s.key.public)).unwrap();
    let confused_x =
        jsonwebtoken::encode(&hs, &good, &EncodingKey::from_secret(b64(&s.key.public).as_bytes())).unwrap();
    // Signed by a key that is not identity's, under identity's kid.
    let mut stranger = SigningKey::generate("k1");
    stranger.kid = "k1".into();
    let bad_signature = stranger.sign(&good);
    let mut tampered = s.key.sign(&good);
    tampered.truncate(tampered.len() - 4);
    tampered.push_str("AAAA");
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        s.key.sign(&c)
    };
    let now = jsonwebtoken::get_current_timestamp();
    let expired = with("exp", json!(now - 600));
    let wrong_aud = with("aud", json!("someone-else"));
    let wrong_iss = with("iss", json!("evil-identity"));
    let unknown_kid = SigningKey::generate("k-unknown").sign(&good);

    for (what, token) in [
        ("alg none", none),
        ("HS256 with the public key", confused),
        ("HS256 with the encoded public key", confused_x),
        ("bad signature", bad_signature),
        ("tampered signature", tampered),
        ("expired", expired),
        ("wrong audience", wrong_aud),
        ("wrong issuer", wrong_iss),
        ("unknown kid", unknown_kid),
        ("garbage", "not.a.token".to_string()),
    ] {
        assert_invalid_token(s.call("/private/x", Some(&token)).await, what).await;
        // An optional route verifies a token when one is sent, too.
        assert_invalid_token(s.call("/products/1", Some(&token)).await, what).await;
    }
    assert_eq!(s.up.hits(), 0, "no refused request reached the upstream");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_logged_out_token_is_refused() {
    let s = setup().await;
    let c = claims(Uuid::now_v7(), &["customer"]);
    let token = s.key.sign(&c);
    assert_eq!(s.call("/private/x", Some(&token)).await.status(), 200);
    s.gw.revoke(c["jti"].as_str().unwrap()).await;
    assert_invalid_token(s.call("/private/x", Some(&token)).await, "denylisted jti").await;
}

/// A logout returns once every gateway's copy of the denylist holds the
/// token (docs/adr/0021): two gateways acknowledge it, both refuse it on
/// the very next request, and while a copy is current a route without a
/// rate limit checks tokens without any Redis round trip.
#[tokio::test(flavor = "multi_thread")]
async fn a_logout_reaches_every_gateways_copy_before_it_returns() {
    let Setup { gw: mut gws, key, up: _up, jwks: _jwks } = setup_with(2, |_| {}).await;
    gws.copies_current().await;
    eventually(10, "the copy reports current", || async {
        (metric(&gws.metrics().await, "revocations_copy_current") == Some(1.0)).then_some(())
    })
    .await;
    let admin = claims(Uuid::now_v7(), &["admin"]);
    let token = key.sign(&admin);
    let call = |gws: &Gateways, i: usize| gws.client.get(gws.running[i].url("/admin/x")).bearer_auth(&token).send();
    for i in [0, 1, 0, 1] {
        assert_eq!(call(&gws, i).await.unwrap().status(), 200);
    }
    assert_eq!(
        metric(&gws.metrics().await, "gateway_redis_batch_size_count"),
        None,
        "no Redis round trip for the denylist while the copy is current"
    );

    let revoked = gws.revoke(admin["jti"].as_str().unwrap()).await;
    assert_eq!((revoked.acknowledged, revoked.waited_out), (2, 0));
    assert_invalid_token(call(&gws, 0).await.unwrap(), "logged out, first gateway").await;
    assert_invalid_token(call(&gws, 1).await.unwrap(), "logged out, second gateway").await;

    // A gateway started after the logout loads the denylist before it
    // trusts its copy.
    let third = gws.env.spawn(&gateway::SPEC).await.unwrap();
    gws.running.push(third);
    gws.copies_current().await;
    assert_invalid_token(call(&gws, 2).await.unwrap(), "logged out before this gateway started").await;
}

/// A copy whose subscription died without its noticing never acknowledges:
/// the logout waits its window out (at most 500 ms), so the token still
/// fails at once; the copy reconnects, loads what it missed and
/// acknowledges again.
#[tokio::test(flavor = "multi_thread")]
async fn a_logout_while_a_copy_lost_its_subscription_still_fails_at_once() {
    let redis_server = PrivateRedis::start().await;
    let url = redis_server.url.clone();
    let Setup { gw, key, up: _up, jwks: _jwks } = setup_with(1, |env| {
        env.set("FEIRA_REDIS_URL", url);
    })
    .await;
    gw.copies_current().await;
    let user = claims(Uuid::now_v7(), &["admin"]);
    let token = key.sign(&user);
    let call = || gw.client.get(gw.url("/admin/x")).bearer_auth(&token).send();
    assert_eq!(call().await.unwrap().status(), 200);

    let mut con =
        redis::Client::open(redis_server.url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let killed: u64 = redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub").query_async(&mut con).await.unwrap();
    assert_eq!(killed, 1);
    let revoked = gw.revoke(user["jti"].as_str().unwrap()).await;
    assert_eq!(revoked.acknowledged, 0, "{revoked:?}");
    assert_invalid_token(call().await.unwrap(), "logged out while the copy was cut off").await;

    gw.copies_current().await;
    assert_invalid_token(call().await.unwrap(), "the reconnected copy loaded the missed logout").await;
    let other = claims(Uuid::now_v7(), &["admin"]);
    assert_eq!(gw.revoke(other["jti"].as_str().unwrap()).await.acknowledged, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_token_is_401_and_a_missing_role_403() {
    let s = setup().await;
    let res = s.call("/private/x", None).await;
    assert!(res.headers().get("www-authenticate").is_some());
    assert_eq!(problem(res).await.0, 401);
    let customer = s.key.sign(&claims(Uuid::now_v7(), &["customer"]));
    assert_eq!(problem(s.call("/admin/users", Some(&customer)).await).await.0, 403);
    let admin = s.key.sign(&claims(Uuid::now_v7(), &["admin"]));
    assert_eq!(s.call("/admin/users", Some(&admin)).await.status(), 200);
    // Anonymous reads pass on an optional route.
    assert_eq!(s.call("/products/1", None).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn rotated_keys_old_tokens_stay_valid_and_a_new_kid_is_fetched() {
    let s = setup().await;
    let user = Uuid::now_v7();
    let old = s.key.sign(&claims(user, &["customer"]));
    assert_eq!(s.call("/private/x", Some(&old)).await.status(), 200);

    // identity rotates: k2 signs from now on, k1 stays published.
    let k2 = SigningKey::generate("k2");
    s.jwks.set(&[&k2, &s.key]);
    let fetches = s.jwks.fetches();
    let new = k2.sign(&claims(user, &["customer"]));
    assert_eq!(s.call("/private/x", Some(&new)).await.status(), 200, "the new kid is fetched");
    assert!(s.jwks.fetches() > fetches, "a token with an unknown kid made the gateway fetch the JWKS");
    assert_eq!(s.call("/private/x", Some(&old)).await.status(), 200, "k1 tokens still verify");
}

// Headers --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn client_sent_feira_headers_never_reach_an_upstream() {
    let s = setup().await;
    let forged = |req: reqwest::RequestBuilder| {
        req.header("x-feira-user-id", Uuid::now_v7().to_string())
            .header("x-feira-roles", "admin")
            .header("x-feira-anything", "1")
    };
    let res = forged(s.gw.client.get(s.gw.url("/public/x"))).send().await.unwrap();
    let echo: Value = res.json().await.unwrap();
    let sent: Vec<&String> =
        echo["headers"].as_object().unwrap().keys().filter(|k| k.starts_with("x-feira-")).collect();
    assert!(sent.is_empty(), "public route: {sent:?}");

    let user = Uuid::now_v7();
    let token = s.key.sign(&claims(user, &["customer"]));
    let res = forged(s.gw.client.get(s.gw.url("/private/x"))).bearer_auth(&token).send().await.unwrap();
    let echo: Value = res.json().await.unwrap();
    assert_eq!(echo["headers"]["x-feira-user-id"], user.to_string());
    assert_eq!(echo["headers"]["x-feira-roles"], "customer");
    assert!(echo["headers"].get("x-feira-anything").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn hop_by_hop_headers_are_dropped_and_forwarding_headers_set() {
    let s = setup().await;
    let res =
        s.gw.client
            .get(s.gw.url("/public/x?q=1"))
            .header("connection", "x-client-hop")
            .header("x-client-hop", "1")
            .header("te", "trailers")
            .header("proxy-authorization", "Basic abc")
            .header("x-request-id", "req-123")
            .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .send()
            .await
            .unwrap();
    assert_eq!(res.headers().get("x-request-id").unwrap(), "req-123");
    for h in ["x-secret-hop", "keep-alive"] {
        assert!(res.headers().get(h).is_none(), "{h} came back to the client");
    }
    let echo: Value = res.json().await.unwrap();
    let h = &echo["headers"];
    for gone in ["x-client-hop", "te", "proxy-authorization"] {
        assert!(h.get(gone).is_none(), "{gone} reached the upstream");
    }
    assert_eq!(echo["query"], "q=1");
    assert_eq!(h["x-request-id"], "req-123");
    assert!(h["traceparent"].as_str().unwrap().contains("4bf92f3577b34da6a3ce929d0e0e4736"));
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-host"], s.gw.running[0].addr.to_string());

    // A request id is made when the client sends none.
    let echo = s.echo("/public/y", None).await;
    assert!(!echo["headers"]["x-request-id"].as_str().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn strip_prefix_removes_the_route_prefix() {
    let s = setup().await;
    let echo = s.echo("/api/things/1", None).await;
    assert_eq!(echo["path"], "/things/1");
}

// Errors ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_route_is_a_404_problem() {
    let s = setup().await;
    let (status, kind, body) = problem(s.call("/nowhere", None).await).await;
    assert_eq!((status, kind.as_str()), (404, "https://feira.dev/problems/no-route"));
    assert!(body["detail"].as_str().unwrap().contains("/nowhere"));
    let res = s.gw.client.post(s.gw.url("/products/1")).send().await.unwrap();
    assert!(res.headers().get("allow").is_some_and(|v| v == "GET"));
    assert_eq!(problem(res).await.0, 405);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_limit_is_a_413_problem() {
    let Setup { gw, up, jwks: _jwks, key: _key } = setup_with(1, |env| {
        env.set("FEIRA_HTTP_BODY_LIMIT", "1024");
    })
    .await;
    let res = gw.client.post(gw.url("/public/x")).body(vec![b'a'; 2048]).send().await.unwrap();
    assert_eq!(problem(res).await.0, 413);
    // Chunked, without a length: the limit still holds.
    let stream = futures_util::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 512])));
    let res = gw.client.post(gw.url("/public/x")).body(reqwest::Body::wrap_stream(stream)).send().await.unwrap();
    assert_eq!(problem(res).await.0, 413);
    let res = gw.client.post(gw.url("/public/x")).body(vec![b'a'; 512]).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(up.hits(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_upstream_is_a_504_problem() {
    let jwks = Jwks::start(&[]).await;
    let up = helpers::Upstream::start("a").await;
    let routes = format!(
        "[[routes]]\nname = \"slow\"\nprefix = \"/slow\"\nupstreams = [\"{}\"]\nauth = \"public\"\ntimeout = \"200ms\"\nattempts = 1",
        up.url()
    );
    let gw = spawn(&routes, &jwks.url).await;
    let (status, kind, _) = problem(gw.get("/slow").await).await;
    assert_eq!((status, kind.as_str()), (504, "https://feira.dev/problems/upstream-timeout"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_routes_file_stops_the_start_with_the_route_and_field() {
    let jwks = Jwks::start(&[]).await;
    for (routes, expected) in [
        (
            "[[routes]]\nname = \"shop\"\nprefix = \"/shop\"\nupstreams = [\"http://127.0.0.1:1\"]\ntimeout = \"fast\"",
            "timeout",
        ),
        (
            "[[routes]]\nname = \"shop\"\nprefix = \"/shop\"\nupstreams = [\"http://127.0.0.1:1\"]\nretries = 3",
            "retries",
        ),
        ("[[routes]]\nname = \"shop\"\nprefix = \"/shop\"\nupstreams = [\"service:nowhere\"]", "nowhere"),
    ] {
        let (env, _file) = env_for(routes, &jwks.url);
        let token = tokio_util::sync::CancellationToken::new();
        let svc = platform::service::start(&gateway::SPEC, Arc::new(env.config()), token).await.unwrap();
        let err = format!("{:#}", (gateway::SPEC.run)(svc).await.unwrap_err());
        assert!(err.contains("invalid gateway routes file") && err.contains(expected), "{err}");
    }
}

// Rate limits ----------------------------------------------------------------------

/// One route, `/limited`, with a rate limit of `n` requests a minute (bursts
/// of `n`), authentication required.
fn limited_route(upstream: &str, n: u32) -> String {
    format!(
        r#"
        [rate_limits.tight]
        rate = {n}
        per = "1m"
        burst = {n}
        [[routes]]
        name = "limited"
        prefix = "/limited"
        upstreams = ["{upstream}"]
        rate_limit = "tight"
        "#
    )
}

/// A signing key, its JWKS, an upstream and `replicas` gateways serving
/// [`limited_route`] with a burst of `n`.
struct Limited {
    key: SigningKey,
    jwks: Jwks,
    up: helpers::Upstream,
    gws: Gateways,
}

async fn limited(n: u32, replicas: usize, configure: impl FnOnce(&mut platform::testing::TestEnv)) -> Limited {
    let key = SigningKey::generate("k1");
    let jwks = Jwks::start(&[&key]).await;
    let up = helpers::Upstream::start("a").await;
    let gws = spawn_n(replicas, &limited_route(&up.url(), n), &jwks.url, configure).await;
    Limited { key, jwks, up, gws }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rate_limit_is_shared_by_two_gateways() {
    let Limited { key, jwks: _jwks, up, gws } = limited(3, 2, |_| {}).await;
    let token = key.sign(&claims(Uuid::now_v7(), &["customer"]));
    let call = |i: usize| gws.client.get(gws.running[i].url("/limited/x")).bearer_auth(&token).send();
    let first = call(0).await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers().get("ratelimit-limit").unwrap(), "3");
    assert_eq!(first.headers().get("ratelimit-remaining").unwrap(), "2");
    assert_eq!(call(1).await.unwrap().status(), 200);
    assert_eq!(call(0).await.unwrap().status(), 200);
    let limited = call(1).await.unwrap();
    let retry_after: u64 = limited.headers().get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(limited.headers().get("ratelimit-remaining").unwrap(), "0");
    assert!(limited.headers().get("ratelimit-reset").is_some());
    let (status, kind, _) = problem(limited).await;
    assert_eq!((status, kind.as_str()), (429, "https://feira.dev/problems/rate-limited"));
    assert_eq!(up.hits(), 3);
    // Another user has a bucket of their own.
    let other = key.sign(&claims(Uuid::now_v7(), &["customer"]));
    let res = gws.client.get(gws.running[1].url("/limited/x")).bearer_auth(&other).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

/// Concurrent checks share Redis round trips (one script call for the
/// checks waiting on a thread, docs/adr/0020): each is still applied as its
/// own. 3 users × 40 requests at once over two gateways with a burst of 5
/// → exactly 5 per user pass; a logged-out token in the same crowd never
/// does, whether the gateways' copies of the denylist answer
/// (docs/adr/0021)...
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_checks_are_exact_per_user_and_never_let_a_revoked_token_through() {
    let limited = limited(5, 2, |_| {}).await;
    limited.gws.copies_current().await;
    concurrent_checks(&limited).await;
}

/// ... or cannot follow it (this Redis refuses SUBSCRIBE), so every token
/// is checked in Redis, in the same script call as its bucket.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_copy_of_the_denylist_concurrent_checks_are_still_exact() {
    let redis_server = PrivateRedis::start_with(&["--rename-command", "SUBSCRIBE", ""]).await;
    let url = redis_server.url.clone();
    let limited = limited(5, 2, |env| {
        env.set("FEIRA_REDIS_URL", url);
    })
    .await;
    concurrent_checks(&limited).await;
    let metrics = limited.gws.metrics().await;
    assert_ne!(metric(&metrics, "revocations_copy_current"), Some(1.0), "the copy never became current");
}

async fn concurrent_checks(Limited { key, up, gws, .. }: &Limited) {
    let users: Vec<String> = (0..3).map(|_| key.sign(&claims(Uuid::now_v7(), &["customer"]))).collect();
    let revoked_claims = claims(Uuid::now_v7(), &["customer"]);
    let revoked = key.sign(&revoked_claims);
    gws.revoke(revoked_claims["jti"].as_str().unwrap()).await;

    let mut calls = tokio::task::JoinSet::new();
    for i in 0..40 {
        for (u, token) in users.iter().chain([&revoked]).enumerate() {
            let req = gws.client.get(gws.running[(i + u) % 2].url("/limited/x")).bearer_auth(token);
            calls.spawn(async move { (u, req.send().await.unwrap().status().as_u16()) });
        }
    }
    let mut passed = [0usize; 4];
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    while let Some(done) = calls.join_next().await {
        let (u, status) = done.unwrap();
        *statuses.entry(status).or_default() += 1;
        if status == 200 {
            passed[u] += 1;
        }
    }
    assert_eq!(passed, [5, 5, 5, 0], "{statuses:?}");
    assert_eq!(statuses.get(&401), Some(&40), "{statuses:?}");
    assert_eq!(statuses.get(&429), Some(&105), "{statuses:?}");
    assert_eq!(up.hits(), 15);
}

/// With a burst of 64 a serving thread takes 4 tokens at a time (a lease,
/// docs/adr/0020) while the bucket is at least half full: 200 requests at
/// once over two gateways still get no more than the burst through (a few
/// leased tokens may go unused, never extra ones), and the denylist is
/// asked on every request, leased token or not: a token logged out
/// mid-lease fails on its next request.
#[tokio::test(flavor = "multi_thread")]
async fn leased_tokens_never_exceed_the_burst_and_never_outlive_a_logout() {
    let Limited { key, jwks: _jwks, up, gws } = limited(64, 2, |_| {}).await;
    let user = claims(Uuid::now_v7(), &["customer"]);
    let token = key.sign(&user);

    let mut calls = tokio::task::JoinSet::new();
    for i in 0..200 {
        let req = gws.client.get(gws.running[i % 2].url("/limited/x")).bearer_auth(&token);
        calls.spawn(async move { req.send().await.unwrap().status().as_u16() });
    }
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    while let Some(done) = calls.join_next().await {
        *statuses.entry(done.unwrap()).or_default() += 1;
    }
    let passed = statuses.get(&200).copied().unwrap_or(0);
    // Two gateways × two threads or more, each holding at most a lease of 4.
    assert!((48..=64).contains(&passed), "{statuses:?}");
    assert_eq!(passed + statuses.get(&429).copied().unwrap_or(0), 200, "{statuses:?}");
    assert_eq!(up.hits(), passed);

    // A fresh user takes a lease on the first request; the logout lands
    // before the second, which must not pass on the leased token.
    let user = claims(Uuid::now_v7(), &["customer"]);
    let token = key.sign(&user);
    let gw = &gws.running[0];
    let first = gws.client.get(gw.url("/limited/x")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers().get("ratelimit-remaining").unwrap(), "63", "leased tokens count as remaining");
    gws.revoke(user["jti"].as_str().unwrap()).await;
    for _ in 0..8 {
        let res = gws.client.get(gw.url("/limited/x")).bearer_auth(&token).send().await.unwrap();
        assert_invalid_token(res, "logged out while holding leased tokens").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_redis_the_rate_limit_is_local() {
    let dead = dead_address().await.replace("http://", "redis://");
    let Limited { key, jwks: _jwks, up: _up, gws: gw } = limited(2, 1, |env| {
        env.set("FEIRA_REDIS_URL", dead);
    })
    .await;
    let token = key.sign(&claims(Uuid::now_v7(), &["customer"]));
    let call = || gw.client.get(gw.url("/limited/x")).bearer_auth(&token).send();
    assert_eq!(
        call().await.unwrap().status(),
        200,
        "a valid token passes while the denylist is unreachable (fail open)"
    );
    assert_eq!(call().await.unwrap().status(), 200);
    let limited = call().await.unwrap();
    assert!(limited.headers().get("retry-after").is_some());
    assert_eq!(problem(limited).await.0, 429);
}

/// A Redis of this test's own, stopped when dropped.
struct PrivateRedis {
    child: std::process::Child,
    url: String,
}

impl PrivateRedis {
    async fn start() -> PrivateRedis {
        PrivateRedis::start_with(&[]).await
    }

    /// With more `redis-server` arguments.
    async fn start_with(args: &[&str]) -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server on the PATH");
        let url = format!("redis://127.0.0.1:{port}");
        let client = redis::Client::open(url.as_str()).unwrap();
        eventually(10, "the private redis answers", || async { client.get_multiplexed_async_connection().await.ok() })
            .await;
        PrivateRedis { child, url }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// After a Redis restart its scripts are gone (NOSCRIPT): the gateway loads
/// the rate-limit script again and the limit stays shared, not local.
#[tokio::test(flavor = "multi_thread")]
async fn the_rate_limit_survives_redis_losing_its_scripts() {
    let redis_server = PrivateRedis::start().await;
    let url = redis_server.url.clone();
    let Limited { key, jwks: _jwks, up: _up, gws: gw } = limited(3, 1, |env| {
        env.set("FEIRA_REDIS_URL", url);
    })
    .await;
    let token = key.sign(&claims(Uuid::now_v7(), &["customer"]));
    let call = || gw.client.get(gw.url("/limited/x")).bearer_auth(&token).send();
    let first = call().await.unwrap();
    assert_eq!(first.headers().get("ratelimit-remaining").unwrap(), "2");

    let mut con =
        redis::Client::open(redis_server.url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut con).await.unwrap();
    let second = call().await.unwrap();
    assert_eq!(second.status(), 200);
    // Redis's bucket, not the local fallback's (which would say 2).
    assert_eq!(second.headers().get("ratelimit-remaining").unwrap(), "1");
    assert_eq!(call().await.unwrap().status(), 200);
    assert_eq!(call().await.unwrap().status(), 429);
    assert_eq!(metric(&gw.metrics().await, "gateway_redis_fallbacks_total"), None);
}

// Upstream failures ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_upstream_opens_its_breaker_and_a_restarted_one_closes_it() {
    let jwks = Jwks::start(&[]).await;
    let up = helpers::Upstream::start("a").await;
    let routes = format!(
        "[breaker]\nfailure_threshold = 3\nopen_for = \"1s\"\n[[routes]]\nname = \"svc\"\nprefix = \"/svc\"\nupstreams = [\"{}\"]\nauth = \"public\"\nattempts = 1",
        up.url()
    );
    let gw = spawn(&routes, &jwks.url).await;
    assert_eq!(gw.get("/svc/x").await.status(), 200);
    let gauge = format!("circuit_breaker_state{{breaker=\"gateway:{}\"}}", up.url());
    assert_eq!(metric(&gw.metrics().await, &gauge), Some(0.0));

    let (addr, hits) = (up.addr, up.hits.clone());
    up.stop().await;
    for _ in 0..3 {
        let (status, kind, _) = problem(gw.get("/svc/x").await).await;
        assert_eq!((status, kind.as_str()), (502, "https://feira.dev/problems/upstream-unreachable"));
    }
    let (status, kind, _) = problem(gw.get("/svc/x").await).await;
    assert_eq!((status, kind.as_str()), (503, "https://feira.dev/problems/upstream-circuit-open"));
    assert_eq!(metric(&gw.metrics().await, &gauge), Some(1.0));

    // Back on the same port: the half-open probe closes the breaker.
    let up = helpers::Upstream::start_on(addr, "a", hits).await;
    eventually(10, "traffic flows again", || async { (gw.get("/svc/x").await.status() == 200).then_some(()) }).await;
    assert_eq!(metric(&gw.metrics().await, &gauge), Some(0.0));
    drop(up);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_post_is_never_retried_and_a_get_is() {
    let jwks = Jwks::start(&[]).await;
    let up = helpers::Upstream::start("a").await;
    let routes = format!(
        "[breaker]\nfailure_threshold = 100\n[[routes]]\nname = \"svc\"\nprefix = \"/\"\nupstreams = [\"{}\"]\nauth = \"public\"\nattempts = 3",
        up.url()
    );
    let gw = spawn(&routes, &jwks.url).await;
    let res = gw.client.post(gw.url("/fail")).body("{}").send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.text().await.unwrap(), "down", "the upstream's own answer passes through");
    assert_eq!(up.hits(), 1, "the failing POST reached the upstream once");
    let res = gw.get("/fail").await;
    assert_eq!(res.status(), 503);
    assert_eq!(up.hits(), 1 + 3, "the failing GET was tried three times");
    let text = gw.metrics().await;
    assert_eq!(metric(&text, "gateway_retries_total{route=\"svc\"}"), Some(2.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn round_robin_spreads_requests_and_skips_a_dead_upstream() {
    let jwks = Jwks::start(&[]).await;
    let a = helpers::Upstream::start("a").await;
    let b = helpers::Upstream::start("b").await;
    let routes = format!(
        "[breaker]\nfailure_threshold = 2\nopen_for = \"1m\"\n[[routes]]\nname = \"svc\"\nprefix = \"/\"\nupstreams = [\"{}\", \"{}\"]\nauth = \"public\"\nattempts = 2",
        a.url(),
        b.url()
    );
    let gw = spawn(&routes, &jwks.url).await;
    for _ in 0..10 {
        assert_eq!(gw.get("/x").await.status(), 200);
    }
    assert_eq!((a.hits(), b.hits()), (5, 5));

    let b_url = b.url();
    b.stop().await;
    for _ in 0..20 {
        assert_eq!(gw.get("/x").await.status(), 200, "every request is served while b is down");
    }
    assert_eq!(a.hits(), 5 + 20);
    let gauge = format!("circuit_breaker_state{{breaker=\"gateway:{b_url}\"}}");
    assert_eq!(metric(&gw.metrics().await, &gauge), Some(1.0), "b's breaker is open");
}

/// An upstream that closes every connection after one answer, without
/// saying so (as an upstream whose keep-alive timeout passed does): the
/// gateway notices, and each POST still arrives once, on a new connection.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_the_upstream_dropped_is_not_reused() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (hits, connections) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (h, c) = (hits.clone(), connections.clone());
    let server = tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            c.fetch_add(1, Ordering::SeqCst);
            let h = h.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Head and the two-byte body.
                while !request.windows(4).any(|w| w == b"\r\n\r\n") || !request.ends_with(b"{}") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                h.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
            });
        }
    });
    let jwks = Jwks::start(&[]).await;
    let routes =
        format!("[[routes]]\nname = \"svc\"\nprefix = \"/\"\nupstreams = [\"http://{addr}\"]\nauth = \"public\"");
    let gw = spawn_n(1, &routes, &jwks.url, |_| {}).await;
    for i in 0..4 {
        let res = gw.client.post(gw.url("/orders")).body("{}").send().await.unwrap();
        assert_eq!(res.status(), 200, "POST {i}");
        assert_eq!(res.text().await.unwrap(), "ok");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(hits.load(Ordering::SeqCst), 4, "each POST arrived once");
    assert_eq!(connections.load(Ordering::SeqCst), 4, "each on a new connection");
    server.abort();
}

// OpenAPI ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn the_merged_openapi_names_the_upstreams_that_did_not_answer() {
    let jwks = Jwks::start(&[]).await;
    let dead = dead_address().await;
    let up = helpers::Upstream::start("a").await;
    let routes = format!(
        "[[routes]]\nname = \"a\"\nprefix = \"/a\"\nupstreams = [\"{}\"]\n[[routes]]\nname = \"b\"\nprefix = \"/b\"\nupstreams = [\"{dead}\"]",
        up.url()
    );
    let gw = spawn(&routes, &jwks.url).await;
    let doc: Value = gw.get("/gateway/openapi.json").await.json().await.unwrap();
    assert_eq!(doc["x-feira-missing"], json!([dead]));
    assert!(doc["paths"].is_object());
    assert_eq!(gw.get("/gateway/docs/").await.status(), 200);
}

// Serving ----------------------------------------------------------------------------

/// The proxy runs outside the platform's middleware (docs/adr/0020), so this
/// checks what that middleware would otherwise give it: the gateway's own
/// endpoints, CORS on both, request ids, and the metrics per route.
#[tokio::test(flavor = "multi_thread")]
async fn own_endpoints_cors_request_ids_and_metrics_beside_the_proxy() {
    let jwks = Jwks::start(&[]).await;
    let up = helpers::Upstream::start("a").await;
    let gw = spawn_n(1, &routes(&up.url()), &jwks.url, |env| {
        env.set("FEIRA_GATEWAY_CORS_ORIGINS", "https://shop.example");
    })
    .await;
    assert_eq!(gw.get("/health/live").await.status(), 200);
    assert_eq!(gw.get("/gateway/openapi.json").await.status(), 200);

    // A request id is made when the client sent none, and sent upstream.
    let res = gw.get("/public/x").await;
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let seen: Value = res.json().await.unwrap();
    assert_eq!(seen["headers"]["x-request-id"], id.as_str());
    assert!(Uuid::parse_str(&id).is_ok(), "{id}");
    // The client's own is kept.
    let res = gw.client.get(gw.url("/public/x")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");

    // CORS: preflight and actual request, on a proxied route and on the
    // gateway's own endpoint.
    for path in ["/public/x", "/gateway/openapi.json"] {
        let res = gw
            .client
            .request(reqwest::Method::OPTIONS, gw.url(path))
            .header("origin", "https://shop.example")
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["access-control-allow-origin"], "https://shop.example", "{path}");
        let res = gw.client.get(gw.url(path)).header("origin", "https://shop.example").send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["access-control-allow-origin"], "https://shop.example", "{path}");
    }
    let res = gw.client.get(gw.url("/public/x")).header("origin", "https://evil.example").send().await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());

    let _ = gw.get("/nowhere").await;
    let text = gw.metrics().await;
    assert!(
        metric(&text, "gateway_requests_total{route=\"public\",method=\"GET\",status=\"200\"}").unwrap_or(0.0) >= 3.0,
        "{text}"
    );
    assert!(metric(&text, "gateway_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}").is_some());
    assert!(text.contains("gateway_request_duration_seconds"), "{text}");
    assert!(text.contains("gateway_upstream_duration_seconds"), "{text}");
}

/// Sends raw bytes and reads the answer until the gateway closes the
/// connection (or 5 s pass).
async fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the gateway kept the connection open after: {}", String::from_utf8_lossy(&answer));
    String::from_utf8_lossy(&answer).to_lowercase()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_does_not_arrive_in_time_is_a_408_and_a_refused_body_closes_the_connection() {
    let jwks = Jwks::start(&[]).await;
    let up = helpers::Upstream::start("a").await;
    let gw = spawn_n(1, &routes(&up.url()), &jwks.url, |env| {
        env.set("FEIRA_HTTP_REQUEST_TIMEOUT", "300ms");
        env.set("FEIRA_HTTP_BODY_LIMIT", "1024");
    })
    .await;
    let addr = gw.running[0].addr;
    // Ten of the hundred announced bytes, then nothing.
    let slow =
        raw_exchange(addr, b"POST /public/x HTTP/1.1\r\nhost: gw\r\ncontent-length: 100\r\n\r\n0123456789").await;
    assert!(slow.starts_with("http/1.1 408"), "{slow}");
    assert!(slow.contains("connection: close") && slow.contains("application/problem+json"), "{slow}");
    // Over the limit: the rest of the body is not read as a next request.
    let large = raw_exchange(addr, b"POST /public/x HTTP/1.1\r\nhost: gw\r\ncontent-length: 5000\r\n\r\nabc").await;
    assert!(large.starts_with("http/1.1 413"), "{large}");
    assert!(large.contains("connection: close"), "{large}");
    assert_eq!(up.hits(), 0);
}

/// `FEIRA_GATEWAY_WORKERS`: the default serves on a thread per core; `0`
/// on the process's runtime. Both proxy, and both stop on shutdown after
/// finishing the request in flight.
#[tokio::test(flavor = "multi_thread")]
async fn both_serving_modes_proxy_and_finish_in_flight_requests_on_shutdown() {
    for workers in ["0", "auto", "3"] {
        let jwks = Jwks::start(&[]).await;
        let up = helpers::Upstream::start("a").await;
        let mut gw = spawn_n(1, &routes(&up.url()), &jwks.url, |env| {
            env.set("FEIRA_GATEWAY_WORKERS", workers);
        })
        .await;
        for _ in 0..20 {
            assert_eq!(gw.get("/public/x").await.status(), 200, "workers {workers}");
        }
        // The upstream answers /slow after 2 s; the stop comes meanwhile.
        let slow = tokio::spawn(gw.client.get(gw.url("/api/slow")).send());
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let running = gw.running.remove(0);
        let stopped = tokio::time::timeout(std::time::Duration::from_secs(10), running.stop()).await;
        assert!(matches!(stopped, Ok(Ok(()))), "workers {workers}: {stopped:?}");
        let res = slow.await.unwrap().expect("the request in flight is answered");
        assert_eq!(res.status(), 200, "workers {workers}");
        assert_eq!(up.hits(), 21, "workers {workers}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_workers_setting_stops_the_start() {
    let jwks = Jwks::start(&[]).await;
    let (mut env, _file) = env_for(&routes("http://127.0.0.1:9"), &jwks.url);
    env.set("FEIRA_GATEWAY_WORKERS", "many");
    let token = tokio_util::sync::CancellationToken::new();
    let svc = platform::service::start(&gateway::SPEC, Arc::new(env.config()), token).await.unwrap();
    let err = format!("{:#}", (gateway::SPEC.run)(svc).await.unwrap_err());
    assert!(err.contains("FEIRA_GATEWAY_WORKERS") && err.contains("many"), "{err}");
}
