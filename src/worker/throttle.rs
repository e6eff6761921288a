//! The worker's pacing between batches (`pg_retention.throttle`).
//!
//! **Fixed**: after each batch the worker sleeps as long as keeps its rate under
//! `pg_retention.max_rows_per_second` (0: it does not sleep).
//!
//! **Adaptive** (the default): full speed while nothing else runs, backing off while
//! foreground work does.
//! - *Signal*: the sessions of the whole server running a statement (client backends
//!   `active` in `pg_stat_activity`; not those idle in a transaction): they share the server's
//!   CPUs, WAL and disks with the purge, whatever database they use. Read after every batch
//!   while backing off, at most every `SAMPLE_EVERY` at full speed.
//! - *Control law*: the worker pauses `r` times the duration of the batch it just ran (counted
//!   as at least `MIN_BATCH_COST`), so it keeps at most `1/(1+r)` of one core. A busy sample
//!   doubles `r` (from at least 1) up to `MAX_RATIO` (a 2% duty cycle) and shrinks batches to
//!   `BUSY_BATCH` rows, so that the foreground's commits never queue behind a long WAL burst;
//!   after `CALM_SAMPLES` idle samples in a row `r` halves, and below `1/8` it is 0: full speed
//!   again within a few batches of the load ending. Multiplicative both ways, as TCP's
//!   congestion window, so a sudden load is left alone within a handful of batches.
//!   `max_rows_per_second`, when set, caps the rate on top of it.

use crate::pg::gucs::{self, Throttle};
use std::time::{Duration, Instant};

/// The largest pause ratio: the worker then keeps 1/51 of a core.
const MAX_RATIO: f64 = 50.0;
/// Below this the ratio is 0: full speed.
const MIN_RATIO: f64 = 0.125;
/// Idle samples in a row before the ratio halves (one idle sample under load is noise).
const CALM_SAMPLES: u32 = 3;
/// Rows per batch while foreground work runs (at most `pg_retention.batch_size`).
const BUSY_BATCH: i64 = 100;
/// What a batch counts as at least when a pause is computed: its commit's WAL flush and its
/// burst of WAL weigh on the foreground whatever the batch's own CPU cost. Measured: once the
/// log's write became cheaper, 100-row batches took 2–3 ms and the throttle let 500–830
/// rows/s through under pgbench (TPS −20% to −35%), where batches of 5–7 ms had let about 300
/// through.
const MIN_BATCH_COST: Duration = Duration::from_millis(6);
/// The longest single pause.
const MAX_PAUSE: Duration = Duration::from_secs(10);
/// At full speed, the signal is read at most this often (reading it costs a transaction).
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// The settings the pacing reads, once per batch.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub mode: Throttle,
    pub max_rows_per_second: i32,
    pub batch_size: i64,
}

impl Settings {
    /// The worker's settings now (`pg_retention.throttle`, `max_rows_per_second`,
    /// `batch_size`).
    pub fn current() -> Settings {
        Settings {
            mode: gucs::THROTTLE.get(),
            max_rows_per_second: gucs::MAX_ROWS_PER_SECOND.get(),
            batch_size: gucs::BATCH_SIZE.get() as i64,
        }
    }
}

/// The pacing state of one worker cycle.
#[derive(Debug, Default)]
pub struct Pacer {
    ratio: f64,
    calm: u32,
    sampled_at: Option<Instant>,
}

impl Pacer {
    /// Rows for the next batch.
    pub fn batch_size(&self, settings: Settings) -> i64 {
        if self.backing_off(settings) {
            settings.batch_size.min(BUSY_BATCH)
        } else {
            settings.batch_size
        }
    }

    /// Whether the adaptive throttle is holding the worker back.
    pub fn backing_off(&self, settings: Settings) -> bool {
        settings.mode == Throttle::Adaptive && self.ratio > 0.0
    }

    /// Whether the signal should be read after this batch: always while backing off, at most
    /// every `SAMPLE_EVERY` at full speed, never in the fixed mode.
    pub fn wants_sample(&self, settings: Settings) -> bool {
        settings.mode == Throttle::Adaptive
            && (self.ratio > 0.0 || self.sampled_at.is_none_or(|t| t.elapsed() >= SAMPLE_EVERY))
    }

    /// The pause after a batch of `rows` that took `spent`, with `busy` other sessions working
    /// when the signal was read after it (None: not read).
    pub fn pause(
        &mut self,
        settings: Settings,
        rows: i64,
        spent: Duration,
        busy: Option<i64>,
    ) -> Duration {
        let adaptive = match settings.mode {
            Throttle::Adaptive => {
                if let Some(busy) = busy {
                    self.sampled_at = Some(Instant::now());
                    self.observe(busy);
                }
                spent.max(MIN_BATCH_COST).mul_f64(self.ratio)
            }
            Throttle::Fixed => Duration::ZERO,
        };
        adaptive
            .min(MAX_PAUSE)
            .max(cap(settings.max_rows_per_second, rows, spent))
    }

    /// Updates the pause ratio with one sample of foreground work.
    fn observe(&mut self, busy: i64) {
        if busy > 0 {
            self.calm = 0;
            self.ratio = (self.ratio * 2.0).clamp(1.0, MAX_RATIO);
            return;
        }
        self.calm += 1;
        if self.calm >= CALM_SAMPLES {
            self.calm = 0;
            self.ratio /= 2.0;
            if self.ratio < MIN_RATIO {
                self.ratio = 0.0;
            }
        }
    }
}

