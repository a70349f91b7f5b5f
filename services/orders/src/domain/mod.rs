//! Orders' pure domain: value types that parse their input, and the order
//! aggregate. No I/O here.

mod order;
mod values;

pub use kernel::money::{Cents, Currency};
pub use order::{MAX_LINES, NewOrder, Order, OrderLine, OrderRuleError, OrderStatus};
pub use values::{Quantity, Sku, ValueError};
