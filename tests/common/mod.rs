//! Integration-test harness: a real postmaster, started for each test with pg_retention in
//! shared_preload_libraries (scripts/cluster.sh), and helpers to poll it.
//!
//! The extension must be installed first (`cargo pgrx install`); scripts/test.sh does that.
#![allow(dead_code)]

use postgres::{Client, NoTls};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Cluster {
    pub dir: PathBuf,
    pub port: u16,
    running: bool,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// initdb + start, with the given extra postgresql.conf lines.
    pub fn start(name: &str, conf: &[&str]) -> Cluster {
        let port = free_port();
        let dir = PathBuf::from(format!("/tmp/pgr-it-{name}-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        let status = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(&dir)
            .arg(port.to_string())
            // Tests prove behaviour, not pacing: the worker purges unthrottled unless a test
            // sets its own rate (later lines win).
            .arg("pg_retention.max_rows_per_second = 0")
            .arg("pg_retention.throttle = fixed")
            .args(conf)
            .status()
            .expect("run scripts/cluster.sh");
        assert!(
            status.success(),
            "cluster did not start; see {}/server.log",
            dir.display()
        );
        Cluster {
            dir,
            port,
            running: true,
        }
    }

    pub fn connect(&self, db: &str) -> Client {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .dbname(db)
            .connect(NoTls)
            .unwrap_or_else(|e| panic!("connect to {db}: {e}"))
    }

    /// A connection that collects the server's notices.
    pub fn connect_with_notices(&self, db: &str) -> (Client, Arc<Mutex<Vec<String>>>) {
        let notices = Arc::new(Mutex::new(Vec::new()));
        let sink = notices.clone();
        let client = postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .dbname(db)
            .notice_callback(move |n| sink.lock().unwrap().push(n.message().to_string()))
            .connect(NoTls)
            .unwrap_or_else(|e| panic!("connect to {db}: {e}"));
        (client, notices)
    }

    /// Creates a database with the extension installed.
    pub fn database_with_extension(&self, db: &str) -> Client {
        self.connect("postgres")
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .unwrap();
        let mut client = self.connect(db);
        client
            .batch_execute("CREATE EXTENSION pg_retention")
            .unwrap();
        client
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Fast shutdown; returns how long it took.
    pub fn stop(&mut self) -> Duration {
        let started = Instant::now();
        let status = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(status.success(), "fast shutdown failed");
        self.running = false;
        started.elapsed()
    }

    /// Restarts the server (fast shutdown, start).
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Starts this cluster's server again after a stop or a crash (`pg_ctl start -w`). After
    /// a crash the server runs crash recovery first; `-w` waits until it accepts connections.
    pub fn start_again(&mut self) {
        let status = pg_command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "120", "start"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "start failed; see {}/server.log",
            self.dir.display()
        );
        self.running = true;
    }

    /// The postmaster's pid, from the first line of `data/postmaster.pid`.
    pub fn postmaster_pid(&self) -> i32 {
        let text = std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .expect("read postmaster.pid");
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("a pid on the first line of postmaster.pid")
    }

    /// The server's processes: the postmaster (from postmaster.pid) first, then its children.
    pub fn server_processes(&self) -> Vec<i32> {
        let postmaster = self.postmaster_pid();
        let mut pids = vec![postmaster];
        pids.extend(children_of(postmaster));
        pids
    }

    /// SIGKILLs `pids` (from [`Cluster::server_processes`]) with no chance to clean up, and
    /// waits until they are gone. Killing them all is a whole-server crash (a power cut).
    pub fn kill9_processes(&mut self, pids: &[i32]) {
        kill9(pids);
        self.running = false;
        wait_gone(pids, Duration::from_secs(30));
    }

    /// SIGKILLs the postmaster only, and waits until it is gone; returns its children's pids.
    pub fn kill9_postmaster(&mut self) -> Vec<i32> {
        let pids = self.server_processes();
        self.kill9_processes(&pids[..1]);
        pids[1..].to_vec()
    }

    /// Connects to `db` once the server accepts connections and has left recovery (after
    /// a crash, the postmaster reinitializes and replays WAL first).
    pub fn wait_connect(&self, db: &str, timeout: Duration) -> Client {
        let started = Instant::now();
        loop {
            let attempt = postgres::Config::new()
                .host("127.0.0.1")
                .port(self.port)
                .user("postgres")
                .dbname(db)
                .connect_timeout(Duration::from_secs(5))
                .connect(NoTls);
            if let Ok(mut client) = attempt {
                if let Ok(row) = client.query_one("SELECT pg_catalog.pg_is_in_recovery()", &[]) {
                    if !row.get::<_, bool>(0) {
                        return client;
                    }
                }
            }
            assert!(
                started.elapsed() < timeout,
                "the server did not accept connections to {db} within {timeout:?}; see {}/server.log",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Creates a database, optionally as a copy of `template`, and connects to it.
    pub fn create_database(&self, db: &str, template: Option<&str>) -> Client {
        let sql = match template {
            Some(t) => format!("CREATE DATABASE {db} TEMPLATE {t}"),
            None => format!("CREATE DATABASE {db}"),
        };
        self.connect("postgres").batch_execute(&sql).unwrap();
        self.connect(db)
    }

    /// A streaming-replication standby of this cluster, on loopback: `pg_basebackup -R`
    /// (WAL streamed during the copy) into a new directory, then started on a free port with
    /// the primary's postgresql.conf plus `conf`. The primary needs `wal_level = replica`
    /// and `max_wal_senders`; initdb's `-A trust` pg_hba.conf already admits replication
    /// connections from 127.0.0.1.
    pub fn standby(&self, name: &str, conf: &[&str]) -> Cluster {
        let port = free_port();
        let dir = PathBuf::from(format!("/tmp/pgr-it-{name}-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if unsafe_is_root() {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success());
        }
        let output = pg_command("pg_basebackup")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-R", "-X", "stream", "-c", "fast"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "pg_basebackup failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut lines = vec![
            format!("port = {port}"),
            format!("unix_socket_directories = '{}'", dir.display()),
        ];
        lines.extend(conf.iter().map(|l| l.to_string()));
        append_conf(&dir.join("data/postgresql.conf"), &lines);
        let mut standby = Cluster {
            dir,
            port,
            running: false,
        };
        standby.start_again();
        standby
    }

    /// Promotes a standby (`pg_ctl promote -w`: returns once it accepts writes).
    pub fn promote(&self) {
        let status = pg_command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-w", "-t", "60", "promote"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl promote failed");
    }
}

/// Appends lines to a configuration file (later settings override earlier ones).
pub fn append_conf(path: &std::path::Path, lines: &[String]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
}

/// The directory of the PostgreSQL programs, found as scripts/cluster.sh finds it: `$PG_BIN`,
/// else `pg_config --bindir`, else Debian's PostgreSQL 15.
pub fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return PathBuf::from(dir);
    }
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|d| d.join("initdb").exists());
    from_pg_config.unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

/// Whether the server found through [`pg_bin`] has extension `name` available (its share
/// directory holds `<name>.control`): tests of optional companions (Citus, pg_partman) skip
/// without it.
pub fn has_extension(name: &str) -> bool {
    let sharedir = Command::new(pg_bin().join("pg_config"))
        .arg("--sharedir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    sharedir.is_some_and(|dir| {
        std::path::Path::new(&dir)
            .join(format!("extension/{name}.control"))
            .exists()
    })
}

/// A command running PostgreSQL program `program`, as the `postgres` OS user when we are root
/// (the server refuses to run as root, and its files belong to postgres).
pub fn pg_command(program: &str) -> Command {
    let path = pg_bin().join(program);
    if unsafe_is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

/// Whether process `pid` exists (a zombie counts: it still holds its pid).
pub fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The pids of the live children of process `parent` (from /proc).
pub fn children_of(parent: i32) -> Vec<i32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid …": comm may hold spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let ppid = fields.next().and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(parent) && state != Some("Z") {
            children.push(pid);
        }
    }
    children
}

