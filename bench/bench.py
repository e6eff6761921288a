#!/usr/bin/env python3
"""pg_retention purge benchmark (issue 7). Entry point: bench/run.sh; see bench/README.md.

One run, on a throwaway cluster started from a private copy of the PostgreSQL 15 tree (so that
a concurrent `cargo pgrx install` cannot swap the library under the running server):

  1. template databases with N and N/5 rows of the same mix (bench/sql/*.sql);
  2. purge throughput on identical copies (CREATE DATABASE … STRATEGY FILE_COPY): the plain
     batched DELETE baseline, the same job with keyset pagination (for reference),
     retention.run(), and the background worker (on both table sizes);
  3. pgbench alone, then while the worker purges a fresh copy, alternating (alone, loaded,
     alone, …); when the TPS drop misses the target, again with
     pg_retention.max_rows_per_second set (at most two settings);
  4. WAL bytes per deleted row, and EXPLAIN (ANALYZE, BUFFERS) of the engine's batch statement
     on both table sizes (interleaved repetitions).

Results are printed and written to bench/results/<UTC timestamp>.json.
"""
import argparse
import datetime
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
SQL = os.path.join(BENCH, "sql")
SYS_PG_CONFIG = "/usr/lib/postgresql/15/bin/pg_config"
TABLE = "conversations"
WORKER_DB = "bench_worker"      # the only database the worker is configured for
BATCH = 1000                    # pg_retention.batch_size default; the baselines use the same
KEYSET_SQL = f"CALL plain_purge_keyset('{TABLE}', {BATCH})"     # the keyset job
RUN_SQL = f"SET pg_retention.batch_size = {BATCH}; SELECT * FROM retention.run()"
TPS_TARGET = -0.15
# The adaptive throttle's targets (issue 15): idle, at least this share of the unthrottled
# worker's rows/s; under pgbench, at most this TPS drop and p99 increase.
ADAPTIVE_IDLE_MIN = 0.90
ADAPTIVE_TPS_MIN = -0.05
ADAPTIVE_P99_MAX = 0.25
HZ = os.sysconf("SC_CLK_TCK")

T0 = time.monotonic()
PHASES = []                     # (label, start epoch, end epoch), for the server-log summary


def say(msg):
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", flush=True)


