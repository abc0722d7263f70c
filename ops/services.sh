#!/usr/bin/env bash
# Start/stop traceledger's own processes in the background: the relay, the
# verification projector, the alert detector, the broker's follower of the ledger's
# revocations and the HTTP API. Pid files and logs in .run/.
# `start` applies the schema migrations first (python -m ledger.migrate), once, so no
# service finds a table missing; `status` exits 1 when a service it started (its pid file
# is there) is no longer running, or the supervisor is not.
#
# Supervision (issue 18): `start` also starts `supervise`, a loop in the background
# (.run/supervisor.pid, log .run/supervisor.log) that restarts any started service that
# died, every TRACELEDGER_SUPERVISE_SECONDS (default 2), backing off to one try a
# minute for a service that died 5 times within a minute (a crash loop is logged,
# not hammered). Our own loop rather than supervisord: it reuses these pid files, the
# per-service Kafka principals and `status`, with no second daemon to configure; each
# service already recovers by itself from a restart (its crash-recovery path).
# `stop` stops the supervisor first, so nothing is restarted behind it.
#
# Usage: ops/services.sh start|stop|status|supervise
# Env: TRACELEDGER_GATEWAY_KEY (the API's gateway key file), TRACELEDGER_* (see ledger/config.py;
#      TRACELEDGER_KAFKA_USER is set per service here: each logs in to Kafka as its own principal),
#      TRACELEDGER_PROJECTORS: verification projector processes (default 2, one per core; they share
#      one consumer group, so Kafka spreads the label topic's partitions over them),
#      TRACELEDGER_API_WORKERS: API server processes (default 2 here, one per core)
set -euo pipefail

REPO="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
RUN="$REPO/.run"
PY="$REPO/.venv/bin/python"
API_URL="${TRACELEDGER_API:-http://127.0.0.1:${TRACELEDGER_LISTEN_PORT:-8000}}"
mkdir -p "$RUN"

declare -A MODULE=([relay]=consumers.relay [projector]=consumers.projector [detector]=consumers.detector
                   [broker-revocations]=consumers.broker_revocations [api]=traceledger.api)
PROJECTORS="${TRACELEDGER_PROJECTORS:-2}"
export TRACELEDGER_API_WORKERS="${TRACELEDGER_API_WORKERS:-2}"
[[ $PROJECTORS =~ ^[1-9][0-9]*$ ]] || { echo "[ops] TRACELEDGER_PROJECTORS must be a positive integer, got '$PROJECTORS'" >&2; exit 2; }
EXTRA_PROJECTORS=()
for ((i = 2; i <= PROJECTORS; i++)); do MODULE[projector-$i]=consumers.projector; EXTRA_PROJECTORS+=("projector-$i"); done
# Also whatever extra projectors an earlier start with a larger count left pid files for (so stop stops them).
for f in "$RUN"/projector-*.pid; do
    [[ -e $f ]] || continue
    name=$(basename "$f" .pid)
    [[ -n ${MODULE[$name]:-} ]] || { MODULE[$name]=consumers.projector; EXTRA_PROJECTORS+=("$name"); }
