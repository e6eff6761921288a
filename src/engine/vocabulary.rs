//! The stored strings of the extension's own tables, one enum each, named for the CHECK
//! constraint it mirrors (sql/bootstrap.sql). The category's clock and action are in
//! catalog.rs, the soft-delete path in windows.rs, the partition retirement mode in
//! partitions.rs, the redaction detector in redaction/detect.rs.

use crate::error::RetentionError;
use std::str::FromStr;

/// Declares a stored-string enum with `as_str` and `FromStr` (an unknown string is 22023).
macro_rules! stored_strings {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = RetentionError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(RetentionError::InvalidValue(format!(
                        concat!("unknown ", $what, " \"{}\""),
                        other
                    ))),
                }
            }
        }
    };
}

stored_strings! {
    /// `deletion_log.action` (CHECK `log_action_known`).
    LogAction, "log action" {
        SoftDelete = "soft_delete",
        HardDelete = "hard_delete",
        Anonymize = "anonymize",
        Restore = "restore",
        Erasure = "erasure",
    }
}

stored_strings! {
    /// `runs.trigger` (CHECK `run_trigger_known`): who started a purge cycle.
    Trigger, "run trigger" {
        Worker = "worker",
        Manual = "manual",
    }
}

stored_strings! {
    /// `runs.status` (CHECK `run_status_known`).
    RunStatus, "run status" {
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

stored_strings! {
    /// `erasure_requests.status` (CHECK `erasure_status_known`).
    ErasureStatus, "erasure status" {
        Pending = "pending",
        Verified = "verified",
        Completed = "completed",
        WaitingOnHold = "waiting_on_hold",
    }
}

/// `deletion_log.reason` of the extension's own paths (a customer deletion's reason is the
/// caller's, `customer_request` by default).
pub mod reason {
    /// A row past its period, removed by the purge (or a retired partition).
    pub const EXPIRED: &str = "expired";
    /// A parent-bound child removed with its parent.
    pub const PARENT_DELETED: &str = "parent_deleted";
    /// A row present again after a restore, removed again (`reapply_deletions`).
    pub const REAPPLIED: &str = "reapplied";
    /// A row of an erasure request's subject.
    pub const ERASURE_REQUEST: &str = "erasure_request";
    /// A customer's deletion (`request_delete`'s default) or restore.
    pub const CUSTOMER_REQUEST: &str = "customer_request";
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::{ErasureStatus, LogAction, RunStatus, Trigger};
    use pgrx::prelude::*;

    /// The strings a CHECK constraint lists.
    fn check_lists(constraint: &str) -> Vec<String> {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT m[1] FROM pg_constraint c,
                            regexp_matches(pg_get_constraintdef(c.oid), '''([a-z_]+)''', 'g') m
                      WHERE c.conname = $1 ORDER BY 1",
                    None,
                    &[constraint.into()],
                )
                .unwrap()
                .map(|r| r.get::<String>(1).unwrap().unwrap())
                .collect()
        })
    }

    fn sorted(mut v: Vec<&str>) -> Vec<String> {
        v.sort();
        v.into_iter().map(String::from).collect()
    }

    /// Every stored string an enum knows is one its table's CHECK accepts, and the other way.
    #[pg_test]
    fn the_enums_mirror_their_check_constraints() {
        use LogAction::*;
        let actions = [SoftDelete, HardDelete, Anonymize, Restore, Erasure];
        assert_eq!(
            check_lists("log_action_known"),
            sorted(actions.iter().map(|a| a.as_str()).collect())
        );
        let triggers = [Trigger::Worker, Trigger::Manual];
        assert_eq!(
            check_lists("run_trigger_known"),
            sorted(triggers.iter().map(|t| t.as_str()).collect())
        );
        let statuses = [RunStatus::Running, RunStatus::Succeeded, RunStatus::Failed];
        assert_eq!(
            check_lists("run_status_known"),
            sorted(statuses.iter().map(|s| s.as_str()).collect())
        );
        use ErasureStatus::*;
        let erasure = [Pending, Verified, Completed, WaitingOnHold];
        assert_eq!(
            check_lists("erasure_status_known"),
            sorted(erasure.iter().map(|s| s.as_str()).collect())
        );
    }

    #[pg_test]
    fn stored_strings_parse_back_and_unknown_ones_are_refused() {
        for a in [
            "soft_delete",
            "hard_delete",
            "anonymize",
            "restore",
            "erasure",
        ] {
            assert_eq!(a.parse::<LogAction>().unwrap().as_str(), a);
        }
        assert!("purge".parse::<LogAction>().is_err());
        assert_eq!(
            "waiting_on_hold".parse::<ErasureStatus>().unwrap(),
            ErasureStatus::WaitingOnHold
        );
    }
}
