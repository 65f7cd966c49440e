# Sourced by scripts/test.sh: boots a RabbitMQ node that belongs to this run alone, with its own node
# name, ports, Erlang port mapper, data directory and cookie. Whatever else the machine holds (a
# system broker that is running, stale or stuck, queues left by earlier runs) can then neither
# change the results nor stall the run. Every wait is bounded.

ci_rabbit_dir=$(mktemp -d)
ci_rabbit_node="seadragon-ci-$$@localhost"
# Debian's wrappers in /usr/sbin re-run the tools as the rabbitmq user; the scripts behind them
# run as the caller, which a node with its own data directory needs.
ci_rabbit_bin=/usr/lib/rabbitmq/bin
[ -x "$ci_rabbit_bin/rabbitmq-server" ] || ci_rabbit_bin=$(dirname "$(command -v rabbitmq-server)")

# Three free ports, all held open at once so they differ.
read -r ci_amqp_port ci_dist_port ERL_EPMD_PORT < <(python3 -c '
import socket
held = [socket.socket() for _ in range(3)]
for s in held:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in held))
')
# Exported: the broker-fault test's own nodes register with this port mapper too.
export ERL_EPMD_PORT

ci_rabbit() {
    local tool=$1 limit=$2
    shift 2
    env HOME="$ci_rabbit_dir" \
        RABBITMQ_NODENAME="$ci_rabbit_node" \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$ci_amqp_port" \
        RABBITMQ_DIST_PORT="$ci_dist_port" \
        RABBITMQ_MNESIA_BASE="$ci_rabbit_dir/mnesia" \
        RABBITMQ_LOG_BASE="$ci_rabbit_dir/log" \
        RABBITMQ_PLUGINS_EXPAND_DIR="$ci_rabbit_dir/plugins" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$ci_rabbit_dir/enabled_plugins" \
        RABBITMQ_CONFIG_FILE="$ci_rabbit_dir/rabbitmq" \
        RABBITMQ_ADVANCED_CONFIG_FILE="$ci_rabbit_dir/advanced.config" \
        RABBITMQ_CONF_ENV_FILE="$ci_rabbit_dir/rabbitmq-env.conf" \
        RABBITMQ_PID_FILE="$ci_rabbit_dir/node.pid" \
        timeout -k 5 "$limit" "$ci_rabbit_bin/$tool" "$@"
}

ci_rabbit_log_tail() {
    tail -n 40 "$ci_rabbit_dir"/log/*.log 2>/dev/null || true
}

ci_rabbit_stop() {
    ci_rabbit rabbitmqctl 60 -n "$ci_rabbit_node" -q stop >/dev/null 2>&1 || true
    if [ -s "$ci_rabbit_dir/node.pid" ]; then
        kill -9 "$(cat "$ci_rabbit_dir/node.pid")" 2>/dev/null || true
    fi
    timeout 10 epmd -kill >/dev/null 2>&1 || true
    rm -rf "$ci_rabbit_dir"
}

ci_rabbit_start() {
    ci_rabbit rabbitmq-server 60 -detached
    # await_startup fails until the node answers at all, then waits for it to finish booting.
    local _
    for _ in $(seq 1 90); do
        if ci_rabbit rabbitmqctl 20 -n "$ci_rabbit_node" -q await_startup >/dev/null 2>&1; then
            export SEADRAGON_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:$ci_amqp_port/%2f"
            echo "RabbitMQ node $ci_rabbit_node is up on port $ci_amqp_port"
            return 0
        fi
        sleep 1
    done
    echo "RabbitMQ node $ci_rabbit_node did not boot; the end of its log:"
    ci_rabbit_log_tail
    return 1
}
