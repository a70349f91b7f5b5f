//! The catalog publisher's small HTTP API (health, metrics and OpenAPI come
//! from the platform scaffold).

pub mod catalogs;
