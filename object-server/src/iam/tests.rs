//! Two instances on one directory, and a KMS that is away.
use super::*;
use crate::kms::static_key::StaticKms;
use crate::kms::{DataKey, KmsError};
use std::sync::atomic::{AtomicBool, Ordering};

/// The static key, with decryption that can be made to fail (a KMS that is away).
struct FlakyKms {
    inner: StaticKms,
    down: AtomicBool,
}

#[async_trait::async_trait]
impl Kms for FlakyKms {
    fn default_key(&self) -> &str {
        self.inner.default_key()
    }
    fn describe(&self) -> String {
        "flaky".into()
    }
    async fn create_key(&self, name: &str) -> Result<(), KmsError> {
        self.inner.create_key(name).await
    }
    async fn generate_key(&self, name: &str, context: &[u8]) -> Result<DataKey, KmsError> {
        self.inner.generate_key(name, context).await
    }
    async fn decrypt_key(
        &self,
        name: &str,
        ciphertext: &[u8],
        context: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, KmsError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(KmsError::Unavailable("down".into()));
        }
        self.inner.decrypt_key(name, ciphertext, context).await
    }
    async fn ready(&self) -> Result<(), KmsError> {
        Ok(())
    }
}

fn kms() -> Arc<FlakyKms> {
    Arc::new(FlakyKms {
        inner: StaticKms::from_secret_key("k:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
            .unwrap(),
        down: AtomicBool::new(false),
    })
}

async fn open(dir: &std::path::Path, kms: Arc<FlakyKms>) -> Arc<Iam> {
    Iam::open(
        dir.to_owned(),
        &dir.join(".coffer"),
        kms,
        "root".into(),
        Secret::new("root-secret".into()),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_change_on_one_instance_is_seen_by_another_at_once() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (open(d.path(), kms()).await, open(d.path(), kms()).await);
    a.set_user("app1", "app1-secret", true).await.unwrap();
    a.change_policies("app1", &["readonly".into()], &[])
        .await
        .unwrap();
    let u = b.snapshot().await.unwrap().users["app1"].clone();
    assert_eq!(u.secret.expose(), "app1-secret");
    assert_eq!(u.policies, ["readonly"]);
    b.set_enabled("app1", false).await.unwrap();
    assert!(!a.snapshot().await.unwrap().users["app1"].enabled);
    assert!(matches!(
        a.change_policies("app1", &["nope".into()], &[]).await,
        Err(IamError::NoSuchPolicy(_))
    ));
    assert!(matches!(
        a.set_enabled("root", false).await,
        Err(IamError::Invalid(_))
    ));
    b.remove_user("app1").await.unwrap();
    assert!(a.snapshot().await.unwrap().users.is_empty());
    assert!(matches!(
        a.remove_user("app1").await,
        Err(IamError::NoSuchUser)
    ));
}

#[tokio::test]
async fn a_kms_that_is_away_leaves_out_only_the_users_it_cannot_unseal() {
    let d = tempfile::tempdir().unwrap();
    let a = open(d.path(), kms()).await;
    a.set_user("old1", "old1-secret", true).await.unwrap();
    let flaky = kms();
    let b = open(d.path(), flaky.clone()).await;
    assert!(b.snapshot().await.unwrap().users.contains_key("old1"));
    flaky.down.store(true, Ordering::SeqCst);
    a.set_user("new1", "new1-secret", true).await.unwrap();
    let snap = b.snapshot().await.unwrap();
    assert!(snap.users.contains_key("old1"), "cached users keep working");
    assert!(!snap.users.contains_key("new1"));
    flaky.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        b.snapshot().await.unwrap().users["new1"].secret.expose(),
        "new1-secret"
    );
}
