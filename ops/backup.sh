#!/usr/bin/env bash
# A PostgreSQL backup of traceledger's database (`make backup`): pg_dump's custom format
# (compressed, restorable table by table with pg_restore) to
# $TRACELEDGER_BACKUP_DIR/<db>-<UTC time>.dump (default .run/backups/), written to a
# temporary name first so a half-written dump never looks complete.
#
# What it is for: the event store and read models come back in minutes from it. Even
# without it nothing signed is lost: the ledger topics keep every entry forever, and
# `python -m consumers.restore` rebuilds an empty database from Kafka alone
# (docs/operations.md).
#
# Env: TRACELEDGER_PG_HOST/PORT/DB/USER/PASSWORD (defaults as ledger/config.py), TRACELEDGER_BACKUP_DIR.
set -euo pipefail
REPO="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
DB="${TRACELEDGER_PG_DB:-traceledger}"
DIR="${TRACELEDGER_BACKUP_DIR:-$REPO/.run/backups}"
mkdir -p "$DIR"
OUT="$DIR/$DB-$(date -u +%Y%m%dT%H%M%SZ).dump"
PGPASSWORD="${TRACELEDGER_PG_PASSWORD:-traceledger}" pg_dump -h "${TRACELEDGER_PG_HOST:-127.0.0.1}" -p "${TRACELEDGER_PG_PORT:-5432}" \
    -U "${TRACELEDGER_PG_USER:-traceledger}" -d "$DB" --format=custom --file="$OUT.part"
mv "$OUT.part" "$OUT"
echo "[ops] backup: $OUT ($(du -h "$OUT" | cut -f1)); restore with: pg_restore -d <empty db> $OUT"
