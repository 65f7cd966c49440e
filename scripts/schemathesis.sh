#!/usr/bin/env bash
# Fuzzes the API against its OpenAPI document with schemathesis, for a bounded time: a real
# `seadragon serve` (embedded queue, a fresh SQLite key store) in front of the fake Ollama's
# binary, so the generation routes answer instead of their documented 503 "Ollama is
# unreachable". The bootstrap admin key and a user key exist; schemathesis sends the admin
# key to every operation, then the user key (whose refusals on admin routes must be
# documented too).
#
# Every check runs but two whose findings are by design (README, "Test"):
#   positive_data_acceptance: tiers and installed models are configuration, not part of the
#     document, so a tier or model name it invents is refused with a 400; the Ollama routes
#     document their bodies loosely (Ollama's own types); a message's required `content`
#     depends on its role; `reasoning_effort` needs a model that can think.
#   use_after_free: a revoked key can still be read (`revoked_at` is set), on purpose.
#
# Usage: scripts/schemathesis.sh [more `schemathesis run` options]
#   SCHEMATHESIS_SECONDS  time budget of the admin key's run (default 120; the user key's run
#                         gets a third of it)
#   SCHEMATHESIS_SEED     the generator's seed (default: fixed, so CI runs are comparable)
#   SEADRAGON_TEST_LOG_DIR  where the gateway's debug log goes (default target/test-logs),
#                         for scripts/log-secrets.sh
# Needs python3 with venv and PyPI (schemathesis is installed once into target/schemathesis).
set -euo pipefail
cd "$(dirname "$0")/.."

budget=${SCHEMATHESIS_SECONDS:-120}
seed=${SCHEMATHESIS_SEED:-20261129}
logs=${SEADRAGON_TEST_LOG_DIR:-target/test-logs}
venv=target/schemathesis
requirements=scripts/schemathesis/requirements.txt

if [ ! -x "$venv/bin/schemathesis" ] || ! cmp -s "$requirements" "$venv/requirements.txt"; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/requirements.txt"
fi
cargo build --locked --quiet -p seadragon -p fake-ollama

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# Waits until FILE has a line with `listening on URL` and prints URL; PID must stay alive.
listening() {
    local file=$1 pid=$2 url=""
    for _ in $(seq 400); do
        url=$(grep -o 'listening on http://[0-9.:]*' "$file" | head -n1 | cut -d' ' -f3 || true)
        [ -n "$url" ] && { echo "$url"; return 0; }
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "schemathesis.sh: $file never said where it listens:" >&2
    cat "$file" >&2
    return 1
}

# The models the document's examples name, so those requests reach Ollama instead of a 404.
target/debug/fake-ollama --listen 127.0.0.1:0 \
    --model nomic-embed-text:latest=embedding \
    --model qwen2.5-coder:1.5b=completion,tools,insert \
    --model gpt-oss:20b=completion,tools,thinking >"$work/fake.log" 2>&1 &
pids+=($!)
ollama=$(listening "$work/fake.log" "${pids[-1]}")

# Limits that do not bind: a 429 would only hide what the fuzzer's requests reach.
cat >"$work/tiers.toml" <<'EOF'
[[tiers]]
name = "free"
priority = 1
requests_per_minute = 1000000
max_concurrent = 1000
[[tiers]]
name = "pro"
priority = 2
requests_per_minute = 1000000
max_concurrent = 1000
[[tiers]]
name = "enterprise"
priority = 3
requests_per_minute = 1000000
max_concurrent = 1000
EOF

admin_key="sk-sd-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
mkdir -p "$logs"
gateway_log="$logs/schemathesis-gateway-$$.log"
env -i PATH="$PATH" RUST_LOG=debug \
    SEADRAGON_LISTEN=127.0.0.1:0 \
    SEADRAGON_DATABASE_URL="sqlite://$work/seadragon.db" \
    SEADRAGON_ADMIN_KEY="$admin_key" \
    SEADRAGON_OLLAMA_URL="$ollama" \
    SEADRAGON_CONFIG="$work/tiers.toml" \
    target/debug/seadragon serve >/dev/null 2>"$gateway_log" &
pids+=($!)
base=$(listening "$gateway_log" "${pids[-1]}")

user_key=$(curl -fsS -X POST "$base/admin/keys" -H "Authorization: Bearer $admin_key" \
    -H 'content-type: application/json' -d '{"name": "schemathesis-user", "tier": "pro"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')
# The secrets this gateway saw, for the log check.
printf 'key %s\n' "$admin_key" "$user_key" >"$logs/schemathesis-gateway-$$.secrets"
echo "schemathesis.sh: seadragon at $base, fake Ollama at $ollama, seed $seed"

fuzz() {
    local key=$1 seconds=$2 name=$3
    shift 3
    echo "schemathesis.sh: $name key, at most $seconds s"
    "$venv/bin/schemathesis" run "$base/openapi.json" \
        --header "Authorization: Bearer $key" \
        --checks all --exclude-checks positive_data_acceptance,use_after_free \
        --max-time "$seconds" --seed "$seed" --request-timeout 30 \
        --report junit --report-dir "target/schemathesis-report/$name" \
        --output-truncate true \
        --generation-database "target/schemathesis-report/examples.db" "$@"
}

status=0
fuzz "$admin_key" "$budget" admin "$@" || status=$?
fuzz "$user_key" $((budget / 3)) user "$@" || status=$?
exit "$status"
