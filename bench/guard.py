#!/usr/bin/env python3
"""Cost of the hold guard for the application's own statements (issue 13).

Runs pgbench against a table of 100,000 rows, unmanaged, then managed with 0, 1 and 100
active holds that touch none of the rows the statements change (tenant holds on other
tenants), and 1 hold that covers rows the statements do not delete. Each statement kind is
one pgbench run of --seconds with one client:
  update 1:    UPDATE of one row by key (content)
  update 1000: UPDATE of 1,000 consecutive rows (content: the guard's trigger does not fire)
  scope 1000:  UPDATE of 1,000 consecutive rows setting the tenant column (to its own value:
               the trigger fires and checks each row's scope and whether it moves)
  delete 1:    DELETE of one row by key, then INSERT of it again, in one transaction
  delete 1000: DELETE of 1,000 rows, then INSERT of them again, in one transaction
Uses the installed pg_retention (`cargo pgrx install --release`: the guard is Rust code run per
row, and a debug build measures the compiler's debug output) and a throwaway cluster
(scripts/cluster.sh). Prints TPS per configuration and the change against the unmanaged table.
The cluster runs with fsync, synchronous_commit and full_page_writes off: the guard's cost is
CPU, and single-row commits would otherwise measure the disk. Each run starts from a rewritten
(VACUUM FULL) table. Usage: python3 bench/guard.py [--seconds N] [--port P]
"""
import argparse
import os
import re
import shutil
import subprocess
import tempfile

from shell import run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = "/usr/lib/postgresql/15/bin"
ROWS = 100_000

SCRIPTS = {
    "update 1": "\\set id random(1, 100000)\nUPDATE items SET body = 'edited' WHERE id = :id;\n",
    "update 1000": "\\set id random(1, 99000)\n"
                   "UPDATE items SET body = 'edited' WHERE id BETWEEN :id AND :id + 999;\n",
    "scope 1000": "\\set id random(1, 99000)\n"
                  "UPDATE items SET tenant = 'free' WHERE id BETWEEN :id AND :id + 999;\n",
    "delete 1": "\\set id random(1, 100000)\nBEGIN;\n"
                "DELETE FROM items WHERE id = :id;\n"
                "INSERT INTO items VALUES (:id, 'free', now(), 'x');\nCOMMIT;\n",
    "delete 1000": "\\set id random(1, 99000)\nBEGIN;\n"
                   "DELETE FROM items WHERE id BETWEEN :id AND :id + 999;\n"
                   "INSERT INTO items SELECT i, 'free', now(), 'x' "
                   "FROM generate_series(:id, :id + 999) i;\nCOMMIT;\n",
}

CONFIGS = [
    ("unmanaged", ""),
    ("managed, 0 holds", "SELECT retention.manage('items', 'c', created_column => 'created_at', "
                         "tenant_column => 'tenant');"),
    ("managed, 1 hold", "SELECT retention.place_hold('other tenant', tenant => 'h0', "
                        "notify => false);"),
    ("managed, 100 holds", "SELECT retention.place_hold('other tenant', tenant => 'h' || i, "
                           "notify => false) FROM generate_series(1, 99) i;"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--port", type=int, default=55432)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="guard-bench-")
    os.chmod(work, 0o755)
    data = os.path.join(work, "cluster")
    # The guard's cost is CPU: keep WAL flushes, which dominate single-row commits, out of it.
    run(["bash", os.path.join(ROOT, "scripts/cluster.sh"), "start", data, str(a.port),
         "pg_retention.enabled = off", "fsync = off", "synchronous_commit = off",
         "full_page_writes = off"])
    psql = [f"{BIN}/psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(a.port), "-U", "postgres"]
    try:
        run(psql + ["-c", "CREATE EXTENSION pg_retention; "
                          "SELECT retention.define_category('c', '10 years'); "
                          "CREATE TABLE items (id int PRIMARY KEY, tenant text, "
                          "created_at timestamptz NOT NULL, body text); "
                          f"INSERT INTO items SELECT i, 'free', now(), 'x' "
                          f"FROM generate_series(1, {ROWS}) i;"])
        run(psql + ["-c", "VACUUM ANALYZE items"])
        results = {}
        for name, setup in CONFIGS:
            if setup:
                run(psql + ["-c", setup])
            armed = run(psql + ["-Atc", "SELECT string_agg(DISTINCT tgenabled::text, ',') "
                                        "FROM pg_trigger WHERE tgrelid = 'items'::regclass "
                                        "AND tgname LIKE 'retention_hold_guard%'"]).stdout.strip()
            print(f"{name}: guard triggers {armed or 'none'} (A armed, D disarmed)", flush=True)
            for kind, body in SCRIPTS.items():
                # Each run starts from a rewritten table: no configuration inherits another's
                # dead tuples or bloat (plain VACUUM left later runs systematically slower).
                run(psql + ["-c", "VACUUM FULL ANALYZE items"])
                path = os.path.join(work, "script.sql")
                with open(path, "w") as f:
                    f.write(body)
                os.chmod(path, 0o644)
                out = run([f"{BIN}/pgbench", "-n", "-h", "127.0.0.1", "-p", str(a.port),
                           "-U", "postgres", "-c", "1", "-T", str(a.seconds), "-f", path,
                           "postgres"]).stdout
                tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
                results[(name, kind)] = tps
        base = {kind: results[("unmanaged", kind)] for kind in SCRIPTS}
        print(f"hold guard cost, pgbench -c 1 -T {a.seconds}, {ROWS:,} rows (TPS, change)")
        print(f"{'':22}" + "".join(f"{k:>22}" for k in SCRIPTS))
        for name, _ in CONFIGS:
            cells = []
            for kind in SCRIPTS:
                tps = results[(name, kind)]
                cells.append(f"{tps:>12,.0f} {tps / base[kind] - 1:>+8.1%}")
            print(f"{name:22}" + "".join(f"{c:>22}" for c in cells))
    finally:
        subprocess.run(["bash", os.path.join(ROOT, "scripts/cluster.sh"), "stop", data])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
