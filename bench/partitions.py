#!/usr/bin/env python3
"""Whole-partition retention vs the row-by-row purge of the same rows (issue 14).

Loads a table partitioned by month (`events`, --rows rows over 24 months, primary key
(id, created_at), an index on created_at) in which the older half is due (category `events`,
1 year), twice: once retired whole (the default) and once with
retention.set_partition_retirement('events', 'off'), so that the same due rows go row by row.
Each is one `SELECT * FROM retention.run()` on a cluster where nothing else runs. Prints, for
each: rows removed, seconds, rows/s, WAL bytes per row removed (pg_current_wal_lsn before and
after; rows removed = rows before - rows after, checked equal to the log entries), and how long the parent's
ACCESS EXCLUSIVE lock is held (the DROP of one partition, timed on its own: the retirement
takes that lock for its DROP and commits), and the floor: the time per row of copying the
retired entries, already built, into a copy of the log with and without its indexes, which
bounds any retirement's speed-up. Writes the figures to bench/results/<UTC time>-partitions.json.

Uses the installed pg_retention (`cargo pgrx install --release`) on a throwaway cluster
(scripts/cluster.sh), fsync on, default WAL settings.
Usage: python3 bench/partitions.py [--rows N] [--port P]
"""
import argparse
import datetime
import json
import os
import re
import shutil
import tempfile
import time

from shell import one, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = "/usr/lib/postgresql/15/bin"

SCHEMA = """
SELECT retention.define_category('events', '1 year');
CREATE TABLE events (id bigint NOT NULL, tenant text NOT NULL, created_at timestamptz NOT NULL,
                     body text, PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
DO $$
DECLARE this_month timestamptz := date_trunc('month', now());
BEGIN
    FOR k IN 0..23 LOOP
        EXECUTE format('CREATE TABLE events_%s PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                       k, this_month - make_interval(months => k),
                       this_month - make_interval(months => k - 1));
    END LOOP;
END $$;
CREATE INDEX ON events (created_at);
INSERT INTO events
SELECT i, 't' || i % 10,
       date_trunc('month', now()) - make_interval(months => (i % 24)::int) + interval '1 day'
         + (i / 24) * interval '1 second', 'event body ' || i
  FROM generate_series(1, {rows}) i;
SELECT retention.manage('events', 'events', created_column => 'created_at', tenant_column => 'tenant');
"""


def database(psql, name, rows):
    """A fresh database with the extension and the loaded table; psql pointed at it."""
    run(psql + ["-d", "postgres", "-c", f"CREATE DATABASE {name}"])
    db = psql + ["-d", name]
    run(db + ["-c", "CREATE EXTENSION pg_retention"])
    run(db + ["-c", SCHEMA.format(rows=rows)])
    run(db + ["-c", "VACUUM ANALYZE events"])
    return db


