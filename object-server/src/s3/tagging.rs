//! Tagging: Put/Get/DeleteObjectTagging (of any version), Put/Get/DeleteBucketTagging, the
//! `x-amz-tagging` header of PUT, multipart uploads and copies, with AWS's limits and codes.
use std::collections::BTreeMap;

use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};

use super::versioning::{check_version_id, version_err};
use super::{CofferS3, custom_error, storage_err};
use crate::iam::object_tags::ObjectTagCheck;
use crate::storage::StorageError;

/// Tags an object version may have.
const MAX_OBJECT_TAGS: usize = 10;
/// Tags a bucket may have.
const MAX_BUCKET_TAGS: usize = 50;
/// Longest tag key, in Unicode characters.
const MAX_KEY: usize = 128;
/// Longest tag value, in Unicode characters.
const MAX_VALUE: usize = 256;
/// The bucket configuration file of bucket tags.
const CONFIG: &str = "tagging";

fn invalid_tag(msg: &'static str) -> S3Error {
    s3_error!(InvalidTag, "{msg}")
}

/// Checks a tag set against AWS's rules and makes it a map.
pub(crate) fn validate(
    tags: Vec<(String, String)>,
    max: usize,
) -> S3Result<BTreeMap<String, String>> {
    if tags.len() > max {
        return Err(if max == MAX_OBJECT_TAGS {
            custom_error("BadRequest", 400, "Object tags cannot be greater than 10")
        } else {
            custom_error(
                "BadRequest",
                400,
                "Bucket tag count cannot be greater than 50",
            )
        });
    }
    let mut out = BTreeMap::new();
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > MAX_KEY {
            return Err(invalid_tag("The TagKey you have provided is invalid"));
        }
        if v.chars().count() > MAX_VALUE {
            return Err(invalid_tag("The TagValue you have provided is invalid"));
        }
        if k.starts_with("aws:") {
            return Err(invalid_tag(
                "System tags cannot be added/updated by requester",
            ));
        }
        if out.insert(k, v).is_some() {
            return Err(invalid_tag(
                "Cannot provide multiple Tags with the same key",
            ));
        }
    }
    Ok(out)
}

fn pairs_of(set: TagSet) -> Vec<(String, String)> {
    set.into_iter()
        .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
        .collect()
}

