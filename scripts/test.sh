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
cargo pgrx test pg15 --runas postgres --pgdata "$pgdata"

echo "== install the extension for the server-level tests"
cargo pgrx install --pg-config "$PG_CONFIG" >/dev/null
# The released install scripts of earlier versions, for the upgrade test (tests/upgrade.rs).
install -m 644 tests/fixtures/pg_retention--*.sql "$("$PG_CONFIG" --sharedir)/extension/"

echo "== integration tests (tests/)"
cargo test --test '*'

echo "== pg_regress suite (pgrx-tests/)"
bash scripts/regress.sh
echo "== all tests passed"
