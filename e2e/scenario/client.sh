#!/usr/bin/env bash
# The client side of the scenario (scenario.env): run by the kind suite's Job and by the local test.
#
#   client.sh put   upload a random object with the AWS CLI (no encryption headers), read it
#                   back, and check the server encrypted it (ServerSideEncryption: AES256)
#   client.sh get   read the object `put` wrote again and compare it with what was uploaded
#   client.sh mc    the same round trip with `mc cp`, `mc stat` and `mc cat`
#
# Environment: S3_ENDPOINT (https://…), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_CA_BUNDLE
# (the Tenant's CA, PEM), SCENARIO_WORK (a writable directory kept between the steps), and
# BUCKET, OBJECT, OBJECT_SIZE_KIB from scenario.env. Prints "scenario <step>: ok" on success.
set -euo pipefail

fail() { echo "scenario $step: FAILED: $*" >&2; exit 1; }
step=${1:-}
for var in S3_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_CA_BUNDLE SCENARIO_WORK BUCKET OBJECT OBJECT_SIZE_KIB; do
  [ -n "${!var:-}" ] || fail "environment variable $var is not set"
done
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
mkdir -p "$SCENARIO_WORK"
upload=$SCENARIO_WORK/upload.bin

s3() { aws --endpoint-url "$S3_ENDPOINT" "$@"; }
digest() { sha256sum "$1" | cut -d' ' -f1; }

check_encrypted() {
  local sse
  sse=$(s3 s3api head-object --bucket "$BUCKET" --key "$1" --query ServerSideEncryption --output text)
  [ "$sse" = AES256 ] || fail "object $1: ServerSideEncryption is \"$sse\", not AES256"
}

case "$step" in
  put)
    s3 s3api head-bucket --bucket "$BUCKET" >/dev/null 2>&1 || s3 s3 mb "s3://$BUCKET"
    head -c "$((OBJECT_SIZE_KIB * 1024))" /dev/urandom >"$upload"
    s3 s3 cp --only-show-errors "$upload" "s3://$BUCKET/$OBJECT"
    s3 s3 cp --only-show-errors "s3://$BUCKET/$OBJECT" "$SCENARIO_WORK/download.bin"
    [ "$(digest "$upload")" = "$(digest "$SCENARIO_WORK/download.bin")" ] || fail "downloaded object differs"
    check_encrypted "$OBJECT"
    ;;
  get)
    [ -f "$upload" ] || fail "no $upload: run 'client.sh put' first"
    s3 s3 cp --only-show-errors "s3://$BUCKET/$OBJECT" "$SCENARIO_WORK/download.bin"
    [ "$(digest "$upload")" = "$(digest "$SCENARIO_WORK/download.bin")" ] || fail "downloaded object differs"
    check_encrypted "$OBJECT"
    ;;
  mc)
    export MC_CONFIG_DIR=$SCENARIO_WORK/mc
    mkdir -p "$MC_CONFIG_DIR/certs/CAs"
    cp "$AWS_CA_BUNDLE" "$MC_CONFIG_DIR/certs/CAs/tenant-ca.crt"
    mc alias set scenario "$S3_ENDPOINT" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >/dev/null
    head -c "$((OBJECT_SIZE_KIB * 1024))" /dev/urandom >"$SCENARIO_WORK/mc-upload.bin"
    mc mb --ignore-existing "scenario/$BUCKET" >/dev/null
    mc cp --quiet "$SCENARIO_WORK/mc-upload.bin" "scenario/$BUCKET/$OBJECT.mc" >/dev/null
    stat=$(mc stat --json "scenario/$BUCKET/$OBJECT.mc")
    printf '%s\n' "$stat" | grep -q '"X-Amz-Server-Side-Encryption":"AES256"' ||
      fail "mc stat --json shows no \"X-Amz-Server-Side-Encryption\":\"AES256\": $stat"
    mc cat "scenario/$BUCKET/$OBJECT.mc" >"$SCENARIO_WORK/mc-download.bin"
    [ "$(digest "$SCENARIO_WORK/mc-upload.bin")" = "$(digest "$SCENARIO_WORK/mc-download.bin")" ] ||
      fail "mc cat returned different bytes"
    ;;
  *) echo "usage: client.sh put|get|mc" >&2; exit 2 ;;
esac
echo "scenario $step: ok"
