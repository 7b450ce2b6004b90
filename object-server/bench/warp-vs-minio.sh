#!/usr/bin/env bash
# Benchmark (not a test): `warp put` and `warp get` at 1 MiB and 64 MiB (concurrency 8), and 4 KiB
# PUTs, against object-server and `minio server` on the same disk, each plain and with SSE
# (through one MinIO KES: explicit SSE-S3, or auto-encryption with BENCH_SSE=auto). Prints MiB/s (ops/s
# for 4 KiB) and the ratios.
#
#   object-server/bench/warp-vs-minio.sh [DURATION] [ROUNDS]   # default 15s per cell (at least 5s: warp reports nothing for less), 1 round
#
# All four servers run at once and every cell is measured for object-server and MinIO back to back
# (the order alternating per round), so a change in the machine's load hits both sides alike. With
# several rounds each figure is the median, with the range of the rounds in brackets. PUT cells also
# show the server's CPU time per MiB (from /proc), which a busy machine disturbs less than MiB/s.
# Needs the peers (e2e/peers/install) and a release build (cargo build --release -p object-server;
# the binary is taken from $CARGO_TARGET_DIR/release, default target/release). BENCH_DIR: where the
# data directories go (default target/). BENCH_CELLS: the cells to run (default all:
# "put1 put64 get1 get64 put4k"). BENCH_BASELINE: another object-server binary (say, a build of
# main) run as a third server, "baseline", in the same rounds, with the ratio object-server/baseline.
# BENCH_PIN=1: the servers and the KES share CPU 0 and warp gets CPU 1, so a cell compares what
# each server does with one core. Ratios and SSE costs are taken per round (see per_round).
# On this project's VM the disk's write speed varies 5x (dd of 1 GiB with fdatasync: 0.29-1.5 GB/s), so
# PUT cells on disk mostly measure the disk; BENCH_DIR=/dev/shm measures the servers (fsync is then
# free for both).
# BENCH_SSE: how the SSE cells ask for encryption. `s3` (default): warp sends explicit SSE-S3
# (`--sse-s3-encrypt`) to both, so both sides hash the MD5 and encrypt: the same work, and what the
# MinIO KMS guide's auto-encryption gives (`mc stat` shows `AES256`) and ours gives. `auto`: warp
# sends no SSE headers and the servers' auto-encryption applies; today's MinIO then applies SSE-KMS
# (`aws:kms`), whose ETag is random, so it computes no MD5, while object-server applies SSE-S3
# (`AES256`) with the plaintext MD5 as ETag (DESIGN.md).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
eval "$("$root/e2e/peers/env")"
for p in warp minio minio-kes mc python; do command -v "$p" >/dev/null || { echo "missing peer $p: run e2e/peers/install" >&2; exit 1; }; done
duration=${1:-15s}
rounds=${2:-1}
target=${CARGO_TARGET_DIR:-$root/target}
bin=$target/release/object-server
[ -x "$bin" ] || { echo "build first: cargo build --release -p object-server" >&2; exit 1; }
baseline=${BENCH_BASELINE:-}
sse_mode=${BENCH_SSE:-s3}
case $sse_mode in
  auto) sse_flags=() ;;
  s3) sse_flags=(--sse-s3-encrypt) ;;
  *) echo "BENCH_SSE must be auto or s3, not: $sse_mode" >&2; exit 1 ;;
esac
# BENCH_PIN=1: every server and the KES on CPU 0, warp and mc on CPU 1 (needs >= 2 CPUs), so a
# cell measures what a server does with one core, and warp never competes with it for CPU.
if [ "${BENCH_PIN:-0}" = 1 ]; then
  [ "$(nproc)" -ge 2 ] || { echo "BENCH_PIN=1 needs two CPUs" >&2; exit 1; }
  on_server_cpu=(taskset -c 0); on_client_cpu=(taskset -c 1)
else
  on_server_cpu=(); on_client_cpu=()
fi
[ -z "$baseline" ] || [ -x "$baseline" ] || { echo "BENCH_BASELINE is not an executable: $baseline" >&2; exit 1; }
kinds=(coffer minio); [ -n "$baseline" ] && kinds+=(baseline)
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
"${on_server_cpu[@]}" minio-kes server --config "$work/kes.yml" > "$work/kes.log" 2>&1 & pids+=($!)
for _ in $(seq 300); do grep -q "Server is up" "$work/kes.log" && break; sleep 0.1; done
grep -q "Server is up" "$work/kes.log" || { cat "$work/kes.log" >&2; exit 1; }
kes_env=(MINIO_KMS_KES_ENDPOINT=https://127.0.0.1:$kes_port MINIO_KMS_KES_CERT_FILE=$work/pki/client.crt
         MINIO_KMS_KES_KEY_FILE=$work/pki/client.key MINIO_KMS_KES_CAPATH=$work/pki/ca.crt MINIO_KMS_KES_KEY_NAME=bench-key)
