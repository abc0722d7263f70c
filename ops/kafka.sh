#!/usr/bin/env bash
# Local Apache Kafka: one KRaft broker (broker+controller in one JVM, the default),
# or with KAFKA_BROKERS=N a cluster of N such nodes on this machine (issue 18).
#
# Usage: ops/kafka.sh start|stop|status
#        ops/kafka.sh bootstrap            # print the client bootstrap list (host:port,...)
#        ops/kafka.sh kill-node <i>        # SIGKILL node i of a cluster (fault tests; `start` brings it back)
#        ops/kafka.sh stop-node <i>        # controlled shutdown of node i only
#        ops/kafka.sh run-class <main-class> [args...]   # run a Kafka CLI tool
#            (as admin: add --command-config .run/kafka/credentials/admin.properties)
#
# Kafka is not installed system-wide: its jars are resolved from Maven Central
# with ops/kafka/pom.xml into a per-version cache and run straight off the
# classpath. Everything that changes at runtime lives under <repo>/.run/.
#
# Environment:
#   KAFKA_PORT              broker (PLAINTEXT) port            default 9092
#   KAFKA_CONTROLLER_PORT   KRaft controller port              default KAFKA_PORT+1 (9093)
#   KAFKA_VERSION           overrides <kafka.version> in ops/kafka/pom.xml
#   TRACELEDGER_CACHE       jar cache root          default ~/.cache/traceledger
#   KAFKA_START_TIMEOUT     seconds to wait for the broker     default 90
#   KAFKA_STOP_TIMEOUT      seconds before SIGKILL on stop     default 30
#   KAFKA_DATA_DIR          log dirs (server.properties beside it)  default .run/kafka/data
#   KAFKA_PID_FILE          pid file (lock file beside it)     default .run/kafka.pid
#   KAFKA_LOG_FILE          broker log                         default .run/kafka.log
#                           (a cluster's defaults: .run/kafka-cluster/..., .run/kafka-cluster.pid, .log)
#   KAFKA_HEAP              JVM heap flags     default -Xms256m -Xmx768m (one node), -Xms128m -Xmx384m (cluster)
# (A second broker, e.g. the fault-injection tests' own, sets all five ports/paths.)
#
# Cluster mode (KAFKA_BROKERS=N, N > 1): node i (1..N) listens on KAFKA_PORT+i-1
# (clients) and KAFKA_CONTROLLER_PORT+i-1 (controller; default base KAFKA_PORT+N, so
# KAFKA_PORT=19092 gives 19092-19094 and 19095-19097), keeps its log dirs in
# <dirname KAFKA_DATA_DIR>/node-<i>/data, its pid in <KAFKA_PID_FILE minus .pid>-<i>.pid
# and its log in <KAFKA_LOG_FILE minus .log>-<i>.log. Every node is broker and
# controller (a static quorum of N voters: a majority must be up); all share one
# cluster id and one credentials dir. Replication factor min(N,3), min.insync.replicas
# RF-1 (2 for three nodes). `start` starts whichever nodes are not running, so it
# also brings back a killed one; `status` fails when any node is down.
#
# Security (issue 14): clients authenticate with SASL/SCRAM-SHA-512 and the
# StandardAuthorizer denies whatever an ACL does not grant. On first start (or
# on data formatted by an older, unauthenticated version of this script, which
# is wiped after a loud warning) a random password per principal is written to
# <data dir>/../credentials/<principal> (mode 0600; default .run/kafka/credentials)
# and the SCRAM users are created with the format. Each start then grants every
# service principal its ACLs (consumers/broker_access.py is the table).
set -euo pipefail

OPS_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_DIR="$(dirname -- "$OPS_DIR")"
KAFKA_OPS_DIR="$OPS_DIR/kafka"
RUN_DIR="$REPO_DIR/.run"

