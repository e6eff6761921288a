//! Erasure requests (GDPR Art. 17): `retention.request_erasure`, `retention.verify_erasure`,
//! and their execution, at verification and by every purge cycle after it (for rows held then,
//! or when verification could not execute it). A verified request erases every row whose
//! subject column matches, in every managed table (of the request's tenant, when it has one):
//! deleted, or anonymized where the row's category anonymizes; erasure-exempt and locked
//! categories are recorded as exempt; held rows wait for their holds (status `waiting_on_hold`).

use crate::engine::acting::{Act, Acting};
use crate::engine::catalog::{self, Action};
use crate::engine::deletion_log::Batch;
use crate::engine::groups::Named;
use crate::engine::managed::Managed;
use crate::engine::policy;
use crate::engine::rowset::RowSet;
use crate::engine::vocabulary::{reason, ErasureStatus, LogAction};
use crate::error::RetentionError;
use crate::pg::params::Params;
use crate::pg::xact::{attempt, isolate};
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};

struct Request {
    id: i64,
    subject: String,
    tenant: Option<String>,
}

/// A request's `details` entry for one table (`retention.erasure_requests.details`).
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Detail<'a> {
    Done {
        table: &'a str,
        erased: i64,
        anonymized: i64,
        exempt: i64,
        exempt_reason: Option<String>,
        held: i64,
    },
    /// The table's part failed (retried next cycle).
    Failed { table: &'a str, error: String },
}

/// What a request did to one table.
#[derive(Default)]
struct Erased {
    erased: i64,
    anonymized: i64,
    exempt: i64,
    held: i64,
    exempt_categories: Vec<String>,
    locked_categories: Vec<String>,
    /// Tables whose part of the request failed (it stays `verified`, retried next cycle).
    failed: i64,
}

impl Erased {
    fn add(&mut self, part: Erased) {
        self.erased += part.erased;
        self.anonymized += part.anonymized;
        self.exempt += part.exempt;
        self.held += part.held;
        self.failed += part.failed;
    }

    /// Why rows were exempt: their categories, erasure-exempt or locked.
    fn exempt_reason(&self) -> String {
        let mut reasons = Vec::new();
        if !self.exempt_categories.is_empty() {
            reasons.push(format!(
                "erasure-exempt categories: {}",
                self.exempt_categories.join(", ")
            ));
        }
        if !self.locked_categories.is_empty() {
            reasons.push(format!(
                "locked categories: {}",
                self.locked_categories.join(", ")
            ));
        }
        reasons.join("; ")
    }

    /// The request's `details` entry for one table, when the request touched rows there.
    fn detail<'a>(&self, table: &'a str) -> Option<Detail<'a>> {
        (self.erased + self.anonymized + self.exempt + self.held > 0).then(|| Detail::Done {
            table,
            erased: self.erased,
            anonymized: self.anonymized,
            exempt: self.exempt,
            exempt_reason: (self.exempt > 0).then(|| self.exempt_reason()),
            held: self.held,
        })
    }
}

/// Records what a pass over every table did for a request: `completed`, or `waiting_on_hold`
/// while held rows remain, or still `verified` when a table failed (the next cycle retries it).
fn record_outcome(
    client: &mut SpiClient,
    id: i64,
    done: &Erased,
    details: Vec<Detail>,
) -> Result<(), RetentionError> {
    client.update(
        "UPDATE retention.erasure_records
            SET status = CASE WHEN $7 > 0 THEN $8 WHEN $6 > 0 THEN $9 ELSE $10 END,
                completed_at = CASE WHEN $6 + $7 > 0 THEN NULL ELSE now() END,
                rows_erased = rows_erased + $2, rows_anonymized = rows_anonymized + $3,
                rows_exempt = $4, rows_held = $6, details = details || $5
          WHERE id = $1",
        None,
        &[
            id.into(),
            done.erased.into(),
            done.anonymized.into(),
            done.exempt.into(),
            pgrx::JsonB(serde_json::to_value(details)?).into(),
            done.held.into(),
            done.failed.into(),
            ErasureStatus::Verified.as_str().into(),
            ErasureStatus::WaitingOnHold.as_str().into(),
            ErasureStatus::Completed.as_str().into(),
        ],
    )?;
    Ok(())
}

