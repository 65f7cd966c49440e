#!/usr/bin/env bash
# A three-node RabbitMQ cluster of the installed version, private to one run: its own node names,
# free ports, Erlang port mapper, cookie and data in one temporary directory, so a broker already
# on the machine (and its ports 5672, 25672, 4369) is never touched. Nodes are joined into one
# cluster with `pause_minority`, the partition handling a cluster of three should run.
#
#   scripts/rabbitmq-cluster.sh run CMD...   boot, run CMD, tear down (also on failure or Ctrl-C)
#   scripts/rabbitmq-cluster.sh up           boot; prints SEADRAGON_CLUSTER_DIR=... and the URLs
#   scripts/rabbitmq-cluster.sh down         stop every node and the port mapper, delete the data
#   scripts/rabbitmq-cluster.sh guard        wait until standard input closes, then `down`
#   scripts/rabbitmq-cluster.sh urls         the three AMQP URLs, comma-separated
#   scripts/rabbitmq-cluster.sh kill N       SIGKILL node N's Erlang VM (N = 1, 2 or 3)
#   scripts/rabbitmq-cluster.sh stop N       stop node N gracefully
#   scripts/rabbitmq-cluster.sh start N      boot node N again and wait until it serves
#   scripts/rabbitmq-cluster.sh stop_app N | start_app N
#   scripts/rabbitmq-cluster.sh ctl N ARGS...     rabbitmqctl against node N
#   scripts/rabbitmq-cluster.sh queues N ARGS...  rabbitmq-queues against node N
#   scripts/rabbitmq-cluster.sh leader QUEUE      the number of the node leading QUEUE
#   scripts/rabbitmq-cluster.sh running           the numbers of the nodes serving AMQP
#   scripts/rabbitmq-cluster.sh alive N           succeeds while node N's Erlang VM runs
#
# Every command but `up` and `run` needs SEADRAGON_CLUSTER_DIR from `up`. The file can also be
# sourced; it then only defines the `cluster_*` functions. Every wait has a time limit.

cluster_bin=/usr/lib/rabbitmq/bin
# Debian's wrappers in /usr/sbin re-run the tools as the rabbitmq user with that user's cookie;
# the scripts behind them run as the caller, which a private cluster needs.
[ -x "$cluster_bin/rabbitmq-server" ] || cluster_bin=$(dirname "$(command -v rabbitmq-server)")

# Reads the cluster's names and ports saved by `cluster_up`.
cluster_load() {
    : "${SEADRAGON_CLUSTER_DIR:?run 'up' first and export the SEADRAGON_CLUSTER_DIR it prints}"
    # shellcheck source=/dev/null
    . "$SEADRAGON_CLUSTER_DIR/cluster.env"
}

cluster_node() { echo "${cluster_name}-$1@localhost"; }

cluster_url() { echo "amqp://guest:guest@127.0.0.1:${cluster_amqp_ports[$1]}/%2f"; }

cluster_urls() {
    cluster_load
    echo "$(cluster_url 1),$(cluster_url 2),$(cluster_url 3)"
}

# Runs a RabbitMQ tool for node N under a time limit: cluster_tool N LIMIT TOOL ARGS...
cluster_tool() {
    local n=$1 limit=$2 tool=$3 base="$SEADRAGON_CLUSTER_DIR/node$1"
    shift 3
    env HOME="$SEADRAGON_CLUSTER_DIR/home" \
        ERL_EPMD_PORT="$cluster_epmd_port" \
        RABBITMQ_USE_LONGNAME=false \
        RABBITMQ_NODENAME="$(cluster_node "$n")" \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="${cluster_amqp_ports[$n]}" \
        RABBITMQ_DIST_PORT="${cluster_dist_ports[$n]}" \
        RABBITMQ_MNESIA_BASE="$base/mnesia" \
        RABBITMQ_LOG_BASE="$base/log" \
        RABBITMQ_PLUGINS_EXPAND_DIR="$base/plugins" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$base/enabled_plugins" \
        RABBITMQ_CONFIG_FILE="$base/rabbitmq.conf" \
        RABBITMQ_ADVANCED_CONFIG_FILE="$base/advanced.config" \
        RABBITMQ_CONF_ENV_FILE="$base/rabbitmq-env.conf" \
        RABBITMQ_PID_FILE="$base/node.pid" \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+S 1:1" \
        timeout -k 5 "$limit" "$cluster_bin/$tool" "$@"
}

