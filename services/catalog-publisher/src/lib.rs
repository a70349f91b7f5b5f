//! catalog-publisher: publishes each owner's catalog as one JSON document in
//! object storage ("recebe owner, valida owner, busca owner products e
//! categories, monta o json, envia pro s3").
//!
//! Consumes the catalog's change events (`OwnerChangedV1`,
//! `CategoryChangedV1`, `ProductChangedV1`, `StockChangedV1`, one queue
//! `catalog-publisher.catalog_changed`) into its own read model, applying a
//! change only when it is newer than the stored one and marking the owner
//! dirty in the same transaction. A coalescing loop publishes each dirty owner
//! once its changes have been quiet for `FEIRA_CATALOG_PUBLISHER_WINDOW` (or
//! after ten windows of constant churn): it builds the document, and only
//! when its SHA-256 differs from the last published one writes
//! `catalogs/<owner_id>/v<version>.json` and `catalogs/<owner_id>.json` and
//! announces `CatalogPublishedV1` through the outbox. Many messages for one
//! owner make one document; a message that cannot be applied is retried, then
//! parked in the dead-letter queue while the ones behind it flow.
//!
//! An owner is published only once its `OwnerChangedV1` has arrived (the
//! document names its owner); until then its changes wait in the read model.
//!
//! # Layout
//! - `http/`: `GET /catalogs/{owner_id}`, the last published version.
//! - `domain/`: the accepted changes, the document and its rendering, the
//!   publishing rules (keys, versions, retry delays).
//! - `app/`: applying a change; publishing one owner (`app/publish.rs`).
//! - `repo/`: SQL (read model, dirty marks, publications).
//! - `events/`: one handler per consumed message, the published-event mapper.
//! - `store.rs`: object storage (local folder or S3) through `object_store`.
//! - `publisher.rs`: the publisher loop and its metrics.
//! - `migrations/`: the service's schema.

pub mod app;
pub mod domain;
pub mod events;
pub mod http;
pub mod publisher;
pub mod repo;
pub mod store;

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use platform::ErrorKind;
use platform::config::Var;
use platform::error::ApiError;
use platform::service::{RunFuture, Service, ServiceSpec};
use sqlx::PgPool;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::domain::Coalescing;
use crate::store::CatalogStore;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub const WINDOW_VAR: &str = "FEIRA_CATALOG_PUBLISHER_WINDOW";

pub const VARS: &[Var] = &[
    Var {
        name: WINDOW_VAR,
        default: "500ms",
        help: "quiet time after an owner's last change before its catalog is published (at most 10x this under constant change)",
    },
    Var {
        name: store::STORE_VAR,
        default: "file://./.feira/objects",
        help: "where catalogs are written: file://<folder> (relative to the current directory) or s3://<bucket>[/<prefix>]",
    },
    Var {
        name: store::S3_ENDPOINT_VAR,
        default: "",
        help: "S3-compatible server URL (http:// allows plain HTTP); empty: AWS_ENDPOINT_URL or AWS itself",
    },
    Var { name: store::S3_REGION_VAR, default: "", help: "S3 region; empty: AWS_REGION, else us-east-1" },
    Var {
        name: store::S3_ACCESS_KEY_ID_VAR,
        default: "",
        help: "S3 access key id; empty: AWS_ACCESS_KEY_ID or the role/instance credentials",
    },
    Var {
        name: store::S3_SECRET_ACCESS_KEY_VAR,
        default: "",
        help: "S3 secret key (a secret: prefer AWS_SECRET_ACCESS_KEY from a Secret); empty: AWS_SECRET_ACCESS_KEY",
    },
];

pub const SPEC: ServiceSpec = ServiceSpec {
    name: "catalog-publisher",
    default_port: 8113,
    migrator: Some(&MIGRATOR),
    openapi,
    vars: VARS,
    consumers: &[events::CONSUMER],
    run,
};

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
}

#[derive(OpenApi)]
#[openapi(info(
    title = "feira catalog publisher",
    description = "Publishes each owner's catalog as JSON to object storage; announces CatalogPublishedV1."
))]
struct ApiDoc;

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(http::catalogs::router())
}

/// The OpenAPI document alone (`feira openapi catalog-publisher`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

fn run(svc: Service) -> RunFuture {
    Box::pin(async move {
        let window = svc.config.duration(WINDOW_VAR)?;
        let rules = Coalescing::new(window);
        let store = Arc::new(CatalogStore::from_config(&svc.config).context("configure the catalog store")?);
        let (api, openapi) = api().split_for_parts();
        let api: Router = api.with_state(AppState { db: svc.db_read.clone() });
        svc.spawn_outbox_relay();
        svc.spawn_consumer(events::CONSUMER, events::OnCatalogChanged);
        // The process's recorder must exist before the counters are touched.
        let _ = platform::http::metrics_handle();
        publisher::register_metrics();
        let mut workers = tokio::task::JoinSet::new();
        for worker in 0..publisher::WORKERS {
            workers.spawn(publisher::run(worker, svc.db.clone(), store.clone(), rules, svc.shutdown.clone()));
        }
        workers.spawn(publisher::export_backlog(svc.db.clone(), svc.shutdown.clone()));
        let grace = svc.config.shutdown_grace;
        let served = svc.serve(api, openapi).await;
        // `serve` returns once shutdown was requested; let publications in
        // progress finish.
        if tokio::time::timeout(grace, async { while workers.join_next().await.is_some() {} }).await.is_err() {
            tracing::warn!("catalog publisher workers did not stop within the grace period");
        }
        served
    })
}

/// What can go wrong in the catalog publisher's API.
#[derive(Debug, thiserror::Error)]
pub enum CatalogPublisherError {
    #[error("nothing published for this owner")]
    NotFound,
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl CatalogPublisherError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CatalogPublisherError::NotFound => ErrorKind::NotFound,
            CatalogPublisherError::Api(e) => e.kind,
            CatalogPublisherError::Db(_) => ErrorKind::Internal,
        }
    }
}

impl From<CatalogPublisherError> for ApiError {
    fn from(e: CatalogPublisherError) -> Self {
        match e {
            CatalogPublisherError::Api(e) => e,
            CatalogPublisherError::Db(e) => ApiError::from(e),
            other => ApiError::new(other.kind(), other.to_string()),
        }
    }
}
