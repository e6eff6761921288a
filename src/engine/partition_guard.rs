//! The hold guard for partitions. `DROP TABLE`, `TRUNCATE` and `ALTER TABLE … DETACH
//! PARTITION` of a partition of a managed table remove its rows from the table without a row
//! trigger firing. A utility hook refuses them (55006) while an active hold covers a row of
//! that partition, whoever runs them; the extension's own partition retirement passes, as it
//! never retires a partition holding a held row. Not covered: `DROP SCHEMA … CASCADE` and
//! `DROP OWNED … CASCADE`, which drop the partition without naming it.

use crate::engine::managed::Managed;
use crate::engine::rowset::RowSet;
use crate::error::RetentionError;
use crate::pg::params::Params;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgList;
use std::ffi::c_char;

static mut PREVIOUS: pg_sys::ProcessUtility_hook_type = None;

/// Installs the hook (from `_PG_init`, in the postmaster).
pub fn init() {
    // SAFETY: called once, at library load, before any backend runs a statement.
    unsafe {
        PREVIOUS = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
}

/// PostgreSQL's `ProcessUtility_hook`, with the signature PostgreSQL gives it. It only packs
/// its arguments into one [`UtilityCall`] for [`guard_utility`], which runs under `#[pg_guard]`:
/// this frame holds plain values (nothing to drop), so an error raised below may leave through
/// it.
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    guard_utility(UtilityCall {
        pstmt,
        query_string,
        read_only_tree,
        context,
        params,
        query_env,
        dest,
        qc,
    })
}

/// The arguments of one `ProcessUtility` call, as PostgreSQL passes them (`repr(C)`: passed by
/// value to an `extern "C-unwind"` function).
#[repr(C)]
#[derive(Clone, Copy)]
struct UtilityCall {
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
}

/// Refuses the statement when it would remove held rows of a partition, then runs it. The
/// check's values are dropped before the statement runs, so that an error the statement raises
/// leaves no destructor behind.
#[pg_guard]
unsafe extern "C-unwind" fn guard_utility(call: UtilityCall) {
    check_removal((*call.pstmt).utilityStmt);
    call.pass_on();
}

/// Raises 55006 when `statement` removes a partition holding held rows.
unsafe fn check_removal(statement: *mut pg_sys::Node) {
    let targets = removed_relations(statement);
    if !targets.is_empty() {
        if let Err(e) = refuse_if_held(&targets) {
            pgrx::pg_sys::panic::ErrorReport::from(e).report(PgLogLevel::ERROR);
        }
    }
}

