//! The Coffer side of an imported bucket: created with its versioning and object lock from the
//! first moment (as CreateBucket with object lock does), then its policy, lifecycle, default
//! encryption and tagging given to Coffer's own PutBucket* operations, which check them as they
//! check a client's. Runs before the bucket's objects, so the default encryption applies to them.
use super::{Importer, bucket_meta};
use crate::storage::{StorageError, Versioning};

/// A request to Coffer's own S3 operations from inside the server (no client, no credentials:
/// the caller has checked the right to make it).
pub(crate) fn request<T>(input: T) -> s3s::S3Request<T> {
    s3s::S3Request {
        input,
        method: http::Method::PUT,
        uri: http::Uri::from_static("/"),
        headers: http::HeaderMap::new(),
        extensions: http::Extensions::new(),
        credentials: None,
        region: None,
        service: None,
        trailing_headers: None,
    }
}

impl Importer {
    /// Creates the bucket and applies its settings, reporting what was applied and what was
    /// not; false when the bucket could not be created (its objects are then left out).
    pub(crate) async fn import_bucket_settings(
        &mut self,
        bucket: &str,
        settings: &bucket_meta::BucketSettings,
    ) -> bool {
        if !self.dry_run
            && let Err(e) = self.create_bucket(bucket, settings).await
        {
            self.report
                .skip(bucket, None, None, format!("creating the bucket: {e}"));
            return false;
        }
        let (mut applied, left_out) = settings.summary();
        let (done, failed) = self.apply_bucket_configs(bucket, settings).await;
        applied.extend(done);
        for (what, e) in failed {
            self.report
                .skip(bucket, None, None, format!("bucket {what}: {e}"));
        }
        self.report
            .bucket_settings
            .insert(bucket.to_owned(), applied);
        for what in left_out {
            self.report.skip(
                bucket,
                None,
                None,
                format!("bucket {what} configuration is not imported yet"),
            );
        }
        self.report.buckets.push(bucket.to_owned());
        true
    }

    /// Creates the bucket with its versioning and object lock (an existing one is filled).
    pub(crate) async fn create_bucket(
        &self,
        bucket: &str,
        settings: &bucket_meta::BucketSettings,
    ) -> Result<(), StorageError> {
        let created = match &settings.object_lock {
            Some(lock) => {
                let lock = serde_json::to_vec(lock).expect("serializes");
                self.store
                    .create_bucket_with(
                        bucket,
                        vec![
                            (
                                crate::storage::versions::VERSIONING_CONFIG,
                                crate::storage::versions::versioning_file(true),
                            ),
                            (crate::storage::versions::OBJECT_LOCK_CONFIG, lock),
                        ],
                    )
                    .await
            }
            None => self.store.create_bucket(bucket).await,
        };
        match created {
            Ok(()) | Err(StorageError::BucketExists) => {}
            Err(e) => return Err(e),
        }
        match settings.versioning() {
            Versioning::Unversioned => Ok(()),
            v => {
                self.store
                    .set_versioning(bucket, v == Versioning::Enabled)
                    .await
            }
        }
    }

    /// Gives the bucket's policy, lifecycle, default encryption and tagging to Coffer's own
    /// PutBucket* operations (so they are checked and stored as a client's would be). The names
    /// of those applied, and of every one that failed with its error.
    pub(crate) async fn apply_bucket_configs(
        &self,
        bucket: &str,
        settings: &bucket_meta::BucketSettings,
    ) -> (Vec<String>, Vec<(&'static str, String)>) {
        use bucket_meta::xml;
        use s3s::dto::*;
        fn msg(e: s3s::S3Error) -> String {
            format!("{}: {}", e.code().as_str(), e.message().unwrap_or(""))
        }
        let mut done = Vec::new();
        let mut failed = Vec::new();
        let b = bucket.to_owned();
        if let Some(policy) = &settings.policy {
            let r = match self.dry_run {
                true => Ok(()),
                false => self
                    .s3
                    .do_put_bucket_policy(request(PutBucketPolicyInput {
                        bucket: b.clone(),
                        policy: policy.clone(),
                        checksum_algorithm: None,
                        confirm_remove_self_bucket_access: None,
                        content_md5: None,
                        expected_bucket_owner: None,
                    }))
                    .await
                    .map(|_| ())
                    .map_err(msg),
            };
            match r {
                Ok(()) => done.push("policy".to_owned()),
                Err(e) => failed.push(("policy", e)),
            }
        }
        if let Some(raw) = &settings.lifecycle {
            let r = match xml::<BucketLifecycleConfiguration>(raw, "lifecycle") {
                Err(e) => Err(e),
                Ok(_) if self.dry_run => Ok(()),
                Ok(c) => {
                    let mut input = PutBucketLifecycleConfigurationInput::builder();
                    input.set_bucket(b.clone());
                    input.set_lifecycle_configuration(Some(c));
                    match input.build() {
                        Err(e) => Err(e.to_string()),
                        Ok(i) => self
                            .s3
                            .do_put_bucket_lifecycle_configuration(request(i))
                            .await
                            .map(|_| ())
                            .map_err(msg),
                    }
                }
            };
            match r {
                Ok(()) => done.push("lifecycle".to_owned()),
                Err(e) => failed.push(("lifecycle", e)),
            }
        }
        if let Some(raw) = &settings.encryption {
            let r = match xml::<ServerSideEncryptionConfiguration>(raw, "encryption") {
                Err(e) => Err(e),
                Ok(_) if self.dry_run => Ok(()),
                Ok(c) => {
                    let mut input = PutBucketEncryptionInput::builder();
                    input.set_bucket(b.clone());
                    input.set_server_side_encryption_configuration(c);
                    match input.build() {
                        Err(e) => Err(e.to_string()),
                        Ok(i) => self
                            .s3
                            .do_put_bucket_encryption(request(i))
                            .await
                            .map(|_| ())
                            .map_err(msg),
                    }
                }
            };
            match r {
                Ok(()) => done.push("default encryption".to_owned()),
                Err(e) => failed.push(("default encryption", e)),
            }
        }
        if let Some(raw) = &settings.tagging {
            let r = match xml::<Tagging>(raw, "tagging") {
                Err(e) => Err(e),
                Ok(_) if self.dry_run => Ok(()),
                Ok(c) => {
                    let mut input = PutBucketTaggingInput::builder();
                    input.set_bucket(b.clone());
                    input.set_tagging(c);
                    match input.build() {
                        Err(e) => Err(e.to_string()),
                        Ok(i) => self
                            .s3
                            .do_put_bucket_tagging(request(i))
                            .await
                            .map(|_| ())
                            .map_err(msg),
                    }
                }
            };
            match r {
                Ok(()) => done.push("tagging".to_owned()),
                Err(e) => failed.push(("tagging", e)),
            }
        }
        (done, failed)
    }
}