done
ORDER=(relay projector "${EXTRA_PROJECTORS[@]}" detector broker-revocations api)
# The broker principal each service logs in as (its rights: consumers/broker_access.py; its password:
# .run/kafka/credentials/<principal>, from ops/kafka.sh). The API does not use Kafka: no login at all.
# broker-revocations takes revoked regulators' logins away, which only the admin may do.
declare -A KAFKA_USER=([relay]=relay [projector]=projector [detector]=detector [broker-revocations]=admin [api]="")
kafka_user_of() { local name=$1; [[ $name == projector-* ]] && name=projector; echo "${KAFKA_USER[$name]}"; }
# Each stream process's Prometheus endpoint (ledger/metrics.py): TRACELEDGER_METRICS_BASE (default 9400)
# +1 relay, +2 projector, +3 detector, +10+i projector-i. The API serves GET /metrics on its own port, its
# workers summed through PROMETHEUS_MULTIPROC_DIR (.run/prometheus-api, emptied at each start).
METRICS_BASE="${TRACELEDGER_METRICS_BASE:-9400}"
metrics_port_of() {
    case $1 in
        relay) echo $((METRICS_BASE + 1)) ;; projector) echo $((METRICS_BASE + 2)) ;; detector) echo $((METRICS_BASE + 3)) ;;
        projector-*) echo $((METRICS_BASE + 10 + ${1#projector-})) ;; *) echo 0 ;;
    esac
}

# Alive = the pid exists, is not a zombie (PID 1 here may not reap them) and
# really is our module (a recycled pid is not).
alive() {
    local f="$RUN/$1.pid" pid
    [[ -f $f ]] || return 1
    pid=$(cat "$f")
    [[ -r /proc/$pid/status ]] || return 1
    grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" && return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "-m ${MODULE[$1]}"
}

start_one() {
    local name=$1
    if alive "$name"; then echo "[ops] $name: already running (pid $(cat "$RUN/$name.pid"))"; return; fi
    # Make the gateway key path absolute: the process's cwd is the repo, but be explicit.
    if [[ -n ${TRACELEDGER_GATEWAY_KEY:-} && ${TRACELEDGER_GATEWAY_KEY} != /* ]]; then
        export TRACELEDGER_GATEWAY_KEY="$REPO/$TRACELEDGER_GATEWAY_KEY"
    fi
    if [[ -n ${TRACELEDGER_DETECTOR_KEY:-} && ${TRACELEDGER_DETECTOR_KEY} != /* ]]; then
        export TRACELEDGER_DETECTOR_KEY="$REPO/$TRACELEDGER_DETECTOR_KEY"
    fi
    # No subshell around it: a parent holding our stdout would keep a caller's pipe open.
    cd "$REPO"
    # Set for the API only: prometheus-client goes multi-process whenever the variable exists, even empty.
    local multiproc=()
    if [[ $name == api ]]; then rm -rf "$RUN/prometheus-api"; mkdir -p "$RUN/prometheus-api"; multiproc=("PROMETHEUS_MULTIPROC_DIR=$RUN/prometheus-api"); fi
    env TRACELEDGER_KAFKA_USER="$(kafka_user_of "$name")" TRACELEDGER_METRICS_PORT="$(metrics_port_of "$name")" "${multiproc[@]}" \
        setsid nohup "$PY" -m "${MODULE[$name]}" >>"$RUN/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN/$name.pid"
    echo "[ops] $name: started (pid $(cat "$RUN/$name.pid"), log .run/$name.log)"
}

wait_api() {
    for _ in $(seq 1 60); do
        if curl -fsS "$API_URL/healthz" >/dev/null 2>&1; then echo "[ops] api: answering on $API_URL"; return 0; fi
        alive api || { echo "[ops] ERROR: api exited; last log lines:" >&2; tail -20 "$RUN/api.log" >&2; return 1; }
        sleep 0.5
    done
    echo "[ops] ERROR: api did not answer on $API_URL within 30 s" >&2; tail -20 "$RUN/api.log" >&2; return 1
}

stop_one() {
    local name=$1 f="$RUN/$1.pid"
    if ! alive "$name"; then rm -f "$f"; return; fi
    local pid; pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do alive "$name" || break; sleep 0.25; done
    if alive "$name"; then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$f"
    echo "[ops] $name: stopped"
}

supervisor_alive() {
    local f="$RUN/supervisor.pid" pid
    [[ -f $f ]] || return 1
    pid=$(cat "$f")
    [[ -r /proc/$pid/status ]] || return 1
    grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" && return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "services.sh supervise"
}

# Restart every service whose pid file says it should run and which is not alive.
supervise() {
    local every="${TRACELEDGER_SUPERVISE_SECONDS:-2}" name now
    declare -A deaths=() next_try=()
    echo $$ >"$RUN/supervisor.pid"
    trap 'rm -f "$RUN/supervisor.pid"; exit 0' TERM INT
    echo "[ops] supervisor: watching ${ORDER[*]} every ${every}s ($(date -Is))"
    while true; do
        now=$(date +%s)
        for name in "${ORDER[@]}"; do
            [[ -f $RUN/$name.pid ]] || continue   # never started, or stopped on purpose
            alive "$name" && continue
            ((now >= ${next_try[$name]:-0})) || continue
            # Deaths within the last minute, as "time time ...".
            local recent="" t
            for t in ${deaths[$name]:-}; do ((now - t < 60)) && recent+="$t "; done
            deaths[$name]="$recent$now"
            echo "[ops] supervisor: $name (pid $(cat "$RUN/$name.pid")) is not running; restarting ($(date -Is); last lines of .run/$name.log follow)"
            tail -3 "$RUN/$name.log" 2>/dev/null | sed 's/^/    /' || true
            if (($(wc -w <<<"${deaths[$name]}") > 5)); then
                next_try[$name]=$((now + 60))
                echo "[ops] supervisor: $name died more than 5 times within a minute: next try in 60 s"
            fi
            start_one "$name"
        done
        sleep "$every"
    done
}

start_supervisor() {
    if supervisor_alive; then echo "[ops] supervisor: already running (pid $(cat "$RUN/supervisor.pid"))"; return; fi
    setsid nohup bash "$REPO/ops/services.sh" supervise >>"$RUN/supervisor.log" 2>&1 </dev/null &
    for _ in $(seq 1 20); do supervisor_alive && break; sleep 0.1; done
    echo "[ops] supervisor: started (pid $(cat "$RUN/supervisor.pid" 2>/dev/null), log .run/supervisor.log)"
}

stop_supervisor() {
    supervisor_alive || { rm -f "$RUN/supervisor.pid"; return; }
    local pid; pid=$(cat "$RUN/supervisor.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do supervisor_alive || break; sleep 0.1; done
    rm -f "$RUN/supervisor.pid"
    echo "[ops] supervisor: stopped"
}

case "${1:-}" in
    start)
        cd "$REPO"
        "$PY" -m ledger.migrate >>"$RUN/migrate.log" 2>&1 || { echo "[ops] ERROR: schema migrations failed; see .run/migrate.log:" >&2; tail -5 "$RUN/migrate.log" >&2; exit 1; }
        echo "[ops] schema migrations applied (log .run/migrate.log)"
        for s in "${ORDER[@]}"; do start_one "$s"; done; start_supervisor; wait_api ;;
    supervise) cd "$REPO"; supervise ;;
    stop) stop_supervisor; for ((i=${#ORDER[@]}-1; i>=0; i--)); do stop_one "${ORDER[$i]}"; done ;;
    status)
        rc=0
        if supervisor_alive; then echo "supervisor: running (pid $(cat "$RUN/supervisor.pid"))"
        elif [[ -f $RUN/supervisor.pid ]]; then echo "supervisor: NOT RUNNING (see .run/supervisor.log)"; rc=1
        else echo "supervisor: stopped"; fi
        for s in "${ORDER[@]}"; do
            if alive "$s"; then echo "$s: running (pid $(cat "$RUN/$s.pid"))"
            elif [[ -f $RUN/$s.pid ]]; then echo "$s: NOT RUNNING (started as pid $(cat "$RUN/$s.pid"); see .run/$s.log)"; rc=1
            else echo "$s: stopped"; fi
        done
        exit $rc ;;
    *) echo "usage: $0 start|stop|status|supervise" >&2; exit 2 ;;
esac
