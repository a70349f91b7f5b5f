//! Catalog changes as the publisher accepts them: each one parsed from its
//! event, so a change that could never be published (an owner without a name,
//! a negative price, attributes that are not an object) is refused before it
//! touches the read model, and its message is dead-lettered.

use contracts::catalog::{CategoryChangedV1, OwnerChangedV1, ProductChangedV1, StockChangedV1};
use time::OffsetDateTime;
use uuid::Uuid;

/// Why a change event is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("{0} must not be the nil UUID")]
    NilId(&'static str),
    #[error("{0} must not be blank")]
    Blank(&'static str),
    #[error("currency {0:?} is not an ISO 4217 code")]
    Currency(String),
    #[error("price_cents {0} is negative")]
    NegativePrice(i64),
    #[error("attributes must be a JSON object, got {0}")]
    Attributes(&'static str),
    #[error("available {0} is negative")]
    NegativeStock(i64),
}

/// Text that is not blank (names, SKUs, titles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(String);

impl Text {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ChangeError> {
        if raw.trim().is_empty() { Err(ChangeError::Blank(field)) } else { Ok(Text(raw.to_string())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An ISO 4217 currency code (three upper-case letters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency(String);

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, ChangeError> {
        if raw.len() == 3 && raw.chars().all(|c| c.is_ascii_uppercase()) {
            Ok(Currency(raw.to_string()))
        } else {
            Err(ChangeError::Currency(raw.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A product's free-form attributes: always a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes(serde_json::Value);

impl Attributes {
    pub fn parse(raw: &serde_json::Value) -> Result<Self, ChangeError> {
        let kind = match raw {
            serde_json::Value::Object(_) => return Ok(Attributes(raw.clone())),
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "a boolean",
            serde_json::Value::Number(_) => "a number",
            serde_json::Value::String(_) => "a string",
            serde_json::Value::Array(_) => "an array",
        };
        Err(ChangeError::Attributes(kind))
    }

    pub fn as_value(&self) -> &serde_json::Value {
        &self.0
    }
}

fn id(field: &'static str, id: Uuid) -> Result<Uuid, ChangeError> {
    if id.is_nil() { Err(ChangeError::NilId(field)) } else { Ok(id) }
}

/// An owner's new state ("valida owner": it has an id and a name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerChange {
    pub owner_id: Uuid,
    pub name: Text,
    pub changed_at: OffsetDateTime,
}

impl TryFrom<&OwnerChangedV1> for OwnerChange {
    type Error = ChangeError;

    fn try_from(e: &OwnerChangedV1) -> Result<Self, ChangeError> {
        Ok(OwnerChange {
            owner_id: id("owner_id", e.owner_id)?,
            name: Text::parse("name", &e.name)?,
            changed_at: e.changed_at,
        })
    }
}

/// A category's new state; a deleted one may keep any name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryChange {
    pub category_id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub deleted: bool,
    pub changed_at: OffsetDateTime,
}

impl TryFrom<&CategoryChangedV1> for CategoryChange {
    type Error = ChangeError;

    fn try_from(e: &CategoryChangedV1) -> Result<Self, ChangeError> {
        if !e.deleted {
            Text::parse("name", &e.name)?;
        }
        Ok(CategoryChange {
            category_id: id("category_id", e.category_id)?,
            owner_id: id("owner_id", e.owner_id)?,
            name: e.name.clone(),
            deleted: e.deleted,
            changed_at: e.changed_at,
        })
    }
}

/// A product's whole new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductChange {
    pub product_id: Uuid,
    pub owner_id: Uuid,
    pub sku: Text,
    pub title: Text,
    pub description: String,
    pub price_cents: i64,
    pub currency: Currency,
    pub category_id: Option<Uuid>,
    pub attributes: Attributes,
    pub active: bool,
    pub deleted: bool,
    pub changed_at: OffsetDateTime,
}

impl TryFrom<&ProductChangedV1> for ProductChange {
    type Error = ChangeError;

    fn try_from(e: &ProductChangedV1) -> Result<Self, ChangeError> {
        if e.price_cents < 0 {
            return Err(ChangeError::NegativePrice(e.price_cents));
        }
        Ok(ProductChange {
            product_id: id("product_id", e.product_id)?,
            owner_id: id("owner_id", e.owner_id)?,
            sku: Text::parse("sku", &e.sku)?,
            title: Text::parse("title", &e.title)?,
            description: e.description.clone(),
            price_cents: e.price_cents,
            currency: Currency::parse(&e.currency)?,
            category_id: e.category_id.filter(|c| !c.is_nil()),
            attributes: Attributes::parse(&e.attributes)?,
            active: e.active,
            deleted: e.deleted,
            changed_at: e.changed_at,
        })
    }
}

/// A product's available stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockChange {
    pub product_id: Uuid,
    pub owner_id: Uuid,
    pub available: i64,
    pub changed_at: OffsetDateTime,
}

impl TryFrom<&StockChangedV1> for StockChange {
    type Error = ChangeError;

    fn try_from(e: &StockChangedV1) -> Result<Self, ChangeError> {
        if e.available < 0 {
            return Err(ChangeError::NegativeStock(e.available));
        }
        Ok(StockChange {
            product_id: id("product_id", e.product_id)?,
            owner_id: id("owner_id", e.owner_id)?,
            available: e.available,
            changed_at: e.changed_at,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn product() -> ProductChangedV1 {
        ProductChangedV1 {
            product_id: Uuid::now_v7(),
            owner_id: Uuid::now_v7(),
            sku: "SKU-1".into(),
            title: "Caneca".into(),
            description: "".into(),
            price_cents: 1990,
            currency: "BRL".into(),
            category_id: None,
            attributes: json!({"cor": "azul"}),
            active: true,
            deleted: false,
            changed_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_well_formed_product_is_accepted() {
        let p = ProductChange::try_from(&product()).unwrap();
        assert_eq!((p.sku.as_str(), p.currency.as_str(), p.price_cents), ("SKU-1", "BRL", 1990));
    }

    type Breakage = fn(&mut ProductChangedV1);

    #[test]
    fn a_product_that_could_never_be_published_is_refused() {
        let cases: Vec<(Breakage, ChangeError)> = vec![
            (|p| p.sku = "  ".into(), ChangeError::Blank("sku")),
            (|p| p.title = "".into(), ChangeError::Blank("title")),
            (|p| p.currency = "brl".into(), ChangeError::Currency("brl".into())),
            (|p| p.price_cents = -1, ChangeError::NegativePrice(-1)),
            (|p| p.attributes = json!([1]), ChangeError::Attributes("an array")),
            (|p| p.attributes = serde_json::Value::Null, ChangeError::Attributes("null")),
            (|p| p.owner_id = Uuid::nil(), ChangeError::NilId("owner_id")),
        ];
        for (break_it, expected) in cases {
            let mut p = product();
            break_it(&mut p);
            assert_eq!(ProductChange::try_from(&p), Err(expected));
        }
    }

    #[test]
    fn an_owner_needs_a_name_and_a_deleted_category_does_not() {
        let owner =
            OwnerChangedV1 { owner_id: Uuid::now_v7(), name: " ".into(), changed_at: OffsetDateTime::UNIX_EPOCH };
        assert_eq!(OwnerChange::try_from(&owner), Err(ChangeError::Blank("name")));
        let mut cat = CategoryChangedV1 {
            category_id: Uuid::now_v7(),
            owner_id: Uuid::now_v7(),
            name: "".into(),
            deleted: false,
            changed_at: OffsetDateTime::UNIX_EPOCH,
        };
        assert_eq!(CategoryChange::try_from(&cat), Err(ChangeError::Blank("name")));
        cat.deleted = true;
        assert!(CategoryChange::try_from(&cat).is_ok());
    }

    #[test]
    fn negative_stock_is_refused() {
        let s = StockChangedV1 {
            product_id: Uuid::now_v7(),
            owner_id: Uuid::now_v7(),
            on_hand: 1,
            reserved: 2,
            available: -1,
            changed_at: OffsetDateTime::UNIX_EPOCH,
        };
        assert_eq!(StockChange::try_from(&s), Err(ChangeError::NegativeStock(-1)));
    }
}
