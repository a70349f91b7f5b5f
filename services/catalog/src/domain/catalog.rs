//! An owner's public catalog document: the owner, each category with its
//! active products, and the active products without a category.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::owner::{Category, Owner};
use super::product::ProductView;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerCatalog {
    pub owner: Owner,
    pub categories: Vec<CatalogSection>,
    pub uncategorized: Vec<ProductView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogSection {
    pub category: Category,
    pub products: Vec<ProductView>,
}

impl OwnerCatalog {
    /// Sorts everything the same way every time (categories by name, products
    /// by SKU, both unique per owner; ids break ties), so the same catalog
    /// always serializes to the same bytes. Inactive products are left out.
    pub fn assemble(owner: Owner, mut categories: Vec<Category>, products: Vec<ProductView>) -> Self {
        categories.sort_by(|a, b| (a.name.as_str(), a.id).cmp(&(b.name.as_str(), b.id)));
        let mut products: Vec<ProductView> =
            products.into_iter().filter(|p| p.product.active && p.product.owner_id == owner.id).collect();
        products.sort_by(|a, b| (a.product.sku.as_str(), a.product.id).cmp(&(b.product.sku.as_str(), b.product.id)));
        let in_category = |c: Option<Uuid>| -> Vec<ProductView> {
            products.iter().filter(|p| p.product.category_id == c).cloned().collect()
        };
        let sections = categories
            .into_iter()
            .map(|category| CatalogSection { products: in_category(Some(category.id)), category })
            .collect();
        let uncategorized = in_category(None);
        OwnerCatalog { owner, categories: sections, uncategorized }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::domain::{
        Attributes, CategoryName, Cents, Currency, Description, NewProduct, OwnerName, Product, Sku, Title,
    };

    fn product(owner: Uuid, sku: &str, category: Option<Uuid>, active: bool) -> ProductView {
        let new = NewProduct {
            sku: Sku::parse(sku).unwrap(),
            title: Title::parse(sku).unwrap(),
            description: Description::default(),
            price: Cents::parse(100).unwrap(),
            currency: Currency::Brl,
            category_id: category,
            active,
            attributes: Attributes::default(),
        };
        ProductView { product: Product::create(owner, new, OffsetDateTime::UNIX_EPOCH), available: 1 }
    }

    #[test]
    fn the_document_is_sorted_whatever_order_its_parts_come_in() {
        let t = OffsetDateTime::UNIX_EPOCH;
        let owner = Owner::new(Uuid::now_v7(), OwnerName::parse("Ana").unwrap(), t);
        let toys = Category::new(owner.id, CategoryName::parse("Toys").unwrap(), t);
        let books = Category::new(owner.id, CategoryName::parse("Books").unwrap(), t);
        let products = vec![
            product(owner.id, "B-2", Some(books.id), true),
            product(owner.id, "X-1", None, true),
            product(owner.id, "B-1", Some(books.id), true),
            product(owner.id, "B-0", Some(books.id), false),
            product(owner.id, "A-1", None, true),
        ];
        let mut reversed = products.clone();
        reversed.reverse();

        let a = OwnerCatalog::assemble(owner.clone(), vec![toys.clone(), books.clone()], products);
        let b = OwnerCatalog::assemble(owner, vec![books, toys], reversed);

        assert_eq!(a, b);
        let names: Vec<&str> = a.categories.iter().map(|c| c.category.name.as_str()).collect();
        assert_eq!(names, ["Books", "Toys"]);
        let skus = |ps: &[ProductView]| ps.iter().map(|p| p.product.sku.as_str().to_string()).collect::<Vec<_>>();
        assert_eq!(skus(&a.categories[0].products), ["B-1", "B-2"], "inactive B-0 is left out");
        assert!(a.categories[1].products.is_empty());
        assert_eq!(skus(&a.uncategorized), ["A-1", "X-1"]);
    }

    #[test]
    fn a_catalog_reads_back_from_json_as_it_was_written() {
        let t = OffsetDateTime::now_utc().replace_nanosecond(123_456_000).unwrap();
        let owner = Owner::new(Uuid::now_v7(), OwnerName::parse("Ana").unwrap(), t);
        let books = Category::new(owner.id, CategoryName::parse("Books").unwrap(), t);
        let mut with_attributes = product(owner.id, "B-1", Some(books.id), true);
        with_attributes.product.attributes = Attributes::parse(serde_json::json!({"a": [1, {"b": null}]})).unwrap();
        let catalog =
            OwnerCatalog::assemble(owner, vec![books], vec![with_attributes, product(Uuid::nil(), "X", None, true)]);

        let json = serde_json::to_vec(&catalog).unwrap();

        assert_eq!(serde_json::from_slice::<OwnerCatalog>(&json).unwrap(), catalog);
    }
}
