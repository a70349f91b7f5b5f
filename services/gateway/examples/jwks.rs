//! A stand-in identity for `bench/gateway.sh`: makes an Ed25519 key, serves
//! its JWKS at `http://<addr>/.well-known/jwks.json`, and prints access
//! tokens (valid for an hour) of `<users>` different users on stdout, one
//! per line.
//!
//! `cargo run --release -p gateway --example jwks -- 127.0.0.1:9101 [users]`

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9101".to_string());
    let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(pair.public_key().as_ref()),
                     "kid": "bench", "alg": "EdDSA", "use": "sig"});
    let users: usize = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(1);
    let now = jsonwebtoken::get_current_timestamp();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("bench".into());
    let key = EncodingKey::from_ed_der(doc.as_ref());
    let mut tokens = String::new();
    for _ in 0..users.max(1) {
        let claims = json!({"iss": "feira-identity", "aud": "feira", "sub": uuid::Uuid::now_v7().to_string(),
                            "roles": ["customer"], "jti": uuid::Uuid::now_v7().to_string(), "iat": now, "exp": now + 3600});
        tokens.push_str(&jsonwebtoken::encode(&header, &claims, &key)?);
        tokens.push('\n');
    }
    print!("{tokens}");
    let body = json!({ "keys": [jwk] });
    let app = Router::new().route("/.well-known/jwks.json", get(move || std::future::ready(axum::Json(body.clone()))));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