/// Sends SIGKILL to each of `pids`, in order, in one `kill` invocation.
pub fn kill9(pids: &[i32]) {
    let status = Command::new("kill")
        .arg("-9")
        .args(pids.iter().map(|p| p.to_string()))
        .status()
        .unwrap();
    // A process that exited on its own between being listed and the signal (a backend ending
    // its session) makes kill fail, the others are signalled: what matters is that none is
    // left running.
    if !status.success() {
        wait_for(
            Duration::from_secs(30),
            &format!("processes {pids:?} to die after kill -9"),
            || pids.iter().all(|&p| !alive(p) || zombie(p)),
        );
    }
}

/// Whether process `pid` has exited and waits to be reaped.
fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// Waits until none of `pids` exists any more.
pub fn wait_gone(pids: &[i32], timeout: Duration) {
    wait_for(timeout, &format!("processes {pids:?} to be gone"), || {
        pids.iter().all(|&p| !alive(p))
    });
}

fn unsafe_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let _ = Command::new("bash")
                .arg(script())
                .arg("stop")
                .arg(&self.dir)
                .status();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Polls `check` every 100 ms until it returns true or `timeout` passes.
pub fn wait_for(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

pub fn count(client: &mut Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).unwrap().get::<_, i64>(0)
}

/// The seed's categories.
pub const SEED_CATEGORIES: &str = "
    SELECT retention.define_category('conversations', '1 year');
    SELECT retention.define_category('support_records', '3 years', clock => 'last_activity');
    SELECT retention.define_category('audit_logs', '7 years', erasure_exempt => true);
";

/// md5 of a query's rows (as text, in the query's order): equal results, equal digests.
pub fn digest(client: &mut Client, sql: &str) -> String {
    client
        .query_one(
            &format!("SELECT coalesce(md5(string_agg(q::text, E'\\n')), '') FROM ({sql}) q"),
            &[],
        )
        .unwrap()
        .get(0)
}

