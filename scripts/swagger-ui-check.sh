#!/usr/bin/env bash
# Checks Swagger UI in a real browser: starts `seadragon serve` on a temporary database with a
# fresh admin key (Ollama may be absent), creates a key, then lets headless Chromium open /docs,
# authorize with the admin key, run "list keys" and check the rendered status and JSON.
#
# Needs Debian's chromium (`apt-get install chromium`), node >= 20 and npm; installs
# playwright-core (which downloads no browser) next to the page script on first use.
# Usage: scripts/swagger-ui-check.sh [screenshot.png]   (default: target/swagger-ui-check.png)
# Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."

screenshot="$(realpath -m "${1:-target/swagger-ui-check.png}")"
here="scripts/swagger-ui-check"
if [ ! -d "$here/node_modules/playwright-core" ]; then
    npm install --prefix "$here" --no-audit --no-fund --silent
fi
cargo build --locked --quiet --bin seadragon

work="$(mktemp -d)"
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

admin_key="sk-sd-check-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
SEADRAGON_LISTEN=127.0.0.1:0 \
SEADRAGON_DATABASE_URL="sqlite://$work/seadragon.db" \
SEADRAGON_ADMIN_KEY="$admin_key" \
SEADRAGON_OLLAMA_URL=http://127.0.0.1:9 \
    target/debug/seadragon serve 2>"$work/server.log" &
server=$!

base=""
for _ in $(seq 200); do
    base="$(grep -o 'listening on http://[0-9.:]*' "$work/server.log" | head -n1 | cut -d' ' -f3 || true)"
    [ -n "$base" ] && break
    kill -0 "$server" 2>/dev/null || { cat "$work/server.log"; exit 1; }
    sleep 0.05
done
[ -n "$base" ] || { echo "seadragon did not start"; cat "$work/server.log"; exit 1; }
echo "swagger-ui-check: seadragon at $base"

name="swagger-check-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
curl -fsS -X POST "$base/admin/keys" -H "Authorization: Bearer $admin_key" \
    -H 'content-type: application/json' -d "{\"name\": \"$name\", \"tier\": \"pro\"}" >/dev/null

mkdir -p "$(dirname "$screenshot")"
BASE_URL="$base" ADMIN_KEY="$admin_key" EXPECT_NAME="$name" SCREENSHOT="$screenshot" \
    node "$here/check.mjs"
