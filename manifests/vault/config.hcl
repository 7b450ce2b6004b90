# OpenBao for trying Coffer out: one raft node, TLS from the Secret vault-tls.
ui            = false
disable_mlock = true
api_addr      = "https://vault.vault.svc:8200"
cluster_addr  = "https://vault-0.vault-internal.vault.svc:8201"

listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"
  tls_cert_file   = "/vault/tls/tls.crt"
  tls_key_file    = "/vault/tls/tls.key"
}

storage "raft" {
  path    = "/vault/data"
  node_id = "vault-0"
}
