//! Test harness: starts real peers (Vault/OpenBao, etcd + kube-apiserver, MinIO's `kes`, `minio`,
//! Ceph) on free loopback ports in a temporary directory, and stops them when the test ends.
//!
//! Every peer is looked up on `PATH` (put there by `eval "$(e2e/peers/env)"`, which the test
//! command does). A missing peer is a test failure with a message that says how to install it:
//! the suite never passes by skipping.

pub mod ceph;
pub mod cluster;
pub mod image;
pub mod kes;
pub mod kube;
pub mod minio;
pub mod pki;
pub mod process;
pub mod scenario;
pub mod secret_volume;
pub mod tls_probe;
pub mod vault;

pub use process::{Process, free_port, listens_on, peer_bin, start_on_free_ports, wait_until};
