//! Where master keys live: Vault K/V, a directory, or memory — a [`Keystore`] stores opaque
//! encoded keys ([`crate::crypto::KeyVersion::encode`]) by name for KES to fetch and use — or
//! Vault Transit ([`vault::TransitKeys`]), which keeps its keys and does the key operations
//! itself. [`crate::keys::Keys`] puts either behind the API.

pub mod fs;
pub mod mem;
pub mod vault;

use futures::future::BoxFuture;
use std::time::Duration;

/// Keystore failures; the API layer maps them to KES's status codes and texts.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// Create of a name that exists.
    #[error("key already exists")]
    Exists,
    /// No key by that name.
    #[error("key does not exist")]
    NotFound,
    /// The backend cannot be reached (network, TLS, timeout).
    #[error("key store is unreachable: {0}")]
    Unreachable(String),
    /// The backend (Vault) is sealed.
    #[error("key store is sealed")]
    Sealed,
    /// The name is not a valid key name for this backend.
    #[error("invalid key name")]
    InvalidName,
    /// A compare-and-replace found the stored value changed since it was read (a concurrent
    /// rotation); the caller reads again.
    #[error("key was changed concurrently")]
    Changed,
    /// Any other backend failure (the text never contains key material).
    #[error("key store error: {0}")]
    Other(String),
}

/// A key version kept apart from its key's value ([`Keystore::escrowed`]): its number and its
/// encoded key.
pub type EscrowedVersion = (u32, zeroize::Zeroizing<Vec<u8>>);

/// A backend that stores encoded keys by name.
pub trait Keystore: Send + Sync + 'static {
    /// Human-readable description, e.g. `Filesystem: /keys`.
    fn describe(&self) -> String;
    /// Checks that the backend is reachable; returns the round-trip latency.
    fn status(&self) -> BoxFuture<'_, Result<Duration, StoreError>>;
    /// Stores `value` under `name`; `Exists` if present. Never overwrites.
    fn create<'a>(
        &'a self,
        name: &'a str,
        value: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// The value of `name`.
    fn get<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<zeroize::Zeroizing<Vec<u8>>, StoreError>>;
    /// Replaces the value of `name` with `new` if it is still `old` (a key rotation);
    /// `Changed` if it is not, `NotFound` if there is none. A reader sees the old or the new
    /// value, never a mix.
    fn replace<'a>(
        &'a self,
        name: &'a str,
        old: &'a [u8],
        new: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let _ = (name, old, new);
        Box::pin(async {
            Err(StoreError::Other(
                "this keystore cannot change a stored key".into(),
            ))
        })
    }
    /// Key versions of `name` kept apart from its value because a concurrent write could have
    /// overwritten them there (Vault K/V v1, which has no check-and-set; see
    /// [`vault::kv`]): each with its number, encoded as [`crate::crypto::KeyVersion::encode`];
    /// only those numbered `version` if given. Stores whose writes refuse a concurrent writer
    /// keep none.
    fn escrowed<'a>(
        &'a self,
        name: &'a str,
        version: Option<u32>,
    ) -> BoxFuture<'a, Result<Vec<EscrowedVersion>, StoreError>> {
        let _ = (name, version);
        Box::pin(async { Ok(Vec::new()) })
    }
    /// Deletes `name` (with every version and escrowed copy of it); `NotFound` if absent.
    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Every key name (unsorted).
    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;
    /// Whether the backend last said it is sealed (an operator's stop: no key may be used
    /// while it is; see [`crate::cache`]). Asked on every key use, so it only reads state the
    /// store keeps (an atomic), never the network. Stores that cannot be sealed say `false`.
    fn is_sealed(&self) -> bool {
        false
    }
}

/// KES's listing: sorted names that start with `prefix`.
pub fn filter_sorted(mut names: Vec<String>, prefix: &str) -> Vec<String> {
    names.retain(|n| n.starts_with(prefix));
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
pub(crate) mod conformance {
    //! The behaviour every keystore must have.
    use super::*;

    pub async fn check(store: &dyn Keystore) {
        store.status().await.unwrap();
        assert_eq!(store.get("k1").await.unwrap_err(), StoreError::NotFound);
        store.create("k1", b"v1").await.unwrap();
        assert_eq!(
            store.create("k1", b"v2").await.unwrap_err(),
            StoreError::Exists
        );
        assert_eq!(&store.get("k1").await.unwrap()[..], b"v1");
        store.create("k2", b"v2").await.unwrap();
        assert_eq!(filter_sorted(store.list().await.unwrap(), ""), ["k1", "k2"]);
        assert_eq!(filter_sorted(store.list().await.unwrap(), "k2"), ["k2"]);
        store.delete("k1").await.unwrap();
        assert_eq!(store.delete("k1").await.unwrap_err(), StoreError::NotFound);
        assert_eq!(store.get("k1").await.unwrap_err(), StoreError::NotFound);
        assert_eq!(filter_sorted(store.list().await.unwrap(), ""), ["k2"]);
        // Compare-and-replace.
        store.replace("k2", b"v2", b"v2b").await.unwrap();
        assert_eq!(&store.get("k2").await.unwrap()[..], b"v2b");
        assert_eq!(
            store.replace("k2", b"v2", b"v2c").await.unwrap_err(),
            StoreError::Changed
        );
        assert_eq!(&store.get("k2").await.unwrap()[..], b"v2b");
        assert_eq!(
            store.replace("k1", b"v1", b"v1b").await.unwrap_err(),
            StoreError::NotFound
        );
        assert_eq!(store.get("k1").await.unwrap_err(), StoreError::NotFound);
    }
}