cluster_ctl() {
    local n=$1
    shift
    cluster_load
    cluster_tool "$n" 60 rabbitmqctl -n "$(cluster_node "$n")" "$@"
}

cluster_queues() {
    local n=$1
    shift
    cluster_load
    cluster_tool "$n" 60 rabbitmq-queues -n "$(cluster_node "$n")" "$@"
}

# Boots node N (its VM detaches) and waits until it serves, at most LIMIT seconds.
cluster_boot() {
    local n=$1 limit=${2:-120} started
    # The detached VM keeps the descriptors it was given; its console goes to a file.
    cluster_tool "$n" 60 rabbitmq-server -detached >>"$SEADRAGON_CLUSTER_DIR/node$n/console.log" 2>&1
    started=$(date +%s)
    # await_startup fails until the node answers at all, then waits for it to finish booting.
    while ! cluster_tool "$n" 20 rabbitmqctl -n "$(cluster_node "$n")" -q await_startup \
        >/dev/null 2>&1; do
        if [ $(($(date +%s) - started)) -ge "$limit" ]; then
            echo "node $n did not boot in ${limit}s; the end of its log:" >&2
            tail -n 30 "$SEADRAGON_CLUSTER_DIR/node$n"/log/*.log >&2 2>/dev/null || true
            return 1
        fi
        sleep 1
    done
}

cluster_start() {
    cluster_load
    cluster_boot "$1"
}

cluster_stop() {
    cluster_load
    cluster_tool "$1" 60 rabbitmqctl -n "$(cluster_node "$1")" -q stop >/dev/null
}

# The pid of node N's Erlang VM while it runs. A pid file can outlive its VM (after a kill) and
# its number be reused, so the process must also carry this cluster's directory in its arguments.
cluster_vm_pid() {
    local pid
    pid=$(cat "$SEADRAGON_CLUSTER_DIR/node$1/node.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null |
        grep -qF -- "-home $SEADRAGON_CLUSTER_DIR/home " && echo "$pid"
}

cluster_alive() {
    cluster_load
    cluster_vm_pid "$1" >/dev/null
}

cluster_kill() {
    cluster_load
    local pid
    pid=$(cluster_vm_pid "$1") || {
        echo "node $1 is not running" >&2
        return 1
    }
    kill -9 "$pid"
}

cluster_stop_app() { cluster_ctl "$1" -q stop_app >/dev/null; }

cluster_start_app() { cluster_ctl "$1" -q start_app >/dev/null; }

# The node numbers whose AMQP port accepts connections (a node paused by pause_minority closes it).
cluster_running() {
    cluster_load
    local n up=()
    for n in 1 2 3; do
        if (exec 3<>"/dev/tcp/127.0.0.1/${cluster_amqp_ports[$n]}") 2>/dev/null; then
            up+=("$n")
        fi
    done
    echo "${up[*]}"
}

# The number of the node leading a quorum queue, or holding a classic one, asked of any node that
# serves.
cluster_leader() {
    local queue=$1 n line node
    for n in $(cluster_running); do
        line=$(cluster_ctl "$n" -q --no-table-headers list_queues name type leader pid 2>/dev/null |
            awk -F '\t' -v q="$queue" '$1 == q')
        [ -n "$line" ] || continue
        # A quorum queue names its leader; a classic queue's pid is <node.a.b.c>.
        node=$(awk -F '\t' '{ print ($2 == "quorum") ? $3 : $4 }' <<<"$line")
        node=${node#<}
        node=${node%%@*}
        echo "${node##*-}"
        return 0
    done
    echo "queue $queue not found on a running node" >&2
    return 1
}

cluster_up() {
    SEADRAGON_CLUSTER_DIR=$(mktemp -d -t seadragon-cluster.XXXXXX)
    export SEADRAGON_CLUSTER_DIR
    # Seven free ports, all held open at once so they differ: AMQP and distribution for each node,
    # and the port mapper.
    local ports n
    read -r -a ports < <(python3 -c '
import socket
held = [socket.socket() for _ in range(7)]
for s in held:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in held))
')
    {
        echo "cluster_name=sdc$(tr -dc 'a-z0-9' </dev/urandom | head -c 6)"
        echo "cluster_epmd_port=${ports[6]}"
        echo "cluster_amqp_ports=(0 ${ports[0]} ${ports[1]} ${ports[2]})"
        echo "cluster_dist_ports=(0 ${ports[3]} ${ports[4]} ${ports[5]})"
    } >"$SEADRAGON_CLUSTER_DIR/cluster.env"
    cluster_load
    # One cookie for the three nodes and the command line tools, written before any node starts.
    mkdir -p "$SEADRAGON_CLUSTER_DIR/home"
    tr -dc 'A-Z' </dev/urandom | head -c 32 >"$SEADRAGON_CLUSTER_DIR/home/.erlang.cookie"
    chmod 400 "$SEADRAGON_CLUSTER_DIR/home/.erlang.cookie"
    for n in 1 2 3; do
        mkdir -p "$SEADRAGON_CLUSTER_DIR/node$n/log"
        : >"$SEADRAGON_CLUSTER_DIR/node$n/rabbitmq-env.conf"
        echo '[].' >"$SEADRAGON_CLUSTER_DIR/node$n/enabled_plugins"
        printf '%s\n' 'loopback_users = none' 'cluster_partition_handling = pause_minority' \
            >"$SEADRAGON_CLUSTER_DIR/node$n/rabbitmq.conf"
    done
    local pids=()
    for n in 1 2 3; do
        cluster_boot "$n" &
        pids+=($!)
    done
    for n in "${pids[@]}"; do wait "$n" || return 1; done
    for n in 2 3; do
        cluster_stop_app "$n" &&
            cluster_ctl "$n" -q join_cluster "$(cluster_node 1)" >/dev/null &&
            cluster_start_app "$n" || return 1
    done
    echo "SEADRAGON_CLUSTER_DIR=$SEADRAGON_CLUSTER_DIR"
    echo "SEADRAGON_CLUSTER_URLS=$(cluster_urls)"
}

cluster_down() {
    [ -n "${SEADRAGON_CLUSTER_DIR:-}" ] && [ -f "$SEADRAGON_CLUSTER_DIR/cluster.env" ] || return 0
    cluster_load
    local n pid pids=() _
    for n in 1 2 3; do
        pid=$(cluster_vm_pid "$n") && pids+=("$pid")
        cluster_tool "$n" 30 rabbitmqctl -n "$(cluster_node "$n")" -q stop >/dev/null 2>&1 &
    done
    wait
    # `stop` returns before the VM has exited; whatever is still there after 10 s is killed.
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 20); do
            [ -d "/proc/$pid" ] || break
            sleep 0.5
        done
        [ -d "/proc/$pid" ] && kill -9 "$pid" 2>/dev/null
    done
    ERL_EPMD_PORT=$cluster_epmd_port timeout 10 epmd -kill >/dev/null 2>&1
    rm -rf "$SEADRAGON_CLUSTER_DIR"
    return 0
}

# Ties the cluster's life to whoever holds this process's standard input: when it exits, even
# killed, the pipe closes and the cluster goes down, with the client processes it listed in
# owned.pids (their command line must still name seadragon, in case a number was reused).
cluster_guard() {
    local pid
    cat >/dev/null
    if [ -f "$SEADRAGON_CLUSTER_DIR/owned.pids" ]; then
        while read -r pid; do
            tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q seadragon && kill -9 "$pid"
        done <"$SEADRAGON_CLUSTER_DIR/owned.pids"
    fi
    cluster_down
}

cluster_run() {
    trap cluster_down EXIT
    trap 'exit 130' INT TERM
    cluster_up || return 1
    SEADRAGON_CLUSTER_URLS=$(cluster_urls)
    export SEADRAGON_CLUSTER_URLS
    "$@"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -uo pipefail
    command=${1:?usage: $0 up|down|run|guard|urls|kill N|stop N|start N|stop_app N|start_app N|ctl N ...|queues N ...|leader QUEUE|running|alive N}
    shift
    case $command in
    up)
        trap 'cluster_down; exit 1' INT TERM
        cluster_up || {
            cluster_down
            exit 1
        }
        ;;
    down | guard | urls | running) "cluster_$command" ;;
    run | kill | stop | start | stop_app | start_app | ctl | queues | leader | alive)
        "cluster_$command" "$@"
        ;;
    *)
        echo "unknown command: $command" >&2
        exit 2
        ;;
    esac
fi
