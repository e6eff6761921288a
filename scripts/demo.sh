#!/usr/bin/env bash
# Quick start: installs what is missing, builds and installs pg_retention (release), starts a
# local PostgreSQL 15 on port 5433 with the extension preloaded, and runs a short demo of the
# seed's retention policy. Run as root on Debian 12. The server keeps running afterwards:
#   psql -h 127.0.0.1 -p 5433 -U postgres demo
#   scripts/cluster.sh stop /tmp/pg_retention_demo
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
DIR=/tmp/pg_retention_demo
PORT=5433

bash scripts/setup.sh
cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null
[ -f "$DIR/data/postmaster.pid" ] && bash scripts/cluster.sh stop "$DIR" || true
rm -rf "$DIR"
bash scripts/cluster.sh start "$DIR" "$PORT" "pg_retention.database = 'demo'" "pg_retention.naptime = 2"
psql() { /usr/lib/postgresql/15/bin/psql -X -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }
psql -q -c "CREATE DATABASE demo"
psql -d demo -v ON_ERROR_STOP=1 -f scripts/demo.sql
echo
echo "The server is still running: psql -h 127.0.0.1 -p $PORT -U postgres demo"
echo "Stop it with: bash scripts/cluster.sh stop $DIR"
