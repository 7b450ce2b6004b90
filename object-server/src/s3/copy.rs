//! CopyObject.
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::CofferS3;

impl CofferS3 {
    pub(crate) async fn do_copy_object(
        &self,
        _req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        Err(s3_error!(NotImplemented))
    }
}
