//! The shipping HTTP API: one file per resource.

pub mod quotes;
pub mod shipments;

use utoipa::IntoParams;
use uuid::Uuid;

/// The caller headers the gateway sets (documented on the routes that read them).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct CallerHeaders {
    /// The authenticated user's id; absent for anonymous calls.
    #[param(rename = "x-feira-user-id")]
    pub user_id: Option<Uuid>,
    /// Comma-separated roles (`customer`, `admin`); ignored without a user id.
    #[param(rename = "x-feira-roles")]
    pub roles: Option<String>,
}
