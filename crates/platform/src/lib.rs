//! feira's shared runtime: everything a service needs except its domain.
//!
//! # Layout
//! - [`config`]: `FEIRA_*` variables over local defaults, validated at start.
//! - [`telemetry`]: JSON logs with trace ids, OpenTelemetry traces, W3C
//!   context across HTTP and AMQP.
//! - [`error`]: [`ErrorKind`](error::ErrorKind), problem+json answers, the
//!   consumer dispositions.
//! - [`http`]: the scaffold (health, metrics, OpenAPI and Swagger UI, request
//!   id, timeouts, body limit), the [`Caller`](http::Caller) header contract,
//!   the JSON extractor and `Idempotency-Key`.
//! - [`accept`]: one acceptor spreading connections over serving threads.
//! - [`cache`]: Redis cache-aside for read paths, invalidated by the
//!   service's change events; answers from the database when Redis is down.
//! - [`db`]: pools, database creation, migrations (the platform's tables:
//!   outbox, inbox, idempotency keys).
//! - [`messaging`]: topology, broker handle, outbox + relay, consumer + inbox,
//!   retries and dead-letter queues, `feira dlq` operations.
//! - [`resilience`]: circuit breaker, retries with backoff and jitter.
//! - [`revocations`]: identity's revoked tokens, and the gateways' copies
//!   of them that answer without a Redis round trip.
//! - [`service`]: the [`ServiceSpec`](service::ServiceSpec) a service exports
//!   and the runtime it gets.
//! - [`testing`]: a database per service and a namespace per test, cleaned up.

pub mod accept;
pub mod cache;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod messaging;
pub mod resilience;
pub mod revocations;
pub mod service;
pub mod telemetry;
pub mod testing;

pub use error::{ApiError, ErrorKind};