impl UtilityCall {
    /// Runs the statement: the previous hook, or PostgreSQL's `standard_ProcessUtility`.
    unsafe fn pass_on(self) {
        let Self {
            pstmt,
            query_string,
            read_only_tree,
            context,
            params,
            query_env,
            dest,
            qc,
        } = self;
        match PREVIOUS {
            Some(previous) => previous(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
            None => pg_sys::standard_ProcessUtility(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
    }
}

/// The existing partitions a DROP TABLE, TRUNCATE or DETACH PARTITION statement removes rows
/// from (which of them belong to managed tables is asked later).
unsafe fn removed_relations(node: *mut pg_sys::Node) -> Vec<pg_sys::Oid> {
    if node.is_null() {
        return Vec::new();
    }
    let mut found = Vec::new();
    match (*node).type_ {
        pg_sys::NodeTag::T_DropStmt => {
            let drop = node as *mut pg_sys::DropStmt;
            if (*drop).removeType == pg_sys::ObjectType::OBJECT_TABLE {
                for names in PgList::<pg_sys::List>::from_pg((*drop).objects).iter_ptr() {
                    found.push(relation(pg_sys::makeRangeVarFromNameList(names)));
                }
            }
        }
        pg_sys::NodeTag::T_TruncateStmt => {
            let truncate = node as *mut pg_sys::TruncateStmt;
            for rv in PgList::<pg_sys::RangeVar>::from_pg((*truncate).relations).iter_ptr() {
                found.push(relation(rv));
            }
        }
        pg_sys::NodeTag::T_AlterTableStmt => {
            let alter = node as *mut pg_sys::AlterTableStmt;
            for cmd in PgList::<pg_sys::AlterTableCmd>::from_pg((*alter).cmds).iter_ptr() {
                if (*cmd).subtype == pg_sys::AlterTableType::AT_DetachPartition {
                    let partition = (*cmd).def as *mut pg_sys::PartitionCmd;
                    found.push(relation((*partition).name));
                }
            }
        }
        _ => {}
    }
    // Only partitions concern the guard (a managed table itself has its own); the syscache
    // answers without a query, so other DDL pays nothing.
    found.retain(|oid| *oid != pg_sys::InvalidOid && pg_sys::get_rel_relispartition(*oid));
    found
}

/// The relation a name denotes now, or InvalidOid (the statement reports a missing one).
unsafe fn relation(rv: *mut pg_sys::RangeVar) -> pg_sys::Oid {
    pg_sys::RangeVarGetRelidExtended(
        rv,
        pg_sys::NoLock as pg_sys::LOCKMODE,
        pg_sys::RVROption::RVR_MISSING_OK,
        None,
        std::ptr::null_mut(),
    )
}

/// Refuses (55006) when an active hold covers a row of one of `targets` that is a partition
/// (at any depth) of a managed table. Reads as the extension, the rows as the table's owner.
fn refuse_if_held(targets: &[pg_sys::Oid]) -> Result<(), RetentionError> {
    if !installed()? {
        return Ok(());
    }
    // SAFETY: reads the current user id.
    let caller = unsafe { pg_sys::GetUserId() };
    crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| {
            for &target in targets {
                // A role that may not drop or truncate it learns nothing here: PostgreSQL
                // refuses it (42501) after the hook.
                if !may_remove(client, caller, target)? {
                    continue;
                }
                let Some(root) = managed_ancestor(client, target)? else {
                    continue;
                };
                let table = Managed::load(client, root)?;
                // Active holds: a released one's grace binds the extension, not the owner.
                crate::pg::locks::take_lock(crate::pg::locks::LockKey::Holds, false)?;
                let held = crate::engine::holds::active_only(client, &table)?;
                let mut params = Params::default();
                let category = table.category_sql(&mut params);
                let Some(covered) = crate::engine::holds::any_covers_sql(
                    &held,
                    &table,
                    None,
                    &category,
                    &mut params,
                ) else {
                    continue;
                };
                let name = partition_name(client, target)?;
                let sql = RowSet::of_relation(&name).filter(covered).exists();
                let held = crate::pg::executor::select(client, &table, &sql, params.args())?
                    .first()
                    .get_one::<bool>()?
                    .unwrap_or(true);
                if held {
                    return Err(RetentionError::UnderHold(format!(
                        "partition {name} of {} holds rows under legal hold: it cannot be dropped, truncated or detached",
                        table.display_name
                    )));
                }
            }
            Ok(())
        })
    })
}

/// Whether `caller` may drop or truncate relation `oid` (owner, or the TRUNCATE privilege).
fn may_remove(
    client: &pgrx::spi::SpiClient,
    caller: pg_sys::Oid,
    oid: pg_sys::Oid,
) -> Result<bool, RetentionError> {
    Ok(client
        .select(
            "SELECT pg_catalog.pg_has_role($1, c.relowner, 'USAGE')
                    OR pg_catalog.has_table_privilege($1, c.oid, 'TRUNCATE')
               FROM pg_catalog.pg_class c WHERE c.oid = $2",
            Some(1),
            &[caller.into(), oid.into()],
        )?
        .next()
        .map(|r| r.get::<bool>(1))
        .transpose()?
        .flatten()
        .unwrap_or(false))
}

/// Whether pg_retention is installed in this database (the hook runs in every database).
fn installed() -> Result<bool, RetentionError> {
    Ok(crate::pg::schema_version::installed()?.is_some())
}

/// The managed table `oid` is a partition of (at any depth), if any.
fn managed_ancestor(
    client: &pgrx::spi::SpiClient,
    oid: pg_sys::Oid,
) -> Result<Option<pg_sys::Oid>, RetentionError> {
    Ok(client
        .select(
            "SELECT m.tbl::oid FROM pg_catalog.pg_partition_ancestors($1::oid::regclass) a
               JOIN retention.managed_tables m ON m.tbl = a.relid
              WHERE a.relid <> $1::oid::regclass LIMIT 1",
            Some(1),
            &[oid.into()],
        )?
        .next()
        .map(|r| r.get::<pg_sys::Oid>(1))
        .transpose()?
        .flatten())
}

/// `schema.name` of a relation, quoted where needed.
fn partition_name(
    client: &pgrx::spi::SpiClient,
    oid: pg_sys::Oid,
) -> Result<String, RetentionError> {
    Ok(client
        .select(
            "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = $1",
            Some(1),
            &[oid.into()],
        )?
        .first()
        .get_one::<String>()?
        .unwrap_or_default())
}
