//! The SQL surface: every `#[pg_extern]` function, thin: argument checks, duty checks, and a
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
