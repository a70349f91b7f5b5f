//! Use cases: open a transaction, apply the domain, write through the
//! repository and the outbox, commit. Who may do what is decided here too
//! ([`may_manage`] and friends), so every channel applies the same rules.
//!
//! Public reads ([`get_product`], [`list_products`], [`owner_catalog`]) take
//! the read pool and go through the cache ([`cache`]); every write
//! invalidates what it changed once its transaction has committed.

pub mod cache;
pub mod expiry;
mod owners;
mod products;
mod reservations;
mod stock;

pub use owners::{
    create_category, delete_category, get_category, get_owner, list_categories, owner_catalog, put_owner,
    rename_category,
};
pub use products::{create_product, delete_product, get_product, list_products, update_product};
pub use reservations::{
    Reserve, Settle, authorize_operator, commit, commit_for_operator, expire_due, get_reservation, reject_invalid,
    release, release_for_operator, reserve, reserve_for_operator,
};
pub use stock::{get_stock, set_stock};

pub use self::cache::{CatalogCache, Changes, ReplicaLag};

use contracts::{Envelope, Message};
use platform::http::{Caller, Role};
use platform::messaging::outbox;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::CatalogError;

/// The command being handled, whose replies are caused by it; `None` for
/// an HTTP request, which starts a flow of its own.
pub type Cause<'a> = Option<&'a Envelope<serde_json::Value>>;

/// True for an admin, and for the seller who owns `owner_id`'s catalog.
pub fn may_manage(caller: &Caller, owner_id: Uuid) -> bool {
    caller.is_admin() || (caller.has(Role::Seller) && caller.user_id == Some(owner_id))
}

/// True when [`may_manage`] holds for some owner: an admin, or a signed-in
/// seller.
fn may_manage_some(caller: &Caller) -> bool {
    caller.is_admin() || (caller.has(Role::Seller) && caller.user_id.is_some())
}

/// Writes under `/owners/{owner_id}`: anonymous callers are asked to sign in
/// (401), anyone but that seller or an admin is refused (403).
pub fn authorize_owner(caller: &Caller, owner_id: Uuid) -> Result<(), CatalogError> {
    caller.require_user()?;
    if !may_manage(caller, owner_id) {
        return Err(CatalogError::Forbidden("only this seller or an admin may manage this catalog"));
    }
    Ok(())
}

/// An existing object of `owner_id`, asked for by a signed-in caller: its
/// owner without the seller role is refused (403); anyone else is told it
/// does not exist (404), so ids of others' objects reveal nothing.
fn authorize_object(caller: &Caller, owner_id: Uuid, what: &'static str) -> Result<(), CatalogError> {
    if may_manage(caller, owner_id) {
        Ok(())
    } else if caller.user_id == Some(owner_id) {
        Err(CatalogError::Forbidden("the seller role is required to manage a catalog"))
    } else {
        Err(CatalogError::NotFound(what))
    }
}

/// Writes `payload` to the outbox, caused by `cause` when there is one.
async fn announce<T: Message>(tx: &mut PgConnection, cause: Cause<'_>, payload: T) -> sqlx::Result<()> {
    let envelope = match cause {
        Some(c) => Envelope::caused_by(c, payload),
        None => Envelope::new(payload),
    };
    outbox::enqueue(tx, &envelope).await
}

fn now() -> OffsetDateTime {
    kernel::time::now()
}
