#!/usr/bin/env bash
# Local PostgreSQL server for development and integration tests.
#
# Usage: ops/postgres.sh start|stop|status
#
# Uses the distribution's PostgreSQL (Debian/Ubuntu postgresql-common:
# pg_createcluster / pg_ctlcluster), installing it with apt-get when missing.
# The cluster is the standard "<version>/main" one, so its data lives in
# /var/lib/postgresql, not under .run/ (postgres must own its data dir and
# postgresql-common expects this layout).
#
# Provides role/database "traceledger" (password "traceledger") reachable with
# password auth over TCP:
#   postgresql://traceledger:traceledger@127.0.0.1:$PGPORT/traceledger
#
# Environment:
#   PGPORT             server port                          default 5432
#   PG_START_TIMEOUT   seconds to wait for the server       default 60
#   PG_CLUSTER         Debian cluster name                  default main
#                      (the fault-injection tests run their own, e.g. "faults")
#
# Needs root, or passwordless sudo (e.g. GitHub Actions runners).
set -euo pipefail

PGPORT="${PGPORT:-5432}"
PG_START_TIMEOUT="${PG_START_TIMEOUT:-60}"
PG_CLUSTER="${PG_CLUSTER:-main}"
DB_NAME=traceledger
DB_USER=traceledger
DB_PASSWORD=traceledger
# The test suite opens several connection pools at once; Debian's default of
# 100 runs out.
PG_MIN_MAX_CONNECTIONS=200

log() { echo "[ops] postgres: $*"; }
die() { echo "[ops] postgres: ERROR: $*" >&2; exit 1; }

usage() {
    echo "usage: $0 start|stop|status" >&2
    exit 2
}

as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        die "needs root or passwordless sudo to run: $*"
    fi
}

# psql as the postgres superuser over the local socket (peer auth). cd / so
# tools do not complain that they cannot access the caller's cwd.
as_postgres() {
    if [[ "$(id -un)" == postgres ]]; then
        (cd / && "$@")
    elif [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && sudo -n -u postgres "$@")
    fi
}

