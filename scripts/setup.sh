#!/usr/bin/env bash
# Installs what building and testing pg_retention needs, skipping what is already there:
# Debian's PostgreSQL 15 with server headers, clang (bindgen), sudo (cargo pgrx test --runas),
# cargo-pgrx 0.18.1, and pgrx's config pointing at the system pg_config. Run as root.
set -euo pipefail
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
packages=(postgresql-15 postgresql-server-dev-15 libclang-dev clang pkg-config sudo)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian starts a cluster on 5432 after install; the tests start their own.
if ! cargo pgrx --version 2>/dev/null | grep -q '0\.18\.1'; then
  echo "setup: installing cargo-pgrx 0.18.1 (about 4 minutes)"
  cargo install cargo-pgrx --version 0.18.1 --locked --quiet
fi
if ! grep -q "pg15 = \"$PG_CONFIG\"" ~/.pgrx/config.toml 2>/dev/null; then
  cargo pgrx init --pg15 "$PG_CONFIG" >/dev/null
fi
echo "setup: ready ($(cargo pgrx --version), $($PG_CONFIG --version))"
