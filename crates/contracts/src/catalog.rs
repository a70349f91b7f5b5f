//! Messages of the catalog: its change events, the stock commands the order
//! saga sends it, their replies, and the publisher's event.
//!
//! Commands travel on the same topic exchange as events, with imperative
//! names (`catalog.reserve_stock.v1`); only the catalog binds to them.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Message;

macro_rules! message {
    ($ty:ident, $name:literal, $version:literal) => {
        impl Message for $ty {
            const TYPE: &'static str = concat!("catalog.", $name);
            const VERSION: u16 = $version;
            const ROUTING_KEY: &'static str = concat!("catalog.", $name, ".v", $version);
        }
    };
}

/// An owner (seller) was created or changed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct OwnerChangedV1 {
    pub owner_id: Uuid,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub changed_at: OffsetDateTime,
}
message!(OwnerChangedV1, "owner_changed", 1);

/// A category was created, changed or deleted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CategoryChangedV1 {
    pub category_id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub deleted: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub changed_at: OffsetDateTime,
}
message!(CategoryChangedV1, "category_changed", 1);

/// A product was created, changed or deleted. Carries the whole product, so
/// read models (the catalog publisher, the storefront) need no callback.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ProductChangedV1 {
    pub product_id: Uuid,
    pub owner_id: Uuid,
    pub sku: String,
    pub title: String,
    pub description: String,
    pub price_cents: i64,
    pub currency: String,
    pub category_id: Option<Uuid>,
    /// Free-form attributes (a JSON object).
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
    pub active: bool,
    pub deleted: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub changed_at: OffsetDateTime,
}
message!(ProductChangedV1, "product_changed", 1);

/// A product's stock changed (set, reserved, released or sold).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StockChangedV1 {
    pub product_id: Uuid,
    pub owner_id: Uuid,
    pub on_hand: i64,
    pub reserved: i64,
    /// `on_hand - reserved`, never negative.
    pub available: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub changed_at: OffsetDateTime,
}
message!(StockChangedV1, "stock_changed", 1);

/// One line of a reservation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StockLineV1 {
    pub product_id: Uuid,
    pub quantity: i64,
}

/// Command: reserve every line for the order, or none. Idempotent per order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ReserveStockV1 {
    pub order_id: Uuid,
    pub lines: Vec<StockLineV1>,
}
message!(ReserveStockV1, "reserve_stock", 1);

/// Reply: every line is reserved until `expires_at`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StockReservedV1 {
    pub order_id: Uuid,
    pub lines: Vec<StockLineV1>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}
message!(StockReservedV1, "stock_reserved", 1);

/// A line that could not be reserved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ShortLineV1 {
    pub product_id: Uuid,
    pub requested: i64,
    /// 0 for an unknown or inactive product.
    pub available: i64,
}

/// Reply: nothing was reserved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StockRejectedV1 {
    pub order_id: Uuid,
    /// `out_of_stock`, `unknown_product` or `invalid_request`.
    pub reason: String,
    pub short_lines: Vec<ShortLineV1>,
}
message!(StockRejectedV1, "stock_rejected", 1);

/// Command (compensation): give the order's reserved stock back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ReleaseStockV1 {
    pub order_id: Uuid,
    pub reason: String,
}
message!(ReleaseStockV1, "release_stock", 1);

/// Reply: the reservation is released (also sent when it expired).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StockReleasedV1 {
    pub order_id: Uuid,
    /// `released`, `expired`, `returned` (a sale given back: the order was
    /// cancelled before it shipped) or `nothing_reserved`.
    pub reason: String,
}
message!(StockReleasedV1, "stock_released", 1);

/// Command: the sale happened; on_hand and reserved both drop.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CommitStockV1 {
    pub order_id: Uuid,
}
message!(CommitStockV1, "commit_stock", 1);

/// Reply: the reservation became a sale.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StockCommittedV1 {
    pub order_id: Uuid,
}
message!(StockCommittedV1, "stock_committed", 1);

/// The owner's catalog document was written to object storage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CatalogPublishedV1 {
    pub owner_id: Uuid,
    /// Increases by one with every published change.
    pub version: i64,
    /// Object key of the current document, `catalogs/<owner_id>.json`.
    pub key: String,
    /// Object key of this version's copy.
    pub versioned_key: String,
    /// Hex SHA-256 of the document's bytes.
    pub sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    pub published_at: OffsetDateTime,
}
message!(CatalogPublishedV1, "catalog_published", 1);
