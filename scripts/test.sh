#!/usr/bin/env bash
# The whole test suite, in order of speed: formatting and lints, the #[pg_test]s of every
# module, the integration tests in tests/ (real postmasters with the worker preloaded), and the
# pg_regress suite in pgrx-tests/. Run as root on Debian 12 after scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
export PATH="/usr/lib/postgresql/15/bin:$PATH"
unset RUST_BACKTRACE

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy -D warnings"
cargo clippy --quiet --all-targets -- -D warnings

echo "== #[pg_test]s (cargo pgrx test)"
pgdata=/tmp/pgrx-test-pgdata
rm -rf "$pgdata"
install -d -o postgres -g postgres -m 700 "$pgdata"
# One at a time: the tests share one database, and a test that places a hold (the hold lock,
# exclusive until its transaction ends) and then calls run() meets, by lock-order inversion,
# the deadlock detector when another test's run() is mid-batch (see README "The hold lock").
RUST_TEST_THREADS=1 cargo pgrx test pg15 --runas postgres --pgdata "$pgdata"

echo "== install the extension for the server-level tests"
cargo pgrx install --pg-config "$PG_CONFIG" >/dev/null
# The released install scripts of earlier versions, for the upgrade test (tests/upgrade.rs).
install -m 644 tests/fixtures/pg_retention--*.sql "$("$PG_CONFIG" --sharedir)/extension/"

echo "== integration tests (tests/)"
cargo test --test '*'

echo "== pg_regress suite (pgrx-tests/)"
bash scripts/regress.sh
echo "== all tests passed"
