#!/usr/bin/env python3
"""Cost of redaction on write (issue 18): insert throughput with and without the guard.

Writes rows of prose to a file, then times `COPY notes (body) FROM '<file>'` (one statement: the
per-row cost of the trigger without client round trips, the worst case for its relative
overhead; the values arrive as text, as from a client, and are compressed on insert in both
cases) into:
  plain:      a table without redaction
  redacted:   the same table after retention.redact('notes', '{body}') (card, email, phone)
for 200-byte rows (100,000 per statement) and 4 KB rows (10,000 per statement), each either
clean (prose with digits, dates and amounts but no identifier) or carrying three identifiers
(a card number, an e-mail address, a phone number) per row. Each figure is the median of --repeats runs
on an emptied table, runs with and without redaction alternating. Prints rows/s and the overhead, and writes them to
bench/results/<UTC time>-redact.json.

Uses the installed pg_retention (`cargo pgrx install --release`; a debug build measures the
compiler's debug output) on a throwaway cluster (scripts/cluster.sh) with fsync,
synchronous_commit and full_page_writes off: the trigger's cost is CPU.
Usage: python3 bench/redact.py [--repeats N] [--port P]
"""
import argparse
import datetime
import json
import os
import random
import re
import shutil
import statistics
import tempfile

from shell import run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = "/usr/lib/postgresql/15/bin"
WORDS = ("the customer called about order invoice total of 129.50 due on 2024-03-15 agent said "
         "we will refund within 5 business days version 2.3.1 ticket priority high escalated "
         "to tier 2 at 14:30 account migrated last week shipping delayed by 3 days").split()
IDENTIFIERS = ["card 4111 1111 1111 1111", "mail jane.doe{}@example.com", "call +1 415 555 2671"]
SIZES = [(200, 100_000), (4096, 10_000)]


def prose(rng, size, with_identifiers, n):
    words = []
    while sum(len(w) + 1 for w in words) < size:
        words.append(rng.choice(WORDS))
    if with_identifiers:
        for ident in IDENTIFIERS:
            words.insert(rng.randrange(len(words)), ident.format(n))
    text = " ".join(words)
    return text[:size] if not with_identifiers else text


def write_rows(work, name, size, rows, with_identifiers):
    rng = random.Random(size * 2 + with_identifiers)
    path = os.path.join(work, f"{name}.tsv")
    with open(path, "w") as f:
        for n in range(rows):
            f.write(prose(rng, size, with_identifiers, n) + "\n")
    os.chmod(path, 0o644)
    return path


def timed_insert(psql, path):
    out = run(psql + ["-c", "TRUNCATE notes", "-c", "\\timing on",
                      "-c", f"COPY notes (body) FROM '{path}'"]).stdout
    return float(re.findall(r"Time: ([0-9.]+) ms", out)[-1]) / 1000


def measure(psql, path, rows, repeats):
    """Rows/s without and with redaction, the two alternating so that drift hits both."""
    times = {False: [], True: []}
    for _ in range(repeats):
        for redacted in (False, True):
            run(psql + ["-c", "SELECT retention.redact('notes', '{body}')" if redacted else
                        "SELECT retention.unredact('notes') FROM retention.redaction_rules"])
            times[redacted].append(timed_insert(psql, path))
    return rows / statistics.median(times[False]), rows / statistics.median(times[True])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--port", type=int, default=55433)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="redact-bench-")
    os.chmod(work, 0o755)
    data = os.path.join(work, "cluster")
    run(["bash", os.path.join(ROOT, "scripts/cluster.sh"), "start", data, str(a.port),
         "pg_retention.enabled = off", "fsync = off", "synchronous_commit = off",
         "full_page_writes = off"])
    psql = [f"{BIN}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
            str(a.port), "-U", "postgres"]
    results = []
    try:
        run(psql + ["-c", "CREATE EXTENSION pg_retention; "
                          "CREATE TABLE notes (id bigserial PRIMARY KEY, body text)"])
        for size, rows in SIZES:
            for with_ids in (False, True):
                name = write_rows(work, f"rows_{size}_{'ids' if with_ids else 'clean'}", size,
                                  rows, with_ids)
                plain, redacted = measure(psql, name, rows, a.repeats)
                results.append({"row_bytes": size, "rows": rows, "identifiers": with_ids,
                                "plain_rows_per_s": round(plain),
                                "redacted_rows_per_s": round(redacted),
                                "overhead_pct": round((plain / redacted - 1) * 100, 1)})
        version = run(psql + ["-Atc", "SELECT extversion FROM pg_extension "
                                      "WHERE extname = 'pg_retention'"]).stdout.strip()
    finally:
        run(["bash", os.path.join(ROOT, "scripts/cluster.sh"), "stop", data])
        shutil.rmtree(work, ignore_errors=True)
    print(f"pg_retention {version}: COPY into a table with and without redaction "
          f"(card, email, phone), median of {a.repeats}")
    print(f"{'row':>6} {'identifiers':>12} {'plain rows/s':>13} {'redacted rows/s':>16} "
          f"{'overhead':>9}")
    for r in results:
        print(f"{r['row_bytes']:>5}B {('3 per row' if r['identifiers'] else 'none'):>12} "
              f"{r['plain_rows_per_s']:>13,} {r['redacted_rows_per_s']:>16,} "
              f"{r['overhead_pct']:>8}%")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%MZ")
    path = os.path.join(ROOT, "bench", "results", f"{stamp}-redact.json")
    with open(path, "w") as f:
        json.dump({"version": version, "repeats": a.repeats, "results": results}, f, indent=2)
    print(f"written to {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
