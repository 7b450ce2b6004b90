#!/bin/sh
# What the MinIO KMS guide does by hand to a fresh Vault, as a script (the Job in vault.yaml runs
# it; you can run it from your shell too): init with 5 key shares and unseal with 3, enable K/V
# and AppRole, write the KES policy, create the role, and hand its role ID and secret ID — and
# Vault's CA — to Coffer as Secrets in the Tenant's namespace. Every step is skipped when already
# done, so running it again (after a Vault restart, to unseal) is safe.
#
# Needs: `bao` (or `vault`) and `kubectl` on PATH, VAULT_ADDR and VAULT_CACERT set.
# TRY-OUT ONLY: the unseal keys and root token are kept in the Secret vault/vault-init.
set -eu

: "${VAULT_ADDR:?set VAULT_ADDR, e.g. https://vault.vault.svc:8200}"
: "${VAULT_CACERT:?set VAULT_CACERT to the CA file of Vault's certificate}"
VAULT_NAMESPACE_K8S=${VAULT_NAMESPACE_K8S:-vault}      # where vault-init is kept
TARGET_NAMESPACE=${TARGET_NAMESPACE:-coffer-demo}      # where the KMS and Tenant live
KV_PATH=${KV_PATH:-kv}
ROLE=${ROLE:-kes-role}
POLICY=${POLICY:-kes-policy}
export VAULT_ADDR VAULT_CACERT
unset VAULT_TOKEN

if command -v bao >/dev/null 2>&1; then vault() { bao "$@"; }; fi
step() { echo "==> $*"; }

step "waiting for Vault at $VAULT_ADDR"
tries=0
until vault status >/dev/null 2>&1 || [ $? -eq 2 ]; do
  tries=$((tries + 1))
  [ "$tries" -lt 120 ] || { echo "Vault does not answer at $VAULT_ADDR" >&2; exit 1; }
  sleep 1
done

init_field() {
  kubectl -n "$VAULT_NAMESPACE_K8S" get secret vault-init -o "jsonpath={.data.$1}" | base64 -d
}

if vault status -format=json 2>/dev/null | grep -q '"initialized": false'; then
  step "vault operator init (5 key shares, threshold 3)"
  out=$(vault operator init -key-shares=5 -key-threshold=3)
  set --
  for i in 1 2 3 4 5; do
    set -- "$@" "--from-literal=unseal-key-$i=$(printf '%s\n' "$out" | sed -n "s/^Unseal Key $i: //p")"
  done
  token=$(printf '%s\n' "$out" | sed -n 's/^Initial Root Token: //p')
  kubectl -n "$VAULT_NAMESPACE_K8S" create secret generic vault-init "$@" --from-literal=root-token="$token" >/dev/null
  echo "unseal keys and root token stored in Secret $VAULT_NAMESPACE_K8S/vault-init (try-out only)"
fi

if vault status >/dev/null 2>&1; then :; else
  step "vault operator unseal (3 of 5 shares)"
  for i in 1 2 3; do
    vault operator unseal "$(init_field "unseal-key-$i")" >/dev/null
  done
fi
# A single raft node elects itself leader a moment after unsealing.
tries=0
until vault read -format=json sys/leader 2>/dev/null | grep -q '"is_self": true'; do
  tries=$((tries + 1))
  [ "$tries" -lt 60 ] || { echo "Vault did not become active" >&2; exit 1; }
  sleep 1
done

VAULT_TOKEN=$(init_field root-token)
export VAULT_TOKEN

if ! vault secrets list | grep -q "^$KV_PATH/"; then
  step "vault secrets enable -path=$KV_PATH kv"
  vault secrets enable -path="$KV_PATH" kv
fi
if ! vault auth list | grep -q '^approle/'; then
  step "vault auth enable approle"
  vault auth enable approle
fi

# The guide's policy plus `update`: a key rotation (`kes key rotate`, the operator's
# spec.encryption.rotation) writes over the key's secret, which Vault allows only with `update`;
# `list` also finds the key versions K/V v1 keeps apart (sidecar-kes/src/keystore/vault/kv.rs).
step "vault policy write $POLICY (the keys under $KV_PATH/)"
printf 'path "%s/*" {\n  capabilities = [ "create", "read", "update", "delete", "list" ]\n}\n' "$KV_PATH" | vault policy write "$POLICY" -

step "vault write auth/approle/role/$ROLE"
vault write "auth/approle/role/$ROLE" token_num_uses=0 secret_id_num_uses=0 period=5m policies="$POLICY" >/dev/null

if kubectl -n "$TARGET_NAMESPACE" get secret vault-approle >/dev/null 2>&1; then
  echo "Secret $TARGET_NAMESPACE/vault-approle exists: keeping its secret ID"
else
  step "role ID and a secret ID into Secret $TARGET_NAMESPACE/vault-approle"
  role_id=$(vault read -field=role_id "auth/approle/role/$ROLE/role-id")
  secret_id=$(vault write -f -field=secret_id "auth/approle/role/$ROLE/secret-id")
  kubectl -n "$TARGET_NAMESPACE" create secret generic vault-approle \
    --from-literal=roleId="$role_id" --from-literal=secretId="$secret_id" >/dev/null
fi

step "Vault's CA into Secret $TARGET_NAMESPACE/vault-ca"
kubectl -n "$TARGET_NAMESPACE" create secret generic vault-ca --from-file=ca.crt="$VAULT_CACERT" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null

echo "done: KMS '$TARGET_NAMESPACE/vault' can use endpoint $VAULT_ADDR, engine $KV_PATH, AppRole Secret vault-approle, CA Secret vault-ca"
