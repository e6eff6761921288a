//! Integration-test harness: a real postmaster, started for each test with pg_retention in
//! shared_preload_libraries (scripts/cluster.sh), and helpers to poll it.
//!
//! The extension must be installed first (`cargo pgrx install`); scripts/test.sh does that.
#![allow(dead_code)]

use postgres::{Client, NoTls};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
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
        let bin = Command::new("pg_config").arg("--bindir").output().unwrap();
        let bin = String::from_utf8(bin.stdout).unwrap().trim().to_string();
        let ctl = format!("{bin}/pg_ctl");
        let data = self.dir.join("data");
        let log = self.dir.join("server.log");
        let mut cmd = if unsafe_is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &ctl]);
            c
        } else {
            Command::new(&ctl)
        };
        let status = cmd
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "start"])
            .status()
            .unwrap();
        assert!(status.success(), "restart failed");
        self.running = true;
    }
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

/// A Postgres client program (pg_dump, pg_restore, …) from the server's bin directory.
pub fn pg_bin(program: &str) -> std::path::PathBuf {
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .expect("pg_config");
    std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join(program)
}

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