/// The pause a rate limit of `limit` rows per second asks for after `rows` rows in `spent`.
fn cap(limit: i32, rows: i64, spent: Duration) -> Duration {
    if limit <= 0 || rows <= 0 {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(rows as f64 / limit as f64).saturating_sub(spent)
}

/// Sessions of the server running a statement now, other than this one. A session idle in a
/// transaction is not counted: a connection an application leaked there would keep the purge
/// at its slowest for good, while it uses nothing the purge competes for.
pub const BUSY_SESSIONS: &str = "SELECT count(*) FROM pg_catalog.pg_stat_activity
                                  WHERE backend_type = 'client backend'
                                    AND state IN ('active', 'fastpath function call')
                                    AND pid <> pg_catalog.pg_backend_pid()";

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::{Pacer, Settings, BUSY_BATCH, MAX_RATIO, MIN_BATCH_COST};
    use crate::pg::gucs::Throttle;
    use pgrx::prelude::*;
    use std::time::Duration;

    fn settings(mode: Throttle, max_rows_per_second: i32) -> Settings {
        Settings {
            mode,
            max_rows_per_second,
            batch_size: 1000,
        }
    }

    #[pg_test]
    fn an_idle_server_gets_full_speed() {
        let idle = settings(Throttle::Adaptive, 0);
        let mut pacer = Pacer::default();
        for _ in 0..20 {
            assert_eq!(
                pacer.pause(idle, 1000, Duration::from_millis(20), Some(0)),
                Duration::ZERO
            );
        }
        assert_eq!(pacer.batch_size(idle), 1000);
    }

    #[pg_test]
    fn foreground_work_backs_the_purge_off_and_its_end_restores_it() {
        let s = settings(Throttle::Adaptive, 0);
        let mut pacer = Pacer::default();
        let batch = Duration::from_millis(10);
        assert_eq!(pacer.pause(s, 1000, batch, Some(3)), batch);
        assert_eq!(pacer.batch_size(s), BUSY_BATCH);
        let mut pause = Duration::ZERO;
        for _ in 0..10 {
            pause = pacer.pause(s, 100, batch, Some(2));
        }
        assert_eq!(pause, batch.mul_f64(MAX_RATIO));
        // One idle sample under load is noise; a calm spell halves the pause, then ends it.
        assert_eq!(
            pacer.pause(s, 100, batch, Some(0)),
            batch.mul_f64(MAX_RATIO)
        );
        let mut batches = 1;
        while pacer.pause(s, 100, batch, Some(0)) > Duration::ZERO {
            batches += 1;
        }
        assert!(
            batches <= 30,
            "back to full speed after {batches} calm batches"
        );
        assert_eq!(pacer.batch_size(s), 1000);
        // The fixed mode never backs off on its own.
        assert_eq!(
            pacer.pause(settings(Throttle::Fixed, 0), 100, batch, Some(9)),
            Duration::ZERO
        );
    }

    #[pg_test]
    fn a_cheap_batch_under_load_pauses_as_a_batch_of_the_minimum_cost() {
        let s = settings(Throttle::Adaptive, 0);
        let mut pacer = Pacer::default();
        let cheap = Duration::from_millis(1);
        let mut pause = Duration::ZERO;
        for _ in 0..10 {
            pause = pacer.pause(s, 100, cheap, Some(2));
        }
        assert_eq!(pause, MIN_BATCH_COST.mul_f64(MAX_RATIO));
        // Idle, nothing changes: no pause at all.
        let mut idle = Pacer::default();
        assert_eq!(idle.pause(s, 1000, cheap, Some(0)), Duration::ZERO);
    }

    #[pg_test]
    fn the_fixed_rate_caps_both_modes() {
        let mut pacer = Pacer::default();
        for mode in [Throttle::Adaptive, Throttle::Fixed] {
            assert_eq!(
                pacer.pause(
                    settings(mode, 1000),
                    500,
                    Duration::from_millis(100),
                    Some(0)
                ),
                Duration::from_millis(400)
            );
        }
    }

    #[pg_test]
    fn the_signal_is_read_every_batch_only_while_backing_off() {
        let s = settings(Throttle::Adaptive, 0);
        let mut pacer = Pacer::default();
        assert!(pacer.wants_sample(s), "the first batch reads it");
        pacer.pause(s, 1000, Duration::from_millis(5), Some(0));
        assert!(
            !pacer.wants_sample(s),
            "at full speed, not again right away"
        );
        pacer.pause(s, 1000, Duration::from_millis(5), None);
        assert!(!pacer.wants_sample(settings(Throttle::Fixed, 0)));
        std::thread::sleep(super::SAMPLE_EVERY);
        assert!(pacer.wants_sample(s));
        pacer.pause(s, 1000, Duration::from_millis(5), Some(1));
        assert!(pacer.wants_sample(s), "backing off, after every batch");
    }

    #[pg_test]
    fn a_fixed_rate_longer_than_the_longest_adaptive_pause_is_kept() {
        let mut pacer = Pacer::default();
        // 1000 rows at 50 rows/s: 20 s per batch, longer than MAX_PAUSE.
        assert_eq!(
            pacer.pause(settings(Throttle::Fixed, 50), 1000, Duration::ZERO, None),
            Duration::from_secs(20)
        );
        assert_eq!(
            pacer.pause(
                settings(Throttle::Adaptive, 50),
                1000,
                Duration::ZERO,
                Some(3)
            ),
            Duration::from_secs(20)
        );
    }
}