def purge(psql, rows, mode):
    db = database(psql, f"bench_{mode}", rows)
    if mode == "rows":
        run(db + ["-c", "SELECT retention.set_partition_retirement('events', 'off')"])
    run(db + ["-c", "CHECKPOINT"])
    before = int(one(db, "SELECT count(*) FROM events"))
    lsn = one(db, "SELECT pg_current_wal_lsn()")
    started = time.monotonic()
    run(db + ["-c", "SELECT * FROM retention.run()"])
    seconds = time.monotonic() - started
    wal = int(one(db, f"SELECT pg_current_wal_lsn() - '{lsn}'::pg_lsn"))
    due = before - int(one(db, "SELECT count(*) FROM events"))
    partitions = int(one(db, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass"))
    logged = int(one(db, "SELECT count(*) FROM retention.deletion_log"))
    assert logged == due, f"{mode}: {due} rows removed, {logged} logged"
    return {"mode": mode, "rows_removed": due, "seconds": round(seconds, 2),
            "rows_per_s": round(due / seconds), "wal_bytes_per_row": round(wal / due),
            "partitions_left": partitions}


def floor(psql, rows_mode):
    """The least a retirement's per-row entries can cost: the retired database's log entries,
    already built and hashed, copied by one INSERT ... SELECT into a copy of the log without
    its indexes, then into one with them. The speed-up over the row purge can be at most the
    row purge's time per row divided by this."""
    db = psql + ["-d", "bench_whole"]
    out = run(db + ["-c", "CREATE TABLE floor_plain (LIKE retention.deletion_log)",
                    "-c", "CREATE TABLE floor_indexed (LIKE retention.deletion_log INCLUDING INDEXES)",
                    "-c", "CHECKPOINT", "-c", "\\timing on",
                    "-c", "INSERT INTO floor_plain SELECT * FROM retention.deletion_log",
                    "-c", "INSERT INTO floor_indexed SELECT * FROM retention.deletion_log"]).stdout
    plain_ms, indexed_ms = [float(t) for t in re.findall(r"Time: ([0-9.]+) ms", out)][-2:]
    entries = int(one(db, "SELECT count(*) FROM floor_plain"))
    row_purge_us = 1e6 / rows_mode["rows_per_s"]
    plain_us, indexed_us = 1000 * plain_ms / entries, 1000 * indexed_ms / entries
    return {"entries": entries, "insert_without_indexes_us_per_row": round(plain_us, 2),
            "insert_with_log_indexes_us_per_row": round(indexed_us, 2),
            "row_purge_us_per_row": round(row_purge_us, 2),
            "speed_up_ceiling_without_indexes": round(row_purge_us / plain_us, 1),
            "speed_up_ceiling_with_indexes": round(row_purge_us / indexed_us, 1)}


def lock_times(psql, rows):
    """How long a retirement holds the parent's ACCESS EXCLUSIVE lock: its DROP, timed."""
    db = database(psql, "bench_locks", rows)
    out = run(db + ["-c", "\\timing on", "-c", "BEGIN",
                    "-c", "LOCK TABLE events_23 IN EXCLUSIVE MODE",
                    "-c", "DROP TABLE events_23",
                    "-c", "COMMIT"]).stdout
    times = [float(t) for t in re.findall(r"Time: ([0-9.]+) ms", out)]
    return {"partition_rows": rows // 24, "drop_ms": times[2]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--port", type=int, default=55434)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="partitions-bench-")
    os.chmod(work, 0o755)
    data = os.path.join(work, "cluster")
    run(["bash", os.path.join(ROOT, "scripts/cluster.sh"), "start", data, str(a.port),
         "pg_retention.enabled = off", "max_wal_size = '8GB'", "log_min_messages = warning"])
    psql = [f"{BIN}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
            str(a.port), "-U", "postgres"]
    try:
        whole = purge(psql, a.rows, "whole")
        rows = purge(psql, a.rows, "rows")
        bound = floor(psql, rows)
        locks = lock_times(psql, a.rows)
        version = one(psql + ["-d", "bench_whole"],
                      "SELECT extversion FROM pg_extension WHERE extname = 'pg_retention'")
    finally:
        run(["bash", os.path.join(ROOT, "scripts/cluster.sh"), "stop", data])
        shutil.rmtree(work, ignore_errors=True)
    print(f"pg_retention {version}: {a.rows:,} rows over 24 monthly partitions, half due")
    print(f"{'purge':>22} {'rows':>10} {'seconds':>8} {'rows/s':>10} {'WAL B/row':>10}")
    for r in (whole, rows):
        label = "partitions retired" if r["mode"] == "whole" else "row by row (off)"
        print(f"{label:>22} {r['rows_removed']:>10,} {r['seconds']:>8} {r['rows_per_s']:>10,} "
              f"{r['wal_bytes_per_row']:>10,}")
    print(f"speed-up: {whole['rows_per_s'] / rows['rows_per_s']:.1f}x; "
          f"DROP of one {locks['partition_rows']:,}-row partition (parent ACCESS EXCLUSIVE): "
          f"{locks['drop_ms']:.1f} ms")
    print(f"floor: the same {bound['entries']:,} entries copied by one INSERT ... SELECT: "
          f"{bound['insert_without_indexes_us_per_row']} us/row into an unindexed copy of the "
          f"log, {bound['insert_with_log_indexes_us_per_row']} us/row with its indexes; the row "
          f"purge takes {bound['row_purge_us_per_row']} us/row, so no retirement that writes "
          f"one entry per row can be more than {bound['speed_up_ceiling_without_indexes']}x "
          f"faster ({bound['speed_up_ceiling_with_indexes']}x with the log's indexes)")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%MZ")
    path = os.path.join(ROOT, "bench", "results", f"{stamp}-partitions.json")
    with open(path, "w") as f:
        json.dump({"version": version, "rows": a.rows, "whole": whole, "row_by_row": rows,
                   "floor": bound, "locks": locks}, f, indent=2)
    print(f"written to {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