KAFKA_BROKERS="${KAFKA_BROKERS:-1}"
[[ "$KAFKA_BROKERS" =~ ^[1-9][0-9]?$ ]] || { echo "[ops] kafka: ERROR: KAFKA_BROKERS must be 1..99, got '$KAFKA_BROKERS'" >&2; exit 2; }
KAFKA_PORT="${KAFKA_PORT:-9092}"
if ((KAFKA_BROKERS > 1)); then
    KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + KAFKA_BROKERS))}"
    KAFKA_HEAP="${KAFKA_HEAP:--Xms128m -Xmx384m}"
else
    # KAFKA_PORT+1 (9093 by default): a broker moved to another port takes its controller along.
    KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
    KAFKA_HEAP="${KAFKA_HEAP:--Xms256m -Xmx768m}"
fi
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
# The pom is the single source of truth for the version; the script only reads
# it (so the cache dir name matches) and hands it back to Maven with -D.
KAFKA_VERSION="${KAFKA_VERSION:-$(sed -n 's:.*<kafka\.version>\(.*\)</kafka\.version>.*:\1:p' "$KAFKA_OPS_DIR/pom.xml" | head -n1)}"
CACHE_ROOT="${TRACELEDGER_CACHE:-${HOME:?HOME is unset; set TRACELEDGER_CACHE}/.cache/traceledger}"
CACHE_DIR="$CACHE_ROOT/kafka-$KAFKA_VERSION"
LIBS_DIR="$CACHE_DIR/libs"
LIBS_STAMP="$CACHE_DIR/libs.stamp"

# A cluster's default home is not the single broker's: switching modes must not
# re-format (and so wipe) the other mode's log dirs or credentials.
if ((KAFKA_BROKERS > 1)); then DEFAULT_HOME=kafka-cluster; else DEFAULT_HOME=kafka; fi
DATA_DIR="${KAFKA_DATA_DIR:-$RUN_DIR/$DEFAULT_HOME/data}"
PROPS_FILE="$(dirname -- "$DATA_DIR")/server.properties"
PID_FILE="${KAFKA_PID_FILE:-$RUN_DIR/$DEFAULT_HOME.pid}"
LOG_FILE="${KAFKA_LOG_FILE:-$RUN_DIR/$DEFAULT_HOME.log}"
TOOLS_LOG_FILE="$RUN_DIR/kafka-tools.log"
MVN_LOG_FILE="$RUN_DIR/kafka-mvn.log"
LOCK_FILE="${PID_FILE%.pid}.lock"  # one for the whole cluster
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
CRED_DIR="$(dirname -- "$DATA_DIR")/credentials"
# The values above are node 1's; select_node switches them to node i of a cluster.
BASE_PORT="$KAFKA_PORT"
BASE_CONTROLLER_PORT="$KAFKA_CONTROLLER_PORT"
BASE_DATA_DIR="$DATA_DIR"
BASE_PID_FILE="$PID_FILE"
BASE_LOG_FILE="$LOG_FILE"
NODE_ID=1
JAVA_CHECKED=0
if ((KAFKA_BROKERS > 1)); then
    KAFKA_REPLICATION=$((KAFKA_BROKERS < 3 ? KAFKA_BROKERS : 3))
    KAFKA_MIN_ISR=$((KAFKA_REPLICATION - 1))
else
    KAFKA_REPLICATION=1
    KAFKA_MIN_ISR=1
fi
QUORUM_VOTERS=""
ALL_BOOTSTRAP=""
for ((_i = 1; _i <= KAFKA_BROKERS; _i++)); do
    QUORUM_VOTERS+="${QUORUM_VOTERS:+,}$_i@127.0.0.1:$((BASE_CONTROLLER_PORT + _i - 1))"
    ALL_BOOTSTRAP+="${ALL_BOOTSTRAP:+,}127.0.0.1:$((BASE_PORT + _i - 1))"
done