fn erase_in_table(
    client: &mut SpiClient,
    table: &Managed,
    request: &Request,
    categories: &[catalog::Category],
    overrides: &std::collections::BTreeMap<String, Vec<policy::Override>>,
    run_id: Option<i64>,
) -> Result<Erased, RetentionError> {
    let mut done = Erased::default();
    let mut params = Params::default();
    let Some(rows) = subject_rows(table, request, &mut params) else {
        return Ok(done);
    };
    let named = Named::new(client, table, rows, &mut params)?;
    for group in named.groups(client, table, &mut params)? {
        let found = categories.iter().find(|c| c.name == group.category);
        if let Some(category) = found.filter(|c| c.erasure_exempt || c.locked) {
            done.exempt += group.rows;
            if category.erasure_exempt {
                done.exempt_categories.push(group.category);
            } else {
                done.locked_categories.push(group.category);
            }
            continue;
        }
        done.held += group.held;
        let anonymize =
            found.is_some_and(|c| c.action == Action::Anonymize) && !table.anonymize.is_empty();
        let act = if anonymize {
            Act::Anonymize
        } else {
            Act::HardDelete
        };
        let mut rows = named.unheld_in(table, &group, &mut params);
        if anonymize {
            rows = rows.filter(crate::engine::acting::not_anonymized_in_sql(
                client,
                table,
                None,
                &mut params,
            )?);
        }
        let due = crate::engine::acting::lock_all(client, table, rows, &params)?;
        let retain_for = found.map(|c| policy::in_force(c, group.tenant.as_deref(), overrides).0);
        let acting = Acting::new(
            act,
            &due,
            Batch {
                action: if anonymize {
                    LogAction::Anonymize
                } else {
                    LogAction::Erasure
                },
                table_name: &table.display_name,
                reason: reason::ERASURE_REQUEST,
                run_id,
                reason_of_soft_delete: false,
                approval_id: None,
            },
        )
        .under(Some(&group.category), retain_for);
        let acted = crate::engine::cascade::act_and_log(client, table, &acting, &mut params)?.rows;
        if anonymize {
            done.anonymized += acted;
        } else {
            done.erased += acted;
        }
    }
    Ok(done)
}

/// The rows of `table` the request names: its subject's, of its tenant when it has one. None
/// when the table has no subject column, or no tenant column for a tenant's request (a table
/// without tenants is not that customer's data).
fn subject_rows(table: &Managed, request: &Request, params: &mut Params) -> Option<RowSet> {
    let subject = table.subject_column.as_deref()?;
    let rows = RowSet::of(table).filter(format!(
        "t.{}::text = {}",
        quote_identifier(subject),
        params.bind(request.subject.as_str())
    ));
    let Some(tenant) = &request.tenant else {
        return Some(rows);
    };
    let column = table.tenant_column.as_deref()?;
    Some(rows.filter(format!(
        "t.{}::text = {}",
        quote_identifier(column),
        params.bind(tenant.as_str())
    )))
}

/// Executes every verified (or hold-waiting) erasure request; returns the rows erased and
/// anonymized. Their log entries carry `run_id`, the cycle's run.
pub fn process(client: &mut SpiClient, run_id: Option<i64>) -> Result<(i64, i64), RetentionError> {
    execute(client, None, run_id)
}

