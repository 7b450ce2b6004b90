//! GetObjectAttributes: an object's ETag, checksum, parts (with their checksums), storage class
//! and size, without its body. It reads only metadata, but an SSE-C object still needs its key,
//! as for HEAD: the checksums describe the plaintext.
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{CofferS3, checksum, etag, timestamp};
use crate::storage::ObjectMeta;

/// The attributes a request asks for (`x-amz-object-attributes`).
#[derive(Default)]
struct Wanted {
    etag: bool,
    checksum: bool,
    parts: bool,
    storage_class: bool,
    size: bool,
}

fn wanted(list: &[ObjectAttributes]) -> S3Result<Wanted> {
    let mut w = Wanted::default();
    // s3s hands over the header's comma-separated values as one element.
    for a in list.iter().flat_map(|a| a.as_str().split(',')) {
        match a.trim() {
            ObjectAttributes::ETAG => w.etag = true,
            ObjectAttributes::CHECKSUM => w.checksum = true,
            ObjectAttributes::OBJECT_PARTS => w.parts = true,
            ObjectAttributes::STORAGE_CLASS => w.storage_class = true,
            ObjectAttributes::OBJECT_SIZE => w.size = true,
            _ => {
                return Err(s3_error!(
                    InvalidArgument,
                    "Invalid attribute name specified."
                ));
            }
        }
    }
    Ok(w)
}

/// A page of a multipart object's parts, after `marker`, with the checksums of the object's
/// algorithm (AWS lists the parts only of objects that have a checksum).
fn object_parts(meta: &ObjectMeta, marker: i32, max: i32) -> GetObjectAttributesParts {
    let total = meta.parts.len() as i32;
    let mut parts = Vec::new();
    let mut truncated = false;
    if !meta.checksums.is_empty() {
        for p in meta.parts.iter().filter(|p| p.number as i32 > marker) {
            if parts.len() as i32 == max {
                truncated = true;
                break;
            }
            let sum = |alg: &str| {
                meta.checksums
                    .contains_key(alg)
                    .then(|| p.checksums.get(alg).cloned())
                    .flatten()
            };
            parts.push(ObjectPart {
                part_number: Some(p.number as i32),
                size: Some(p.size as i64),
                checksum_crc32: sum("CRC32"),
                checksum_crc32c: sum("CRC32C"),
                checksum_crc64nvme: sum("CRC64NVME"),
                checksum_sha1: sum("SHA1"),
                checksum_sha256: sum("SHA256"),
            });
        }
    }
    let next = parts.last().and_then(|p| p.part_number);
    GetObjectAttributesParts {
        total_parts_count: Some(total),
        part_number_marker: Some(marker),
        next_part_number_marker: next,
        max_parts: Some(max),
        is_truncated: Some(truncated),
        parts: (!parts.is_empty()).then_some(parts),
    }
}

impl CofferS3 {
    pub(crate) async fn do_get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let input = req.input;
        let want = wanted(&input.object_attributes)?;
        let customer = self.read_customer_key(
            input.sse_customer_algorithm.as_deref(),
            input.sse_customer_key.as_deref(),
            input.sse_customer_key_md5.as_deref(),
        )?;
        let meta = self
            .open_named_meta(&input.bucket, &input.key, input.version_id.as_deref())
            .await?;
        self.prove_customer_key(&meta, &input.bucket, &input.key, customer.as_ref())
            .await?;
        let marker = input.part_number_marker.unwrap_or(0).max(0);
        let max = input.max_parts.unwrap_or(1000).clamp(0, 1000);
        let out = GetObjectAttributesOutput {
            e_tag: want.etag.then(|| etag(&meta.etag)),
            checksum: (want.checksum && !meta.checksums.is_empty())
                .then(|| checksum::checksum_dto(&meta.checksums, Some(meta.checksum_kind))),
            object_parts: (want.parts && !meta.parts.is_empty())
                .then(|| object_parts(&meta, marker, max)),
            storage_class: want
                .storage_class
                .then(|| StorageClass::from_static(StorageClass::STANDARD)),
            object_size: want.size.then_some(meta.size as i64),
            last_modified: Some(timestamp(meta.modified_ms)),
            version_id: meta.version_id.clone(),
            ..Default::default()
        };
        Ok(S3Response::new(out))
    }
}