def run(cmd, **kw):
    kw.setdefault("check", True)
    kw.setdefault("text", True)
    return subprocess.run(cmd, **kw)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pct(values, p):
    """The p-th percentile (nearest rank) of a list."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, min(len(s) - 1, -(-p * len(s) // 100) - 1))]


def r1(x, nd=1):
    return None if x is None else round(x, nd)


# --------------------------------------------------------------------------------------------
# Accounting: CPU of the cluster, of this script's children (pgbench, psql) and of everything
# else on the machine; WAL and buffer statistics of the cluster.

def machine_busy_s():
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    return (sum(parts[:8]) - parts[3] - parts[4]) / HZ


def proc_cpu_s(pid, reaped_children=False):
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return 0.0
    fields = data[data.rindex(")") + 2:].split()
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / HZ


def own_children_cpu_s():
    t = os.times()
    return t.children_user + t.children_system


# pg_stat_wal is left out: a background worker reports its WAL statistics only when it exits.
STATS_SQL = "SELECT row_to_json(b)::text FROM pg_stat_bgwriter b"
STAT_KEYS = {
    "bgwriter": ("checkpoints_timed", "checkpoints_req", "buffers_checkpoint", "buffers_clean",
                 "maxwritten_clean", "buffers_backend", "buffers_backend_fsync",
                 "buffers_alloc"),
}


class Meter:
    """Wall time, CPU (cluster, this script's children, the rest of the machine), WAL position
    and pg_stat_wal / pg_stat_bgwriter over one phase."""

    def __init__(self, cluster, label, db="postgres"):
        self.cluster, self.label, self.db = cluster, label, db

    def snapshot(self):
        return {"bgwriter": json.loads(self.cluster.one(self.db, STATS_SQL))}

    def __enter__(self):
        self.stats0 = self.snapshot()
        self.lsn0 = self.cluster.one(self.db, "SELECT pg_current_wal_lsn()")
        self.cpu0 = self.cluster.cpu_s()
        self.kids0 = own_children_cpu_s()
        self.busy0 = machine_busy_s()
        self.t0 = time.monotonic()
        self.start_epoch = time.time()
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            return False
        self.seconds = time.monotonic() - self.t0
        self.end_epoch = time.time()
        self.cluster_cpu = self.cluster.cpu_s() - self.cpu0
        self.client_cpu = own_children_cpu_s() - self.kids0
        self.other_cpu = max(0.0, machine_busy_s() - self.busy0 - self.cluster_cpu
                             - self.client_cpu)
        self.wal = int(float(self.cluster.one(
            self.db, f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{self.lsn0}')")))
        s1 = self.snapshot()
        self.stats = {
            view: {k: r1(float(s1[view][k]) - float(self.stats0[view][k]), 3)
                   for k in keys if s1[view].get(k) is not None}
            for view, keys in STAT_KEYS.items()}
        PHASES.append((self.label, self.start_epoch, self.end_epoch))
        return False

    def json(self):
        return {
            "wall_s": round(self.seconds, 3),
            "cluster_cpu_s": round(self.cluster_cpu, 2),
            "client_cpu_s": round(self.client_cpu, 2),
            # CPU the rest of the machine used meanwhile (other users of this host): the
            # benchmark's timings are only as good as this is small.
            "other_cpu_s": round(self.other_cpu, 2),
            "other_load_cores": round(self.other_cpu / self.seconds, 2),
            "wal_bytes": self.wal,
            "stats": self.stats,
        }


# --------------------------------------------------------------------------------------------
# The private PostgreSQL tree and the throwaway cluster.

def pg_dirs(pg_config):
    return run([pg_config, "--bindir", "--pkglibdir", "--sharedir"],
               capture_output=True).stdout.split()


def make_tree(work, overlay=None):
    """Copies the system PostgreSQL 15 tree (with whatever pg_retention is installed in it) to
    work/pg, keeping its layout: the server finds its lib and share directories relative to its
    own binary, so the cluster uses this copy only. `overlay` (a `cargo pgrx package` output
    directory) replaces the extension's files."""
    tree = os.path.join(work, "pg")
    dirs = pg_dirs(SYS_PG_CONFIG)
    for d in dirs:
        shutil.copytree(d, tree + d, symlinks=True)
    if overlay:
        shutil.copytree(overlay, tree, symlinks=True, dirs_exist_ok=True)
    bindir, libdir, sharedir = (tree + d for d in dirs)
    return {"root": tree, "bin": bindir, "lib": libdir, "share": sharedir}


def free_port(start=55500):
    for port in range(start, start + 500):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise SystemExit("no free port")


class Cluster:
    def __init__(self, work, tree, port):
        self.dir = os.path.join(work, "cluster")
        self.tree, self.port = tree, port
        self.env = dict(os.environ, PG_BIN=tree["bin"], PGTZ="UTC")
        self.env.pop("PGDATABASE", None)
        self.started = False

    def start(self, conf):
        run(["bash", os.path.join(ROOT, "scripts/cluster.sh"), "start", self.dir, str(self.port),
             *conf], env=self.env)
        self.started = True
        with open(os.path.join(self.dir, "data", "postmaster.pid")) as f:
            self.postmaster = int(f.readline())

    def stop(self):
        if self.started:
            run(["bash", os.path.join(ROOT, "scripts/cluster.sh"), "stop", self.dir],
                env=self.env, check=False)
            self.started = False

    def cpu_s(self):
        """CPU seconds of the postmaster, its live children and its reaped children (a backend
        that exited is counted in the postmaster's children time)."""
        total = proc_cpu_s(self.postmaster, reaped_children=True)
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    data = f.read()
            except OSError:
                continue
            if int(data[data.rindex(")") + 2:].split()[1]) == self.postmaster:
                total += proc_cpu_s(int(entry))
        return total

    def conninfo(self):
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]

    def psql(self, db, sql=None, file=None, variables=None, check=True):
        cmd = [os.path.join(self.tree["bin"], "psql"), "-X", "-q", "-A", "-t", "-F", "\t",
               "-v", "ON_ERROR_STOP=1", *self.conninfo(), "-d", db]
        for k, v in (variables or {}).items():
            cmd += ["-v", f"{k}={v}"]
        if file:
            cmd += ["-f", file]
        p = subprocess.run(cmd, input=sql, capture_output=True, text=True, env=self.env)
        if check and p.returncode != 0:
            raise RuntimeError(f"psql -d {db} failed ({p.returncode}):\n{p.stderr}\n--- input:\n"
                               f"{(sql or file or '')[:2000]}")
        return p

    def rows(self, db, sql):
        return [line.split("\t") for line in self.psql(db, sql).stdout.splitlines() if line]

    def one(self, db, sql):
        rows = self.rows(db, sql)
        return rows[0][0] if rows and rows[0] else None

    def clone(self, template, name):
        for _ in range(10):
            p = self.psql("postgres", f"CREATE DATABASE {name} TEMPLATE {template} "
                                      "STRATEGY FILE_COPY", check=False)
            if p.returncode == 0:
                return
            if "being accessed by other users" not in p.stderr:
                raise RuntimeError(p.stderr)
            time.sleep(1)
        raise RuntimeError(f"could not clone {template}: {p.stderr}")

    def drop(self, name):
        self.psql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def has_throttle_modes(self):
        """Whether the library under test has pg_retention.throttle (0.7 and later)."""
        return self.one("postgres", "SELECT count(*) FROM pg_settings "
                                    "WHERE name = 'pg_retention.throttle'") == "1"

    def set_worker(self, enabled, max_rows_per_second=0, throttle="fixed"):
        mode = (f"ALTER SYSTEM SET pg_retention.throttle = '{throttle}';"
                if self.has_throttle_modes() else "")
        self.psql("postgres", f"""
            ALTER SYSTEM SET pg_retention.enabled = {'on' if enabled else 'off'};
            ALTER SYSTEM SET pg_retention.max_rows_per_second = {max_rows_per_second};
            {mode}
            SELECT pg_reload_conf();""")

    def wait_worker(self, db, timeout=30):
        """Waits until the launcher has started the worker of `db`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.one("postgres", "SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                                    f"'pg_retention worker' AND datname = '{db}'") != "0":
                return
            time.sleep(0.3)
        raise RuntimeError(f"no pg_retention worker for {db} after {timeout}s; see "
                           f"{self.dir}/server.log")


# --------------------------------------------------------------------------------------------
# Templates.

def build_template(cl, db, rows, anchor, layout="clock"):
    say(f"template {db}: loading {rows:,} rows ({layout} layout)")
    cl.psql("postgres", f"CREATE DATABASE {db}")
    cl.psql(db, file=os.path.join(SQL, "schema.sql"))
    v = {"tbl": TABLE, "rows": rows, "anchor": anchor, "layout": layout}
    timings = {}
    for name, action in (("insert_s", lambda: cl.psql(db, file=os.path.join(SQL, "load.sql"),
                                                      variables=v)),
                         ("index_s", lambda: cl.psql(db, file=os.path.join(SQL, "index.sql"),
                                                     variables=v)),
                         ("policy_s", lambda: cl.psql(db, file=os.path.join(SQL, "policy.sql"),
                                                      variables=v)),
                         ("vacuum_analyze_s", lambda: cl.psql(db, f"VACUUM ANALYZE {TABLE}"))):
        t = time.monotonic()
        action()
        timings[name] = round(time.monotonic() - t, 1)
    mix = cl.rows(db, f"""
        SELECT count(*),
               count(*) FILTER (WHERE category IS NULL),
               count(*) FILTER (WHERE category = 'audit_logs'),
               count(*) FILTER (WHERE category = 'attachments'),
               count(DISTINCT tenant),
               count(*) FILTER (WHERE tenant = 'tiny' OR subject IN ('u1', 'u2')),
               pg_total_relation_size('{TABLE}')
          FROM {TABLE}""")[0]
    due = cl.rows(db, """
        SELECT coalesce(sum(rows) FILTER (WHERE held_by IS NULL), 0),
               coalesce(sum(rows) FILTER (WHERE held_by IS NOT NULL), 0)
          FROM retention.preview()""")[0]
    info = {
        "layout": layout, "correlation": float(cl.one(db, f"""
            SELECT correlation FROM pg_stats
             WHERE tablename = '{TABLE}' AND attname = 'created_at'""") or 0),
        "rows": int(mix[0]), "untagged": int(mix[1]), "tagged_audit_logs": int(mix[2]),
        "tagged_attachments": int(mix[3]), "tenants": int(mix[4]),
        "tenant_overrides": int(cl.one(db, "SELECT count(*) FROM retention.tenant_policies")),
        "holds": int(cl.one(db, "SELECT count(*) FROM retention.holds")),
        "held_rows": int(mix[5]), "due_rows": int(due[0]), "due_but_held_rows": int(due[1]),
        "table_bytes": int(mix[6]), "load": timings,
    }
    info["due_fraction"] = round(info["due_rows"] / info["rows"], 4)
    info["held_fraction"] = round(info["held_rows"] / info["rows"], 4)
    say(f"template {db}: {info['rows']:,} rows, {info['due_rows']:,} due "
        f"({info['due_fraction']:.1%}), {info['held_rows']:,} held; {timings}")
    return info


def remaining(cl, db):
    """What a purge left: rows, a checksum of their ids, and the held rows."""
    r = cl.rows(db, f"""
        SELECT count(*), coalesce(sum(id), 0), coalesce(bit_xor(hashint8(id)), 0),
               count(*) FILTER (WHERE tenant = 'tiny' OR subject IN ('u1', 'u2'))
          FROM {TABLE}""")[0]
    return {"rows": int(r[0]), "checksum": f"{r[1]}/{r[2]}", "held_rows": int(r[3])}


def batch_stats(cl, db, log_table):
    """The batches of a purge, from its log (one logged_at per batch transaction): per segment,
    the count and the start-to-start time of consecutive full batches."""
    rows = cl.rows(db, f"""
        SELECT category, retain_for::text, extract(epoch FROM logged_at)::float8, count(*)
          FROM {log_table} GROUP BY logged_at, category, retain_for ORDER BY logged_at""")
    segments = []
    for i, (cat, retain, at, n) in enumerate(rows):
        if not segments or (segments[-1]["category"], segments[-1]["retain_for"]) != (cat, retain):
            segments.append({"category": cat, "retain_for": retain, "batches": 0, "rows": 0,
                             "_ms": []})
        seg = segments[-1]
        seg["batches"] += 1
        seg["rows"] += int(n)
        if i + 1 < len(rows) and int(n) == BATCH:
            seg["_ms"].append((float(rows[i + 1][2]) - float(at)) * 1000)
    for seg in segments:
        ms = seg.pop("_ms")
        if ms:
            tenth = max(1, len(ms) // 10)
            seg.update({
                "batch_ms_median": r1(statistics.median(ms)), "batch_ms_p90": r1(pct(ms, 90)),
                "batch_ms_max": r1(max(ms)),
                "batch_ms_first_tenth": r1(statistics.mean(ms[:tenth])),
                "batch_ms_last_tenth": r1(statistics.mean(ms[-tenth:]))})
    return segments


def default_segment(segments):
    for seg in segments or []:
        if seg["category"] == "conversations" and seg["retain_for"] == "1 year":
            return seg
    return {}


def finish_purge(res, rows, meter):
    res.update({"rows": rows, **meter.json()})
    secs = res.get("cycle_s", meter.seconds)
    res["rows_per_s"] = round(rows / secs, 1) if secs else None
    res["wal_bytes_per_row"] = round(meter.wal / rows, 1) if rows else None
    res["cluster_cpu_ms_per_1000_rows"] = round(meter.cluster_cpu * 1e6 / rows, 2) if rows else None
    return res


# --------------------------------------------------------------------------------------------
# Contenders.

def contender_sql(cl, template, db, label, sql, log_table):
    cl.clone(template, db)
    cl.psql(db, "CHECKPOINT")
    say(f"{label}: purging")
    with Meter(cl, label, db) as m:
        cl.psql(db, sql)
    rows = int(cl.one(db, f"SELECT count(*) FROM {log_table}"))
    res = finish_purge({}, rows, m)
    res["remaining"] = remaining(cl, db)
    res["batches"] = batch_stats(cl, db, log_table)
    if log_table == "retention.deletion_log":
        res["log_ids_contiguous"] = cl.one(
            db, "SELECT count(*) = coalesce(max(id) - min(id) + 1, 0) "
                "FROM retention.deletion_log") == "t"
    cl.drop(db)
    say(f"{label}: {rows:,} rows in {m.seconds:.1f}s = {res['rows_per_s']:,.0f} rows/s, "
        f"{res['wal_bytes_per_row']} WAL bytes/row, other load {res['other_load_cores']} cores")
    return res


def worker_purge(cl, template, expected, label, during=None, max_rows_per_second=0,
                 timeout=3600, throttle="fixed"):
    """Clones `template` as the worker's database, enables the worker and waits until its
    first cycle has finished; with `during`, runs during() instead and stops the worker when
    it returns."""
    cl.drop(WORKER_DB)
    cl.clone(template, WORKER_DB)
    cl.wait_worker(WORKER_DB)
    cl.psql(WORKER_DB, "CHECKPOINT")
    say(f"{label}: worker purging" + (f" (max_rows_per_second = {max_rows_per_second})"
                                      if max_rows_per_second else ""))
    extra = {}
    with Meter(cl, label, WORKER_DB) as m:
        cl.set_worker(True, max_rows_per_second, throttle)
        if during:
            extra = during()
        else:
            deadline = time.monotonic() + timeout
            reported = time.monotonic()
            while True:
                status = cl.one(WORKER_DB, "SELECT status FROM retention.runs "
                                           "WHERE trigger = 'worker' ORDER BY id LIMIT 1")
                if status and status != "running":
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("the worker did not finish its cycle in time")
                if time.monotonic() - reported > 30:
                    done = int(cl.one(WORKER_DB, "SELECT coalesce(max(id), 0) "
                                                 "FROM retention.deletion_log"))
                    say(f"{label}: {done:,} / {expected:,} rows")
                    reported = time.monotonic()
                time.sleep(1.0)
        cl.set_worker(False)
    res = {"max_rows_per_second": max_rows_per_second, "throttle": throttle}
    run_row = cl.rows(WORKER_DB, """
        SELECT status, rows_acted, extract(epoch FROM started_at)::float8,
               coalesce(extract(epoch FROM finished_at)::float8, 0), coalesce(error, '')
          FROM retention.runs WHERE trigger = 'worker' ORDER BY id LIMIT 1""")
    if run_row:
        status, acted, started, finished, error = run_row[0]
        res.update({"status": status, "started_epoch": float(started), "error": error or None})
        if status != "running":
            res.update({"finished_epoch": float(finished),
                        "cycle_s": round(float(finished) - float(started), 3)})
    logged = int(cl.one(WORKER_DB, "SELECT count(*) FROM retention.deletion_log"))
    if during:
        res.update(m.json())
        res["log_entries"] = logged
        res["log_entries_until"] = int(cl.one(
            WORKER_DB, "SELECT count(*) FROM retention.deletion_log "
                       f"WHERE logged_at <= to_timestamp({extra['until_epoch']})"))
        res.update(extra)
    else:
        finish_purge(res, logged, m)
        res["remaining"] = remaining(cl, WORKER_DB)
        res["batches"] = batch_stats(cl, WORKER_DB, "retention.deletion_log")
        nbatches = sum(s["batches"] for s in res["batches"])
        res["cluster_cpu_ms_per_batch"] = round(m.cluster_cpu * 1000 / nbatches, 2)
        say(f"{label}: {logged:,} rows in {res.get('cycle_s', 0):.1f}s = "
            f"{res['rows_per_s']:,.0f} rows/s, {res['wal_bytes_per_row']} WAL bytes/row, "
            f"other load {res['other_load_cores']} cores")
    cl.drop(WORKER_DB)
    return res


def keyset_run_worker(cl, template, expected, label, adaptive=False):
    """The keyset job, run() and the unthrottled worker, in turn, each on a fresh copy of
    `template`; run()'s and the worker's rows/s as a ratio of the keyset job's. With
    `adaptive`, then the worker under the adaptive throttle on an idle server, as a ratio of
    the unthrottled worker's rows/s in the same round."""
    res = {
        "baseline_keyset": contender_sql(cl, template, "bench_keyset", f"{label}keyset job",
                                         KEYSET_SQL, "plain_deletion_log"),
        "run": contender_sql(cl, template, "bench_run", f"{label}retention.run()", RUN_SQL,
                             "retention.deletion_log"),
        "worker": worker_purge(cl, template, expected, f"{label}worker"),
    }
    for k in ("run", "worker"):
        res[k]["vs_baseline_keyset"] = round(
            res[k]["rows_per_s"] / res["baseline_keyset"]["rows_per_s"], 3)
    if adaptive:
        res["worker_adaptive"] = worker_purge(cl, template, expected,
                                              f"{label}worker, adaptive throttle, idle",
                                              throttle="adaptive")
        res["worker_adaptive"]["vs_unthrottled_worker"] = round(
            res["worker_adaptive"]["rows_per_s"] / res["worker"]["rows_per_s"], 3)
    return res