creds=(MINIO_ROOT_USER=bench-user MINIO_ROOT_PASSWORD=bench-secret)

start_server() { # kind sse -> sets host[kind,sse] and pid[kind,sse]
  local kind=$1 sse=$2 port dir
  port=$(free_port); dir=$work/data-$kind-$sse; mkdir -p "$dir"
  local env=("${creds[@]}" "${kes_env[@]}" MINIO_KMS_AUTO_ENCRYPTION=$sse)
  if [ "$kind" = coffer ]; then
    "${on_server_cpu[@]}" env "${env[@]}" "$bin" server --address "127.0.0.1:$port" "$dir" > "$work/$kind-$sse.log" 2>&1 &
  elif [ "$kind" = baseline ]; then
    "${on_server_cpu[@]}" env "${env[@]}" "$baseline" server --address "127.0.0.1:$port" "$dir" > "$work/$kind-$sse.log" 2>&1 &
  else
    "${on_server_cpu[@]}" env "${env[@]}" MINIO_BROWSER=off minio server --address "127.0.0.1:$port" "$dir" > "$work/$kind-$sse.log" 2>&1 &
  fi
  pid[$kind,$sse]=$!; pids+=("$!")
  wait_http "http://127.0.0.1:$port/minio/health/ready"
  # MinIO answers "Server not initialized yet" for a moment after its health checks pass.
  for _ in $(seq 50); do
    curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/" | grep -qv 503 && break; sleep 0.2
  done
  host[$kind,$sse]="127.0.0.1:$port"
}

# CPU time (user + system) of a process so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

