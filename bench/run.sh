#!/usr/bin/env bash
# pg_retention purge benchmark (issue 7): see bench/README.md.
#   bash bench/run.sh [--rows N] [--no-install] [more options: --help]
# Run as root on the Debian 12 machine the README's quick start sets up.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/bench.py "$@"