def parity_rounds(cl, template, expected, first, rounds, label, adaptive=False):
    """The keyset job, run() and the unthrottled worker (with `adaptive`, the adaptive worker
    too) again, `rounds - 1` more times in turn, each on a fresh copy of `template`: this
    machine's speed drifts by up to a quarter between runs, so parity and the adaptive
    throttle's idle share are judged on the median of the rounds' ratios, each taken within
    its round (round 1 is `first`, the contenders measured in full above)."""
    measured = [first]
    for n in range(2, rounds + 1):
        measured.append(keyset_run_worker(cl, template, expected, f"{label}round {n}: ",
                                          adaptive))
    ratios = [{k: m[k]["vs_baseline_keyset"] for k in ("run", "worker")} for m in measured]
    if adaptive:
        for r, m in zip(ratios, measured):
            r["adaptive_idle"] = m["worker_adaptive"]["vs_unthrottled_worker"]
    res = {"rounds": ratios,
           "median": {k: statistics.median([r[k] for r in ratios]) for k in ratios[0]},
           "worker_rows_per_s": [m["worker"]["rows_per_s"] for m in measured],
           "worker_cpu_ms_per_batch": [m["worker"]["cluster_cpu_ms_per_batch"]
                                       for m in measured]}
    if adaptive:
        res["adaptive_rows_per_s"] = [m["worker_adaptive"]["rows_per_s"] for m in measured]
    return res


