//! ListObjects (v1) and ListObjectsV2: prefix, delimiter, max-keys, marker / start-after /
//! continuation token, `encoding-type=url`.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{CofferS3, checksum, etag, storage_err, timestamp};
use crate::storage::StorageError;
use crate::storage::engine::ListQuery;

/// One listing entry.
pub(crate) enum Entry {
    Object(Box<Object>),
    Prefix(String),
}

/// A page of a listing.
pub(crate) struct Page {
    pub entries: Vec<Entry>,
    pub truncated: bool,
    /// The last key or common prefix of the page.
    pub last: Option<String>,
}

/// Percent-encodes a key as S3 does for `encoding-type=url`.
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Groups sorted `keys` into a page after `marker`.
pub(crate) fn paginate(
    keys: &[String],
    prefix: &str,
    delimiter: Option<&str>,
    marker: Option<&str>,
    max: usize,
) -> (Vec<(String, bool)>, bool) {
    let mut out: Vec<(String, bool)> = Vec::new();
    let delimiter = delimiter.filter(|d| !d.is_empty());
    for k in keys {
        if !k.starts_with(prefix) {
            continue;
        }
        if let Some(m) = marker {
            if k.as_str() <= m {
                continue;
            }
            // A marker that is a common prefix stands for every key under it.
            if delimiter.is_some_and(|d| m.ends_with(d)) && k.starts_with(m) {
                continue;
            }
        }
        let entry = match delimiter.and_then(|d| k[prefix.len()..].find(d).map(|i| (i, d))) {
            Some((i, d)) => (k[..prefix.len() + i + d.len()].to_owned(), true),
            None => (k.clone(), false),
        };
        if entry.1 && out.last().is_some_and(|l| l.1 && l.0 == entry.0) {
            continue;
        }
        if out.len() == max {
            return (out, true);
        }
        out.push(entry);
    }
    (out, false)
}

/// A listed object as ListObjects shows it.
fn listed_object(key: String, meta: &crate::storage::ObjectMeta) -> Entry {
    Entry::Object(Box::new(Object {
        key: Some(key),
        size: Some(meta.size as i64),
        e_tag: Some(etag(&meta.etag)),
        last_modified: Some(timestamp(meta.modified_ms)),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        checksum_algorithm: checksum::algorithms_of(&meta.checksums),
        checksum_type: (!meta.checksums.is_empty()).then(|| checksum::kind_dto(meta.checksum_kind)),
        ..Default::default()
    }))
}

