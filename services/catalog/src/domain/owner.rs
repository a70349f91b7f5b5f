//! Owners (sellers) and their categories.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::values::{CategoryName, OwnerName};

/// A seller: its id is the seller's user id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub id: Uuid,
    pub name: OwnerName,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Owner {
    pub fn new(id: Uuid, name: OwnerName, now: OffsetDateTime) -> Self {
        Owner { id, name, created_at: now, updated_at: now }
    }

    /// The owner with `name`, or `None` when nothing changes.
    pub fn renamed(&self, name: OwnerName, now: OffsetDateTime) -> Option<Owner> {
        (self.name != name).then(|| Owner { name, updated_at: now, ..self.clone() })
    }
}

/// A category of one owner's products.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: CategoryName,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Category {
    /// A new category, with a UUIDv7 id.
    pub fn new(owner_id: Uuid, name: CategoryName, now: OffsetDateTime) -> Self {
        Category { id: Uuid::now_v7(), owner_id, name, created_at: now, updated_at: now }
    }

    /// The category with `name`, or `None` when nothing changes.
    pub fn renamed(&self, name: CategoryName, now: OffsetDateTime) -> Option<Category> {
        (self.name != name).then(|| Category { name, updated_at: now, ..self.clone() })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renaming_to_the_same_name_changes_nothing() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let owner = Owner::new(Uuid::nil(), OwnerName::parse("Ana").unwrap(), t0);
        assert_eq!(owner.renamed(OwnerName::parse(" Ana ").unwrap(), t0), None);
        let later = t0 + time::Duration::seconds(1);
        let renamed = owner.renamed(OwnerName::parse("Bia").unwrap(), later).unwrap();
        assert_eq!((renamed.name.as_str(), renamed.created_at, renamed.updated_at), ("Bia", t0, later));
    }
}