/// Executes the verified or hold-waiting requests (only `only`, when given) that no other
/// session is executing.
fn execute(
    client: &mut SpiClient,
    only: Option<i64>,
    run_id: Option<i64>,
) -> Result<(i64, i64), RetentionError> {
    let requests: Vec<Request> = client
        .update(
            "SELECT id, subject, tenant FROM retention.erasure_records
              WHERE status IN ($2, $3) AND ($1::bigint IS NULL OR id = $1)
              ORDER BY id FOR UPDATE SKIP LOCKED",
            None,
            &[
                only.into(),
                ErasureStatus::Verified.as_str().into(),
                ErasureStatus::WaitingOnHold.as_str().into(),
            ],
        )?
        .map(|r| {
            Ok(Request {
                id: r.get::<i64>(1)?.unwrap_or_default(),
                subject: r.get::<String>(2)?.unwrap_or_default(),
                tenant: r.get::<String>(3)?,
            })
        })
        .collect::<Result<_, RetentionError>>()?;
    if requests.is_empty() {
        return Ok((0, 0));
    }
    let tables = Managed::load_all(client)?;
    let categories = catalog::load_all(client)?;
    let overrides = policy::overrides(client)?;
    let (mut total_erased, mut total_anonymized) = (0, 0);
    for request in requests {
        let mut done = Erased::default();
        let mut details = Vec::new();
        for table in &tables {
            // Each table in a subtransaction of its own: a broken table (a dropped subject
            // column, a raising trigger) delays only this request's rows in it.
            let outcome = attempt(|| {
                erase_in_table(client, table, &request, &categories, &overrides, run_id)
            });
            match outcome {
                Ok(part) => {
                    if let Some(detail) = part.detail(&table.display_name) {
                        details.push(detail);
                    }
                    done.add(part);
                }
                Err(e) => {
                    done.failed += 1;
                    details.push(Detail::Failed {
                        table: &table.display_name,
                        error: e,
                    });
                }
            }
        }
        total_erased += done.erased;
        total_anonymized += done.anonymized;
        record_outcome(client, request.id, &done, details)?;
    }
    Ok((total_erased, total_anonymized))
}

/// Refuses a request's `received_at` in the future or infinite (erasure and export requests).
pub fn check_received(
    client: &SpiClient,
    received_at: TimestampWithTimeZone,
) -> Result<(), RetentionError> {
    let future = client
        .select(
            "SELECT $1 > now() OR NOT isfinite($1)",
            Some(1),
            &[received_at.into()],
        )?
        .first()
        .get_one::<bool>()?
        .unwrap_or(false);
    if future {
        return Err(RetentionError::InvalidValue(
            "received_at must be a finite time, not in the future".into(),
        ));
    }
    Ok(())
}

/// Locks erasure request `id` and returns its status; refuses an unknown one (42704).
pub fn lock_request(client: &mut SpiClient, id: i64) -> Result<ErasureStatus, RetentionError> {
    client
        .update(
            "SELECT status FROM retention.erasure_records WHERE id = $1 FOR UPDATE",
            None,
            &[id.into()],
        )?
        .next()
        .ok_or(RetentionError::UnknownErasureRequest(id))?
        .get::<String>(1)?
        .unwrap_or_default()
        .parse()
}

