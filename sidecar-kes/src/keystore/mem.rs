//! An in-memory keystore (for `kes server --dev`): keys are lost on exit.

use super::{Keystore, StoreError};
use futures::future::{BoxFuture, FutureExt};
use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::Duration;
use zeroize::Zeroizing;

/// Keys in a map in memory.
#[derive(Default)]
pub struct MemStore {
    keys: RwLock<BTreeMap<String, Zeroizing<Vec<u8>>>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Keystore for MemStore {
    fn describe(&self) -> String {
        "In Memory".into()
    }

    fn status(&self) -> BoxFuture<'_, Result<Duration, StoreError>> {
        async { Ok(Duration::ZERO) }.boxed()
    }

    fn create<'a>(
        &'a self,
        name: &'a str,
        value: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            let mut keys = self.keys.write().expect("lock");
            if keys.contains_key(name) {
                return Err(StoreError::Exists);
            }
            keys.insert(name.to_string(), Zeroizing::new(value.to_vec()));
            Ok(())
        }
        .boxed()
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Zeroizing<Vec<u8>>, StoreError>> {
        async move {
            self.keys
                .read()
                .expect("lock")
                .get(name)
                .cloned()
                .ok_or(StoreError::NotFound)
        }
        .boxed()
    }

    fn replace<'a>(
        &'a self,
        name: &'a str,
        old: &'a [u8],
        new: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            let mut keys = self.keys.write().expect("lock");
            let current = keys.get_mut(name).ok_or(StoreError::NotFound)?;
            if current[..] != *old {
                return Err(StoreError::Changed);
            }
            *current = Zeroizing::new(new.to_vec());
            Ok(())
        }
        .boxed()
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            self.keys
                .write()
                .expect("lock")
                .remove(name)
                .map(drop)
                .ok_or(StoreError::NotFound)
        }
        .boxed()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        async move { Ok(self.keys.read().expect("lock").keys().cloned().collect()) }.boxed()
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn conformance() {
        super::super::conformance::check(&super::MemStore::new()).await;
    }
}