pub(crate) fn tag_set(tags: &BTreeMap<String, String>) -> TagSet {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space).
fn form_decode(s: &str) -> S3Result<String> {
    let bad = || {
        invalid_tag(
            "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.",
        )
    };
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let (h, l) = (b.get(i + 1).copied(), b.get(i + 2).copied());
                match (h.and_then(hex_val), l.and_then(hex_val)) {
                    (Some(h), Some(l)) => out.push(h << 4 | l),
                    _ => return Err(bad()),
                }
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Parses the `x-amz-tagging` header (`k1=v1&k2=v2`, URL-encoded) into a checked tag map.
pub(crate) fn parse_header(h: Option<&str>) -> S3Result<BTreeMap<String, String>> {
    let Some(h) = h.filter(|h| !h.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let mut pairs = Vec::new();
    for part in h.split('&') {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((form_decode(k)?, form_decode(v)?));
    }
    validate(pairs, MAX_OBJECT_TAGS)
}

impl CofferS3 {
    /// Replaces the tags of one version with `tags`. A decision the access check made on the
    /// version's tags is made again on the tags found inside the rewrite (under the key's lock,
    /// or the bucket's guard): a retag or a new version in between cannot slip past it.
    async fn rewrite_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        decision: Option<ObjectTagCheck>,
        tags: BTreeMap<String, String>,
    ) -> S3Result<crate::storage::ObjectMeta> {
        let result = self
            .store
            .rewrite_meta(bucket, key, version_id, move |m| {
                if let Some(ObjectTagCheck(d)) = &decision
                    && !d.admits(&m.tags)
                {
                    return Err(StorageError::Refused);
                }
                m.tags = tags;
                Ok(())
            })
            .await;
        match result {
            Ok(meta) => Ok(meta),
            Err(StorageError::Refused) => Err(s3_error!(AccessDenied, "Access Denied.")),
            Err(e) => Err(version_err(e)),
        }
    }

    pub(crate) async fn do_put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let input = req.input;
        if let Some(v) = &input.version_id {
            check_version_id(v)?;
        }
        let tags = validate(pairs_of(input.tagging.tag_set), MAX_OBJECT_TAGS)?;
        let decision = req.extensions.get::<ObjectTagCheck>().cloned();
        let meta = self
            .rewrite_tags(
                &input.bucket,
                &input.key,
                input.version_id.as_deref(),
                decision,
                tags,
            )
            .await?;
        Ok(S3Response::new(PutObjectTaggingOutput {
            version_id: meta.version_id,
        }))
    }

    pub(crate) async fn do_get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let input = req.input;
        let obj = self
            .open_named(&input.bucket, &input.key, input.version_id.as_deref())
            .await?;
        crate::iam::object_tags::check_object_tags(&req.extensions, &obj.meta.tags)?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: tag_set(&obj.meta.tags),
            version_id: obj.meta.version_id.clone(),
        }))
    }

    pub(crate) async fn do_delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let input = req.input;
        if let Some(v) = &input.version_id {
            check_version_id(v)?;
        }
        let decision = req.extensions.get::<ObjectTagCheck>().cloned();
        let meta = self
            .rewrite_tags(
                &input.bucket,
                &input.key,
                input.version_id.as_deref(),
                decision,
                BTreeMap::new(),
            )
            .await?;
        Ok(S3Response::new(DeleteObjectTaggingOutput {
            version_id: meta.version_id,
        }))
    }

    pub(crate) async fn do_put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let input = req.input;
        let tags = validate(pairs_of(input.tagging.tag_set), MAX_BUCKET_TAGS)?;
        self.store
            .write_bucket_json(&input.bucket, CONFIG, &tags)
            .await
            .map_err(storage_err)?;
        Ok(S3Response::new(PutBucketTaggingOutput::default()))
    }

    pub(crate) async fn do_get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let tags: Option<BTreeMap<String, String>> = self
            .store
            .read_bucket_json(&req.input.bucket, CONFIG)
            .await
            .map_err(storage_err)?;
        let Some(tags) = tags else {
            return Err(s3_error!(NoSuchTagSet, "The TagSet does not exist"));
        };
        Ok(S3Response::new(GetBucketTaggingOutput {
            tag_set: tag_set(&tags),
        }))
    }

    pub(crate) async fn do_delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        self.store
            .write_bucket_config(&req.input.bucket, CONFIG, None)
            .await
            .map_err(storage_err)?;
        Ok(S3Response::new(DeleteBucketTaggingOutput::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_limits() {
        let t = parse_header(Some("a=1&b%20c=x+y&e=")).unwrap();
        assert_eq!(t["a"], "1");
        assert_eq!(t["b c"], "x y");
        assert_eq!(t["e"], "");
        assert!(parse_header(Some("a=1&a=2")).is_err());
        assert!(parse_header(Some("a=%zz")).is_err());
        let many: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
        assert!(parse_header(Some(&many.join("&"))).is_err());
        assert!(validate(vec![("k".repeat(129), "v".into())], 10).is_err());
        assert!(validate(vec![("k".repeat(128), "v".repeat(256))], 10).is_ok());
        assert!(validate(vec![("k".into(), "v".repeat(257))], 10).is_err());
        assert!(validate(vec![("aws:x".into(), "v".into())], 10).is_err());
        let fifty: Vec<_> = (0..50).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert!(validate(fifty.clone(), MAX_BUCKET_TAGS).is_ok());
        assert!(validate(fifty, MAX_OBJECT_TAGS).is_err());
    }
}