/// Marks request `id` verified, then executes it at once where purging is possible here;
/// otherwise, or when that fails, the next purge cycle executes it (the request stays
/// verified). Row-level security cannot hide rows from it: statements on application tables
/// run as their owners with `row_security = off`, and fail rather than skip rows.
pub fn verify_and_execute(id: i64) -> Result<(), RetentionError> {
    Spi::connect_mut(|client| -> Result<(), RetentionError> {
        let status = lock_request(client, id)?;
        if status != ErasureStatus::Pending {
            return Err(RetentionError::ErasureNotPending(
                id,
                status.as_str().to_string(),
            ));
        }
        client.update(
            "UPDATE retention.erasure_records SET status = $3, verified_at = now(),
                    verified_by = $2 WHERE id = $1",
            None,
            &[
                id.into(),
                crate::pg::identity::caller_name().into(),
                ErasureStatus::Verified.as_str().into(),
            ],
        )?;
        Ok(())
    })?;
    if let Err(e) = crate::engine::cascade::check_can_purge() {
        notice!("erasure request {id} is verified; the next purge cycle executes it ({e})");
        return Ok(());
    }
    // One purger at a time: a worker cycle under way executes it (its anonymizations and this
    // one's must not race).
    if !crate::pg::locks::try_xact_lock(crate::pg::locks::LockKey::Purger)? {
        notice!(
            "erasure request {id} is verified; the next purge cycle executes it (a purge cycle is running)"
        );
        return Ok(());
    }
    match isolate(|| Spi::connect_mut(|client| execute(client, Some(id), None))) {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => warning!(
            "erasure request {id} is verified, but executing it failed: {e}; the next purge cycle retries"
        ),
        Err(message) => warning!(
            "erasure request {id} is verified, but executing it failed: {message}; the next purge cycle retries"
        ),
    }
    Ok(())
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{int, sqlstate};
    use pgrx::prelude::*;

    fn setup() {
        Spi::run(
            "SELECT retention.define_category('conversations', '1 year');
             SELECT retention.define_category('audit_logs', '7 years', erasure_exempt => true);
             SELECT retention.define_category('marketing', '2 years', clock => 'last_activity', action => 'anonymize');
             CREATE TABLE conversations (id int PRIMARY KEY, tenant text, author text, created_at timestamptz);
             CREATE TABLE audit_logs (id int PRIMARY KEY, tenant text, actor text, created_at timestamptz);
             CREATE TABLE contacts (id int PRIMARY KEY, tenant text, email text, name text, last_engaged timestamptz);
             SELECT retention.manage('conversations', 'conversations', created_column => 'created_at', tenant_column => 'tenant', subject_column => 'author');
             SELECT retention.manage('audit_logs', 'audit_logs', created_column => 'created_at', tenant_column => 'tenant', subject_column => 'actor');
             SELECT retention.manage('contacts', 'marketing', activity_column => 'last_engaged', tenant_column => 'tenant', subject_column => 'email',
                                     anonymize => '{\"email\": \"hash\", \"name\": null}');
             INSERT INTO conversations VALUES (1, 'acme', 'alice', now()), (2, 'acme', 'bob', now()), (3, 'globex', 'alice', now());
             INSERT INTO audit_logs VALUES (1, 'acme', 'alice', now()), (2, 'acme', 'bob', now());
             INSERT INTO contacts VALUES (1, 'acme', 'alice', 'Alice A.', now()), (2, 'acme', 'bob', 'Bob B.', now());",
        )
        .unwrap();
    }

    #[pg_test]
    fn a_verified_request_erases_everywhere_but_exempt_categories() {
        setup();
        let id = int("SELECT retention.request_erasure('alice', now() - interval '2 days')");
        assert_eq!(int(&format!("SELECT count(*) FROM retention.erasure_requests WHERE id = {id} AND status = 'pending' AND due_at = received_at + interval '30 days' AND NOT overdue")), 1);
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE author = 'alice'"),
            2,
            "nothing happens before verification"
        );
        // Verification executes the request at once.
        Spi::run(&format!("SELECT retention.verify_erasure({id})")).unwrap();
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE author = 'alice'"),
            0
        );
        assert_eq!(int("SELECT count(*) FROM conversations"), 1);
        assert_eq!(
            int("SELECT count(*) FROM audit_logs WHERE actor = 'alice'"),
            1,
            "audit logs are exempt"
        );
        assert_eq!(int("SELECT count(*) FROM contacts WHERE id = 1 AND name IS NULL AND email = encode(sha256('alice'), 'hex')"), 1, "marketing is anonymized");
        assert_eq!(
            int("SELECT count(*) FROM contacts WHERE id = 2 AND email = 'bob' AND name = 'Bob B.'"),
            1
        );
        assert_eq!(int("SELECT count(*) FROM retention.deletion_log WHERE reason = 'erasure_request' AND action = 'erasure'"), 2);
        assert_eq!(int("SELECT count(*) FROM retention.deletion_log WHERE reason = 'erasure_request' AND action = 'anonymize'"), 1);
        assert_eq!(int(&format!("SELECT count(*) FROM retention.erasure_requests WHERE id = {id} AND status = 'completed' AND rows_erased = 2 AND rows_anonymized = 1 AND rows_exempt = 1")), 1);
        // Her data written into the anonymized row again: a new request anonymizes it again.
        Spi::run("UPDATE contacts SET email = 'alice', name = 'Alice again' WHERE id = 1").unwrap();
        let again = int("SELECT retention.request_erasure('alice')");
        Spi::run(&format!("SELECT retention.verify_erasure({again})")).unwrap();
        assert_eq!(int("SELECT count(*) FROM contacts WHERE id = 1 AND name IS NULL AND email = encode(sha256('alice'), 'hex')"), 1);
        assert_eq!(
            int(&format!(
                "SELECT rows_anonymized FROM retention.erasure_requests WHERE id = {again}"
            )),
            1
        );
    }

    #[pg_test]
    fn a_table_that_fails_keeps_only_its_own_part_back() {
        setup();
        // conversations is referenced with ON DELETE CASCADE by a table the log cannot see:
        // erasing there fails. contacts (earlier by name) is anonymized, counted and logged in
        // its own subtransaction; conversations keeps its rows and nothing of it is logged.
        Spi::run(
            "CREATE TABLE notes (id int PRIMARY KEY, conversation_id int REFERENCES conversations ON DELETE CASCADE);
             INSERT INTO notes VALUES (1, 1);",
        )
        .unwrap();
        let id = int("SELECT retention.request_erasure('alice')");
        Spi::run(&format!("SELECT retention.verify_erasure({id})")).unwrap();
        assert_eq!(
            int("SELECT count(*) FROM contacts WHERE id = 1 AND email = 'alice'"),
            0,
            "the table that works is erased"
        );
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE author = 'alice'"),
            2
        );
        assert_eq!(int("SELECT count(*) FROM retention.deletion_log"), 1);
        assert_eq!(int("SELECT count(*) FROM retention.deletion_log WHERE table_name = 'public.conversations'"), 0);
        assert_eq!(int("SELECT count(*) FROM retention.anonymized_rows"), 1);
        assert_eq!(
            int(&format!(
                "SELECT count(*) FROM retention.erasure_requests
              WHERE id = {id} AND status = 'verified' AND rows_anonymized = 1
                AND details::text LIKE '%public.conversations%'"
            )),
            1
        );
    }

    #[pg_test]
    fn a_tenant_scoped_request_stays_in_its_tenant_and_waits_for_holds() {
        setup();
        let hold = int("SELECT retention.place_hold('case', tenant => 'acme', subject => 'alice', tbl => 'conversations', notify => false)");
        let id = int("SELECT retention.request_erasure('alice', tenant => 'acme')");
        Spi::run(&format!("SELECT retention.verify_erasure({id})")).unwrap();
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE author = 'alice'"),
            2,
            "held (acme) and other tenant (globex) stay"
        );
        assert_eq!(int(&format!("SELECT count(*) FROM retention.erasure_requests WHERE id = {id} AND status = 'waiting_on_hold' AND rows_held = 1")), 1);
        Spi::run(&format!(
            "SET LOCAL pg_retention.hold_release_grace = 0;
             SELECT retention.release_hold({hold}, 'done'); SELECT * FROM retention.run();"
        ))
        .unwrap();
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE author = 'alice'"),
            1
        );
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE author = 'alice' AND tenant = 'globex'"),
            1
        );
        assert_eq!(int(&format!("SELECT count(*) FROM retention.erasure_requests WHERE id = {id} AND status = 'completed'")), 1);
    }

    #[pg_test]
    fn erasure_requests_reject_bad_input_and_show_overdue() {
        setup();
        assert_eq!(sqlstate("SELECT retention.request_erasure(NULL)"), "22004");
        assert_eq!(sqlstate("SELECT retention.request_erasure('')"), "22023");
        assert_eq!(sqlstate("SELECT retention.request_erasure('   ')"), "22023");
        assert_eq!(
            sqlstate("SELECT retention.request_erasure('alice', '-infinity')"),
            "22023"
        );
        assert_eq!(
            sqlstate("SELECT retention.request_erasure('alice', now() + interval '1 day')"),
            "22023"
        );
        assert_eq!(sqlstate("SELECT retention.verify_erasure(424242)"), "42704");
        let id = int("SELECT retention.request_erasure('bob', now() - interval '40 days')");
        assert_eq!(
            int("SELECT count(*) FROM retention.overdue_erasure_requests"),
            1
        );
        Spi::run(&format!("SELECT retention.verify_erasure({id})")).unwrap();
        assert_eq!(
            sqlstate(&format!("SELECT retention.verify_erasure({id})")),
            "55000"
        );
    }
}