def uncorrelated_purge(cl, rows, anchor, rounds):
    """The keyset job, run() and the unthrottled worker on the same mix with the clock
    uncorrelated with the heap (created_at = anchor - (id % 730) days)."""
    table = build_template(cl, "bench_tpl_u", rows, anchor, layout="uncorrelated")
    res = {"table": table,
           **keyset_run_worker(cl, "bench_tpl_u", table["due_rows"], "uncorrelated: ")}
    res["same_rows_deleted"] = len({(res[k]["rows"], res[k]["remaining"]["checksum"])
                                    for k in ("baseline_keyset", "run", "worker")}) == 1
    res["parity"] = parity_rounds(cl, "bench_tpl_u", table["due_rows"], res, rounds,
                                  "uncorrelated: ")
    cl.drop("bench_tpl_u")
    return res


# --------------------------------------------------------------------------------------------
# pgbench.

def pgbench_run(cl, work, name, seconds, clients, threads):
    prefix = os.path.join(work, "pgbench_" + re.sub(r"\W+", "_", name))
    cmd = [os.path.join(cl.tree["bin"], "pgbench"), *cl.conninfo(), "-M", "prepared",
           "-c", str(clients), "-j", str(threads), "-T", str(seconds), "-P", "5",
           "--log", f"--log-prefix={prefix}", "bench_pgbench"]
    start = time.time()
    p = run(cmd, capture_output=True, env=cl.env, check=False)
    end = time.time()
    if p.returncode != 0:
        raise RuntimeError(f"pgbench failed:\n{p.stdout}\n{p.stderr}")
    txns = []      # (end epoch, latency ms), from the per-transaction log
    for path in glob.glob(prefix + ".*"):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6:
                    txns.append((int(parts[4]) + int(parts[5]) / 1e6, int(parts[2]) / 1000.0))
        os.remove(path)
    reported = re.search(r"tps = ([\d.]+) \(without initial connection time\)", p.stdout)
    return {"start": start, "end": end, "txns": txns,
            "reported_tps": float(reported.group(1)) if reported else None}


def pgbench_stats(r, window=None):
    lo, hi = window or (min(at for at, _ in r["txns"]), max(at for at, _ in r["txns"]))
    lat = [ms for at, ms in r["txns"] if lo <= at <= hi]
    span = hi - lo
    return {"window_s": round(span, 1), "transactions": len(lat),
            "tps": round(len(lat) / span, 1) if span > 0 else None,
            "latency_ms_mean": r1(statistics.mean(lat), 3) if lat else None,
            "latency_ms_p50": r1(pct(lat, 50), 3) if lat else None,
            "latency_ms_p99": r1(pct(lat, 99), 3) if lat else None,
            "pgbench_reported_tps": r["reported_tps"]}


def pgbench_alone(cl, work, label, seconds, clients, threads):
    cl.psql("postgres", "CHECKPOINT")
    with Meter(cl, label) as m:
        r = pgbench_run(cl, work, label, seconds, clients, threads)
    res = {**pgbench_stats(r), **m.json()}
    say(f"{label}: {res['tps']:,.0f} TPS, p99 {res['latency_ms_p99']} ms, other load "
        f"{res['other_load_cores']} cores")
    return res


def pgbench_with_worker(cl, work, template, expected, seconds, clients, threads, label,
                        max_rows_per_second=0, throttle="fixed"):
    holder = {}

    def during():
        holder["run"] = pgbench_run(cl, work, label, seconds, clients, threads)
        return {"until_epoch": holder["run"]["end"]}

    w = worker_purge(cl, template, expected, label, during=during,
                     max_rows_per_second=max_rows_per_second, throttle=throttle)
    r = holder["run"]
    # Only the transactions that ended while the worker was purging.
    lo = max(r["start"], w.get("started_epoch", r["start"]))
    hi = min(r["end"], w.get("finished_epoch", r["end"]))
    res = pgbench_stats(r, (lo, hi))
    res["worker_busy_fraction_of_pgbench"] = round((hi - lo) / (r["end"] - r["start"]), 3)
    res["worker"] = {k: w.get(k) for k in ("status", "max_rows_per_second", "throttle",
                                           "log_entries", "error")}
    res["worker"]["rows_per_s_under_load"] = (round(w["log_entries_until"] / (hi - lo), 1)
                                              if hi > lo else None)
    res["phase"] = {k: w[k] for k in ("wall_s", "cluster_cpu_s", "client_cpu_s", "other_cpu_s",
                                      "other_load_cores", "wal_bytes", "stats")}
    say(f"{label}: {res['tps']:,.0f} TPS, p99 {res['latency_ms_p99']} ms, worker "
        f"{res['worker']['rows_per_s_under_load']:,.0f} rows/s, other load "
        f"{res['phase']['other_load_cores']} cores")
    return res


def compare(loaded, before, after):
    """A loaded run against the mean of the alone runs just before and after it."""
    tps = (before["tps"] + after["tps"]) / 2
    p99 = (before["latency_ms_p99"] + after["latency_ms_p99"]) / 2
    loaded["reference"] = {"tps": round(tps, 1), "latency_ms_p99": round(p99, 3),
                           "alone_runs_tps": [before["tps"], after["tps"]]}
    loaded["tps_change"] = round(loaded["tps"] / tps - 1, 4)
    loaded["p99_change"] = round(loaded["latency_ms_p99"] / p99 - 1, 4)
    return loaded


# --------------------------------------------------------------------------------------------
# The engine's batch statement: captured, reconstructed, explained.

def capture_engine_statements(cl, template):
    """Runs retention.run() on a copy of the table cut down to 1% of its rows (same table, so
    same holds and policy) inside a rolled-back transaction, with auto_explain reporting every
    nested statement: the exact SQL the engine builds for each segment."""
    db = "bench_probe"
    cl.drop(db)
    cl.clone(template, db)
    # The guard refuses to truncate a table with held rows: the holds are released first (in
    # this copy only); in their grace they still keep their rows from the purge, so the batch
    # statement carries the same hold predicate.
    p = cl.psql(db, f"""
        SELECT retention.release_hold(id, 'bench: statement probe')
          FROM retention.holds WHERE released_at IS NULL;
        CREATE TEMP TABLE keep AS SELECT * FROM {TABLE} WHERE id % 97 = 0;
        TRUNCATE {TABLE};
        INSERT INTO {TABLE} SELECT * FROM keep;
        ANALYZE {TABLE};
        LOAD 'auto_explain';
        SET auto_explain.log_min_duration = 0;
        SET auto_explain.log_nested_statements = on;
        SET auto_explain.log_format = json;
        SET auto_explain.log_level = notice;
        SET client_min_messages = notice;
        BEGIN;
        SELECT * FROM retention.run('{TABLE}');
        ROLLBACK;""")
    cl.drop(db)
    texts = []
    decoder = json.JSONDecoder()
    for m in re.finditer(r"plan:\n(?=\{)", p.stderr):
        plan, _ = decoder.raw_decode(p.stderr, m.end())
        text = plan.get("Query Text", "")
        if text.startswith("WITH due AS") and text not in texts:
            texts.append(text)
    return texts


