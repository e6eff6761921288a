#!/usr/bin/env bash
# Runs the SQL regression suite (pgrx-tests/sql/*.sql against pgrx-tests/expected/*.out) with
# pg_regress from the PGXS install, on a throwaway cluster with the background worker disabled.
#   scripts/regress.sh [PORT]        (default port 5497)
# The extension must already be installed into the PostgreSQL 15 the cluster runs on.
# Exits non-zero when a test fails, after printing regression.diffs.
set -euo pipefail

port=${1:-5497}
root=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
bindir=$("$PG_CONFIG" --bindir)
pg_regress="$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress"
[ -x "$pg_regress" ] || { echo "regress.sh: pg_regress not found at $pg_regress" >&2; exit 2; }

dir=$(mktemp -d /tmp/regress.XXXXXX)   # the cluster (owned by postgres when run as root)
out=$(mktemp -d /tmp/regress-out.XXXXXX) # pg_regress results (written by this user)
started=no
cleanup() {
  status=$?
  if [ "$started" = yes ]; then
    PG_BIN="$bindir" "$root/scripts/cluster.sh" stop "$dir" 2>/dev/null || true
  fi
  rm -rf "$dir"
  if [ "$status" -eq 0 ]; then rm -rf "$out"; else echo "regress.sh: results kept in $out" >&2; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A Rust backtrace in an error's DETAIL would depend on the build: keep the server's
# environment free of RUST_BACKTRACE.
unset RUST_BACKTRACE RUST_LIB_BACKTRACE || true
started=yes
if ! PG_BIN="$bindir" "$root/scripts/cluster.sh" start "$dir" "$port" "pg_retention.enabled = off"; then
  echo "regress.sh: could not start the cluster on port $port; its log:" >&2
  cat "$dir/server.log" "$dir/initdb.log" >&2 2>/dev/null || true
  exit 2
fi

# Deterministic output. pg_regress itself sets PGTZ=PST8PDT, PGDATESTYLE='Postgres, MDY' and
# IntervalStyle postgres_verbose (appended to PGOPTIONS) for the psql sessions it starts, so
# intervals print as '@ 1 year' and the tests print no timestamps. The values below apply to
# the setup commands of this script.
export PGTZ=UTC PGDATESTYLE='ISO, YMD'
export PGOPTIONS="-c lc_messages=C"
unset PGDATABASE PGSERVICE PGPASSFILE || true

"$bindir/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
  -c "CREATE DATABASE regression TEMPLATE template0"

if [ -f "$root/pgrx-tests/schedule" ]; then
  tests=(--schedule="$root/pgrx-tests/schedule")
else
  tests=()
  for f in "$root"/pgrx-tests/sql/*.sql; do tests+=("$(basename "$f" .sql)"); done
fi

rc=0
"$pg_regress" \
  --use-existing --bindir="$bindir" \
  --host=127.0.0.1 --port="$port" --user=postgres --dbname=regression \
  --inputdir="$root/pgrx-tests" --outputdir="$out" \
  "${tests[@]}" || rc=$?

if [ "$rc" -ne 0 ]; then
  [ -f "$out/regression.diffs" ] && cat "$out/regression.diffs"
  echo "regress.sh: FAILED (pg_regress exit $rc)" >&2
  exit "$rc"
fi
echo "regress.sh: all tests passed"
