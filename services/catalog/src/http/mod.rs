//! The catalog HTTP API: one file per resource.
//!
//! Handlers check who calls before what they sent (an anonymous caller
//! learns nothing about the body's validity), parse the body into domain
//! types (every invalid field named at once), and call one use case.

pub mod categories;
pub mod owners;
pub mod products;
pub mod reservations;
pub mod stock;

use serde::{Deserialize, Deserializer};
use utoipa::IntoParams;
use uuid::Uuid;

/// The caller, as the gateway sets it (see the README's header contract).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct CallerHeaders {
    /// The authenticated user's id; absent for anonymous calls.
    #[param(rename = "x-feira-user-id")]
    pub user_id: Option<Uuid>,
    /// Comma-separated roles (`customer`, `seller`, `admin`); ignored without a user id.
    #[param(rename = "x-feira-roles")]
    pub roles: Option<String>,
}

/// For `Option<Option<T>>` fields: absent is `None`, `null` is `Some(None)`.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}
