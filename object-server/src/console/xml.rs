//! The S3 answers the console reads (ListBuckets, ListObjectsV2, ListObjectVersions, errors),
//! deserialized with quick-xml's serde support; unknown elements are ignored.
use serde::Deserialize;

/// `<ListAllMyBucketsResult>`.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ListBuckets {
    #[serde(default)]
    pub buckets: BucketList,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct BucketList {
    #[serde(default)]
    pub bucket: Vec<BucketEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BucketEntry {
    pub name: String,
    #[serde(default)]
    pub creation_date: String,
}

/// `<ListBucketResult>` of ListObjectsV2.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListObjects {
    #[serde(default)]
    pub contents: Vec<ObjectEntry>,
    #[serde(default)]
    pub common_prefixes: Vec<PrefixEntry>,
    #[serde(default)]
    pub is_truncated: bool,
    #[serde(default)]
    pub next_continuation_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObjectEntry {
    pub key: String,
    #[serde(default)]
    pub last_modified: String,
    #[serde(default)]
    pub size: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PrefixEntry {
    pub prefix: String,
}

/// `<ListVersionsResult>`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListVersions {
    #[serde(default)]
    pub version: Vec<VersionEntry>,
    #[serde(default)]
    pub delete_marker: Vec<VersionEntry>,
    #[serde(default)]
    pub is_truncated: bool,
    #[serde(default)]
    pub next_key_marker: Option<String>,
    #[serde(default)]
    pub next_version_id_marker: Option<String>,
    /// `url` when keys are url-encoded (asked for with `encoding-type=url`).
    #[serde(default)]
    pub encoding_type: Option<String>,
}

/// A `<Version>` or a `<DeleteMarker>` (which has no size nor ETag).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VersionEntry {
    pub key: String,
    #[serde(default)]
    pub version_id: String,
    #[serde(default)]
    pub is_latest: bool,
    #[serde(default)]
    pub last_modified: String,
    #[serde(default)]
    pub size: u64,
}

/// `<VersioningConfiguration>` (GetBucketVersioning's answer).
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Versioning {
    #[serde(default)]
    pub status: Option<String>,
}

/// `<Error>`.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct S3ErrorDoc {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// `<InitiateMultipartUploadResult>`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InitiateMultipart {
    pub upload_id: String,
}

/// Parses `body` as `T`.
pub fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> anyhow::Result<T> {
    let text = std::str::from_utf8(body)?;
    Ok(quick_xml::de::from_str(text)?)
}

/// Parses `body` as the S3 document `T` with s3s's XML reader.
pub fn dto<T: for<'x> s3s::xml::Deserialize<'x>>(body: &[u8]) -> anyhow::Result<T> {
    let mut d = s3s::xml::Deserializer::new(body);
    T::deserialize(&mut d).map_err(|e| anyhow::anyhow!("S3 answer: {e:?}"))
}

/// `doc` as the body of an S3 request, with s3s's XML writer.
pub fn body_of<T: s3s::xml::Serialize>(doc: &T) -> bytes::Bytes {
    let mut out = Vec::new();
    let mut ser = s3s::xml::Serializer::new(&mut out);
    doc.serialize(&mut ser)
        .expect("writing XML into memory does not fail");
    bytes::Bytes::from(out)
}

/// `<CompleteMultipartUpload>` for these parts (number, ETag as the part's answer gave it).
pub fn complete_multipart(parts: &[(u32, String)]) -> String {
    let mut out = String::from("<CompleteMultipartUpload>");
    for (n, etag) in parts {
        out.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag></Part>",
            quick_xml::escape::escape(etag.as_str())
        ));
    }
    out.push_str("</CompleteMultipartUpload>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_versions_and_markers() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?><ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><IsTruncated>true</IsTruncated>
<DeleteMarker><Key>a</Key><VersionId>3</VersionId><IsLatest>true</IsLatest><LastModified>t</LastModified></DeleteMarker>
<Version><Key>a</Key><VersionId>2</VersionId><IsLatest>false</IsLatest><ETag>&quot;e&quot;</ETag><Size>5</Size></Version>
<DeleteMarker><Key>b</Key><VersionId>1</VersionId><IsLatest>true</IsLatest></DeleteMarker>
<NextKeyMarker>b</NextKeyMarker><NextVersionIdMarker>1</NextVersionIdMarker></ListVersionsResult>"#;
        let v: ListVersions = parse(doc.as_bytes()).unwrap();
        assert_eq!(v.version.len(), 1);
        assert_eq!(v.delete_marker.len(), 2);
        assert_eq!(v.version[0].size, 5);
        assert!(v.is_truncated);
        assert_eq!(v.next_version_id_marker.as_deref(), Some("1"));
    }

    #[test]
    fn objects_and_errors() {
        let doc = "<ListBucketResult><Contents><Key>x/y</Key><Size>3</Size></Contents><CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes><IsTruncated>false</IsTruncated></ListBucketResult>";
        let l: ListObjects = parse(doc.as_bytes()).unwrap();
        assert_eq!(l.contents[0].key, "x/y");
        assert_eq!(l.common_prefixes[0].prefix, "p/");
        let e: S3ErrorDoc =
            parse(b"<Error><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>")
                .unwrap();
        assert_eq!(e.code, "AccessDenied");
        let c = complete_multipart(&[(1, "\"a<\"".into())]);
        assert!(c.contains("<ETag>&quot;a&lt;&quot;</ETag>"));
    }
}