# Point the per-node globals (ports, data dir, properties, pid and log file) at
# node $1. With one broker node 1 is exactly the single broker of old.
select_node() {
    NODE_ID="$1"
    if ((KAFKA_BROKERS == 1)); then return 0; fi
    KAFKA_PORT=$((BASE_PORT + NODE_ID - 1))
    KAFKA_CONTROLLER_PORT=$((BASE_CONTROLLER_PORT + NODE_ID - 1))
    DATA_DIR="$(dirname -- "$BASE_DATA_DIR")/node-$NODE_ID/data"
    PROPS_FILE="$(dirname -- "$DATA_DIR")/server.properties"
    PID_FILE="${BASE_PID_FILE%.pid}-$NODE_ID.pid"
    LOG_FILE="${BASE_LOG_FILE%.log}-$NODE_ID.log"
    BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
}
ADMIN_CLIENT_CONFIG="$CRED_DIR/admin.properties"
# Which cluster id the credentials belong to: written last when formatting.
CRED_STAMP="$CRED_DIR/cluster-id"
# broker: the broker itself; admin: ops and tests (both super users). The rest
# are the services' own principals (consumers/broker_access.py says what each
# may do; ledger/config.py's Settings reads the passwords).
PRINCIPALS=(broker admin relay projector detector auditor public)

log() { echo "[ops] kafka: $*"; }
die() { echo "[ops] kafka: ERROR: $*" >&2; exit 1; }

usage() {
    echo "usage: $0 start|stop|status|bootstrap|kill-node <i>|stop-node <i>|run-class <main-class> [args...]" >&2
    exit 2
}

prepare_run_dir() {
    mkdir -p "$RUN_DIR" "$DATA_DIR" "$(dirname -- "$PID_FILE")"
}

# Serialise start/stop so two concurrent `up`s cannot launch two brokers.
# fd 9 is closed for the broker itself (see launch) so it does not hold it.
take_lock() {
    exec 9>"$LOCK_FILE"
    flock -w 180 9 || die "another ops/kafka.sh is still running (lock $LOCK_FILE)"
}

# --- prerequisites ---------------------------------------------------------

