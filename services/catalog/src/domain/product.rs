//! Products.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::values::{Attributes, Cents, Currency, Description, SearchText, Sku, Title};

/// A product of one owner. Serialized for the cache (its fields parse again
/// when read back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub sku: Sku,
    pub title: Title,
    pub description: Description,
    pub price: Cents,
    pub currency: Currency,
    /// A category of the same owner.
    pub category_id: Option<Uuid>,
    /// Only active products are listed and sold.
    pub active: bool,
    pub attributes: Attributes,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A validated request to create a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    pub sku: Sku,
    pub title: Title,
    pub description: Description,
    pub price: Cents,
    pub currency: Currency,
    pub category_id: Option<Uuid>,
    pub active: bool,
    pub attributes: Attributes,
}

/// A validated partial update: `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProductPatch {
    pub sku: Option<Sku>,
    pub title: Option<Title>,
    pub description: Option<Description>,
    pub price: Option<Cents>,
    pub currency: Option<Currency>,
    /// `Some(None)` removes the category.
    pub category_id: Option<Option<Uuid>>,
    pub active: Option<bool>,
    pub attributes: Option<Attributes>,
}

impl Product {
    /// A new product of `owner_id`, with a UUIDv7 id.
    pub fn create(owner_id: Uuid, new: NewProduct, now: OffsetDateTime) -> Self {
        Product {
            id: Uuid::now_v7(),
            owner_id,
            sku: new.sku,
            title: new.title,
            description: new.description,
            price: new.price,
            currency: new.currency,
            category_id: new.category_id,
            active: new.active,
            attributes: new.attributes,
            created_at: now,
            updated_at: now,
        }
    }

    /// The product with `patch` applied, or `None` when nothing changes.
    pub fn patched(&self, patch: ProductPatch, now: OffsetDateTime) -> Option<Product> {
        let next = Product {
            sku: patch.sku.unwrap_or_else(|| self.sku.clone()),
            title: patch.title.unwrap_or_else(|| self.title.clone()),
            description: patch.description.unwrap_or_else(|| self.description.clone()),
            price: patch.price.unwrap_or(self.price),
            currency: patch.currency.unwrap_or(self.currency),
            category_id: patch.category_id.unwrap_or(self.category_id),
            active: patch.active.unwrap_or(self.active),
            attributes: patch.attributes.unwrap_or_else(|| self.attributes.clone()),
            ..self.clone()
        };
        (next != *self).then_some(Product { updated_at: now, ..next })
    }

    /// The category this patch moves the product into, if it names a new one.
    pub fn new_category(&self, patch: &ProductPatch) -> Option<Uuid> {
        match patch.category_id {
            Some(Some(c)) if self.category_id != Some(c) => Some(c),
            _ => None,
        }
    }
}

/// Which products a listing shows (active ones only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProductFilter {
    pub owner_id: Option<Uuid>,
    pub category_id: Option<Uuid>,
    pub text: Option<SearchText>,
}

/// A product as readers see it: with the units available to sell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductView {
    pub product: Product,
    pub available: i64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn product() -> Product {
        let new = NewProduct {
            sku: Sku::parse("CAN-1").unwrap(),
            title: Title::parse("Caneca").unwrap(),
            description: Description::default(),
            price: Cents::parse(3500).unwrap(),
            currency: Currency::Brl,
            category_id: None,
            active: true,
            attributes: Attributes::default(),
        };
        Product::create(Uuid::nil(), new, OffsetDateTime::UNIX_EPOCH)
    }

    #[test]
    fn an_empty_patch_or_the_same_values_change_nothing() {
        let p = product();
        let later = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(5);
        assert_eq!(p.patched(ProductPatch::default(), later), None);
        let same = ProductPatch { price: Some(p.price), active: Some(true), ..Default::default() };
        assert_eq!(p.patched(same, later), None);
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let p = product();
        let later = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(5);
        let category = Uuid::now_v7();
        let patch = ProductPatch {
            price: Some(Cents::parse(4000).unwrap()),
            category_id: Some(Some(category)),
            ..Default::default()
        };
        assert_eq!(p.new_category(&patch), Some(category));
        let q = p.patched(patch, later).unwrap();
        assert_eq!((q.price.get(), q.category_id, q.updated_at), (4000, Some(category), later));
        assert_eq!((q.id, &q.title, q.created_at), (p.id, &p.title, p.created_at));
        let cleared = q.patched(ProductPatch { category_id: Some(None), ..Default::default() }, later).unwrap();
        assert_eq!(cleared.category_id, None);
    }
}
