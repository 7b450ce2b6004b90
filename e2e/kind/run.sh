#!/usr/bin/env bash
# The kind suite: the scenario of e2e/scenario/ (the same one e2e/tests/cluster/ runs on this
# machine's own test node) in a kind cluster, for people with Docker:
#
#   1. build the image (manifests/image/Dockerfile)     5. apply the scenario's manifests
#   2. create a kind cluster, load the image into it    6. wait: KMS Ready, Tenant Ready
#   3. helm install charts/coffer-operator               7. the client Job (client.sh put, get)
#   4. deploy Vault from manifests/vault/ (its Job       8. verify: SSE on the object (client.sh),
#      inits, unseals, and writes the KMS's Secrets)        the Tenant's key in Vault's kv
#                                                       9. delete the cluster
#
# Usage: e2e/kind/run.sh        (needs docker, kind, kubectl, helm, openssl on PATH)
# Environment: KIND_CLUSTER (default coffer-e2e), KEEP_CLUSTER=1 keeps the cluster at the end,
# SKIP_BUILD=1 uses an image already built with the right tag.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
# shellcheck source=e2e/kind/scenario.sh
. e2e/kind/scenario.sh

cluster=${KIND_CLUSTER:-coffer-e2e}
tag=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' charts/coffer-operator/Chart.yaml)
# The operator's default Tenant image is ghcr.io/coffer-dev/coffer:<appVersion>: the same tag.
image=ghcr.io/coffer-dev/coffer:$tag
work=$(mktemp -d)

step() { printf '\n=== %s\n' "$*"; }
fail() { printf 'kind suite: FAILED: %s\n' "$*" >&2; exit 1; }

for tool in docker kind kubectl helm openssl; do
  command -v "$tool" >/dev/null || fail "$tool is not on PATH"
done
load_scenario e2e/scenario/scenario.env

cleanup() {
  local status=$?
  if [ "$status" -ne 0 ]; then
    echo "--- state at failure"
    kubectl get all,kms,tenants -A || true
    kubectl -n "$SCENARIO_NAMESPACE" get events --sort-by=.lastTimestamp || true
    kubectl -n coffer-system logs deploy/coffer-operator --tail=100 || true
  fi
  if [ "${KEEP_CLUSTER:-0}" = 1 ]; then
    echo "keeping cluster $cluster (kind delete cluster --name $cluster)"
  else
    kind delete cluster --name "$cluster" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  step "1. docker build $image"
  docker build -f manifests/image/Dockerfile -t "$image" .
fi

step "2. kind create cluster $cluster; kind load docker-image $image"
kind create cluster --name "$cluster" --wait 180s
kind load docker-image "$image" --name "$cluster"

step "3. helm install coffer-operator"
helm install coffer-operator charts/coffer-operator --namespace coffer-system --create-namespace \
  --set image.tag="$tag" --set image.pullPolicy=Never --wait --timeout 5m

step "4. Vault from manifests/vault/ (TLS certificate as the guide makes it)"
openssl ecparam -genkey -name prime256v1 | openssl ec -out "$work/vault-tls.key"
openssl req -new -x509 -days 365 -key "$work/vault-tls.key" -out "$work/vault-tls.crt" \
  -subj "/C=US/ST=CA/L=SF/O=MinIO/CN=vault" -addext "subjectAltName = DNS:vault.vault.svc"
kubectl create namespace vault
kubectl -n vault create secret tls vault-tls --cert="$work/vault-tls.crt" --key="$work/vault-tls.key"
first_manifest=${SCENARIO_MANIFESTS%% *}
kubectl apply -f "$first_manifest"
kubectl apply -k manifests/vault
kubectl -n vault wait --for=condition=complete job/vault-setup --timeout=600s ||
  { kubectl -n vault logs job/vault-setup --all-containers || true; fail "the Vault setup Job did not complete"; }

step "5. the scenario's manifests"
for manifest in $SCENARIO_MANIFESTS; do
  kubectl apply -f "$manifest"
done

step "6. wait for KMS $SCENARIO_KMS and Tenant $SCENARIO_TENANT to be Ready"
ns=$SCENARIO_NAMESPACE
kubectl -n "$ns" wait --for=condition=Ready "kms/$SCENARIO_KMS" --timeout="${SCENARIO_KMS_READY_TIMEOUT}s"
kubectl -n "$ns" wait --for=condition=Ready "tenant/$SCENARIO_TENANT" --timeout="${SCENARIO_TENANT_READY_TIMEOUT}s"

step "7. the client Job: client.sh put, then get"
kubectl -n "$ns" create configmap scenario-client --from-file=client.sh=e2e/scenario/client.sh
kubectl -n "$ns" create configmap scenario-env --from-env-file=e2e/scenario/scenario.env
endpoint=$(kubectl -n "$ns" get "tenant/$SCENARIO_TENANT" -o jsonpath='{.status.endpoint}')
client_job "$ns" "$SCENARIO_TENANT" "$endpoint" | kubectl apply -f -
if ! kubectl -n "$ns" wait --for=condition=complete job/scenario-client --timeout=600s; then
  kubectl -n "$ns" logs job/scenario-client || true
  fail "the client Job did not complete"
fi
logs=$(kubectl -n "$ns" logs job/scenario-client)
printf '%s\n' "$logs"
for want in "scenario put: ok" "scenario get: ok"; do
  printf '%s\n' "$logs" | grep -qx "$want" || fail "the client Job did not print \"$want\""
done

step "8. the object's key is the Tenant's key, in Vault's kv"
key=$(kubectl -n "$ns" get "tenant/$SCENARIO_TENANT" -o jsonpath='{.spec.encryption.keyName}')
token=$(kubectl -n vault get secret vault-init -o jsonpath='{.data.root-token}' | base64 -d)
keys=$(kubectl -n vault exec vault-0 -- env BAO_TOKEN="$token" BAO_ADDR=https://127.0.0.1:8200 \
  BAO_SKIP_VERIFY=true bao list -format=json "$SCENARIO_KV_ENGINE/$ns")
printf '%s\n' "$keys" | grep -q "\"$key\"" || fail "key $key is not in Vault under $SCENARIO_KV_ENGINE/$ns: $keys"

step "kind suite: passed"
