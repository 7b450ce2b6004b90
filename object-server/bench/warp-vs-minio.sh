#!/usr/bin/env bash
# Benchmark (not a test): `warp put` and `warp get` at 1 MiB and 64 MiB (concurrency 8), and 4 KiB
# PUTs, against object-server and `minio server` on the same disk, each plain and with SSE
# (auto-encryption through one MinIO KES). Prints MiB/s (ops/s for 4 KiB) and the ratios.
#
#   object-server/bench/warp-vs-minio.sh [DURATION]      # default 15s per cell
#
# Needs the peers (e2e/peers/install) and a release build (cargo build --release -p object-server).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
eval "$("$root/e2e/peers/env")"
for p in warp minio minio-kes python; do command -v "$p" >/dev/null || { echo "missing peer $p: run e2e/peers/install" >&2; exit 1; }; done
duration=${1:-15s}
target=${CARGO_TARGET_DIR:-$root/target}
bin=$target/release/object-server
[ -x "$bin" ] || { echo "build first: cargo build --release -p object-server" >&2; exit 1; }
work=$(mktemp -d "${BENCH_DIR:-$root/target}/bench.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 200); do curl -sk -o /dev/null "$1" && return 0; sleep 0.1; done; echo "not up: $1" >&2; return 1; }

# One KES for both servers; its admin is the servers' client identity.
identity=$(cd "$root/object-server/tests/python" && python -c "import pathlib,test_kes; print(test_kes.pki(pathlib.Path('$work/pki')))")
kes_port=$(free_port)
cat > "$work/kes.yml" <<YML
address: 127.0.0.1:$kes_port
admin:
  identity: $identity
tls:
  key: $work/pki/kes.key
  cert: $work/pki/kes.crt
keystore:
  fs:
    path: $work/kes-keys
YML
minio-kes server --config "$work/kes.yml" > "$work/kes.log" 2>&1 & pids+=($!)
for _ in $(seq 300); do grep -q "Server is up" "$work/kes.log" && break; sleep 0.1; done
grep -q "Server is up" "$work/kes.log" || { cat "$work/kes.log" >&2; exit 1; }
kes_env=(MINIO_KMS_KES_ENDPOINT=https://127.0.0.1:$kes_port MINIO_KMS_KES_CERT_FILE=$work/pki/client.crt
         MINIO_KMS_KES_KEY_FILE=$work/pki/client.key MINIO_KMS_KES_CAPATH=$work/pki/ca.crt MINIO_KMS_KES_KEY_NAME=bench-key)
creds=(MINIO_ROOT_USER=bench-user MINIO_ROOT_PASSWORD=bench-secret)

start_server() { # kind sse -> sets $host and $server_pid
  local kind=$1 sse=$2 port dir
  port=$(free_port); dir=$work/data-$kind-$sse; mkdir -p "$dir"
  local env=("${creds[@]}" "${kes_env[@]}" MINIO_KMS_AUTO_ENCRYPTION=$sse)
  if [ "$kind" = coffer ]; then
    env "${env[@]}" "$bin" server --address "127.0.0.1:$port" "$dir" > "$work/$kind-$sse.log" 2>&1 &
  else
    env "${env[@]}" MINIO_BROWSER=off minio server --address "127.0.0.1:$port" "$dir" > "$work/$kind-$sse.log" 2>&1 &
  fi
  server_pid=$!; pids+=("$server_pid")
  wait_http "http://127.0.0.1:$port/minio/health/ready"
  # MinIO answers "Server not initialized yet" for a moment after its health checks pass.
  for _ in $(seq 50); do
    curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/" | grep -qv 503 && break; sleep 0.2
  done
  host="127.0.0.1:$port"
}

run_warp() { # op host size concurrency extra... -> prints "MiB/s obj/s"
  local op=$1 host=$2 size=$3 conc=$4; shift 4
  local out
  out=$(cd "$work" && warp "$op" --host "$host" --access-key bench-user --secret-key bench-secret \
        --obj.size "$size" --concurrent "$conc" --duration "$duration" --noclear "$@" 2>&1) || {
    echo "$out" | tail -5 >&2; echo "--- server logs" >&2; tail -n 20 "$work"/*-*.log >&2; echo "--- kes" >&2; tail -n 20 "$work/kes.log" >&2; return 1; }
  echo "$out" | awk -v op="$(echo "$op" | tr a-z A-Z)" '
    /^Report: / { inrep = ($2 == op || $2 == op".") }
    inrep && /\* Average:/ { for (i=1;i<=NF;i++) { if ($i ~ /MiB\/s/) mib=$(i-1); if ($i ~ /obj\/s/) ops=$(i-1) } ; print mib+0, ops+0; exit }'
}

declare -A result
for kind in coffer minio; do
  for sse in off on; do
    start_server "$kind" "$sse"
    result[$kind,$sse,put1]=$(run_warp put "$host" 1MiB 8 --bucket put1)
    result[$kind,$sse,put64]=$(run_warp put "$host" 64MiB 8 --bucket put64)
    result[$kind,$sse,get1]=$(run_warp get "$host" 1MiB 8 --objects 200 --bucket get1)
    result[$kind,$sse,get64]=$(run_warp get "$host" 64MiB 8 --objects 16 --bucket get64)
    if [ "$sse" = on ]; then result[$kind,$sse,put4k]=$(run_warp put "$host" 4KiB 8 --bucket put4k); fi
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
    rm -rf "$work/data-$kind-$sse"
  done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
cost() { awk -v on="$1" -v off="$2" 'BEGIN { if (on == "" || off == "" || off == 0) print "-"; else printf "%.1f%%", (1 - on / off) * 100 }'; }
printf '%-22s %14s %14s %8s\n' cell object-server minio ratio
for cell in put1 put64 get1 get64; do
  for sse in off on; do
    c=$(echo "${result[coffer,$sse,$cell]}" | cut -d' ' -f1); m=$(echo "${result[minio,$sse,$cell]}" | cut -d' ' -f1)
    printf '%-22s %10s MiB/s %8s MiB/s %8s\n' "$cell sse=$sse" "$c" "$m" "$(ratio "$c" "$m")"
  done
done
c=$(echo "${result[coffer,on,put4k]}" | cut -d' ' -f2); m=$(echo "${result[minio,on,put4k]}" | cut -d' ' -f2)
printf '%-22s %10s ops/s %8s ops/s %8s\n' "put4k sse=on" "$c" "$m" "$(ratio "$c" "$m")"
for cell in put1 put64 get1 get64; do
  for kind in coffer minio; do
    off=$(echo "${result[$kind,off,$cell]}" | cut -d' ' -f1); on=$(echo "${result[$kind,on,$cell]}" | cut -d' ' -f1)
    printf 'SSE cost %-6s %-8s %s\n' "$cell" "$kind" "$(cost "$on" "$off")"
  done
done
