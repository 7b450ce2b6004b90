#!/usr/bin/env bash
# Benchmark (not a test): SSE-KMS `warp put` and `warp get` at 4 KiB and 1 MiB (concurrency 8)
# against object-server through our kes over one OpenBao, with the Transit keystore (master keys
# never leave Vault: every generate and decrypt is a Vault call) and with the K/V keystore (the
# MinIO guide's: kes holds the master keys), each without and with S3 Bucket Keys. Prints ops/s
# per cell and the ratios to the K/V cell without bucket keys.
#
#   object-server/bench/bucket-keys-transit-vs-kv.sh [DURATION] [ROUNDS]   # default 10s, 1 round
#
# The four servers run at once and every cell is measured for each of them back to back (the
# order rotating per round), so a change of the machine's load hits all alike; with several rounds
# each figure is the median. SSE-KMS comes from each bucket's default encryption (warp has no
# SSE-KMS flag): `aws:kms` with the bench key, `BucketKeyEnabled` on the bucket-key servers' buckets.
# Binaries: $BENCH_BIN_DIR (default $CARGO_TARGET_DIR/release, else target/release) must hold
# `object-server` and `kes`. BENCH_DIR: where the data directories go (default target/).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
eval "$("$root/e2e/peers/env")"
for p in warp vault python curl; do command -v "$p" >/dev/null || { echo "missing peer $p: run e2e/peers/install" >&2; exit 1; }; done
duration=${1:-10s}
rounds=${2:-1}
bins=${BENCH_BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/release}
for b in object-server kes; do [ -x "$bins/$b" ] || { echo "build first: cargo build --release -p object-server -p sidecar-kes (or set BENCH_BIN_DIR)" >&2; exit 1; }; done
work=$(mktemp -d "${BENCH_DIR:-$root/target}/bench-bk.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 300); do curl -sk -o /dev/null "$1" && return 0; sleep 0.1; done; echo "not up: $1" >&2; return 1; }

# OpenBao (dev: in memory, unsealed) with Transit, K/V v1 and an AppRole allowed both.
vport=$(free_port)
export VAULT_ADDR=http://127.0.0.1:$vport VAULT_TOKEN=bench-root
HOME=$work vault server -dev -dev-root-token-id=bench-root -dev-listen-address="127.0.0.1:$vport" > "$work/vault.log" 2>&1 & pids+=($!)
wait_http "$VAULT_ADDR/v1/sys/health"
vault() { HOME=$work command vault "$@"; }
vault secrets enable -path=transit transit > /dev/null
vault secrets enable -path=kv -version=1 kv > /dev/null
vault auth enable approle > /dev/null
printf 'path "transit/*" { capabilities = ["create","read","update","delete","list"] }\npath "kv/*" { capabilities = ["create","read","update","delete","list"] }\n' > "$work/policy.hcl"
vault policy write bench "$work/policy.hcl" > /dev/null
vault write auth/approle/role/bench token_num_uses=0 secret_id_num_uses=0 period=1h policies=bench > /dev/null
role_id=$(vault read -field=role_id auth/approle/role/bench/role-id)
secret_id=$(vault write -f -field=secret_id auth/approle/role/bench/secret-id)

# Our kes twice: Transit and K/V. The object servers' client identity is its admin.
identity=$(cd "$root/object-server/tests/python" && python -c "import pathlib,test_kes; print(test_kes.pki(pathlib.Path('$work/pki')))")
declare -A kes_port
for store in transit kv; do
  kes_port[$store]=$(free_port)
  if [ "$store" = transit ]; then backend="transit: { engine: transit }"; else backend="engine: kv
    version: v1"; fi
  cat > "$work/kes-$store.yml" <<YML
address: 127.0.0.1:${kes_port[$store]}
admin:
  identity: $identity
tls:
  key: $work/pki/kes.key
  cert: $work/pki/kes.crt
keystore:
  vault:
    endpoint: $VAULT_ADDR
    $backend
    approle: { id: $role_id, secret: $secret_id, retry: 5s }
YML
  "$bins/kes" server --config "$work/kes-$store.yml" > "$work/kes-$store.log" 2>&1 & pids+=($!)
done

# Four object servers: {transit, kv} x {own data keys, bucket keys}.
servers=(transit-own transit-bk kv-own kv-bk)
declare -A host
for s in "${servers[@]}"; do
  store=${s%-*}; port=$(free_port); mkdir -p "$work/data-$s"
  env MINIO_ROOT_USER=bench-user MINIO_ROOT_PASSWORD=bench-secret \
    MINIO_KMS_KES_ENDPOINT=https://127.0.0.1:${kes_port[$store]} MINIO_KMS_KES_CERT_FILE=$work/pki/client.crt \
    MINIO_KMS_KES_KEY_FILE=$work/pki/client.key MINIO_KMS_KES_CAPATH=$work/pki/ca.crt MINIO_KMS_KES_KEY_NAME=bench-key MINIO_PROMETHEUS_AUTH_TYPE=public \
    "$bins/object-server" server --address "127.0.0.1:$port" "$work/data-$s" > "$work/server-$s.log" 2>&1 & pids+=($!)
  wait_http "http://127.0.0.1:$port/minio/health/ready" || { tail -20 "$work/server-$s.log" "$work"/kes-*.log >&2; exit 1; }
  host[$s]=127.0.0.1:$port
done

cells=(put4k put1 get4k get1)
declare -A args=([put4k]="put 4KiB" [put1]="put 1MiB" [get4k]="get 4KiB --objects 500" [get1]="get 1MiB --objects 100")
make_bucket() { # server bucket
  python - "${host[$1]}" "$2" "$1" <<'PY'
import sys, boto3
host, bucket, server = sys.argv[1:]
c = boto3.client("s3", endpoint_url=f"http://{host}", aws_access_key_id="bench-user", aws_secret_access_key="bench-secret", region_name="us-east-1")
c.create_bucket(Bucket=bucket)
rule = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "bench-key"}, "BucketKeyEnabled": server.endswith("-bk")}
c.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [rule]})
PY
}
run_warp() { # op host size extra... -> prints "obj/s"
  local op=$1 host=$2 size=$3; shift 3
  local out
  out=$(cd "$work" && warp "$op" --host "$host" --access-key bench-user --secret-key bench-secret \
        --obj.size "$size" --concurrent 8 --duration "$duration" --noclear "$@" 2>&1) || {
    echo "$out" | tail -5 >&2; tail -n 20 "$work"/server-*.log "$work"/kes-*.log >&2; return 1; }
  echo "$out" | awk -v op="$(echo "$op" | tr a-z A-Z)" '
    /^Report: / { inrep = ($2 == op || $2 == op".") }
    inrep && /\* Average:/ { for (i=1;i<=NF;i++) if ($i ~ /obj\/s/) ops=$(i-1); print ops+0; exit }'
}
declare -A result
for round in $(seq "$rounds"); do
  n=${#servers[@]}; k=$(( (round - 1) % n ))
  order=("${servers[@]:$k}" "${servers[@]:0:$k}")
  for cell in "${cells[@]}"; do
    for s in "${order[@]}"; do
      read -r op size extra <<< "${args[$cell]}"
      bucket=$cell-r$round
      make_bucket "$s" "$bucket"
      # shellcheck disable=SC2086 # $extra is a list of flags
      r=$(run_warp "$op" "${host[$s]}" "$size" $extra --bucket "$bucket")
      result[$cell,$s]="${result[$cell,$s]:-} $r"
      echo "round $round $cell $s: $r obj/s" >&2
    done
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR]=$1 } END { print a[int((NR+1)/2)] }'; }
printf '\nSSE-KMS, warp concurrency 8, %s per cell, %s round(s); obj/s and ratio to K/V without bucket keys\n' "$duration" "$rounds"
printf '%-7s %16s %16s %16s %16s %16s\n' cell "K/V own keys" "K/V bucket keys" "Transit own" "Transit bucket" "T-bk / K/V-bk"
for cell in "${cells[@]}"; do
  declare -A m=()
  for s in "${servers[@]}"; do m[$s]=$(echo "${result[$cell,$s]}" | median); done
  ratio() { python -c "print(f'{$1/$2:.2f}' if $2 else '-')"; }
  printf '%-7s %9s (1.00) %9s (%s) %9s (%s) %9s (%s) %16s\n' "$cell" \
    "${m[kv-own]}" "${m[kv-bk]}" "$(ratio "${m[kv-bk]}" "${m[kv-own]}")" \
    "${m[transit-own]}" "$(ratio "${m[transit-own]}" "${m[kv-own]}")" \
    "${m[transit-bk]}" "$(ratio "${m[transit-bk]}" "${m[kv-own]}")" "$(ratio "${m[transit-bk]}" "${m[kv-bk]}")"
done
# How many Transit calls each Transit server cost (the object servers' KMS request counters).
for s in transit-own transit-bk; do
  n=$(curl -s "http://${host[$s]}/minio/v2/metrics/cluster" | awk '/^minio_cluster_kms_request_success/ { print $2 }')
  echo "$s: ${n:-?} successful KMS requests in all"
done
