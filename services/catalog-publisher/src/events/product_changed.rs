//! `ProductChangedV1` → store the product's whole state.
//!
//! Applied only when newer than the stored row; when applied, the owner is
//! marked dirty in the same transaction.

use contracts::catalog::ProductChangedV1;
use platform::messaging::{HandlerError, Incoming};
use sqlx::PgConnection;

use crate::app;
use crate::domain::ProductChange;

pub async fn handle(tx: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
    let event = msg.payload::<ProductChangedV1>()?;
    let change = ProductChange::try_from(&event.payload).map_err(super::refused)?;
    app::apply_product_change(tx, &change).await?;
    Ok(())
}
