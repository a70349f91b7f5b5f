//! `StockChangedV1` → store the product's available stock.
//!
//! Applied only when newer than the stored row; when applied, the owner is
//! marked dirty in the same transaction.

use contracts::catalog::StockChangedV1;
use platform::messaging::{HandlerError, Incoming};
use sqlx::PgConnection;

use crate::app;
use crate::domain::StockChange;

pub async fn handle(tx: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
    let event = msg.payload::<StockChangedV1>()?;
    let change = StockChange::try_from(&event.payload).map_err(super::refused)?;
    app::apply_stock_change(tx, &change).await?;
    Ok(())
}