# Highest installed major version that has server binaries; prefer one that
# already has our cluster so an existing data directory keeps being used.
detect_version() {
    local installed=() v
    for v in /usr/lib/postgresql/*/bin/postgres; do
        [[ -x "$v" ]] || continue
        v="${v#/usr/lib/postgresql/}"
        installed+=("${v%%/*}")
    done
    ((${#installed[@]})) || return 1
    local with_cluster=()
    if command -v pg_lsclusters >/dev/null; then
        for v in "${installed[@]}"; do
            pg_lsclusters -h 2>/dev/null | awk -v v="$v" -v c="$PG_CLUSTER" '$1==v && $2==c {f=1} END {exit !f}' &&
                with_cluster+=("$v")
        done
    fi
    if ((${#with_cluster[@]})); then
        printf '%s\n' "${with_cluster[@]}" | sort -V | tail -n1
    else
        printf '%s\n' "${installed[@]}" | sort -V | tail -n1
    fi
}

ensure_installed() {
    if PG_VERSION="$(detect_version)"; then
        return 0
    fi
    command -v apt-get >/dev/null || die "PostgreSQL server is not installed and apt-get is unavailable"
    log "installing PostgreSQL with apt-get (one-off, ~1 min)"
    # apt/debconf chatter goes to a temp log that is only shown on failure.
    local apt_log
    apt_log="$(mktemp)"
    if ! { as_root apt-get update -qq &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >"$apt_log" 2>&1; then
        tail -n 30 "$apt_log" >&2
        rm -f "$apt_log"
        die "apt-get install postgresql failed"
    fi
    rm -f "$apt_log"
    PG_VERSION="$(detect_version)" || die "apt-get installed postgresql but no server binaries were found"
}

# Fields of `pg_lsclusters -h`: version cluster port status owner datadir log
cluster_field() {
    pg_lsclusters -h 2>/dev/null | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" -v f="$1" '$1==v && $2==c {print $f}'
}

ensure_cluster() {
    if [[ -z "$(cluster_field 2)" ]]; then
        log "creating cluster $PG_VERSION/$PG_CLUSTER on port $PGPORT"
        # Explicit UTF-8 locale: on minimal images the environment is often
        # POSIX, which would give an SQL_ASCII cluster.
        as_root pg_createcluster --locale C.UTF-8 --port "$PGPORT" "$PG_VERSION" "$PG_CLUSTER" >/dev/null
    fi
    local port
    port="$(cluster_field 3)"
    if [[ "$port" != "$PGPORT" ]]; then
        log "changing cluster port $port -> $PGPORT"
        as_root pg_conftool "$PG_VERSION" "$PG_CLUSTER" set port "$PGPORT"
        if [[ "$(cluster_field 4)" == online* ]]; then
            as_root pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" restart
        fi
    fi
}

is_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" -t 2; }

wait_ready() {
    local deadline=$((SECONDS + PG_START_TIMEOUT))
    until is_ready; do
        if ((SECONDS >= deadline)); then
            local logf
            logf="$(cluster_field 7)"
            [[ -n "$logf" && -f "$logf" ]] && { echo "----- tail of $logf -----" >&2; tail -n 30 "$logf" >&2; }
            die "server did not accept connections on 127.0.0.1:$PGPORT within ${PG_START_TIMEOUT}s"
        fi
        sleep 0.5
    done
}

psql_admin() {
    as_postgres "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -p "$PGPORT" -d postgres "$@"
}

ensure_max_connections() {
    local current
    current="$(psql_admin -At -c 'SHOW max_connections')"
    if ((current < PG_MIN_MAX_CONNECTIONS)); then
        log "raising max_connections $current -> $PG_MIN_MAX_CONNECTIONS (restart)"
        psql_admin -c "ALTER SYSTEM SET max_connections = $PG_MIN_MAX_CONNECTIONS"
        as_root pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" restart
        wait_ready
    fi
}

# Idempotent: the role's password and attributes are (re)asserted on every
# start so a hand-modified role cannot break the tests; the database is only
# created when absent (CREATE DATABASE cannot run inside DO, hence \gexec).
ensure_role_and_db() {
    psql_admin <<SQL
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
        CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
    ELSE
        ALTER ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
    END IF;
END
\$\$;
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_USER ENCODING ''UTF8'' TEMPLATE template0 LOCALE ''C.UTF-8'''
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB_NAME')
\gexec
ALTER DATABASE $DB_NAME OWNER TO $DB_USER;
SQL
}

tcp_login() {
    PGPASSWORD="$DB_PASSWORD" PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -At -w \
        -h 127.0.0.1 -p "$PGPORT" -U "$DB_USER" -d "$DB_NAME" -c 'select 1' 2>&1
}

# Debian's default pg_hba.conf already allows scram-sha-256 from 127.0.0.1;
# only if some local edit broke that do we add an explicit rule on top.
ensure_tcp_password_login() {
    local out
    if out="$(tcp_login)" && [[ "$out" == 1 ]]; then
        return 0
    fi
    local hba
    hba="$(psql_admin -At -c 'SHOW hba_file')"
    log "password login over TCP failed (${out//$'\n'/ }); adding a rule to $hba"
    as_root sed -i "1i host $DB_NAME $DB_USER 127.0.0.1/32 scram-sha-256 # added by traceledger ops/postgres.sh" "$hba"
    as_root pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" reload
    if ! out="$(tcp_login)" || [[ "$out" != 1 ]]; then
        die "cannot log in as $DB_USER@127.0.0.1:$PGPORT/$DB_NAME with a password: $out"
    fi
}

cmd_start() {
    local t0=$SECONDS
    ensure_installed
    PG_BIN="/usr/lib/postgresql/$PG_VERSION/bin"
    ensure_cluster
    if [[ "$(cluster_field 4)" != online* ]]; then
        # Something else (another install, a container) already serves this
        # port: starting ours would fail with a confusing bind error.
        is_ready && die "port $PGPORT already answers but cluster $PG_VERSION/$PG_CLUSTER is down; another server is using it (set PGPORT)"
        log "starting cluster $PG_VERSION/$PG_CLUSTER on 127.0.0.1:$PGPORT"
        as_root pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start
    fi
    wait_ready
    ensure_max_connections
    ensure_role_and_db
    ensure_tcp_password_login
    log "ready: postgresql://$DB_USER:$DB_PASSWORD@127.0.0.1:$PGPORT/$DB_NAME (PostgreSQL $PG_VERSION, $((SECONDS - t0))s)"
}

cmd_stop() {
    if ! PG_VERSION="$(detect_version)" || [[ -z "$(cluster_field 2)" ]]; then
        log "not installed / no cluster; nothing to stop"
        return 0
    fi
    if [[ "$(cluster_field 4)" != online* ]]; then
        log "not running"
        return 0
    fi
    log "stopping cluster $PG_VERSION/$PG_CLUSTER"
    as_root pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop
    log "stopped"
}

cmd_status() {
    if ! PG_VERSION="$(detect_version)"; then
        echo "postgres: down (not installed)"
        return 1
    fi
    PG_BIN="/usr/lib/postgresql/$PG_VERSION/bin"
    if is_ready; then
        echo "postgres: up (PostgreSQL $PG_VERSION, 127.0.0.1:$PGPORT)"
        return 0
    fi
    echo "postgres: down (127.0.0.1:$PGPORT)"
    return 1
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) usage ;;
esac
