//! Orders' pure domain: value types that parse their input, the order
//! aggregate and the saga's state machine. No I/O here.

mod order;
pub mod saga;
mod values;

pub use kernel::money::{Cents, Currency};
pub use order::{Checkout, MAX_LINES, NewOrder, Order, OrderLine, OrderRuleError, OrderStatus, Shipping};
pub use saga::{CancelReason, Command, SagaEvent, SagaState, Step, Timeouts};
pub use values::{Address, Cep, Email, PaymentMethod, Quantity, Sku, Uf, ValueError, text};
