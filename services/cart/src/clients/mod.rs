//! The services the cart calls over HTTP (never their crates): catalog for
//! prices (behind the `catalog` circuit breaker), shipping for freight
//! quotes, orders to place the order. Each call has its own timeout.

pub mod catalog;
pub mod orders;
pub mod shipping;

pub use catalog::CatalogClient;
pub use orders::{Forwarded, OrdersClient, OrdersFailure, Placed};
pub use shipping::{QuoteLookup, ShippingClient};

/// `base` without a trailing slash, then `path`.
fn url(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}