impl CofferS3 {
    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        marker: Option<&str>,
        max_keys: Option<i32>,
    ) -> S3Result<Page> {
        let max = max_keys.unwrap_or(1000).clamp(0, 1000) as usize;
        if let Some(g) = &self.gateway {
            let page = g
                .list_objects(
                    bucket,
                    &ListQuery {
                        prefix,
                        delimiter,
                        after: marker,
                        max,
                    },
                )
                .await
                .map_err(storage_err)?;
            let last = page.entries.last().map(|e| e.0.clone());
            let mut entries = Vec::with_capacity(page.entries.len());
            for (k, is_prefix) in page.entries {
                if is_prefix {
                    entries.push(Entry::Prefix(k));
                    continue;
                }
                match g.open_object(bucket, &k).await {
                    Ok(o) => entries.push(listed_object(k, &o.meta)),
                    Err(StorageError::NoSuchKey) => continue, // deleted meanwhile
                    Err(e) => return Err(storage_err(e)),
                }
            }
            return Ok(Page {
                entries,
                truncated: page.truncated,
                last,
            });
        }
        let keys = self
            .store
            .list_keys(bucket, prefix, delimiter == Some("/"))
            .await
            .map_err(storage_err)?;
        let (items, truncated) = paginate(&keys, prefix, delimiter, marker, max);
        let last = items.last().map(|i| i.0.clone());
        let mut entries = Vec::with_capacity(items.len());
        for (k, is_prefix) in items {
            if is_prefix {
                entries.push(Entry::Prefix(k));
                continue;
            }
            let obj = match self.store.open_object(bucket, &k).await {
                Ok(o) => o,
                Err(StorageError::NoSuchKey) => continue, // deleted meanwhile
                Err(e) => return Err(storage_err(e)),
            };
            entries.push(listed_object(k, &obj.meta));
        }
        Ok(Page {
            entries,
            truncated,
            last,
        })
    }

    pub(crate) async fn do_list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let token = match &input.continuation_token {
            Some(t) => Some(
                String::from_utf8(B64URL.decode(t).map_err(|_| {
                    s3_error!(
                        InvalidArgument,
                        "The continuation token provided is incorrect"
                    )
                })?)
                .map_err(|_| {
                    s3_error!(
                        InvalidArgument,
                        "The continuation token provided is incorrect"
                    )
                })?,
            ),
            None => None,
        };
        let marker = match (&token, &input.start_after) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(s)) => Some(s.clone()),
            _ => None,
        };
        let page = self
            .list_page(
                &input.bucket,
                &prefix,
                input.delimiter.as_deref(),
                marker.as_deref(),
                input.max_keys,
            )
            .await?;
        let url = input
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == EncodingType::URL);
        let enc = |s: String| if url { url_encode(&s) } else { s };
        let mut contents = Vec::new();
        let mut prefixes = Vec::new();
        for e in page.entries {
            match e {
                Entry::Object(mut o) => {
                    o.key = o.key.map(enc);
                    contents.push(*o);
                }
                Entry::Prefix(p) => prefixes.push(CommonPrefix {
                    prefix: Some(enc(p)),
                }),
            }
        }
        let out = ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(enc(prefix)),
            delimiter: input.delimiter.map(enc),
            max_keys: Some(input.max_keys.unwrap_or(1000)),
            key_count: Some((contents.len() + prefixes.len()) as i32),
            continuation_token: input.continuation_token,
            next_continuation_token: page
                .truncated
                .then(|| page.last.map(|l| B64URL.encode(l)))
                .flatten(),
            is_truncated: Some(page.truncated),
            contents: Some(contents),
            common_prefixes: Some(prefixes),
            start_after: input.start_after.map(enc),
            encoding_type: input.encoding_type,
            ..Default::default()
        };
        Ok(S3Response::new(out))
    }

    pub(crate) async fn do_list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let page = self
            .list_page(
                &input.bucket,
                &prefix,
                input.delimiter.as_deref(),
                input.marker.as_deref(),
                input.max_keys,
            )
            .await?;
        let url = input
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == EncodingType::URL);
        let enc = |s: String| if url { url_encode(&s) } else { s };
        let mut contents = Vec::new();
        let mut prefixes = Vec::new();
        for e in page.entries {
            match e {
                Entry::Object(mut o) => {
                    o.key = o.key.map(enc);
                    contents.push(*o);
                }
                Entry::Prefix(p) => prefixes.push(CommonPrefix {
                    prefix: Some(enc(p)),
                }),
            }
        }
        let out = ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(enc(prefix)),
            delimiter: input.delimiter.clone().map(enc),
            marker: Some(input.marker.unwrap_or_default()),
            max_keys: Some(input.max_keys.unwrap_or(1000)),
            is_truncated: Some(page.truncated),
            next_marker: (page.truncated && input.delimiter.is_some())
                .then(|| page.last.map(enc))
                .flatten(),
            contents: Some(contents),
            common_prefixes: Some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        };
        Ok(S3Response::new(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &[&str]) -> Vec<String> {
        let mut k: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        k.sort();
        k
    }

    #[test]
    fn delimiter_groups_and_pages() {
        let k = keys(&["a/1", "a/2", "b", "c/x/y", "d"]);
        let (page, more) = paginate(&k, "", Some("/"), None, 2);
        assert_eq!(page, vec![("a/".to_owned(), true), ("b".to_owned(), false)]);
        assert!(more);
        let (page, more) = paginate(&k, "", Some("/"), Some("b"), 2);
        assert_eq!(page, vec![("c/".to_owned(), true), ("d".to_owned(), false)]);
        assert!(!more);
        let (page, _) = paginate(&k, "", Some("/"), Some("a/"), 10);
        assert_eq!(page[0].0, "b");
        let (page, _) = paginate(&k, "c/", Some("/"), None, 10);
        assert_eq!(page, vec![("c/x/".to_owned(), true)]);
        let (page, more) = paginate(&k, "", None, None, 0);
        assert!(page.is_empty() && more);
    }

    #[test]
    fn url_encoding() {
        assert_eq!(url_encode("a b/ü+%"), "a%20b/%C3%BC%2B%25");
    }
}
