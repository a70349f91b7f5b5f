//! The OpenAPI document of the whole platform: every upstream's
//! `/openapi.json`, fetched when asked (and kept `ttl`), with paths and
//! components merged. Upstreams that do not answer are listed in
//! `x-feira-missing` instead of failing the document.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use crate::routes::Upstream;

pub struct Docs {
    upstreams: Vec<Arc<Upstream>>,
    client: reqwest::Client,
    ttl: Duration,
    cache: tokio::sync::Mutex<Option<(Instant, Value)>>,
}

impl Docs {
    pub fn new(upstreams: Vec<Arc<Upstream>>, client: reqwest::Client, ttl: Duration) -> Self {
        Docs { upstreams, client, ttl, cache: tokio::sync::Mutex::new(None) }
    }

    async fn merged(&self) -> Value {
        let mut cache = self.cache.lock().await;
        if let Some((at, doc)) = cache.as_ref()
            && at.elapsed() < self.ttl
        {
            return doc.clone();
        }
        let fetches = self.upstreams.iter().map(|u| async move {
            let url = format!("{}/openapi.json", u.base);
            let doc = async {
                let res = self.client.get(&url).timeout(Duration::from_secs(2)).send().await?;
                res.error_for_status()?.json::<Value>().await
            }
            .await;
            (u.label.clone(), doc)
        });
        let docs = futures_util::future::join_all(fetches).await;
        let mut missing = Vec::new();
        let mut found = Vec::new();
        for (label, doc) in docs {
            match doc {
                Ok(d) => found.push(d),
                Err(e) => {
                    tracing::debug!(upstream = label, error = %e, "openapi of an upstream unavailable");
                    missing.push(label);
                }
            }
        }
        let doc = merge(found, missing);
        *cache = Some((Instant::now(), doc.clone()));
        doc
    }
}

/// Paths, components and tags of every document, the first one winning a
/// clash.
pub fn merge(docs: Vec<Value>, missing: Vec<String>) -> Value {
    let mut paths = Map::new();
    let mut components: Map<String, Value> = Map::new();
    let mut tags: Vec<Value> = Vec::new();
    for doc in docs {
        if let Some(Value::Object(p)) = doc.get("paths") {
            for (k, v) in p {
                paths.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        if let Some(Value::Object(c)) = doc.get("components") {
            for (kind, items) in c {
                let Value::Object(items) = items else { continue };
                let slot = components.entry(kind.clone()).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(slot) = slot {
                    for (k, v) in items {
                        slot.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
        }
        if let Some(Value::Array(t)) = doc.get("tags") {
            for tag in t {
                if !tags.iter().any(|x| x.get("name") == tag.get("name")) {
                    tags.push(tag.clone());
                }
            }
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "feira API",
            "description": "Every service behind the gateway, as the gateway routes them.",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "paths": paths,
        "components": components,
        "tags": tags,
        "x-feira-missing": missing,
    })
}

/// The merged OpenAPI document of every service behind the gateway.
#[utoipa::path(get, path = "/gateway/openapi.json", tag = "gateway",
    responses((status = 200, description = "the merged OpenAPI 3.1 document; `x-feira-missing` lists upstreams that did not answer")))]
pub async fn merged_openapi(State(docs): State<Arc<Docs>>) -> Json<Value> {
    Json(docs.merged().await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_components_are_merged_and_missing_ones_named() {
        let a =
            json!({"paths": {"/a": {}}, "components": {"schemas": {"A": {}, "P": {"x": 1}}}, "tags": [{"name": "a"}]});
        let b = json!({"paths": {"/b": {}}, "components": {"schemas": {"B": {}, "P": {"x": 2}}}});
        let m = merge(vec![a, b], vec!["service:cart".into()]);
        assert_eq!(m["paths"].as_object().map(|p| p.len()), Some(2));
        assert_eq!(m["components"]["schemas"]["P"]["x"], 1);
        assert!(m["components"]["schemas"].get("B").is_some());
        assert_eq!(m["x-feira-missing"], json!(["service:cart"]));
    }
}
