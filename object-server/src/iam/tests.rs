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

mod delete_objects {
    use super::*;
    use crate::iam::access::{Access, DeleteObjectsDecisions, KeyDecision};
    use s3s::access::S3Access;
    use s3s::dto::{Delete, DeleteObjectsInput, ObjectIdentifier};

    fn request(
        user: &str,
        bypass: bool,
        keys: &[(&str, Option<&str>)],
    ) -> s3s::S3Request<DeleteObjectsInput> {
        let objects = keys
            .iter()
            .map(|(k, v)| ObjectIdentifier {
                key: (*k).to_owned(),
                version_id: v.map(str::to_owned),
                ..Default::default()
            })
            .collect();
        let input = DeleteObjectsInput::builder()
            .bucket("b".to_owned())
            .delete(Delete {
                objects,
                quiet: None,
            })
            .bypass_governance_retention(bypass.then_some(true))
            .build()
            .unwrap();
        s3s::S3Request {
            input,
            method: http::Method::POST,
            uri: "/b?delete".parse().unwrap(),
            headers: http::HeaderMap::new(),
            extensions: http::Extensions::new(),
            credentials: Some(s3s::auth::Credentials {
                access_key: user.to_owned(),
                secret_key: "unused".to_owned().into(),
            }),
            region: None,
            service: None,
            trailing_headers: None,
        }
    }

    /// Each key of a DeleteObjects is its own decision: its action (a named version needs
    /// s3:DeleteObjectVersion), its resource, its s3:versionid and its governance bypass
    /// (issue #18, findings 3 and 5).
    #[tokio::test]
    async fn every_key_is_decided_on_its_own() {
        let d = tempfile::tempdir().unwrap();
        let iam = open(d.path(), kms()).await;
        let bucket = crate::storage::layout::bucket_dir(d.path(), "b");
        std::fs::create_dir_all(&bucket).unwrap();
        std::fs::write(
            bucket.join(".policy.json"),
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::b/protected/*"},
                {"Effect":"Deny","Principal":"*","Action":"s3:DeleteObjectVersion","Resource":"arn:aws:s3:::b/versions/*"},
                {"Effect":"Deny","Principal":"*","Action":"s3:DeleteObjectVersion","Resource":"arn:aws:s3:::b/*",
                 "Condition":{"StringEquals":{"s3:versionid":"keep-me"}}},
                {"Effect":"Deny","Principal":"*","Action":"s3:BypassGovernanceRetention","Resource":"arn:aws:s3:::b/locked/*"}]}"#,
        )
        .unwrap();
        let access = Access {
            iam: iam.clone(),
            tls: false,
            store: crate::storage::Store::open(d.path()).unwrap(),
            gateway: false,
        };
        let keys = [
            ("protected/a", None),
            ("free/b", None),
            ("versions/c", None),
            ("versions/c", Some("v1")),
            ("free/d", Some("keep-me")),
            ("free/d", Some("other")),
            ("locked/e", Some("v2")),
        ];
        let mut req = request("root", true, &keys);
        access.delete_objects(&mut req).await.unwrap();
        let DeleteObjectsDecisions(got) = req.extensions.remove().unwrap();
        let d = |allowed, bypass| KeyDecision { allowed, bypass };
        assert_eq!(
            got,
            [
                d(false, false),
                d(true, true),
                d(true, true),
                d(false, false),
                d(false, false),
                d(true, true),
                d(true, false),
            ]
        );

        // More than 1000 keys is malformed before anything is decided.
        let many: Vec<_> = (0..1001).map(|_| ("k", None)).collect();
        let mut req = request("root", false, &many);
        let e = access.delete_objects(&mut req).await.unwrap_err();
        assert_eq!(*e.code(), s3s::S3ErrorCode::MalformedXML);
    }
}
