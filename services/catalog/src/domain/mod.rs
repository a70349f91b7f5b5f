//! The catalog's pure domain: value types that parse their input, owners,
//! categories, products, stock levels and reservations. No I/O here.

mod catalog;
mod owner;
mod product;
mod reservation;
mod stock;
mod values;

pub use catalog::{CatalogSection, OwnerCatalog};
pub use owner::{Category, Owner};
pub use product::{NewProduct, Product, ProductFilter, ProductPatch, ProductView};
pub use reservation::{
    Availability, Decision, MAX_LINES, RejectReason, RequestError, Reservation, ReservationLine, ReservationRequest,
    ReservationStatus, ReservedLine, ShortLine, Transition, decide,
};
pub use stock::{Hold, Movement, StockLevel, StockRuleError, move_stock};
pub use values::{
    Attributes, CategoryName, Cents, Currency, Description, OnHand, OwnerName, Quantity, SearchText, Sku, Title,
    ValueError,
};