run_warp() { # op host size concurrency extra... -> prints "MiB/s obj/s"
  local op=$1 host=$2 size=$3 conc=$4; shift 4
  local out
  out=$(cd "$work" && "${on_client_cpu[@]}" warp "$op" --host "$host" --access-key bench-user --secret-key bench-secret \
        --obj.size "$size" --concurrent "$conc" --duration "$duration" --noclear "$@" 2>&1) || {
    echo "$out" | tail -5 >&2; echo "--- server logs" >&2; tail -n 20 "$work"/*-*.log >&2; echo "--- kes" >&2; tail -n 20 "$work/kes.log" >&2; return 1; }
  echo "$out" | awk -v op="$(echo "$op" | tr a-z A-Z)" '
    /^Report: / { inrep = ($2 == op || $2 == op".") }
    inrep && /\* Average:/ { for (i=1;i<=NF;i++) { if ($i ~ /MiB\/s/) mib=$(i-1); if ($i ~ /obj\/s/) ops=$(i-1) } ; print mib+0, ops+0; exit }'
}

declare -A host pid result cpu
for kind in "${kinds[@]}"; do for sse in off on; do start_server "$kind" "$sse"; done; done
# A PUT cell's bucket is removed once its CPU time is taken, so the data directories do not grow
# by gigabytes per cell. MinIO moves a removed bucket's objects to .minio.sys/tmp/.trash and frees
# them later in the background (not within minutes here), which on /dev/shm filled the memory and
# got a server OOM-killed; its trash is emptied here, outside the measured time as our deletes are.
drop_bucket() { # kind sse bucket
  local trash=$work/data-$1-$2/.minio.sys/tmp/.trash
  mc rb --force "$1-$2/$3" > /dev/null
  if [ "$1" = minio ] && [ -d "$trash" ]; then find "$trash" -mindepth 1 -maxdepth 1 -exec rm -rf {} +; fi
}
export MC_CONFIG_DIR=$work/mc
for k in "${!host[@]}"; do mc alias set "${k/,/-}" "http://${host[$k]}" bench-user bench-secret > /dev/null; done
hz=$(getconf CLK_TCK)
read -r -a cells <<< "${BENCH_CELLS:-put1 put64 get1 get64 put4k}"
has_cell() { [[ " ${cells[*]} " == *" $1 "* ]]; }
declare -A args=([put1]="put 1MiB" [put64]="put 64MiB" [get1]="get 1MiB --objects 200" [get64]="get 64MiB --objects 16" [put4k]="put 4KiB")
for round in $(seq "$rounds"); do
  # Each round starts with the next server, so no server is always first.
  order=("${kinds[@]:$(( (round - 1) % ${#kinds[@]} ))}" "${kinds[@]:0:$(( (round - 1) % ${#kinds[@]} ))}")
  for cell in "${cells[@]}"; do
    for sse in off on; do
      [ "$cell" = put4k ] && [ "$sse" = off ] && continue
      for kind in "${order[@]}"; do
        read -r op size extra <<< "${args[$cell]}"
        p=${pid[$kind,$sse]}; before=$(cpu_ticks "$p")
        flags=(); [ "$sse" = on ] && flags=("${sse_flags[@]}")
        # shellcheck disable=SC2086 # $extra is a list of flags
        r=$(run_warp "$op" "${host[$kind,$sse]}" "$size" 8 $extra "${flags[@]}" --bucket "$cell-r$round")
        ticks=$(( $(cpu_ticks "$p") - before ))
        [ "$op" = put ] && drop_bucket "$kind" "$sse" "$cell-r$round"
        # MiB/s, or ops/s for 4 KiB objects.
        if [ "$cell" = put4k ]; then result[$kind,$sse,$cell]+="${r##* } "; else result[$kind,$sse,$cell]+="${r%% *} "; fi
        # CPU ms per MiB written (PUT cells; a GET cell's CPU also counts warp's upload of its
        # objects), over warp's average rate times the duration: an estimate, alike for both servers.
        [ "$op" = put ] && cpu[$kind,$sse,$cell]+="$(awk -v t="$ticks" -v hz="$hz" -v r="$r" -v d="$duration" 'BEGIN {
          split(r, a, " "); mib = a[1] * (d + 0); if (mib > 0) printf "%.2f", t * 1000 / hz / mib }') "
      done
    done
  done
done
for kind in "${kinds[@]}"; do for sse in off on; do kill "${pid[$kind,$sse]}" 2>/dev/null || true; done; done

# "v1 v2 ..." -> "median [min..max]" (just the value for one round)
summary() { echo "$1" | tr ' ' '\n' | { grep . || true; } | sort -g | awk '{ v[NR] = $1 } END {
  if (NR == 0) { print "-"; exit } m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
  if (NR == 1) print m; else printf "%s [%s..%s]\n", m, v[1], v[NR] }'; }
median() { summary "$1" | cut -d' ' -f1; }
# Ratios and SSE costs pair the figures of one round, taken minutes apart at most, so a change in
# the machine between rounds (this VM's disk and memory run at 2x different speeds from one minute
# to the next) cancels out; they are summarised like the figures.
# "a1 a2 ..." "b1 b2 ..." -> "a1/b1 a2/b2 ..."
per_round() { paste -d' ' <(echo "$1" | tr -s ' ' '\n') <(echo "$2" | tr -s ' ' '\n') | awk -v cost="${3:-0}" '
  NF == 2 && $2 > 0 { if (cost) printf "%.1f ", (1 - $1 / $2) * 100; else printf "%.2f ", $1 / $2 }'; }
ratio() { summary "$(per_round "$1" "$2")"; }
cost() { local c; c=$(summary "$(per_round "$1" "$2" 1)"); [ "$c" = - ] && echo - || echo "$c %"; }
echo "rounds: $rounds, $duration per cell, SSE cells: $sse_mode (BENCH_SSE)"
printf '%-16s %26s %26s %s\n' cell object-server minio "ratio (per round)"
for cell in put1 put64 get1 get64; do
  has_cell "$cell" || continue
  for sse in off on; do
    c=${result[coffer,$sse,$cell]}; m=${result[minio,$sse,$cell]}
    printf '%-16s %26s %26s %s\n' "$cell sse=$sse" "$(summary "$c") MiB/s" "$(summary "$m") MiB/s" "$(ratio "$c" "$m")"
    if [ -n "$baseline" ]; then
      b=${result[baseline,$sse,$cell]}
      printf '%-16s %26s  object-server/baseline %s\n' "  baseline" "$(summary "$b") MiB/s" "$(ratio "$c" "$b")"
    fi
  done
done
if has_cell put4k; then
  c=${result[coffer,on,put4k]}; m=${result[minio,on,put4k]}
  printf '%-16s %26s %26s %s\n' "put4k sse=on" "$(summary "$c") ops/s" "$(summary "$m") ops/s" "$(ratio "$c" "$m")"
  if [ -n "$baseline" ]; then
    b=${result[baseline,on,put4k]}
    printf '%-16s %26s  object-server/baseline %s\n' "  baseline" "$(summary "$b") ops/s" "$(ratio "$c" "$b")"
  fi
fi
for cell in put1 put64 put4k; do
  has_cell "$cell" || continue
  for sse in off on; do
    [ "$cell" = put4k ] && [ "$sse" = off ] && continue
    printf 'server CPU ms/MiB %-6s sse=%-3s coffer %-20s minio %-20s' "$cell" "$sse" "$(summary "${cpu[coffer,$sse,$cell]}")" "$(summary "${cpu[minio,$sse,$cell]}")"
    [ -n "$baseline" ] && printf ' baseline %s' "$(summary "${cpu[baseline,$sse,$cell]}")"
    echo
  done
done
for cell in put1 put64 get1 get64; do
  has_cell "$cell" || continue
  for kind in "${kinds[@]}"; do
    printf 'SSE cost %-6s %-8s %s\n' "$cell" "$kind" "$(cost "${result[$kind,on,$cell]}" "${result[$kind,off,$cell]}")"
  done
done
