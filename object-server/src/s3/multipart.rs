//! Multipart uploads.
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::CofferS3;

impl CofferS3 {
    pub(crate) async fn do_create_multipart_upload(
        &self,
        _req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        Err(s3_error!(NotImplemented))
    }
    pub(crate) async fn do_upload_part(
        &self,
        _req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        Err(s3_error!(NotImplemented))
    }
    pub(crate) async fn do_upload_part_copy(
        &self,
        _req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        Err(s3_error!(NotImplemented))
    }
    pub(crate) async fn do_complete_multipart_upload(
        &self,
        _req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        Err(s3_error!(NotImplemented))
    }
    pub(crate) async fn do_abort_multipart_upload(
        &self,
        _req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        Err(s3_error!(NotImplemented))
    }
    pub(crate) async fn do_list_parts(
        &self,
        _req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        Err(s3_error!(NotImplemented))
    }
    pub(crate) async fn do_list_multipart_uploads(
        &self,
        _req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        Err(s3_error!(NotImplemented))
    }
}
