#!/usr/bin/env bash
# The two Redis topologies the limiter supports besides one server, started on loopback for the
# topology tests (tests/metering/test_limiter_cluster.py, test_limiter_failover.py) and the
# hot-path suites that .ci/run's last pass runs against each:
#
#   cluster   ports 7000-7005: three primaries, one replica each (redis-cli --cluster create)
#   sentinel  port 7100 the primary, 7101-7102 its replicas, sentinels 27100-27102, master "mdk"
#
# Usage: .ci/redis-topologies.sh start|stop
# The servers live under MDK_REDIS_TOPOLOGY_DIR (default: a directory in $TMPDIR), their AOF
# files too; `stop` shuts them down and removes it. Every node runs from a config file, so a
# test that kills one restarts it with `redis-server <INFO config_file>`.
# The timeouts are shorter than production's (docs/deploy.md) so a failover takes seconds.
set -euo pipefail

DIR="${MDK_REDIS_TOPOLOGY_DIR:-${TMPDIR:-/tmp}/mdk-redis-topologies}"
CLUSTER_PORTS=(7000 7001 7002 7003 7004 7005)
SENTINEL_DATA_PORTS=(7100 7101 7102)
SENTINEL_PORTS=(27100 27101 27102)
ALL_PORTS=("${CLUSTER_PORTS[@]}" "${SENTINEL_DATA_PORTS[@]}" "${SENTINEL_PORTS[@]}")

cli() { redis-cli -h 127.0.0.1 -p "$1" "${@:2}"; }

# Wait up to $1 seconds for the command after it to succeed.
wait_for() {
    local seconds=$1
    shift
    for _ in $(seq 1 $((seconds * 10))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "timed out after ${seconds}s waiting for: $*" >&2
    return 1
}

common_config() {
    local port=$1
    cat <<EOF
port $port
bind 127.0.0.1
daemonize yes
dir $DIR/$port
pidfile $DIR/$port/redis.pid
logfile $DIR/$port/redis.log
EOF
}

# As production runs the metering Redis (docs/deploy.md): AOF fsynced every second, no RDB
# snapshots, no eviction. `check --deploy` and the portal's banner judge the same settings.
data_config() {
    common_config "$1"
    cat <<EOF
save ""
appendonly yes
appendfsync everysec
maxmemory-policy noeviction
EOF
}

cluster_ok() {
    local port
    for port in "${CLUSTER_PORTS[@]}"; do
        cli "$port" cluster info | grep -q '^cluster_state:ok' || return 1
        replica_synced "$port" || return 1
    done
    # Six nodes seen and linked, three of them replicas: a failover has somewhere to go.
    [ "$(cli 7000 cluster nodes | grep -c ' connected')" -eq 6 ] || return 1
    [ "$(cli 7000 cluster nodes | grep -c ' slave ')" -eq 3 ]
}

# A replica has finished its first sync (a primary passes).
replica_synced() {
    local info
    info=$(cli "$1" info replication | tr -d '\r')
    grep -q '^role:master' <<<"$info" || grep -q '^master_link_status:up' <<<"$info"
}

sentinels_ok() {
    local port
    for port in "${SENTINEL_DATA_PORTS[@]}"; do replica_synced "$port" || return 1; done
    for port in "${SENTINEL_PORTS[@]}"; do
        cli "$port" sentinel master mdk | tr -d '\r' | paste - - \
            | grep -qP '^num-other-sentinels\t2$' || return 1
        cli "$port" sentinel master mdk | tr -d '\r' | paste - - \
            | grep -qP '^num-slaves\t2$' || return 1
    done
}

start_cluster() {
    local port
    for port in "${CLUSTER_PORTS[@]}"; do
        mkdir -p "$DIR/$port"
        {
            data_config "$port"
            cat <<EOF
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout 2000
cluster-require-full-coverage no
EOF
        } >"$DIR/$port/redis.conf"
        redis-server "$DIR/$port/redis.conf"
    done
    for port in "${CLUSTER_PORTS[@]}"; do wait_for 10 cli "$port" ping; done
    local nodes=()
    for port in "${CLUSTER_PORTS[@]}"; do nodes+=("127.0.0.1:$port"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$DIR/cluster-create.log"
    wait_for 30 cluster_ok
    echo "Redis Cluster up: ${nodes[*]}"
}

start_sentinel() {
    local port
    for port in "${SENTINEL_DATA_PORTS[@]}"; do
        mkdir -p "$DIR/$port"
        {
            data_config "$port"
            if [ "$port" != 7100 ]; then echo "replicaof 127.0.0.1 7100"; fi
        } >"$DIR/$port/redis.conf"
        redis-server "$DIR/$port/redis.conf"
    done
    for port in "${SENTINEL_DATA_PORTS[@]}"; do wait_for 10 cli "$port" ping; done
    for port in "${SENTINEL_PORTS[@]}"; do
        mkdir -p "$DIR/$port"
        {
            common_config "$port"
            cat <<EOF
sentinel monitor mdk 127.0.0.1 7100 2
sentinel down-after-milliseconds mdk 1000
sentinel failover-timeout mdk 5000
sentinel parallel-syncs mdk 1
EOF
        } >"$DIR/$port/sentinel.conf"
        redis-server "$DIR/$port/sentinel.conf" --sentinel
    done
    wait_for 30 sentinels_ok
    echo "Redis Sentinel up: master mdk at 127.0.0.1:7100, sentinels ${SENTINEL_PORTS[*]}"
}

stop_all() {
    local port pid
    for port in "${ALL_PORTS[@]}"; do
        cli "$port" shutdown nosave >/dev/null 2>&1 || true
    done
    # A node a test left hung (DEBUG SLEEP, a stopped process) does not answer SHUTDOWN: end
    # it by the pid it wrote, which only a server this script started wrote there.
    for port in "${ALL_PORTS[@]}"; do
        pid=$(cat "$DIR/$port/redis.pid" 2>/dev/null || true)
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" || true; fi
    done
    rm -rf "$DIR"
}

case "${1:-}" in
    start)
        command -v redis-server >/dev/null || { echo "redis-server is not installed" >&2; exit 1; }
        stop_all
        mkdir -p "$DIR"
        start_cluster
        start_sentinel
        ;;
    stop)
        stop_all
        echo "Redis topologies stopped"
        ;;
    *)
        echo "usage: $0 start|stop" >&2
        exit 2
        ;;
esac