java_major() {
    local v
    v="$(java -version 2>&1 | sed -n 's/.* version "\([^"]*\)".*/\1/p' | head -n1)"
    v="${v#1.}"            # 1.8.0_x -> 8.0_x
    echo "${v%%[.+-]*}"
}

# Only reached on a machine without Java/Maven (both are needed to resolve
# the jars; only Java to run them).
install_java_and_maven() {
    if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
        die "java and mvn are required (Java 17+, Maven 3.6+); install them first"
    fi
    log "installing Java and Maven with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        default-jre-headless maven >/dev/null
}

ensure_java() {
    command -v java >/dev/null || install_java_and_maven
    local major
    major="$(java_major)"
    [[ "$major" =~ ^[0-9]+$ && "$major" -ge 17 ]] ||
        die "Kafka $KAFKA_VERSION needs Java 17+, found: $(java -version 2>&1 | head -n1)"
}

ensure_maven() {
    command -v mvn >/dev/null || install_java_and_maven
}

# Resolve the broker jars into $LIBS_DIR unless a complete copy for this exact
# pom is already there. The copy goes to a temp dir and is renamed into place,
# and the stamp is written last, so an interrupted download is never mistaken
# for a complete one.
resolve_jars() {
    [[ -n "$KAFKA_VERSION" ]] || die "could not read <kafka.version> from $KAFKA_OPS_DIR/pom.xml"
    local want
    want="$KAFKA_VERSION $(sha256sum "$KAFKA_OPS_DIR/pom.xml" | cut -d' ' -f1)"
    if [[ -d "$LIBS_DIR" && -f "$LIBS_STAMP" && "$(cat "$LIBS_STAMP")" == "$want" ]]; then
        return 0
    fi
    ensure_java
    ensure_maven
    log "resolving jars for Kafka $KAFKA_VERSION into $LIBS_DIR (first run downloads ~70 MB)"
    mkdir -p "$CACHE_DIR"
    local tmp="$LIBS_DIR.tmp.$$"
    rm -rf "$tmp"
    if ! mvn -q -B -ntp -f "$KAFKA_OPS_DIR/pom.xml" \
            -Dkafka.version="$KAFKA_VERSION" \
            dependency:copy-dependencies -DoutputDirectory="$tmp" \
            >"$MVN_LOG_FILE" 2>&1; then
        rm -rf "$tmp"
        tail -n 40 "$MVN_LOG_FILE" >&2 || true
        die "Maven could not resolve Kafka $KAFKA_VERSION (full output: $MVN_LOG_FILE)"
    fi
    [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] ||
        { rm -rf "$tmp"; die "Maven finished but kafka_2.13-$KAFKA_VERSION.jar is missing"; }
    rm -rf "$LIBS_DIR"
    mv "$tmp" "$LIBS_DIR"
    echo "$want" >"$LIBS_STAMP"
    log "$(find "$LIBS_DIR" -name '*.jar' | wc -l) jars ($(du -sh "$LIBS_DIR" | cut -f1)) cached"
}

# Run a Kafka CLI class (StorageTool, TopicCommand, console producer, ...).
# Its logging goes to .run/kafka-tools.log at WARN so retry chatter from the
# client never clutters the terminal. Built as an array (TOOL_CMD) so that
# `timeout` can run it too; kafka_java is the plain-call convenience.
kafka_tool_cmd() {
    TOOL_CMD=(java -Xms64m -Xmx256m -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
        -Dlog4j2.configurationFile="$KAFKA_OPS_DIR/log4j2.xml"
        -Dtraceledger.kafka.log="$TOOLS_LOG_FILE"
        -Dtraceledger.kafka.loglevel=WARN
        -cp "$LIBS_DIR/*")
}
kafka_java() {
    local TOOL_CMD
    kafka_tool_cmd
    "${TOOL_CMD[@]}" "$@"
}

# --- process bookkeeping ---------------------------------------------------

# A pid counts only if it is alive (zombies are dead: in containers PID 1 may
# never reap the orphaned broker) and really is *this checkout's* broker, so a
# recycled pid or another repo's Kafka is never touched.
is_our_broker() {
    local pid="$1" state
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    state="$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [[ -n "$state" && "$state" != Z ]] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$PROPS_FILE" &&
        tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF kafka.Kafka
}

# Print the broker's pid. Falls back to scanning /proc when the pid file was
# lost (e.g. .run/kafka.pid deleted by hand) and repairs the pid file.
find_pid() {
    local pid=""
    [[ -f "$PID_FILE" ]] && pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    if is_our_broker "$pid"; then echo "$pid"; return 0; fi
    local d
    for d in /proc/[0-9]*; do
        pid="${d#/proc/}"
        if is_our_broker "$pid"; then
            echo "$pid" >"$PID_FILE"
            echo "$pid"
            return 0
        fi
    done
    return 1
}

# Point the CLI tools at the jars the running broker was started from, so
# status/readiness checks keep working even if TRACELEDGER_CACHE or
# KAFKA_VERSION differ from what was used at start.
use_running_libs() {
    local cp
    cp="$(tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | grep -A1 -xF -- -cp | tail -n1)" || return 0
    [[ "$cp" == */\* && -d "${cp%/\*}" ]] && LIBS_DIR="${cp%/\*}"
    return 0
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A real client round trip (Admin listTopics), not just an open socket: in
# KRaft the broker only serves requests once it is unfenced and has metadata.
broker_answers() {
    port_open "$KAFKA_PORT" || return 1
    # The project's own client when there is one: a Python start is a fraction of a
    # JVM's, which counts when N nodes are polled on a busy 2-core machine.
    local py="$REPO_DIR/.venv/bin/python"
    if [[ -x "$py" && -s "$CRED_DIR/admin" ]]; then
        ADMIN_PASSWORD_FILE="$CRED_DIR/admin" NODE_BOOTSTRAP="$BOOTSTRAP" timeout 30 "$py" -c '
import os, logging
logging.disable(logging.WARNING)
from kafka import KafkaAdminClient
a = KafkaAdminClient(bootstrap_servers=os.environ["NODE_BOOTSTRAP"], security_protocol="SASL_PLAINTEXT",
    sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="admin",
    sasl_plain_password=open(os.environ["ADMIN_PASSWORD_FILE"]).read().strip(), request_timeout_ms=10000)
a.list_topics(); a.close()' >/dev/null 2>&1
        return
    fi
    local TOOL_CMD
    kafka_tool_cmd
    timeout 30 "${TOOL_CMD[@]}" org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CLIENT_CONFIG" --list >/dev/null 2>&1
}

show_log_tail() {
    if [[ -f "$LOG_FILE" ]]; then
        echo "----- last 40 lines of $LOG_FILE -----" >&2
        tail -n 40 "$LOG_FILE" >&2
        echo "-----" >&2
    fi
}

# Wait until the broker answers. Bails out early if the process dies.
wait_ready() {
    local pid="$1" deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! is_our_broker "$pid"; then
            show_log_tail
            die "broker process $pid exited during startup (see $LOG_FILE)"
        fi
        if broker_answers; then return 0; fi
        sleep 1
    done
    show_log_tail
    die "broker (pid $pid) did not answer on $BOOTSTRAP within ${KAFKA_START_TIMEOUT}s (see $LOG_FILE)"
}

# --- commands --------------------------------------------------------------

render_properties() {
    local text
    text="$(<"$KAFKA_OPS_DIR/server.properties.in")"
    # Quoted replacements: bash 5.2 would otherwise treat '&' in a path
    # specially.
    text="${text//@KAFKA_PORT@/"$KAFKA_PORT"}"
    text="${text//@KAFKA_CONTROLLER_PORT@/"$KAFKA_CONTROLLER_PORT"}"
    text="${text//@KAFKA_DATA_DIR@/"$DATA_DIR"}"
    text="${text//@KAFKA_NODE_ID@/"$NODE_ID"}"
    text="${text//@KAFKA_QUORUM_VOTERS@/"$QUORUM_VOTERS"}"
    text="${text//@KAFKA_REPLICATION@/"$KAFKA_REPLICATION"}"
    text="${text//@KAFKA_MIN_ISR@/"$KAFKA_MIN_ISR"}"
    text="${text//@KAFKA_BROKER_PASSWORD@/"$(<"$CRED_DIR/broker")"}"
    if grep -q '@[A-Z_]*@' <<<"$text"; then
        die "unreplaced placeholder in server.properties.in: $(grep -o '@[A-Z_]*@' <<<"$text" | head -n1)"
    fi
    (umask 077 && printf '%s\n' "$text" >"$PROPS_FILE.tmp")  # holds the broker's password
    mv "$PROPS_FILE.tmp" "$PROPS_FILE"
}

# A random password per principal, one file each (mode 0600), and the admin's
# client config for the Kafka CLI tools. Only called right before a format,
# which is when the SCRAM users are created from these files. A password file
# that is already there is kept, so processes still running with it (say, the
# log dirs were deleted under them) can log in again once the broker is back.
generate_credentials() {
    (
        umask 077
        mkdir -p "$CRED_DIR"
        local p
        for p in "${PRINCIPALS[@]}"; do
            [[ -s "$CRED_DIR/$p" ]] && continue
            # hex: nothing that needs quoting in a JAAS line or a shell word
            od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$CRED_DIR/$p"
        done
        printf '%s\n' "security.protocol=SASL_PLAINTEXT" "sasl.mechanism=SCRAM-SHA-512" \
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$(<"$CRED_DIR/admin")\";" \
            >"$ADMIN_CLIENT_CONFIG"
    )
}

# Formatted by this script with credentials: meta.properties names the cluster
# id recorded beside the credentials, and every principal has its password.
formatted_with_credentials() {
    [[ -f "$DATA_DIR/meta.properties" && -s "$CRED_STAMP" ]] || return 1
    grep -qxF "cluster.id=$(<"$CRED_STAMP")" "$DATA_DIR/meta.properties" || return 1
    local p
    for p in "${PRINCIPALS[@]}"; do [[ -s "$CRED_DIR/$p" ]] || return 1; done
}

# Data formatted before issue 14 has no SCRAM users (they are created by the
# format, or by a client that can already log in), so the dev log dirs are
# wiped. Nothing is lost for good: the relay re-produces every indexed entry
# from PostgreSQL; read models and audit state made from the old topics are
# best rebuilt too (`make clean-data` starts everything afresh).
wipe_unauthenticated_data() {
    [[ -f "$DATA_DIR/meta.properties" ]] || return 0
    formatted_with_credentials && return 0
    cat >&2 <<EOF
[ops] kafka: ########################################################################
[ops] kafka: WARNING: $DATA_DIR was formatted for a broker without
[ops] kafka: authentication (or not with the credentials in $CRED_DIR).
[ops] kafka: WIPING these Kafka log dirs and formatting them again with SCRAM users.
[ops] kafka: The relay re-publishes every logged event from PostgreSQL; rebuild read
[ops] kafka: models and audit state too (or start over with \`make clean-data\`).
[ops] kafka: ########################################################################
EOF
    rm -rf "$DATA_DIR"
    mkdir -p "$DATA_DIR"
}

# A cluster node formatted afresh (first start, or its log dirs were lost) joins
# the cluster id its peers were formatted with, if any of them is.
cluster_id_of_other_nodes() {
    ((KAFKA_BROKERS > 1)) && [[ -s "$CRED_STAMP" ]] || return 1
    local j id
    id="$(<"$CRED_STAMP")"
    for ((j = 1; j <= KAFKA_BROKERS; j++)); do
        ((j == NODE_ID)) && continue
        if grep -qxF "cluster.id=$id" "$(dirname -- "$BASE_DATA_DIR")/node-$j/data/meta.properties" 2>/dev/null; then
            echo "$id"
            return 0
        fi
    done
    return 1
}

# KRaft storage must be formatted exactly once; meta.properties is what
# StorageTool writes last, so it marks a completed format. Re-formatting would
# wipe the cluster id and every topic. The SCRAM users are created here (their
# passwords are on StorageTool's command line for the seconds it runs: a dev
# box, where the same user owns the credential files anyway).
format_storage_once() {
    [[ -f "$DATA_DIR/meta.properties" ]] && return 0
    local cluster_id p scram=()
    if ! cluster_id="$(cluster_id_of_other_nodes)"; then
        cluster_id="$(kafka_java kafka.tools.StorageTool random-uuid)" ||
            die "kafka.tools.StorageTool random-uuid failed (see $TOOLS_LOG_FILE)"
    fi
    generate_credentials
    for p in "${PRINCIPALS[@]}"; do
        scram+=(--add-scram "SCRAM-SHA-512=[name=$p,password=$(<"$CRED_DIR/$p")]")
    done
    render_properties  # with the new broker password
    log "formatting KRaft storage in $DATA_DIR (cluster id $cluster_id; SCRAM users ${PRINCIPALS[*]}; passwords in $CRED_DIR)"
    # Static quorum (controller.quorum.voters), hence no --standalone.
    kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPS_FILE" "${scram[@]}" >/dev/null ||
        die "formatting $DATA_DIR failed (see $TOOLS_LOG_FILE)"
    echo "$cluster_id" >"$CRED_STAMP"
}

# Each service principal's ACLs, by the table in consumers/broker_access.py,
# granted as admin on every start (idempotent: an existing ACL is a no-op).
grant_service_acls() {
    local py="$REPO_DIR/.venv/bin/python"
    if [[ ! -x "$py" ]]; then
        log "WARNING: no $py: service ACLs NOT granted (only broker and admin can use the broker; run make venv, then ops/kafka.sh stop && ops/kafka.sh start)"
        return 0
    fi
    env -u TRACELEDGER_KAFKA_PASSWORD PYTHONPATH="$REPO_DIR" TRACELEDGER_KAFKA="$BOOTSTRAP" TRACELEDGER_KAFKA_USER=admin \
        TRACELEDGER_KAFKA_CREDENTIALS="$CRED_DIR" TRACELEDGER_TOPIC_PREFIX="" \
        timeout 120 "$py" -m consumers.broker_access grant >>"$TOOLS_LOG_FILE" 2>&1 ||
        die "granting the services' ACLs failed (see $TOOLS_LOG_FILE)"
    log "ACLs granted (consumers/broker_access.py)"
}

# A broker launched by an older version of this script (no SASL) is restarted:
# clients now log in, and it would refuse them.
restart_if_unauthenticated() {
    local pid="$1"
    grep -q '^sasl.mechanism.inter.broker.protocol=' "$PROPS_FILE" 2>/dev/null && return 0
    log "WARNING: the running broker (pid $pid) has no authentication; restarting it with SASL/SCRAM and ACLs"
    stop_pid "$pid"
    return 1
}

# Start the selected node unless it runs (then NODE_STARTED=0); NODE_PID is its pid.
# Does not wait for it: a cluster's nodes only answer once a quorum of them is up.
start_node() {
    prepare_run_dir
    local pid
    NODE_STARTED=0
    if pid="$(find_pid)" && restart_if_unauthenticated "$pid"; then
        use_running_libs "$pid"
        NODE_PID="$pid"
        return 0
    fi
    ((JAVA_CHECKED)) || { ensure_java; resolve_jars; JAVA_CHECKED=1; }
    local p
    for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
        port_open "$p" && die "port $p on 127.0.0.1 is already in use by another process (set KAFKA_PORT / KAFKA_CONTROLLER_PORT)"
    done
    wipe_unauthenticated_data
    format_storage_once
    render_properties

    # Keep a single log file but do not let it grow forever.
    if [[ -f "$LOG_FILE" ]] && (($(stat -c %s "$LOG_FILE") > 50 * 1024 * 1024)); then
        mv -f "$LOG_FILE" "$LOG_FILE.1"
    fi
    echo "===== ops/kafka.sh start $(date -Is) (Kafka $KAFKA_VERSION, node $NODE_ID of $KAFKA_BROKERS) =====" >>"$LOG_FILE"

    log "starting broker $NODE_ID/$KAFKA_BROKERS on $BOOTSTRAP (log: $LOG_FILE)"
    rm -f "$PID_FILE"
    # setsid + nohup: the broker must outlive this shell, its terminal and the
    # CI step. The tiny bash wrapper records its own pid and then execs java,
    # so the pid file holds the JVM's pid no matter whether setsid had to fork.
    # JVM stdout/stderr (crashes, bad flags) go to the same log file; both it
    # and log4j append, so the writes do not clobber each other.
    local heap
    read -r -a heap <<<"$KAFKA_HEAP"
    # shellcheck disable=SC2016  # $$ / $@ are for the inner bash
    nohup setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' kafka-launcher "$PID_FILE" \
        java "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$KAFKA_OPS_DIR/log4j2.xml" \
        -Dtraceledger.kafka.log="$LOG_FILE" \
        -cp "$LIBS_DIR/*" kafka.Kafka "$PROPS_FILE" \
        </dev/null >>"$LOG_FILE" 2>&1 9>&- &

    local _
    for _ in $(seq 50); do
        [[ -s "$PID_FILE" ]] && break
        sleep 0.1
    done
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    [[ -n "$pid" ]] || die "broker launcher did not record a pid"
    NODE_PID="$pid"
    NODE_STARTED=1
}

cmd_start() {
    prepare_run_dir
    take_lock
    local t0=$SECONDS i started=0 pids=()
    for ((i = 1; i <= KAFKA_BROKERS; i++)); do
        select_node "$i"
        start_node
        pids[i]="$NODE_PID"
        started=$((started + NODE_STARTED))
    done
    for ((i = 1; i <= KAFKA_BROKERS; i++)); do
        select_node "$i"
        broker_answers && continue
        # Still starting (just launched, another invocation, or a restart after a
        # crash): give it the normal startup window instead of a second JVM.
        ((started)) || log "process ${pids[i]} exists but does not answer yet; waiting"
        wait_ready "${pids[i]}"
    done
    if ((started == 0)); then
        log "already running (pid ${pids[*]}) on $ALL_BOOTSTRAP"
        return 0
    fi
    BOOTSTRAP="$ALL_BOOTSTRAP"
    grant_service_acls
    log "ready on $ALL_BOOTSTRAP (pid ${pids[*]}, $((SECONDS - t0))s)"
}

# Controlled shutdown (SIGTERM), SIGKILL after KAFKA_STOP_TIMEOUT.
stop_pid() {
    local pid="$1"
    log "stopping broker (pid $pid)"
    # SIGTERM triggers Kafka's controlled shutdown, which flushes logs and
    # avoids log recovery on the next start.
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
    while is_our_broker "$pid" && ((SECONDS < deadline)); do
        sleep 0.5
    done
    if is_our_broker "$pid"; then
        log "still alive after ${KAFKA_STOP_TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 10))
        while is_our_broker "$pid" && ((SECONDS < deadline)); do
            sleep 0.2
        done
        is_our_broker "$pid" && die "could not kill broker pid $pid"
    fi
}

cmd_stop() {
    prepare_run_dir
    take_lock
    local i pid pids=() nodes=()
    for ((i = KAFKA_BROKERS; i >= 1; i--)); do
        select_node "$i"
        if pid="$(find_pid)"; then
            pids+=("$pid")
            nodes+=("$i")
        else
            rm -f "$PID_FILE"
        fi
    done
    if ((${#pids[@]} == 0)); then
        log "not running"
        return 0
    fi
    # All at once: a cluster node shutting down after the quorum is gone would
    # otherwise wait out KAFKA_STOP_TIMEOUT for a controller that never answers.
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for i in "${!pids[@]}"; do
        select_node "${nodes[i]}"
        stop_pid "${pids[i]}"
        rm -f "$PID_FILE"
    done
    log "stopped"
}

cmd_status() {
    local i pid rc=0 what=""
    ((KAFKA_BROKERS > 1)) && what=" node"
    for ((i = 1; i <= KAFKA_BROKERS; i++)); do
        select_node "$i"
        ((KAFKA_BROKERS > 1)) && what=" node $i"
        if ! pid="$(find_pid)"; then
            echo "kafka$what: down"
            rc=1
            continue
        fi
        use_running_libs "$pid"
        if broker_answers; then
            echo "kafka$what: up (pid $pid, $BOOTSTRAP, $(basename "$(dirname "$LIBS_DIR")"))"
        else
            echo "kafka$what: NOT answering (pid $pid alive, $BOOTSTRAP; see $LOG_FILE)"
            rc=1
        fi
    done
    return $rc
}

# One node of a cluster, for the fault tests: kill -9, or a controlled stop.
cmd_node() {
    local how="$1" i="${2:-}" pid
    [[ "$i" =~ ^[0-9]+$ ]] && ((i >= 1 && i <= KAFKA_BROKERS)) || die "node must be 1..$KAFKA_BROKERS, got '$i'"
    prepare_run_dir
    select_node "$i"
    if ! pid="$(find_pid)"; then
        log "node $i not running"
        return 0
    fi
    if [[ "$how" == kill ]]; then
        log "killing node $i (pid $pid) with SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 10))
        while is_our_broker "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    else
        stop_pid "$pid"
    fi
    rm -f "$PID_FILE"
}

cmd_run_class() {
    [[ $# -ge 1 ]] || usage
    prepare_run_dir
    local pid
    if pid="$(find_pid)"; then
        use_running_libs "$pid"
    else
        resolve_jars >&2
    fi
    kafka_java "$@"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    bootstrap) echo "$ALL_BOOTSTRAP" ;;
    kill-node) cmd_node kill "${2:-}" ;;
    stop-node) cmd_node stop "${2:-}" ;;
    run-class) shift; cmd_run_class "$@" ;;
    *) usage ;;
esac
