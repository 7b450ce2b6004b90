//! Buckets: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation,
//! (versioning and object lock live in `versioning.rs` and `lock.rs`).
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::{CofferS3, storage_err};

impl CofferS3 {
    pub(crate) async fn do_list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let mut buckets = self.engine().list_buckets().await.map_err(storage_err)?;
        // A user without s3:ListAllMyBuckets sees the buckets its policies reach (as MinIO).
        if let Some(visible) = req.extensions.get::<crate::iam::access::VisibleBuckets>() {
            buckets.retain(|(name, _)| visible.shows(name));
        }
        let buckets = buckets
            .into_iter()
            .map(|(name, t)| Bucket {
                name: Some(name),
                creation_date: Some(Timestamp::from(time::OffsetDateTime::from(t))),
                bucket_region: None,
            })
            .collect();
        let owner = Owner {
            display_name: Some("coffer".to_owned()),
            id: Some("coffer".to_owned()),
        };
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner),
            ..Default::default()
        }))
    }

    pub(crate) async fn do_create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let lock = req.input.object_lock_enabled_for_bucket == Some(true);
        let bucket = req.input.bucket;
        if lock {
            if self.gateway.is_some() {
                return Err(super::gateway_refuses("Object lock"));
            }
            self.create_lock_bucket(&bucket).await?;
        } else {
            self.engine()
                .create_bucket(&bucket)
                .await
                .map_err(storage_err)?;
        }
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    pub(crate) async fn do_head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.engine()
            .head_bucket(&req.input.bucket)
            .await
            .map_err(storage_err)?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    pub(crate) async fn do_delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let bucket = req.input.bucket;
        self.engine()
            .delete_bucket(&bucket)
            .await
            .map_err(storage_err)?;
        if self.gateway.is_some() {
            return Ok(S3Response::new(DeleteBucketOutput::default()));
        }
        let (store, uploads) = (self.store.clone(), self.store.uploads_dir(&bucket));
        let _ = tokio::task::spawn_blocking(move || store.remove_upload_dir(&uploads)).await;
        Ok(S3Response::new(DeleteBucketOutput::default()))
    }

    pub(crate) async fn do_get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.engine()
            .head_bucket(&req.input.bucket)
            .await
            .map_err(storage_err)?;
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }
}
