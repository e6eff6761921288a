//! The PostgreSQL layer: what any extension would need, nothing of retention's concepts.
//! The executor of statements against application tables, identity switches, the extension's
//! locks, (sub)transactions, bound parameters, settings, relation names, the installed schema
//! version, the shared-memory progress board, hand-written version-1 entry points (`call`),
//! statements kept prepared per backend (`kept`), rows inserted without an `INSERT`
//! statement, as `COPY` inserts them (`direct_insert`), result rows read a row at a time
//! rather than a value at a time (`result_rows`: the rows that become log entries),
//! and what Citus (when present) says of a table.

pub mod call;
pub mod citus;
pub mod direct_insert;
pub mod executor;
pub mod gucs;
pub mod identity;
pub mod kept;
pub mod locks;
pub mod params;
pub mod preconditions;
pub mod progress;
pub mod regclass;
pub mod result_rows;
pub mod schema_version;
pub mod triggers;
pub mod xact;