def reconstruct_default_batch():
    """The default segment's first batch, as purge::batch and purge::act_sql build it for the
    benchmark's policy (src/purge.rs, src/policy.rs, src/holds.rs), and its parameters. Later
    batches add `AND t.created_at >= $9::timestamptz` (the newest clock value acted on)."""
    due = ("SELECT t.ctid FROM public.conversations AS t WHERE "
           "(t.category IS NULL OR t.category = $1) AND "
           "(t.tenant IS NULL OR t.tenant::text <> ALL($2::text[])) AND "
           "t.created_at <= now() + $3::interval - $4::interval AND "
           "NOT (((t.tenant::text = $5) IS TRUE) OR ((t.subject::text = $6) IS TRUE) OR "
           "((t.subject::text = $7) IS TRUE)) "
           "ORDER BY t.created_at LIMIT $8 FOR UPDATE OF t SKIP LOCKED")
    sql = (f"WITH due AS ({due}),\n"
           "              acted AS (DELETE FROM public.conversations AS t "
           "WHERE t.ctid = ANY(ARRAY(SELECT ctid FROM due))\n"
           "                        RETURNING jsonb_build_object('id', t.id) AS k, "
           "t.tenant::text AS tn, t.created_at::timestamptz AS clk, NULL::text AS fp)\n"
           "         SELECT k::text, tn, clk, fp, k FROM acted")
    types = ["text", "text[]", "interval", "interval", "text", "text", "text", "bigint"]
    args = ["'conversations'", "'{t01,t02,t03}'", "'0'", "'1 year'", "'tiny'", "'u1'", "'u2'",
            str(BATCH)]
    return sql, types, args


def explain_batch(cl, db, statement, types, args):
    """One EXPLAIN (ANALYZE, BUFFERS) of the batch in a rolled-back transaction (custom plan,
    as SPI plans a statement with its parameter values): (plan text, execution ms)."""
    out = cl.psql(db, f"""
        SET plan_cache_mode = force_custom_plan;
        PREPARE batch({', '.join(types)}) AS {statement};
        BEGIN;
        EXPLAIN (ANALYZE, BUFFERS) EXECUTE batch({', '.join(args)});
        ROLLBACK;""").stdout.strip()
    return out, float(re.search(r"Execution Time: ([\d.]+) ms", out).group(1))


def plan_is_index_scan(plan):
    return (re.search(rf"Index Scan using \S+ on {TABLE}\b", plan) is not None
            and re.search(rf"(Seq Scan|Bitmap Heap Scan) on {TABLE}\b|\bSort\b", plan) is None)


def slow_statements(server_log):
    """auto_explain entries (statements over 250 ms) for batch statements, per phase."""
    out = {}
    pattern = (r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) UTC \[\d+\] LOG:  duration: ([\d.]+) ms"
               r"  plan:\n\s*Query Text:\s*WITH due")
    for m in re.finditer(pattern, server_log, re.M):
        at = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        phase = next((label for label, lo, hi in PHASES if lo - 1 <= at <= hi + 1), "other")
        entry = out.setdefault(phase, {"count": 0, "max_ms": 0.0})
        entry["count"] += 1
        entry["max_ms"] = max(entry["max_ms"], float(m.group(2)))
    return out


