#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL 15 cluster with pg_retention preloaded.
#   scripts/cluster.sh start DIR PORT [extra postgresql.conf lines...]
#   scripts/cluster.sh stop DIR
# As root, the server runs as the `postgres` OS user (Postgres refuses to run as root).
set -euo pipefail
BIN=${PG_BIN:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
[ -x "$BIN/initdb" ] || BIN=/usr/lib/postgresql/15/bin
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cmd=$1 dir=$2
case "$cmd" in
start)
  port=$3; shift 3
  mkdir -p "$dir"; [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  as_pg "$BIN/initdb" -D "$dir/data" -A trust -U postgres --locale=C.UTF-8 >"$dir/initdb.log"
  {
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $port"
    echo "unix_socket_directories = '$dir'"
    echo "shared_preload_libraries = 'pg_retention'"
    echo "max_worker_processes = 16"
    for line in "$@"; do echo "$line"; done
  } >>"$dir/data/postgresql.conf"
  as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
  ;;
stop)
  as_pg "$BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  ;;
*) echo "usage: $0 start DIR PORT [conf...] | stop DIR" >&2; exit 2 ;;
esac
