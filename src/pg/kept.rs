//! Statements of fixed text that the extension runs on every batch, prepared once per backend
//! and kept (`SPI_keepplan`), so that a batch does not parse and plan them again. PostgreSQL's
//! plan cache still re-analyzes and replans a kept statement when an object it names changes
//! (a dropped and re-created extension included) or `search_path` does.
//!
//! Kept statements run as mutating statements: each takes a fresh snapshot, so that a read
//! made after taking a lock sees what was committed before the lock was granted.

use crate::error::RetentionError;
use pgrx::datum::DatumWithOid;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiTupleTable};
use pgrx::PgOid;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

thread_local! {
    /// The statements kept in this backend, by their text.
    static KEPT: RefCell<HashMap<&'static str, Rc<OwnedPreparedStatement>>> =
        RefCell::new(HashMap::new());
}

/// Runs `sql` (parameter types `types`) with `args`, preparing and keeping it on first use.
pub fn run<'conn>(
    client: &SpiClient<'conn>,
    sql: &'static str,
    types: &[PgOid],
    args: &[DatumWithOid],
) -> Result<SpiTupleTable<'conn>, RetentionError> {
    let statement = match KEPT.with_borrow(|kept| kept.get(sql).cloned()) {
        Some(statement) => statement,
        None => {
            let statement = Rc::new(client.prepare_mut(sql, types)?.keep());
            KEPT.with_borrow_mut(|kept| kept.insert(sql, Rc::clone(&statement)));
            statement
        }
    };
    // Not borrowed while it runs: the statement may run code that keeps statements too.
    // `select` runs it as prepared: mutating, with a fresh snapshot.
    Ok(client.select(&*statement, None, args)?)
}
