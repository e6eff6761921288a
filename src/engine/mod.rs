//! The retention engine: categories and policy, managed tables, the purge and its paths
//! (cascade, customer deletion, erasure, reapply, partitions), holds and their guard, the
//! deletion log, answers and redaction. It builds statements and runs them through the one
//! executor (owner.rs); it knows nothing of the SQL signatures in api/.

pub mod acting;
pub mod approvals;
pub mod cascade;
pub mod catalog;
pub mod category_lock;
pub mod children;
pub mod customer_delete;
pub mod cycle;
pub mod deletion_log;
pub mod disposition;
pub mod erasure;
pub mod explain;
pub mod export;
pub mod groups;
pub mod guard;
pub mod holding;
pub mod holds;
pub mod keeping;
pub mod managed;
pub mod managing;
pub mod metrics;
pub mod owner;
pub mod partition_guard;
pub mod partitions;
pub mod period;
pub mod policy;
pub mod purge;
pub mod reapply;
pub mod redaction;
pub mod request_extension;
pub mod rowset;
pub mod runs;
pub mod tagging;
pub mod tenants;
pub mod vocabulary;
pub mod windows;
