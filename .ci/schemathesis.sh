#!/usr/bin/env bash
# Fuzz the HTTP API with schemathesis against the OpenAPI document of a real
# server: every check, no server error, no response outside the schema.
#
# Initializes a throwaway data dir, records the demo scenario (so reads and
# proofs have something to find), starts `transfer-ledger serve` on a free
# loopback port and runs schemathesis twice: with a Party key (recorder and
# authority of DE: transfers, authorization requests, decisions, reads) and
# with a key of the whole ledger (auditor and verifier of *: the feed, proofs,
# reads). Bounded: SCHEMATHESIS_MAX_EXAMPLES cases per operation and phase,
# SCHEMATHESIS_TIMEOUT seconds per run. Exit status non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.venv/bin}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-50}
TIMEOUT=${SCHEMATHESIS_TIMEOUT:-600}

work=$(mktemp -d)
server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
trap 'stop_server; rm -rf "$work"' EXIT

data="$work/ledger-data"
"$BIN/transfer-ledger" init --data-dir "$data" >/dev/null
"$BIN/transfer-ledger" demo --data-dir "$data" >/dev/null
party_key=$("$BIN/transfer-ledger" principals add --data-dir "$data" --party DE --roles recorder,authority \
  --name "schemathesis DE" 2>/dev/null | tail -n 1)
ledger_key=$("$BIN/transfer-ledger" principals add --data-dir "$data" --party '*' --roles auditor,verifier \
  --name "schemathesis *" 2>/dev/null | tail -n 1)

port=$("$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
"$BIN/transfer-ledger" serve --data-dir "$data" --host 127.0.0.1 --port "$port" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 150); do
  if "$BIN/python" -c "import urllib.request; urllib.request.urlopen('$base/healthz', timeout=1)" 2>/dev/null; then
    break
  fi
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; echo "server did not start"; exit 1; }
  sleep 0.2
done
echo "server up on $base"

status=0
run() {
  local name=$1 key=$2
  echo "-- schemathesis with the $name key"
  SCHEMATHESIS_API_KEY="$key" timeout "$TIMEOUT" "$BIN/schemathesis" --no-color \
    --config-file .ci/schemathesis.toml run "$base/openapi.json" \
    --checks all \
    --max-examples "$MAX_EXAMPLES" \
    --seed "${SCHEMATHESIS_SEED:-20260301}" \
    --generation-database none \
    --request-timeout 20 \
    --report-dir "$work/report-$name" 2>&1 | banners_as_dashes || status=1
}
# Schemathesis closes with a pytest-like "=== 2 warnings in 45.00s ===" line; a
# CI reader of test-runner closing lines would take it for a run of no test.
# Its banners are shown with dashes instead (pipefail keeps its exit status).
banners_as_dashes() { sed -E 's/^=+ (.*[^=]) =+$/--- \1 ---/'; }
run party "$party_key"
run ledger "$ledger_key"

stop_server
if grep -q "Traceback" "$work/server.log"; then
  echo "the server logged an exception:"
  # Each traceback's closing lines (the exception and where it was raised);
  # tail reads all its input, so pipefail sees no broken pipe.
  awk '/^Traceback/ {tb=1; buf=""; after=-1}
       tb {buf=buf $0 "\n"}
       tb && after < 0 && /^[A-Za-z_.]+(Error|Exception|Exit)?:/ {after=0}
       tb && after >= 0 {if (after++ == 8) {print buf; tb=0}}
       END {if (tb) print buf}' "$work/server.log" | tail -n 200
  status=1
fi
"$BIN/transfer-ledger" verify --data-dir "$data" || status=1
exit "$status"
