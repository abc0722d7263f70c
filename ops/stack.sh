#!/usr/bin/env bash
# Bring the whole local stack (PostgreSQL + Kafka) up or down.
#
# Usage: ops/stack.sh up|down|status
#
#   up      postgres start, then kafka start (both idempotent; safe to re-run)
#   down    kafka stop, then postgres stop (both attempted even if one fails)
#   status  one line per service; exit 0 only if both answer
#
# See ops/postgres.sh and ops/kafka.sh for the environment variables
# (PGPORT, KAFKA_PORT, TRACELEDGER_CACHE, ...).
set -euo pipefail

OPS_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"

log() { echo "[ops] $*"; }

cmd_up() {
    local t0=$SECONDS
    bash "$OPS_DIR/postgres.sh" start || { echo "[ops] ERROR: postgres failed to start" >&2; exit 1; }
    bash "$OPS_DIR/kafka.sh" start || { echo "[ops] ERROR: kafka failed to start" >&2; exit 1; }
    log "stack up ($((SECONDS - t0))s)"
}

cmd_down() {
    local rc=0
    # Reverse of start order; postgres is stopped even if Kafka refused to
    # die, so a half-broken stack never blocks the other service's shutdown.
    bash "$OPS_DIR/kafka.sh" stop || { echo "[ops] ERROR: kafka failed to stop" >&2; rc=1; }
    bash "$OPS_DIR/postgres.sh" stop || { echo "[ops] ERROR: postgres failed to stop" >&2; rc=1; }
    ((rc == 0)) && log "stack down"
    return "$rc"
}

cmd_status() {
    local rc=0
    bash "$OPS_DIR/postgres.sh" status || rc=1
    bash "$OPS_DIR/kafka.sh" status || rc=1
    return "$rc"
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