# --------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description="pg_retention purge benchmark (issue 7)")
    ap.add_argument("--rows", type=int, default=5_000_000,
                    help="rows in the large table (default 5,000,000); the small one has 1/5")
    ap.add_argument("--no-install", action="store_true",
                    help="benchmark the pg_retention already installed in PostgreSQL 15")
    ap.add_argument("--package", action="store_true",
                    help="build with `cargo pgrx package` and benchmark that build, leaving the "
                         "system directories untouched")
    ap.add_argument("--package-dir", metavar="DIR",
                    help="benchmark an earlier `cargo pgrx package` output directory "
                         "(target/release/pg_retention-pg15 or a copy of it)")
    ap.add_argument("--port", type=int, help="port of the throwaway cluster (default: free)")
    ap.add_argument("--pgbench-seconds", type=int, default=30,
                    help="length of each pgbench run (default 30)")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3,
                    help="pgbench runs with the worker at its default settings, each between "
                         "two alone runs; the median is reported (default 3)")
    ap.add_argument("--parity-rounds", type=int, default=3,
                    help="rounds of the keyset job, run() and the worker per layout; parity "
                         "is judged on the median of the rounds' ratios (default 3)")
    ap.add_argument("--throttle-probes", type=int, default=2,
                    help="pgbench runs with max_rows_per_second set when the drop misses the "
                         "target (default 2, 0 to skip)")
    ap.add_argument("--keep", action="store_true", help="leave the cluster running")
    ap.add_argument("--out", default=os.path.join(BENCH, "results"))
    args = ap.parse_args()
    if sum(map(bool, (args.no_install, args.package, args.package_dir))) > 1:
        ap.error("--no-install, --package and --package-dir exclude each other")
    if args.rows < 50_000:
        ap.error("--rows must be at least 50000")
    small_rows = args.rows // 5
    seconds = args.pgbench_seconds

    results = {
        "benchmark": "pg_retention purge (issue 7)",
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "bash bench/run.sh " + " ".join(sys.argv[1:]),
        "rows": args.rows, "small_rows": small_rows, "batch_size": BATCH,
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg(),
                    "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                                     / 2**30, 1)},
    }

    def git(*a):
        return run(["git", "-C", ROOT, *a], capture_output=True, check=False).stdout.strip()
    results["git"] = {"commit": git("rev-parse", "HEAD"),
                      "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
                      "uncommitted_changes_in_src": bool(git("status", "--porcelain", "--",
                                                             "src", "sql", "Cargo.toml"))}

    # 0. The build under test.
    overlay = None
    if args.package:
        say("building: cargo pgrx package (release)")
        run(["cargo", "pgrx", "package", "--pg-config", SYS_PG_CONFIG], cwd=ROOT,
            stdout=subprocess.DEVNULL)
        overlay = os.path.join(ROOT, "target", "release", "pg_retention-pg15")
        results["build"] = {"source": "cargo pgrx package (release), not installed"}
    elif args.package_dir:
        overlay = os.path.abspath(args.package_dir)
        results["build"] = {"source": f"package directory {overlay}"}
    elif not args.no_install:
        say("installing the release build: cargo pgrx install --release")
        run(["cargo", "pgrx", "install", "--release", "--pg-config", SYS_PG_CONFIG], cwd=ROOT,
            stdout=subprocess.DEVNULL)
        results["build"] = {"source": "cargo pgrx install --release"}
    else:
        results["build"] = {"source": "already installed (--no-install)"}

    work = tempfile.mkdtemp(prefix="pg_retention_bench.")
    os.chmod(work, 0o755)
    tree = make_tree(work, overlay)
    so = os.path.join(tree["lib"], "pg_retention.so")
    results["build"].update({
        "library_sha256": sha256(so), "library_bytes": os.path.getsize(so),
        "file": run(["file", "-b", so], capture_output=True, check=False).stdout.strip()})
    built = os.path.join(ROOT, "target", "release", "libpg_retention.so")
    if (args.package or not (args.no_install or args.package_dir)) and os.path.exists(built):
        same = sha256(built) == results["build"]["library_sha256"]
        results["build"]["matches_target_release"] = same
        if not same:
            raise SystemExit("pg_retention.so differs from the release build just made "
                             "(did another install run meanwhile?): run again")
    say(f"library under test: sha256 {results['build']['library_sha256'][:16]}… "
        f"({results['build']['library_bytes']:,} bytes), private copy in {tree['root']}")

    port = args.port or free_port()
    cl = Cluster(work, tree, port)
    conf = [
        "shared_buffers = '1GB'", "max_wal_size = '4GB'", "min_wal_size = '1GB'",
        "checkpoint_timeout = '15min'", "checkpoint_completion_target = 0.9",
        "maintenance_work_mem = '512MB'", "timezone = 'UTC'", "log_checkpoints = on",
        "shared_preload_libraries = 'pg_retention,auto_explain'",
        "auto_explain.log_min_duration = '250ms'", "auto_explain.log_nested_statements = on",
        f"pg_retention.database = '{WORKER_DB}'", "pg_retention.naptime = 1",
        "pg_retention.enabled = off",
    ]
    results["cluster"] = {"port": port, "settings": conf}
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        say(f"starting the cluster on port {port} in {cl.dir}")
        cl.start(conf)
        anchor = cl.one("postgres", "SELECT now()")
        results["anchor"] = anchor

        # 1. Templates, and pgbench's database.
        results["table"] = build_template(cl, "bench_tpl", args.rows, anchor)
        results["small_table"] = build_template(cl, "bench_tpl_small", small_rows, anchor)
        expected = results["table"]["due_rows"]
        cl.psql("postgres", "CREATE DATABASE bench_pgbench")
        say(f"pgbench -i -s {args.scale}")
        run([os.path.join(tree["bin"], "pgbench"), *cl.conninfo(), "-i", "-q", "-s",
             str(args.scale), "bench_pgbench"], env=cl.env, capture_output=True)

        # 2. Throughput, each contender on its own fresh copy of the same data.
        purge = {}
        purge["baseline"] = contender_sql(
            cl, "bench_tpl", "bench_baseline", "baseline",
            f"CALL plain_purge('{TABLE}', {BATCH})", "plain_deletion_log")
        adaptive = cl.has_throttle_modes()
        purge.update(keyset_run_worker(cl, "bench_tpl", expected, "", adaptive))
        # The small table's cycle is a hundred batches: its CPU per batch is judged on the
        # median of as many cycles as there are parity rounds on the large table.
        small = [worker_purge(cl, "bench_tpl_small", results["small_table"]["due_rows"],
                              f"worker (small table){f', round {n}' if n > 1 else ''}")
                 for n in range(1, args.parity_rounds + 1)]
        results["small_worker"] = small[0]
        results["small_worker_cpu_ms_per_batch"] = [w["cluster_cpu_ms_per_batch"] for w in small]
        base = purge["baseline"]["rows_per_s"]
        for k in ("baseline_keyset", "run", "worker", "worker_adaptive"):
            if k in purge:
                purge[k]["vs_baseline"] = round(purge[k]["rows_per_s"] / base, 3)
        outcomes = {(purge[k]["rows"], purge[k]["remaining"]["checksum"]) for k in purge}
        purge["same_rows_deleted"] = len(outcomes) == 1
        purge["expected_rows"] = expected
        purge["held_rows_kept"] = all(purge[k]["remaining"]["held_rows"]
                                      == results["table"]["held_rows"]
                                      for k in purge if isinstance(purge[k], dict))
        purge["parity"] = parity_rounds(cl, "bench_tpl", expected, purge, args.parity_rounds,
                                        "", adaptive)
        results["purge"] = purge

        # 2b. The keyset comparison again on a heap whose rows are not in clock order.
        results["uncorrelated"] = uncorrelated_purge(cl, args.rows, anchor, args.parity_rounds)

        # 3. pgbench: alone, loaded, alone, (throttled, alone)…
        pg = results["pgbench"] = {
            "scale": args.scale, "clients": args.clients, "threads": args.threads,
            "seconds": seconds, "mode": "prepared", "script": "tpcb-like (builtin)"}
        pgopts = (seconds, args.clients, args.threads)
        say(f"pgbench -c {args.clients} -j {args.threads} -T {seconds} -M prepared")
        pg["alone"] = [pgbench_alone(cl, work, "pgbench alone 1", *pgopts)]
        # The target is for the extension's own default of max_rows_per_second (its boot
        # value); the throughput phases above ran the worker unthrottled (0).
        default_rate = int(cl.one("postgres", "SELECT boot_val FROM pg_settings "
                                              "WHERE name = 'pg_retention.max_rows_per_second'"))
        default_mode = (cl.one("postgres", "SELECT boot_val FROM pg_settings "
                                           "WHERE name = 'pg_retention.throttle'")
                        if adaptive else "fixed")
        pg["default_max_rows_per_second"] = default_rate
        pg["default_throttle"] = default_mode
        # This machine's pgbench TPS drifts by 10% and more between runs a minute apart: the
        # loaded run is repeated between alone runs, and the median change is the result.
        repeats = []
        for rep in range(args.repeats):
            loaded = pgbench_with_worker(cl, work, "bench_tpl", expected, *pgopts,
                                         f"pgbench + worker ({rep + 1})",
                                         max_rows_per_second=default_rate,
                                         throttle=default_mode)
            pg["alone"].append(pgbench_alone(cl, work, f"pgbench alone {len(pg['alone']) + 1}",
                                             *pgopts))
            repeats.append(compare(loaded, pg["alone"][-2], pg["alone"][-1]))
        repeats.sort(key=lambda r: r["tps_change"])
        loaded = repeats[len(repeats) // 2]
        pg["with_worker"] = loaded
        pg["with_worker_repeats"] = [
            {"tps_change": r["tps_change"], "p99_change": r["p99_change"],
             "worker_rows_per_s": r["worker"]["rows_per_s_under_load"]} for r in repeats]
        say(f"pgbench + worker (max_rows_per_second = {default_rate}, the default): TPS "
            f"{loaded['tps_change']:+.1%}, p99 {loaded['p99_change']:+.1%}")
        pg["with_throttled_worker"] = []
        if default_rate or default_mode != "fixed":
            # For reference: what the unthrottled worker does to pgbench.
            t = pgbench_with_worker(cl, work, "bench_tpl", expected, *pgopts,
                                    "pgbench + unthrottled worker", max_rows_per_second=0)
            pg["alone"].append(pgbench_alone(cl, work, f"pgbench alone {len(pg['alone']) + 1}",
                                             *pgopts))
            pg["with_throttled_worker"].append(compare(t, pg["alone"][-2], pg["alone"][-1]))
        point = loaded
        for probe in range(args.throttle_probes):
            if point["tps_change"] >= TPS_TARGET:
                break
            # Assume the drop scales with the worker's rate; aim at a 10% drop.
            rate = point["worker"]["rows_per_s_under_load"] or 1000
            limit = max(100, int(float(f"{rate * 0.10 / -point['tps_change']:.2g}")))
            previous = point["worker"]["max_rows_per_second"]
            if previous and limit >= previous:
                limit = previous // 2
            t = pgbench_with_worker(cl, work, "bench_tpl", expected, *pgopts,
                                    f"pgbench + worker at {limit} rows/s",
                                    max_rows_per_second=limit)
            pg["alone"].append(pgbench_alone(cl, work, f"pgbench alone {len(pg['alone']) + 1}",
                                             *pgopts))
            compare(t, pg["alone"][-2], pg["alone"][-1])
            say(f"pgbench + worker at {limit} rows/s: TPS {t['tps_change']:+.1%}, p99 "
                f"{t['p99_change']:+.1%}")
            pg["with_throttled_worker"].append(t)
            point = t

        # 4. The batch statement at both sizes (interleaved repetitions), and the targets.
        captured = capture_engine_statements(cl, "bench_tpl_small")
        statement, types, argv = reconstruct_default_batch()
        engine_default = [t for t in captured if "t.tenant::text <> ALL" in t and ">= $" not in t]
        matches = bool(engine_default) and engine_default[0] == statement
        same_modulo_space = bool(engine_default) and (engine_default[0].split()
                                                        == statement.split())
        if engine_default and not matches:
            # The installed engine builds something else (another version): explain its own
            # statement, whose parameters come in the same order.
            statement = engine_default[0]
        bs = results["batch_statement"] = {
            "sql": statement, "params": list(zip(types, argv)),
            "reconstruction_matches_engine": matches,
            "reconstruction_matches_engine_ignoring_whitespace": same_modulo_space,
            "engine_statements": captured}
        say("EXPLAIN (ANALYZE, BUFFERS) of the default segment's first batch, both sizes")
        runs = {"small": [], "large": []}
        plans = {}
        for i in range(8):
            for key, db in (("small", "bench_tpl_small"), ("large", "bench_tpl")):
                plan, ms = explain_batch(cl, db, statement, types, argv)
                runs[key].append(ms)
                plans.setdefault(key, plan)
        for key, rows in (("small", small_rows), ("large", args.rows)):
            warm = runs[key][1:]
            bs[key] = {"rows": rows, "plan": plans[key], "execution_ms": runs[key],
                       "median_ms": round(statistics.median(warm), 3),
                       "min_ms": round(min(warm), 3), "index_scan": plan_is_index_scan(plans[key])}

        w_big, w_small = purge["worker"], results["small_worker"]
        stmt_ratio = bs["large"]["median_ms"] / bs["small"]["median_ms"]
        cpu = [statistics.median(results["small_worker_cpu_ms_per_batch"]),
               statistics.median(purge["parity"]["worker_cpu_ms_per_batch"])]
        cpu_ratio = cpu[1] / cpu[0]
        wall = [default_segment(w_small["batches"]).get("batch_ms_median"),
                default_segment(w_big["batches"]).get("batch_ms_median")]
        worst_throttle = next((t for t in [loaded] + pg["with_throttled_worker"]
                               if t["tps_change"] >= TPS_TARGET
                               and t["worker"]["max_rows_per_second"]), None)
        adaptive_target = None
        if adaptive:
            idle = purge["parity"]["median"]["adaptive_idle"]
            adaptive_target = {
                "idle_rows_per_s": statistics.median(purge["parity"]["adaptive_rows_per_s"]),
                "idle_rounds": len(purge["parity"]["rounds"]),
                "idle_vs_unthrottled": idle, "idle_met": idle >= ADAPTIVE_IDLE_MIN,
                "loaded_tps_change": loaded["tps_change"],
                "loaded_p99_change": loaded["p99_change"],
                "loaded_worker_rows_per_s": loaded["worker"]["rows_per_s_under_load"],
                "loaded_met": (loaded["tps_change"] >= ADAPTIVE_TPS_MIN
                               and loaded["p99_change"] <= ADAPTIVE_P99_MAX),
            }
            adaptive_target["met"] = adaptive_target["idle_met"] and adaptive_target["loaded_met"]
        u = results["uncorrelated"]
        parity = {layout: {k: medians[k] for k in ("run", "worker")}
                  for layout, medians in (("clock_order", purge["parity"]["median"]),
                                          ("uncorrelated", u["parity"]["median"]))}
        parity["rounds"] = {"clock_order": purge["parity"]["rounds"],
                            "uncorrelated": u["parity"]["rounds"]}
        parity["met"] = min(min(parity[k].values())
                            for k in ("clock_order", "uncorrelated")) >= 0.95
        results["targets"] = {
            "keyset_parity_min_0.95": parity,
            "adaptive_throttle": adaptive_target,
            "purge_rows_per_s_vs_baseline_min_0.80": {
                "run": purge["run"]["vs_baseline"], "worker": purge["worker"]["vs_baseline"],
                "met": min(purge["run"]["vs_baseline"], purge["worker"]["vs_baseline"]) >= 0.80},
            "pgbench_tps_drop_max_0.15": {
                "default_max_rows_per_second": default_rate,
                "default_settings": loaded["tps_change"], "met": loaded["tps_change"] >= TPS_TARGET,
                "throttled": [{"max_rows_per_second": t["worker"]["max_rows_per_second"],
                               "tps_change": t["tps_change"],
                               "met": t["tps_change"] >= TPS_TARGET}
                              for t in pg["with_throttled_worker"]],
                "setting_that_meets_it": (worst_throttle["worker"]["max_rows_per_second"]
                                          if worst_throttle else None)},
            "batch_time_flat_within_0.25": {
                "rows": [small_rows, args.rows],
                "statement_median_ms": [bs["small"]["median_ms"], bs["large"]["median_ms"]],
                "statement_ratio": round(stmt_ratio, 3),
                "worker_cpu_ms_per_batch": cpu,
                "worker_cpu_rounds": len(results["small_worker_cpu_ms_per_batch"]),
                "worker_cpu_ratio": round(cpu_ratio, 3),
                "worker_wall_ms_per_batch_median": wall,
                "worker_wall_ratio": round(wall[1] / wall[0], 3) if all(wall) else None,
                "index_scan": bs["small"]["index_scan"] and bs["large"]["index_scan"],
                "met": (abs(stmt_ratio - 1) <= 0.25 and abs(cpu_ratio - 1) <= 0.25
                        and bs["small"]["index_scan"] and bs["large"]["index_scan"])},
        }
        with open(os.path.join(cl.dir, "server.log")) as f:
            log = f.read()
        results["server_log"] = {
            "batch_statements_over_250ms": slow_statements(log),
            "checkpoints": len(re.findall(r"checkpoint complete", log)),
            "crashes": len(re.findall(r"terminated by signal", log)),
        }
    except BaseException:
        if not args.keep:
            cl.stop()
        say(f"failed; the cluster's files and log are kept in {work}")
        raise
    finally:
        if not args.keep:
            cl.stop()
        else:
            say(f"cluster left running: psql -h 127.0.0.1 -p {port} -U postgres; stop it with "
                f"PG_BIN={tree['bin']} bash scripts/cluster.sh stop {cl.dir}")

    results["machine"]["loadavg_at_end"] = os.getloadavg()
    results["total_s"] = round(time.monotonic() - T0, 1)
    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = os.path.join(args.out, f"{stamp}.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1, default=str)
        f.write("\n")
    print(report(results))
    print(f"results: {os.path.relpath(path, ROOT)}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


def report(r):
    p, pg, bs = r["purge"], r["pgbench"], r["batch_statement"]
    t = r["targets"]
    lines = []
    add = lines.append
    add("")
    add(f"pg_retention purge benchmark: {r['rows']:,} rows, {r['table']['due_rows']:,} due "
        f"({r['table']['due_fraction']:.1%}), {r['table']['held_rows']:,} held "
        f"({r['table']['held_fraction']:.1%}); batch {r['batch_size']}; {r['machine']['cpus']} "
        f"CPUs; {r['total_s'] / 60:.1f} min")
    add(f"build: {r['build']['source']}; commit {r['git']['commit'][:10]}; "
        f"pg_retention.so sha256 {r['build']['library_sha256'][:12]}")
    add("")
    add(f"{'purge, each on a fresh copy':34} {'rows':>10} {'seconds':>8} {'rows/s':>8} "
        f"{'vs base':>7} {'WAL B/row':>9} {'CPU ms/1k':>9} {'other load':>10}")
    for key, label in (("baseline", "baseline: batched DELETE + log"),
                       ("baseline_keyset", "  same, with keyset (reference)"),
                       ("run", "retention.run() (one transaction)"),
                       ("worker", "worker, unthrottled"),
                       ("worker_adaptive", "worker, adaptive throttle, idle")):
        if key not in p:
            continue
        c = p[key]
        vs = "1.00" if key == "baseline" else f"{c['vs_baseline']:.2f}"
        add(f"{label:34} {c['rows']:>10,} {c.get('cycle_s', c['wall_s']):>8.1f} "
            f"{c['rows_per_s']:>8,.0f} {vs:>7} {c['wal_bytes_per_row']:>9,.0f} "
            f"{c['cluster_cpu_ms_per_1000_rows']:>9.1f} {c['other_load_cores']:>7.2f} cores")
    add(f"all four deleted the same {p['expected_rows']:,} rows: {p['same_rows_deleted']}; "
        f"held rows kept: {p['held_rows_kept']}")
    u = r.get("uncorrelated")
    if u:
        add(f"clock not correlated with the heap (correlation "
            f"{u['table']['correlation']:.2f}, clock order: {r['table'].get('correlation', 1):.2f}):")
        for key, label in (("baseline_keyset", "  keyset job"), ("run", "  retention.run()"),
                           ("worker", "  worker, unthrottled")):
            c = u[key]
            vs = "" if key == "baseline_keyset" else f"{c['vs_baseline_keyset']:.2f}x keyset"
            add(f"{label:34} {c['rows']:>10,} {c.get('cycle_s', c['wall_s']):>8.1f} "
                f"{c['rows_per_s']:>8,.0f} {vs:>14} {c['wal_bytes_per_row']:>9,.0f} "
                f"{c['cluster_cpu_ms_per_1000_rows']:>9.1f}")
        add(f"  all three deleted the same rows: {u['same_rows_deleted']}")
    add("")
    add(f"pgbench -s {pg['scale']} -c {pg['clients']} -j {pg['threads']} -T {pg['seconds']} "
        f"-M prepared (tpcb-like); loaded runs vs the mean of the alone runs around them")
    add(f"{'':34} {'TPS':>8} {'change':>8} {'p99 ms':>8} {'change':>8} {'worker rows/s':>13} "
        f"{'other load':>10}")
    for i, a in enumerate(pg["alone"]):
        add(f"{'alone ' + str(i + 1):34} {a['tps']:>8,.0f} {'':>8} {a['latency_ms_p99']:>8.2f} "
            f"{'':>8} {'':>13} {a['other_load_cores']:>7.2f} cores")
    for s in [pg["with_worker"]] + pg["with_throttled_worker"]:
        limit = s["worker"]["max_rows_per_second"]
        label = f"worker, max_rows_per_second={limit}" if limit else "worker, unthrottled (0)"
        if s is pg["with_worker"]:
            label = f"worker, default ({limit})" if limit else "worker, default (0: unthrottled)"
            if s["worker"].get("throttle") == "adaptive":
                label = "worker, default (adaptive)"
        add(f"{label:34} {s['tps']:>8,.0f} {s['tps_change']:>+8.1%} {s['latency_ms_p99']:>8.2f} "
            f"{s['p99_change']:>+8.1%} {s['worker']['rows_per_s_under_load'] or 0:>13,.0f} "
            f"{s['phase']['other_load_cores']:>7.2f} cores")
    reps = pg.get("with_worker_repeats", [])
    if len(reps) > 1:
        add("worker at its default settings, each repetition (median above): " + "; ".join(
            f"TPS {r['tps_change']:+.1%}, p99 {r['p99_change']:+.1%}, "
            f"{r['worker_rows_per_s'] or 0:,.0f} rows/s" for r in reps))
    add("")
    fb = t["batch_time_flat_within_0.25"]
    add(f"{'batch cost, default segment':38} {fb['rows'][0]:>12,} rows {fb['rows'][1]:>12,} rows"
        f"  ratio")
    add(f"{'  first batch statement, median ms':38} {fb['statement_median_ms'][0]:>17.2f} "
        f"{fb['statement_median_ms'][1]:>17.2f}  {fb['statement_ratio']:.2f}")
    add(f"{'  worker server CPU per batch, ms (median)':38} "
        f"{fb['worker_cpu_ms_per_batch'][0]:>17.1f} "
        f"{fb['worker_cpu_ms_per_batch'][1]:>17.1f}  {fb['worker_cpu_ratio']:.2f}")
    if fb["worker_wall_ratio"]:
        add(f"{'  worker wall time per batch, median':38} "
            f"{fb['worker_wall_ms_per_batch_median'][0]:>17.1f} "
            f"{fb['worker_wall_ms_per_batch_median'][1]:>17.1f}  {fb['worker_wall_ratio']:.2f}")
    add(f"  plan: {'index scan on the clock index, no sort' if fb['index_scan'] else 'NOT an index scan'}"
        f"; reconstructed statement = the engine's (modulo whitespace): "
        f"{bs['reconstruction_matches_engine_ignoring_whitespace']}")
    add("")
    add("targets")
    kp = t.get("keyset_parity_min_0.95")
    if kp:
        add(f"  purge >= 95% of the keyset job's rows/s: clock order run() "
            f"{kp['clock_order']['run']:.2f}, worker {kp['clock_order']['worker']:.2f}; "
            f"uncorrelated run() {kp['uncorrelated']['run']:.2f}, worker "
            f"{kp['uncorrelated']['worker']:.2f} (medians of "
            f"{len(kp['rounds']['clock_order'])} rounds): {'met' if kp['met'] else 'MISSED'}")
        for layout in ("clock_order", "uncorrelated"):
            add(f"    {layout} rounds, run() / worker: " + "; ".join(
                f"{r['run']:.2f} / {r['worker']:.2f}" for r in kp["rounds"][layout]))
    tp = t["purge_rows_per_s_vs_baseline_min_0.80"]
    add(f"  purge >= 80% of the baseline's rows/s: run() {tp['run']:.2f}, worker "
        f"{tp['worker']:.2f}: {'met' if tp['met'] else 'MISSED'}")
    d = t["pgbench_tps_drop_max_0.15"]
    line = (f"  pgbench TPS drop <= 15%, default max_rows_per_second="
            f"{d.get('default_max_rows_per_second', 0)}: {d['default_settings']:+.1%}: "
            f"{'met' if d['met'] else 'MISSED'}")
    for th in d["throttled"]:
        line += (f"; max_rows_per_second={th['max_rows_per_second']}: {th['tps_change']:+.1%}: "
                 f"{'met' if th['met'] else 'missed'}")
    add(line)
    add(f"  batch time flat within 25% ({fb['rows'][0]:,} vs {fb['rows'][1]:,} rows): "
        f"{'met' if fb['met'] else 'MISSED'}")
    a = t.get("adaptive_throttle")
    if a:
        add(f"  adaptive throttle, idle >= {ADAPTIVE_IDLE_MIN:.0%} of the unthrottled worker "
            f"(same round, median of {a.get('idle_rounds', 1)}): {a['idle_vs_unthrottled']:.2f} "
            f"({a['idle_rows_per_s']:,.0f} rows/s): "
            f"{'met' if a['idle_met'] else 'MISSED'}")
        add(f"  adaptive throttle under pgbench, TPS drop <= {-ADAPTIVE_TPS_MIN:.0%} and p99 "
            f"<= +{ADAPTIVE_P99_MAX:.0%}: TPS {a['loaded_tps_change']:+.1%}, p99 "
            f"{a['loaded_p99_change']:+.1%}, worker {a['loaded_worker_rows_per_s'] or 0:,.0f} "
            f"rows/s: {'met' if a['loaded_met'] else 'MISSED'}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
