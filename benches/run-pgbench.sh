#!/usr/bin/env bash
# Runs the pgbench comparison (direct vs copyguard vs pgbouncer), installing
# pgbouncer from the distribution first when it is missing.
#
# Environment (forwarded to the bench):
#   COPYGUARD_BENCH_ROUNDS   rounds of every protocol x target (default 3)
#   COPYGUARD_BENCH_SECONDS  length of each pgbench run in seconds (default 10)
set -euo pipefail

cd "$(dirname "$0")/.."

if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "pgbouncer is missing; install it (apt-get install -y pgbouncer) or run as root" >&2
        echo "continuing without pgbouncer" >&2
    else
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y pgbouncer || { apt-get update && apt-get install -y pgbouncer; }
    fi
fi

exec cargo bench --bench pgbench_compare "$@"
