//! The cart's rules, with no I/O: value types that parse (quantity, CEP, UF,
//! e-mail, address, payment), the cart and its pricing, and the checkout
//! that turns a re-priced cart and a freight quote into an order.

pub mod cart;
pub mod checkout;
pub mod values;

pub use cart::{Cart, CartLine, CartRuleError, CartView, MAX_LINES, Price, PricedLine, Snapshot};
pub use checkout::{CheckoutDetails, CheckoutRuleError, OrderDraft, OrderLine, Quote};
pub use values::{Address, Cep, Email, Invalid, Payment, Quantity, Uf};
