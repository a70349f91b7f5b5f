//! Consumed commands (one handler per file) and published-event mappers.

pub mod cache_invalidation;
pub mod commit_stock;
pub mod release_stock;
pub mod reserve_stock;

use contracts::catalog::{
    CategoryChangedV1, OwnerChangedV1, ProductChangedV1, ShortLineV1, StockChangedV1, StockCommittedV1, StockLineV1,
    StockRejectedV1, StockReleasedV1, StockReservedV1,
};
use uuid::Uuid;

use crate::domain::{Category, Owner, Product, RejectReason, Reservation, StockLevel};

pub fn owner_changed(o: &Owner) -> OwnerChangedV1 {
    OwnerChangedV1 { owner_id: o.id, name: o.name.as_str().to_string(), changed_at: o.updated_at }
}

pub fn category_changed(c: &Category, deleted: bool) -> CategoryChangedV1 {
    CategoryChangedV1 {
        category_id: c.id,
        owner_id: c.owner_id,
        name: c.name.as_str().to_string(),
        deleted,
        changed_at: c.updated_at,
    }
}

pub fn product_changed(p: &Product, deleted: bool) -> ProductChangedV1 {
    ProductChangedV1 {
        product_id: p.id,
        owner_id: p.owner_id,
        sku: p.sku.as_str().to_string(),
        title: p.title.as_str().to_string(),
        description: p.description.as_str().to_string(),
        price_cents: p.price.get(),
        currency: p.currency.code().to_string(),
        category_id: p.category_id,
        attributes: p.attributes.to_json(),
        active: p.active,
        deleted,
        changed_at: p.updated_at,
    }
}

pub fn stock_changed(l: &StockLevel) -> StockChangedV1 {
    StockChangedV1 {
        product_id: l.product_id,
        owner_id: l.owner_id,
        on_hand: l.on_hand,
        reserved: l.reserved,
        available: l.available(),
        changed_at: l.updated_at,
    }
}

pub fn stock_reserved(r: &Reservation) -> StockReservedV1 {
    StockReservedV1 {
        order_id: r.order_id,
        lines: r.lines.iter().map(|l| StockLineV1 { product_id: l.product_id, quantity: l.quantity }).collect(),
        expires_at: r.expires_at.unwrap_or(r.created_at),
    }
}

pub fn stock_rejected(r: &Reservation) -> StockRejectedV1 {
    StockRejectedV1 {
        order_id: r.order_id,
        reason: r.reject_reason().unwrap_or(RejectReason::InvalidRequest).as_str().to_string(),
        short_lines: r
            .short_lines()
            .into_iter()
            .map(|s| ShortLineV1 { product_id: s.product_id, requested: s.requested, available: s.available })
            .collect(),
    }
}

/// The answer to a reserve command that can never be served as sent.
pub fn invalid_request(order_id: Uuid) -> StockRejectedV1 {
    StockRejectedV1 { order_id, reason: RejectReason::InvalidRequest.as_str().to_string(), short_lines: Vec::new() }
}

pub fn stock_released(order_id: Uuid, reason: &str) -> StockReleasedV1 {
    StockReleasedV1 { order_id, reason: reason.to_string() }
}

pub fn stock_committed(order_id: Uuid) -> StockCommittedV1 {
    StockCommittedV1 { order_id }
}
