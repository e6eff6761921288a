//! `retention.progress`: what each running purger (a worker's cycle or a session's `run()`) is
//! doing now, in the style of `pg_stat_progress_vacuum`: the table, the step of its policy, the
//! rows done, the planner's estimate of the rows the step has left, the rate and whether the
//! worker is pausing for `pg_retention.max_rows_per_second`. The purgers write a small table
//! in shared memory (available when the library is in `shared_preload_libraries`, as the
//! worker needs anyway); the view reads it.

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgLwLock};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Purgers tracked at once (one per database and per concurrent `run()`).
const SLOTS: usize = 64;
/// Bytes of a table name kept (longer names are cut).
const NAME: usize = 160;

#[derive(Clone, Copy)]
pub struct Slot {
    pub pid: i32,
    pub database: u32,
    pub worker: bool,
    pub table: [u8; NAME],
    pub table_len: usize,
    pub step: i32,
    pub steps: i32,
    pub rows_done: i64,
    pub rows_estimate: i64,
    /// When the current table started, as a PostgreSQL timestamp.
    pub started: i64,
    pub rows_per_second: f64,
    pub throttled: bool,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            pid: 0,
            database: 0,
            worker: false,
            table: [0; NAME],
            table_len: 0,
            step: 0,
            steps: 0,
            rows_done: 0,
            rows_estimate: 0,
            started: 0,
            rows_per_second: 0.0,
            throttled: false,
        }
    }
}

#[derive(Clone, Copy)]
pub struct Board {
    slots: [Slot; SLOTS],
}

impl Default for Board {
    fn default() -> Self {
        Board {
            slots: [Slot::default(); SLOTS],
        }
    }
}

// SAFETY: plain data, no pointers.
unsafe impl PGRXSharedMemory for Board {}

// SAFETY: the only lock of this name.
static BOARD: PgLwLock<Board> = unsafe { PgLwLock::new(c"pg_retention_progress") };
/// Whether the board exists: the library was preloaded.
static AVAILABLE: AtomicBool = AtomicBool::new(false);

/// Creates the board (from `_PG_init`, when preloaded).
pub fn init() {
    // SAFETY: reads a postmaster global during _PG_init.
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        pg_shmem_init!(BOARD);
        AVAILABLE.store(true, Ordering::SeqCst);
    }
}

/// A purger's line on the board, cleared when dropped (also when the purge raises).
pub struct Entry {
    index: Option<usize>,
    table_started: Instant,
}

impl Entry {
    /// Claims a line for this process (none when the board is full or absent).
    pub fn start(worker: bool) -> Entry {
        let index = AVAILABLE
            .load(Ordering::SeqCst)
            .then(|| claim(worker))
            .flatten();
        Entry {
            index,
            table_started: Instant::now(),
        }
    }

    fn update(&self, f: impl FnOnce(&mut Slot)) {
        if let Some(i) = self.index {
            f(&mut BOARD.exclusive().slots[i]);
        }
    }

    /// A new table, with its policy's number of steps.
    pub fn table(&mut self, name: &str, steps: usize) {
        self.table_started = Instant::now();
        // SAFETY: the transaction-independent current time.
        let now = unsafe { pg_sys::GetCurrentTimestamp() };
        self.update(|s| {
            let bytes = name.as_bytes();
            s.table_len = bytes.len().min(NAME);
            s.table[..s.table_len].copy_from_slice(&bytes[..s.table_len]);
            (s.steps, s.step, s.rows_done, s.rows_estimate) = (steps as i32, 0, 0, 0);
            (s.started, s.rows_per_second, s.throttled) = (now, 0.0, false);
        });
    }

    /// A new step (1-based), with the planner's estimate of its due rows.
    pub fn step(&self, step: usize, estimate: i64) {
        self.update(|s| (s.step, s.rows_estimate) = (step as i32, estimate.max(0)));
    }

    /// Rows done by the batch that just committed.
    pub fn rows(&self, rows: i64) {
        let seconds = self.table_started.elapsed().as_secs_f64().max(1e-3);
        self.update(|s| {
            s.rows_done += rows;
            s.rows_estimate = (s.rows_estimate - rows).max(0);
            s.rows_per_second = s.rows_done as f64 / seconds;
        });
    }

    /// Whether the worker is pausing to keep `pg_retention.max_rows_per_second`.
    pub fn throttled(&self, on: bool) {
        self.update(|s| s.throttled = on);
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.update(|s| *s = Slot::default());
    }
}

/// The first free line, or this process's own (a purger that raised and left it).
fn claim(worker: bool) -> Option<usize> {
    // SAFETY: this backend's pid and database.
    let (pid, database) = unsafe { (pg_sys::MyProcPid, pg_sys::MyDatabaseId.to_u32()) };
    let mut board = BOARD.exclusive();
    let index = board
        .slots
        .iter()
        .position(|s| s.pid == pid)
        .or_else(|| board.slots.iter().position(|s| s.pid == 0))?;
    board.slots[index] = Slot {
        pid,
        database,
        worker,
        ..Slot::default()
    };
    Some(index)
}

/// The slots of this database's running purgers.
pub fn running() -> Vec<Slot> {
    if !AVAILABLE.load(Ordering::SeqCst) {
        return Vec::new();
    }
    // SAFETY: this backend's database.
    let database = unsafe { pg_sys::MyDatabaseId.to_u32() };
    BOARD
        .share()
        .slots
        .iter()
        .filter(|s| s.pid != 0 && s.database == database)
        .copied()
        .collect()
}
