#!/usr/bin/env python3
"""A Citus distributed table purged vs a local table with the same data (issue 21).

Needs a PostgreSQL whose directories hold Citus (this repository never builds it): --pg-bin
names its bin directory, whose pg_config finds the library and share directories; pg_retention
must be installed there too. Starts a coordinator and two worker nodes on loopback
(scripts/cluster.sh, `shared_preload_libraries = 'citus,pg_retention'`), then loads on the
coordinator `events_dist_<n>` (32 shards by tenant) and `events_local_<n>` (plain tables) with the same
--rows rows (20 tenants, one row a day back over two years, about half due under a 1-year
category, a 2-year override for one tenant, holds on a tenant and a subject). Each table is
purged by one `SELECT * FROM retention.run('<table>')` (unthrottled), in batches of
--batch-size rows (1000); --repeat rounds (3) on the same cluster, each with new tables, the
local table first in odd rounds and last in even ones. Prints rows removed, seconds and rows/s
for each, each round's ratio and their median; checks that rows removed equal log entries;
writes bench/results/<UTC time>-citus.json.

Usage: python3 bench/citus.py --pg-bin DIR [--rows N] [--repeat R] [--batch-size B] [--port P]
"""
import argparse
import datetime
import json
import os
import shutil
import tempfile
import time

from shell import one, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TABLE = """
CREATE TABLE {t} (tenant text NOT NULL, id bigint NOT NULL, subject text NOT NULL,
                  created_at timestamptz NOT NULL, body text, PRIMARY KEY (tenant, id));
CREATE INDEX ON {t} (created_at);
"""

LOAD = """
INSERT INTO {t}
SELECT 't' || (i % 20), i, 'u' || (i % 400),
       now() - interval '6 hours' - (i % 730) * interval '1 day', 'event body ' || i
  FROM generate_series(1, {rows}) i;
SELECT retention.manage('{t}', 'conversations', created_column => 'created_at',
                        tenant_column => 'tenant', subject_column => 'subject');
"""

POLICY = """
SELECT retention.define_category('conversations', '1 year');
SELECT retention.set_tenant_policy('t1', 'conversations', '2 years');
SELECT retention.place_hold('litigation: t2', tenant => 't2', notify => false);
SELECT retention.place_hold('subpoena: u7', subject => 'u7', notify => false);
"""


def purge(psql, table, batch_size):
    before = int(one(psql, f"SELECT count(*) FROM {table}"))
    logged_before = int(one(psql, "SELECT count(*) FROM retention.deletion_log"))
    started = time.monotonic()
    run(psql + ["-c", f"SET pg_retention.batch_size = {batch_size}",
                "-c", f"SELECT * FROM retention.run('{table}')"])
    seconds = time.monotonic() - started
    removed = before - int(one(psql, f"SELECT count(*) FROM {table}"))
    logged = int(one(psql, "SELECT count(*) FROM retention.deletion_log")) - logged_before
    assert removed == logged, f"{table}: {removed} rows removed, {logged} logged"
    return {"table": table, "rows_removed": removed, "seconds": round(seconds, 2),
            "rows_per_s": round(removed / seconds)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg-bin", required=True, help="bin directory of a PostgreSQL with Citus")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--port", type=int, default=55601)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3, help="rounds; the median ratio is reported")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="citus-bench-")
    os.chmod(work, 0o755)
    env = dict(os.environ, PG_BIN=a.pg_bin)
    nodes = [(os.path.join(work, f"node{n}"), a.port + n) for n in range(3)]
    psql_of = {port: [os.path.join(a.pg_bin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h",
                      "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres"]
               for _, port in nodes}
    try:
        for data, port in nodes:
            run(["bash", os.path.join(ROOT, "scripts/cluster.sh"), "start", data, str(port),
                 "shared_preload_libraries = 'citus,pg_retention'", "pg_retention.enabled = off",
                 "max_prepared_transactions = 100", "max_wal_size = '8GB'",
                 "log_min_messages = warning"], env=env)
            run(psql_of[port] + ["-c", "CREATE EXTENSION citus"])
        coordinator = psql_of[nodes[0][1]]
        run(coordinator + ["-c", f"SELECT citus_set_coordinator_host('127.0.0.1', {nodes[0][1]})"])
        for _, port in nodes[1:]:
            run(coordinator + ["-c", f"SELECT citus_add_node('127.0.0.1', {port})"])
        run(coordinator + ["-c", "CREATE EXTENSION pg_retention", "-c", POLICY])
        rounds = [one_round(coordinator, a, n) for n in range(a.repeat)]
        version = one(coordinator, "SELECT extversion FROM pg_extension WHERE extname = 'pg_retention'")
        citus = one(coordinator, "SELECT extversion FROM pg_extension WHERE extname = 'citus'")
    finally:
        for data, _ in nodes:
            run(["bash", os.path.join(ROOT, "scripts/cluster.sh"), "stop", data], env=env)
        shutil.rmtree(work, ignore_errors=True)
    ratios = sorted(r["ratio"] for r in rounds)
    median = ratios[len(ratios) // 2]
    print(f"pg_retention {version}, Citus {citus}: {a.rows:,} rows, coordinator + 2 workers "
          f"on loopback, 32 shards, batches of {a.batch_size}, {a.repeat} rounds")
    print(f"{'round':>5} {'table':>16} {'rows':>10} {'seconds':>8} {'rows/s':>10}")
    for n, r in enumerate(rounds, 1):
        for t in (r["local"], r["distributed"]):
            print(f"{n:>5} {t['table']:>16} {t['rows_removed']:>10,} {t['seconds']:>8} "
                  f"{t['rows_per_s']:>10,}")
        print(f"{n:>5} distributed / local: {r['ratio']:.2f}")
    print(f"median distributed / local: {median:.2f} (target >= 0.80)")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = os.path.join(ROOT, "bench", "results", f"{stamp}-citus.json")
    with open(path, "w") as f:
        json.dump({"version": version, "citus": citus, "rows": a.rows,
                   "batch_size": a.batch_size, "rounds": rounds,
                   "median_ratio": median}, f, indent=2)
    print(f"written to {os.path.relpath(path, ROOT)}")


def one_round(coordinator, a, n):
    """Loads the same rows into a local and a distributed table and purges both, the local one
    first in odd rounds and last in even ones (so that neither always runs on a warmer or
    fuller server); tables are new each round (a table under a hold cannot be dropped)."""
    local, dist = f"events_local_{n}", f"events_dist_{n}"
    run(coordinator + ["-c", TABLE.format(t=local)])
    run(coordinator + ["-c", TABLE.format(t=dist), "-c",
                       f"SELECT create_distributed_table('{dist}', 'tenant', shard_count => 32)"])
    for t in (local, dist):
        run(coordinator + ["-c", LOAD.format(t=t, rows=a.rows)])
        run(coordinator + ["-c", f"VACUUM ANALYZE {t}"])
    run(coordinator + ["-c", "CHECKPOINT"])
    order = (local, dist) if n % 2 == 0 else (dist, local)
    done = {t: purge(coordinator, t, a.batch_size) for t in order}
    return {"local": done[local], "distributed": done[dist],
            "ratio": round(done[dist]["rows_per_s"] / done[local]["rows_per_s"], 3)}


if __name__ == "__main__":
    main()
