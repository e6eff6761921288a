//! Citus, when it is installed in the database: which tables are hash-distributed (and by
//! which column), and whether this node is a Citus worker. The extension does not depend on
//! Citus: every question first asks whether Citus's catalog exists, and without Citus the
//! answers are "no table is distributed" and "not a worker".

use crate::error::RetentionError;
use pgrx::pg_sys;
use pgrx::spi::SpiClient;
use std::cell::Cell;

/// SQL that is true when Citus's catalog is present in this database.
pub const INSTALLED_SQL: &str =
    "pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL";

/// How a Citus distributed table is spread over shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution {
    /// The distribution column (unquoted).
    pub column: String,
    /// Its type, as `format_type` spells it: values are bound as text and cast to it, so that
    /// the column itself is compared uncast and Citus routes the statement to one shard.
    pub type_name: String,
}

/// Whether Citus's catalog is present in this database.
pub fn installed(client: &SpiClient) -> Result<bool, RetentionError> {
    Ok(client
        .select(&format!("SELECT {INSTALLED_SQL}"), Some(1), &[])?
        .first()
        .get_one::<bool>()?
        .unwrap_or(false))
}

/// The distribution of `oid` when it is a hash-distributed Citus table (reference tables and
/// Citus local tables are not: they are purged as local tables are).
pub fn distribution(
    client: &SpiClient,
    oid: pg_sys::Oid,
) -> Result<Option<Distribution>, RetentionError> {
    let row = client.select(
        "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod)
           FROM pg_catalog.pg_dist_partition p
           JOIN pg_catalog.pg_attribute a
             ON a.attrelid = p.logicalrelid
            AND a.attname = pg_catalog.column_to_column_name(p.logicalrelid, p.partkey)
          WHERE p.logicalrelid = $1 AND p.partmethod = 'h'",
        Some(1),
        &[oid.into()],
    )?;
    let Some(row) = row.into_iter().next() else {
        return Ok(None);
    };
    Ok(Some(Distribution {
        column: row.get::<String>(1)?.unwrap_or_default(),
        type_name: row.get::<String>(2)?.unwrap_or_default(),
    }))
}

/// Whether `oid` is a Citus table of any kind (distributed, reference, Citus local).
pub fn is_citus_table(client: &SpiClient, oid: pg_sys::Oid) -> Result<bool, RetentionError> {
    Ok(installed(client)?
        && !client
            .select(
                "SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1::oid::regclass",
                Some(1),
                &[oid.into()],
            )?
            .is_empty())
}

/// Every hash-distributed table of the database (none without Citus).
pub fn distributed_tables(client: &SpiClient) -> Result<Vec<pg_sys::Oid>, RetentionError> {
    if !installed(client)? {
        return Ok(Vec::new());
    }
    client
        .select(
            "SELECT logicalrelid::oid FROM pg_catalog.pg_dist_partition WHERE partmethod = 'h'",
            None,
            &[],
        )?
        .map(|row| Ok(row.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid)))
        .collect()
}

/// Whether this node is a Citus worker (its group is not the coordinator's, 0): the extension
/// stays idle there, since catalog, holds and log live on the coordinator.
pub fn is_worker_node(client: &SpiClient) -> Result<bool, RetentionError> {
    if !installed(client)? {
        return Ok(false);
    }
    Ok(client
        .select(
            "SELECT groupid <> 0 FROM pg_catalog.pg_dist_local_group",
            Some(1),
            &[],
        )?
        .first()
        .get_one::<bool>()?
        .unwrap_or(false))
}

/// Makes Citus commit this transaction's changes on the worker nodes together with the log
/// entries the coordinator writes, for the rest of the transaction:
/// - statements go to the worker nodes inside one coordinated transaction, even when the
///   session turned `citus.function_opens_transaction_block` off (Citus would otherwise commit
///   a function's statements on the worker nodes one by one);
/// - that transaction commits with two-phase commit. With one worker node written, Citus would
///   commit it there first (one phase) and then the coordinator's own transaction: a
///   coordinator crash in between would leave rows deleted without their log entries. With two
///   phases the worker's part is prepared, the coordinator commits the entries and Citus's
///   record of the prepared part at once, and Citus's recovery finishes or rolls back the
///   prepared part to match.
///
/// Without Citus's library in this backend (Citus must be preloaded to query a distributed
/// table at all) there is nothing to coordinate.
///
/// Done once per (sub)transaction: the setting is rolled back with a subtransaction that set
/// it, Citus's flag lasts until the end of the transaction.
pub fn coordinate(client: &SpiClient) -> Result<(), RetentionError> {
    let first = COORDINATED.with(|mark| crate::pg::xact::first_in_transaction(mark, true));
    if !first || !use_two_phase_commit() {
        return Ok(());
    }
    client.select(
        "SELECT pg_catalog.set_config('citus.function_opens_transaction_block', 'on', true)",
        None,
        &[],
    )?;
    Ok(())
}

thread_local! {
    /// The (sub)transaction [`coordinate`] last ran in.
    static COORDINATED: crate::pg::xact::Mark = const { Cell::new(None) };
}

/// Calls Citus's `Use2PCForCoordinatedTransaction()`, which sets a flag for the current
/// transaction; false when Citus's library is not loaded in this backend. Looked up at run
/// time, so that the extension does not depend on Citus.
fn use_two_phase_commit() -> bool {
    unsafe extern "C" {
        fn dlsym(
            handle: *mut std::ffi::c_void,
            symbol: *const std::ffi::c_char,
        ) -> *mut std::ffi::c_void;
    }
    // SAFETY: a null handle is glibc's RTLD_DEFAULT: the libraries the backend loaded
    // (PostgreSQL loads them RTLD_GLOBAL). The symbol, when present, is Citus's
    // `void Use2PCForCoordinatedTransaction(void)`, which only sets a transaction-local flag.
    unsafe {
        let symbol = dlsym(
            std::ptr::null_mut(),
            c"Use2PCForCoordinatedTransaction".as_ptr(),
        );
        if symbol.is_null() {
            return false;
        }
        let use_2pc: extern "C" fn() = std::mem::transmute(symbol);
        use_2pc();
    }
    true
}
