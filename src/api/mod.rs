//! The SQL surface: every SQL function (`#[pg_extern]`, or a hand-written version-1 entry point
//! for a signature of more than 7 arguments: pg/call.rs), thin: argument checks, duty checks, and a
//! call into the engine.

mod catalog;
mod category_lock;
mod customer_delete;
mod deletion_log;
mod disposition;
mod erasure;
mod explain;
mod export;
mod guard;
mod holds;
mod managed;
mod metrics;
mod partitions;
mod progress;
mod reapply;
mod redaction;
mod request_extension;
mod runs;
mod tagging;
mod tenants;
