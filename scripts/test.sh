#!/usr/bin/env bash
# README's test command. The suite needs a real RabbitMQ (the queue contract runs against it),
# Debian's chromium and npm (the dashboard is tested in a headless browser). This script
# installs whichever is missing (as root, with apt-get; otherwise it says what to install),
# boots a RabbitMQ node of its own on free ports unless SEADRAGON_TEST_AMQP_URL names a broker,
# runs `cargo test --locked --workspace` (the product, the fake Ollama and the benchmark) with
# any arguments given, keeping the gateways' logs in target/test-logs, and stops the node again.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] ||
    missing+=(rabbitmq-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# The official Python clients (openai, ollama) run in a virtualenv the suite creates.
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3 python3-venv)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1 ||
    missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: installing ${missing[*]}"
        timeout 10m apt-get update
        timeout 20m env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
    else
        echo "test.sh: the suite needs these Debian packages: ${missing[*]} (apt-get install ${missing[*]})" >&2
        exit 1
    fi
fi

if [ -z "${SEADRAGON_TEST_AMQP_URL:-}" ]; then
    # shellcheck source=scripts/rabbitmq-node.sh
    . scripts/rabbitmq-node.sh
    trap ci_rabbit_stop EXIT
    ci_rabbit_start
fi

# Every gateway's log, at debug level, for scripts/log-secrets.py (tests/support/logs.rs):
# a fresh directory per run unless the caller names one.
if [ -z "${SEADRAGON_TEST_LOG_DIR:-}" ]; then
    export SEADRAGON_TEST_LOG_DIR="$PWD/target/test-logs"
    rm -rf "$SEADRAGON_TEST_LOG_DIR"
fi
mkdir -p "$SEADRAGON_TEST_LOG_DIR"

cargo test --locked --workspace "$@"