/// The pids of the pg_retention workers connected to the server (fresh snapshot each call:
/// autocommit statements are their own transactions).
pub fn worker_pids(client: &mut Client) -> Vec<i32> {
    client
        .query(
            "SELECT pid FROM pg_catalog.pg_stat_activity
              WHERE backend_type = 'pg_retention worker' ORDER BY pid",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The SQLSTATE a statement fails with, or None when it succeeds.
pub fn sqlstate_of(client: &mut Client, sql: &str) -> Option<String> {
    client.batch_execute(sql).err().map(|e| {
        e.code()
            .map(|c| c.code().to_string())
            .unwrap_or_else(|| format!("no SQLSTATE: {e}"))
    })
}

/// How the rows removed from a table compare with its deletion-log entries (invariant 2).
#[derive(Debug, PartialEq, Eq)]
pub struct RemovalAudit {
    /// Rows loaded minus rows still present.
    pub removed: i64,
    /// Log entries for the table.
    pub logged: i64,
    /// Removed rows with no log entry.
    pub removed_unlogged: i64,
    /// Log entries whose row is still present.
    pub logged_but_present: i64,
    /// Row keys logged more than once.
    pub logged_twice: i64,
    /// Log entries that name no key ever loaded, or record something other than `action`.
    pub stray_entries: i64,
    /// `retention.verify_log()`: None when the hash chain is intact (or was not checked).
    pub first_broken_link: Option<i64>,
    /// Whether `first_broken_link` was computed.
    pub chain_checked: bool,
}

impl RemovalAudit {
    /// Invariant 2 holds: removed rows and log entries are the same set, each logged once.
    pub fn is_exact(&self) -> bool {
        self.removed == self.logged
            && self.removed_unlogged == 0
            && self.logged_but_present == 0
            && self.logged_twice == 0
            && self.stray_entries == 0
            && self.first_broken_link.is_none()
    }
}

/// Compares the rows missing from `public.<table>` (loaded with integer keys 1..=`max_key` in
/// primary-key column `key`) with the table's deletion-log entries, all from one snapshot
/// (REPEATABLE READ), so it can run while a purger keeps working. With `verify_chain`, also
/// runs `retention.verify_log()` in that snapshot; it is slow (about 4,000 entries a second on
/// a 2-core machine), so tests with large logs call it only where it matters.
pub fn audit_removals(
    client: &mut Client,
    table: &str,
    key: &str,
    max_key: i64,
    action: &str,
    verify_chain: bool,
) -> RemovalAudit {
    // Names and numbers come from the test itself: spliced, not bound.
    let logged_name = format!("'public.{table}'");
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .unwrap();
    let mut n = |sql: String| -> i64 {
        tx.query_one(&sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    };
    let removed = n(format!("SELECT {max_key} - count(*) FROM public.{table}"));
    let logged = n(format!(
        "SELECT count(*) FROM retention.deletion_log WHERE table_name = {logged_name}"
    ));
    let removed_unlogged = n(format!(
        "SELECT count(*) FROM generate_series(1, {max_key}::bigint) g(k)
          WHERE NOT EXISTS (SELECT 1 FROM public.{table} t WHERE t.{key} = g.k)
            AND NOT EXISTS (SELECT 1 FROM retention.deletion_log l
                             WHERE l.table_name = {logged_name}
                               AND l.row_key = jsonb_build_object('{key}', g.k))"
    ));
    let logged_but_present = n(format!(
        "SELECT count(*) FROM retention.deletion_log l JOIN public.{table} t
             ON t.{key} = (l.row_key ->> '{key}')::bigint
          WHERE l.table_name = {logged_name}"
    ));
    let logged_twice = n(format!(
        "SELECT count(*) FROM (SELECT row_key FROM retention.deletion_log
                                WHERE table_name = {logged_name}
                                GROUP BY row_key HAVING count(*) > 1) d"
    ));
    let stray_entries = n(format!(
        "SELECT count(*) FROM retention.deletion_log l
          WHERE l.table_name = {logged_name}
            AND (l.action <> '{action}'
                 OR (SELECT count(*) FROM jsonb_object_keys(l.row_key)) <> 1
                 OR jsonb_typeof(l.row_key -> '{key}') IS DISTINCT FROM 'number'
                 OR (l.row_key ->> '{key}')::numeric NOT BETWEEN 1 AND {max_key})"
    ));
    let first_broken_link: Option<i64> = if verify_chain {
        tx.query_one("SELECT retention.verify_log()", &[])
            .unwrap()
            .get(0)
    } else {
        None
    };
    tx.commit().unwrap();
    RemovalAudit {
        removed,
        logged,
        removed_unlogged,
        logged_but_present,
        logged_twice,
        stray_entries,
        first_broken_link,
        chain_checked: verify_chain,
    }
}
