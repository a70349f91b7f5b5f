//! SQL for the catalog. Every function takes a connection, so use cases
//! decide the transaction.

mod owners;
mod products;
mod reservations;
mod stock;

pub use owners::{
    delete_category, fetch_category, fetch_owner, insert_category, insert_owner, list_categories, lock_category,
    lock_owner, update_category, update_owner,
};
pub use products::{
    fetch_product, insert_product, list_catalog_products, list_products, lock_product, soft_delete_product,
    uncategorize_products, update_product,
};
pub use reservations::{claim_due_reservations, fetch_reservation, insert_reservation, lock_order, update_reservation};
pub use stock::{fetch_stock, holds_of, lock_stock, update_stock};

/// A stored value that no longer parses: the database was changed behind
/// the service's back.
fn corrupt(what: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("corrupt row: {what}").into())
}

/// True when `e` broke the unique index or constraint `name`.
pub fn violates(e: &sqlx::Error, name: &str) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505") && d.constraint() == Some(name))
}
