//! An owner's catalog document: what is published, built from the read model
//! by a pure function, rendered to bytes that depend only on the content.
//!
//! ```json
//! {"owner":{"id":"…","name":"…"},
//!  "categories":[{"id":"…","name":"…","products":[{"id":"…","sku":"…","title":"…",
//!    "description":"…","price_cents":1990,"currency":"BRL","attributes":{},"available":3}]}],
//!  "uncategorized":[…]}
//! ```
//!
//! - Categories: not deleted, sorted by name (then id), each listing its
//!   products, possibly none.
//! - Products: active and not deleted, sorted by SKU (then id). A product
//!   without a category, or whose category is deleted or unknown so far, is in
//!   `uncategorized`.
//! - `available`: the last stock event's `available`, 0 while none arrived.
//! - Rendering is compact JSON with fields in a fixed order and object keys of
//!   `attributes` sorted at every depth, so equal content gives equal bytes
//!   (and an equal SHA-256).

use std::collections::BTreeSet;

use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The owner as the read model knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRecord {
    pub id: Uuid,
    pub name: String,
}

/// A category of the owner as the read model knows it (tombstones included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryRecord {
    pub id: Uuid,
    pub name: String,
    pub deleted: bool,
}

/// A product of the owner as the read model knows it, with its stock.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductRecord {
    pub id: Uuid,
    pub sku: String,
    pub title: String,
    pub description: String,
    pub price_cents: i64,
    pub currency: String,
    pub category_id: Option<Uuid>,
    pub attributes: serde_json::Value,
    pub active: bool,
    pub deleted: bool,
    /// `None` until a stock event arrived for the product.
    pub available: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogDocument {
    pub owner: OwnerDoc,
    pub categories: Vec<CategoryDoc>,
    pub uncategorized: Vec<ProductDoc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OwnerDoc {
    pub id: Uuid,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryDoc {
    pub id: Uuid,
    pub name: String,
    pub products: Vec<ProductDoc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductDoc {
    pub id: Uuid,
    pub sku: String,
    pub title: String,
    pub description: String,
    pub price_cents: i64,
    pub currency: String,
    pub attributes: serde_json::Value,
    pub available: i64,
}

/// A document as bytes, and the hex SHA-256 of those bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub sha256: String,
}

impl CatalogDocument {
    /// The owner's catalog from its read model rows, in any order.
    pub fn build(owner: &OwnerRecord, categories: &[CategoryRecord], products: &[ProductRecord]) -> Self {
        let mut live: Vec<&CategoryRecord> = categories.iter().filter(|c| !c.deleted).collect();
        live.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        let known: BTreeSet<Uuid> = live.iter().map(|c| c.id).collect();

        let mut listed: Vec<&ProductRecord> = products.iter().filter(|p| p.active && !p.deleted).collect();
        listed.sort_by(|a, b| a.sku.cmp(&b.sku).then(a.id.cmp(&b.id)));
        let in_category = |cat: Option<Uuid>| -> Vec<ProductDoc> {
            listed
                .iter()
                .filter(|p| match cat {
                    Some(c) => p.category_id == Some(c),
                    None => p.category_id.is_none_or(|c| !known.contains(&c)),
                })
                .map(|p| ProductDoc::from(*p))
                .collect()
        };
        CatalogDocument {
            owner: OwnerDoc { id: owner.id, name: owner.name.clone() },
            categories: live
                .iter()
                .map(|c| CategoryDoc { id: c.id, name: c.name.clone(), products: in_category(Some(c.id)) })
                .collect(),
            uncategorized: in_category(None),
        }
    }

    /// Compact JSON bytes and their SHA-256.
    pub fn render(&self) -> Rendered {
        // Serializing plain structs, strings, numbers and sorted maps cannot fail.
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        let sha256 = hex::encode(Sha256::digest(&bytes));
        Rendered { bytes, sha256 }
    }
}

impl From<&ProductRecord> for ProductDoc {
    fn from(p: &ProductRecord) -> Self {
        ProductDoc {
            id: p.id,
            sku: p.sku.clone(),
            title: p.title.clone(),
            description: p.description.clone(),
            price_cents: p.price_cents,
            currency: p.currency.clone(),
            attributes: canonical(&p.attributes),
            available: p.available.unwrap_or(0).max(0),
        }
    }
}

/// `value` with the keys of every object in sorted order, whatever order the
/// map type keeps (serde_json's `preserve_order` may be on in the workspace).
pub fn canonical(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), canonical(v))).collect())
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn product(n: u128, sku: &str, category: Option<Uuid>) -> ProductRecord {
        ProductRecord {
            id: id(n),
            sku: sku.into(),
            title: format!("title {sku}"),
            description: "d".into(),
            price_cents: 100,
            currency: "BRL".into(),
            category_id: category,
            attributes: json!({}),
            active: true,
            deleted: false,
            available: Some(2),
        }
    }

    fn owner() -> OwnerRecord {
        OwnerRecord { id: id(1), name: "Loja".into() }
    }

    #[test]
    fn categories_sort_by_name_and_products_by_sku_leaving_hidden_ones_out() {
        let cats = vec![
            CategoryRecord { id: id(20), name: "Utensílios".into(), deleted: false },
            CategoryRecord { id: id(21), name: "Bebidas".into(), deleted: false },
            CategoryRecord { id: id(22), name: "Antigos".into(), deleted: true },
        ];
        let mut inactive = product(34, "A-0", Some(id(21)));
        inactive.active = false;
        let mut deleted = product(35, "A-1", Some(id(21)));
        deleted.deleted = true;
        let products = vec![
            product(30, "B-2", Some(id(21))),
            product(31, "B-1", Some(id(21))),
            product(32, "Z-9", None),
            product(33, "C-1", Some(id(22))),
            product(36, "M-1", Some(id(99))),
            inactive,
            deleted,
        ];
        let doc = CatalogDocument::build(&owner(), &cats, &products);
        let names: Vec<&str> = doc.categories.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["Bebidas", "Utensílios"]);
        let skus = |ps: &[ProductDoc]| ps.iter().map(|p| p.sku.clone()).collect::<Vec<_>>();
        assert_eq!(skus(&doc.categories[0].products), ["B-1", "B-2"]);
        assert!(doc.categories[1].products.is_empty());
        // No category, a deleted one, or one not known yet: uncategorized.
        assert_eq!(skus(&doc.uncategorized), ["C-1", "M-1", "Z-9"]);
    }

    #[test]
    fn equal_content_renders_to_equal_bytes_whatever_the_input_order() {
        let cats = vec![
            CategoryRecord { id: id(20), name: "A".into(), deleted: false },
            CategoryRecord { id: id(21), name: "B".into(), deleted: false },
        ];
        let mut p1 = product(30, "S-1", Some(id(20)));
        p1.attributes = json!({"z": 1, "a": {"y": [ {"b": 1, "a": 2} ], "x": null}});
        let p2 = product(31, "S-2", None);
        let one = CatalogDocument::build(&owner(), &cats, &[p1.clone(), p2.clone()]).render();
        let mut cats_rev = cats.clone();
        cats_rev.reverse();
        let two = CatalogDocument::build(&owner(), &cats_rev, &[p2, p1]).render();
        assert_eq!(one, two);
        let text = String::from_utf8(one.bytes.clone()).unwrap();
        assert!(text.contains(r#""attributes":{"a":{"x":null,"y":[{"a":2,"b":1}]},"z":1}"#), "{text}");
        assert!(text.starts_with(r#"{"owner":{"id":"00000000-0000-0000-0000-000000000001","name":"Loja"},"#));
        assert_eq!(one.sha256, hex::encode(Sha256::digest(&one.bytes)));
        assert_eq!(one.sha256.len(), 64);
    }

    #[test]
    fn a_product_without_stock_news_has_nothing_available() {
        let mut p = product(30, "S-1", None);
        p.available = None;
        let doc = CatalogDocument::build(&owner(), &[], &[p]);
        assert_eq!(doc.uncategorized[0].available, 0);
        let value = serde_json::to_value(&doc).unwrap();
        assert_eq!(
            value["uncategorized"][0],
            json!({"id": id(30), "sku": "S-1", "title": "title S-1", "description": "d", "price_cents": 100,
                   "currency": "BRL", "attributes": {}, "available": 0})
        );
    }

    #[test]
    fn any_visible_change_changes_the_hash() {
        let base = CatalogDocument::build(&owner(), &[], &[product(30, "S-1", None)]).render();
        let mut p = product(30, "S-1", None);
        p.price_cents += 1;
        assert_ne!(CatalogDocument::build(&owner(), &[], &[p]).render().sha256, base.sha256);
        let renamed = OwnerRecord { name: "Outra".into(), ..owner() };
        assert_ne!(CatalogDocument::build(&renamed, &[], &[product(30, "S-1", None)]).render().sha256, base.sha256);
    }
}
