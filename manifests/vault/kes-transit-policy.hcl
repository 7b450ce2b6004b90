# The Vault policy of a `kes` whose keystore is Vault Transit (`keystore.vault.transit`), for
# the Transit mount `transit` (replace the prefix for another mount). Not part of this
# directory's kustomization, which sets up the MinIO KMS guide's K/V keystore; with Transit:
#
#   vault secrets enable transit
#   vault policy write kes-transit manifests/vault/kes-transit-policy.hcl
#   vault write auth/approle/role/kes-transit token_policies=kes-transit token_period=1h
#
# It lets kes create, describe, list and delete keys, and use them for data keys, encrypt,
# decrypt and HMAC. Nothing reads a key out of Vault: kes creates keys non-exportable, and no
# path here exports or backs one up (`transit/export/*`, `transit/backup/*`). Without `create`
# on `transit/encrypt/*`, Transit refuses an encrypt that would create a missing key.
# To make keys undeletable through kes, drop "delete" below (kes then answers 502 on a delete).
# The Coffer operator uses the same policy for a KMS with `vault.transit`: its KMS probe checks
# the mount (`sys/internal/ui/mounts/transit`, allowed by any capability under it) and
# `Tenant.spec.encryption.rotation` lists, reads and rotates keys (`transit/keys/*`).

# Create (POST, an update to Vault), describe, list, `keys/<name>/config`, which a delete needs
# first (`deletion_allowed`) and `kes key rotate --min-version` sets (`min_decryption_version`),
# and `keys/<name>/rotate` (`kes key rotate`).
path "transit/keys/*" {
  capabilities = ["read", "update", "delete", "list"]
}
path "transit/datakey/plaintext/*" {
  capabilities = ["update"]
}
path "transit/encrypt/*" {
  capabilities = ["update"]
}
path "transit/decrypt/*" {
  capabilities = ["update"]
}
path "transit/hmac/*" {
  capabilities = ["update"]
}
