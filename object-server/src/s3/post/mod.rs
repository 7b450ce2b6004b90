//! Browser uploads (POST Object): an HTML form, signed by a POST policy, that stores one object.
//!
//! s3s 0.14.1 does most of it, and this module builds on it. s3s parses the form up to its
//! `file` part, checks the policy's signature (SigV4 with the secret key [`Auth`] gives for the
//! form's access key, root or user; or SigV2), refuses an expired policy, reads the file into
//! memory (up to the smaller of the policy's `content-length-range` maximum and
//! [`MAX_FILE_SIZE`], so an oversized file is refused with `EntityTooLarge` as soon as it passes
//! that bound, before anything is stored), checks every condition (`eq`, `starts-with`, the
//! `bucket` condition against the URL's bucket, the length range) and that every field but
//! `policy`, `x-amz-signature`, `file`, `submit` and `x-ignore-*` has one. It then hands the
//! fields, parsed as PutObject's headers, to our access hook `post_object` and to `put_object`,
//! which stores the object exactly as a PUT (same SSE rules, bucket default encryption,
//! metadata, tags), and answers 204, 200, 201 (XML) or 303 to `success_action_redirect`.
//!
//! What s3s lacks, done here:
//! - [`resolve`], from the access hook before the decision: the form's head, read again
//!   ([`form`]) because s3s drops it, gives `${filename}` in the key (so the decision is on the
//!   key actually written), AWS's rule that the SSE fields too need a condition (s3s exempts
//!   them, as MinIO does), the `tagging` field (XML), the `acl` field, and the signature that
//!   signed the form (`s3:signatureversion`);
//! - [`PostForm::finish`]: AWS's codes for the refusals s3s words differently ([`refusal`]),
//!   and the key a `${filename}` upload was stored under in the 201 body and the redirect (s3s
//!   answers with the key as the form spelled it);
//! - [`s3s_config`]: bounds on the form's fields and on the file s3s holds in memory.
//!
//! [`Auth`]: crate::iam::access::Auth
use std::sync::{Arc, Mutex};

use s3s::config::S3Config;
use s3s::dto::{ObjectCannedACL, PostObjectInput, PostResponse, Tagging};
use s3s::post_policy::{PostPolicy, PostPolicyCondition};
use s3s::{S3Error, S3Request, S3Result, s3_error};

mod form;
mod refusal;

use form::{FormHead, Recorder, Recording};

/// The largest file one form may upload. s3s 0.14.1 holds a form's file in memory until the
/// policy is checked, so this bounds the memory of one upload (AWS allows 5 GB; larger files go
/// through a PUT or a multipart upload, which stream).
pub const MAX_FILE_SIZE: u64 = 64 << 20;
/// The most bytes of a form before its file (every field, their part headers and boundaries).
const MAX_HEAD_SIZE: usize = 1 << 20;
/// The largest single field (a policy with many conditions is a few KiB).
const MAX_FIELD_SIZE: usize = 256 << 10;

/// s3s's configuration: its defaults, with the bounds of a browser form.
pub fn s3s_config() -> S3Config {
    let mut c = S3Config::default();
    c.post_object_max_file_size = MAX_FILE_SIZE;
    c.form_max_fields_size = MAX_HEAD_SIZE;
    c.form_max_field_size = MAX_FIELD_SIZE;
    c
}

/// A browser form in flight, shared by the server's front (which sees the body and the
/// response) and the access hook (which sees the parsed input); kept in the request extensions.
#[derive(Clone)]
pub struct PostForm(Arc<State>);

struct State {
    boundary: String,
    recording: Arc<Mutex<Recording>>,
    /// Set by [`resolve`] when `${filename}` made the key: `(bucket, key)` as stored.
    resolved: Mutex<Option<(String, String)>>,
}

/// How a form was signed, as s3s checked it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormSignature {
    /// `x-amz-signature`: SigV4.
    V4,
    /// `signature` (with `AWSAccessKeyId`): SigV2.
    V2,
    /// No signature: an anonymous upload, allowed only by a bucket policy.
    None,
}

impl FormSignature {
    /// The value of `s3:signatureversion`.
    pub fn condition_value(self) -> Option<&'static str> {
        match self {
            FormSignature::V4 => Some("AWS4-HMAC-SHA256"),
            FormSignature::V2 => Some("AWS"),
            FormSignature::None => None,
        }
    }
}

impl PostForm {
    /// Starts following `req` if it is a form upload (a POST of `multipart/form-data`, which is
    /// what s3s takes for one): its body is recorded (its first [`MAX_HEAD_SIZE`] bytes) and the
    /// handle is put in its extensions.
    pub fn attach(req: http::Request<s3s::Body>) -> (http::Request<s3s::Body>, Option<PostForm>) {
        if req.method() != http::Method::POST {
            return (req, None);
        }
        let Some(boundary) = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|ct| multer::parse_boundary(ct).ok())
        else {
            return (req, None);
        };
        let recording = Arc::new(Mutex::new(Recording::new(MAX_HEAD_SIZE)));
        let form = PostForm(Arc::new(State {
            boundary,
            recording: recording.clone(),
            resolved: Mutex::new(None),
        }));
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(form.clone());
        let body = s3s::Body::http_body(Recorder::new(body, recording));
        (http::Request::from_parts(parts, body), Some(form))
    }

    async fn head(&self) -> Option<FormHead> {
        let chunks = self
            .0
            .recording
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        FormHead::parse(chunks, &self.0.boundary).await
    }

    /// The response to the form: s3s's, with AWS's code for a refusal s3s words differently,
    /// and the key as stored where `${filename}` made it.
    pub fn finish(self, resp: http::Response<s3s::Body>) -> http::Response<s3s::Body> {
        // Whatever happened, the recording is of no more use.
        drop(self.0.recording.lock().map(|mut r| r.take()));
        if resp.status().is_client_error() {
            return aws_refusal(resp);
        }
        let resolved = self
            .0
            .resolved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match resolved {
            Some((bucket, key)) => with_stored_key(resp, &bucket, &key),
            None => resp,
        }
    }
}

fn aws_refusal(resp: http::Response<s3s::Body>) -> http::Response<s3s::Body> {
    let Some(xml) = resp.body().bytes() else {
        return resp;
    };
    let Some(err) = refusal::read_error(&xml).and_then(|(c, m)| refusal::aws_refusal(&c, &m))
    else {
        return resp;
    };
    err.to_http_response().unwrap_or(resp)
}

/// s3s's success answer with `key` in place of the key as the form spelled it.
fn with_stored_key(
    mut resp: http::Response<s3s::Body>,
    bucket: &str,
    key: &str,
) -> http::Response<s3s::Body> {
    match resp.status() {
        http::StatusCode::CREATED => {
            let Some(etag) = resp.body().bytes().and_then(|b| created_etag(&b)) else {
                return resp;
            };
            let location = format!("/{bucket}/{key}");
            let doc = PostResponse {
                location: &location,
                bucket,
                key,
                etag: &etag,
            };
            let mut xml = Vec::new();
            let mut ser = s3s::xml::Serializer::new(&mut xml);
            if ser
                .decl()
                .and_then(|()| s3s::xml::Serialize::serialize(&doc, &mut ser))
                .is_err()
            {
                return resp;
            }
            resp.headers_mut().remove(http::header::CONTENT_LENGTH);
            *resp.body_mut() = s3s::Body::from(xml);
            resp
        }
        http::StatusCode::SEE_OTHER => {
            let fixed = resp
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| url::Url::parse(l).ok())
                .and_then(|url| redirect_with_key(url, key))
                .and_then(|l| http::HeaderValue::from_str(&l).ok());
            if let Some(v) = fixed {
                resp.headers_mut().insert(http::header::LOCATION, v);
            }
            resp
        }
        _ => resp,
    }
}

/// The ETag in s3s's 201 body.
fn created_etag(xml: &[u8]) -> Option<String> {
    let mut d = s3s::xml::Deserializer::new(xml);
    let mut etag = None;
    d.named_element("PostResponse", |d| {
        d.for_each_element(|d, name| {
            if name == b"ETag" {
                etag = Some(d.content::<String>()?);
            } else {
                d.content::<String>()?;
            }
            Ok(())
        })
    })
    .ok()?;
    etag
}

/// The redirect URL with its last `key` parameter (the one s3s appended, after `bucket`) set to
/// `key`.
fn redirect_with_key(mut url: url::Url, key: &str) -> Option<String> {
    let mut pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let last = pairs.iter().rposition(|(k, _)| k == "key")?;
    pairs[last].1 = key.to_owned();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    Some(url.into())
}

fn malformed() -> S3Error {
    s3_error!(
        MalformedPOSTRequest,
        "The body of your POST request is not well-formed multipart/form-data."
    )
}

/// Completes a form upload's input from the form's head before it is authorized: `${filename}`
/// in the key, the `tagging` and `acl` fields; refuses SSE fields the policy does not name (AWS
/// exempts none of them). Returns how the form was signed. Called once, from the access hook
/// (`iam::access`), the first code of ours that sees the parsed form.
pub async fn resolve(req: &mut S3Request<PostObjectInput>) -> S3Result<FormSignature> {
    let Some(form) = req.extensions.get::<PostForm>().cloned() else {
        tracing::error!("a POST Object without its form: PostForm::attach was not called");
        return Err(s3_error!(InternalError));
    };
    let head = form.head().await.ok_or_else(malformed)?;
    let input = &mut req.input;
    // Both parsers must have read the same form.
    if head.field("key") != Some(input.key.as_str()) {
        return Err(malformed());
    }
    let signature = if head.field("x-amz-signature").is_some() {
        FormSignature::V4
    } else if head.field("signature").is_some() {
        FormSignature::V2
    } else {
        FormSignature::None
    };
    if (signature == FormSignature::None) != req.credentials.is_none() {
        return Err(malformed());
    }
    // s3s checked this policy but does not hand it on (its PostObject→PutObject conversion
    // drops it); it is read again, with s3s's parser, from the field whose signature s3s checked.
    let policy = match head.field("policy") {
        Some(b64) => Some(PostPolicy::from_base64(b64).map_err(|_| malformed())?),
        None => None,
    };
    if let Some(policy) = &policy {
        for (name, _) in &head.fields {
            let named = policy.conditions.iter().any(|c| match c {
                PostPolicyCondition::Eq { field, .. }
                | PostPolicyCondition::StartsWith { field, .. } => field == name,
                PostPolicyCondition::ContentLengthRange { .. } => false,
            });
            if name.starts_with("x-amz-server-side-encryption") && !named {
                return Err(refusal::extra_field(name));
            }
        }
    }
    if let Some(acl) = head.field("acl") {
        if input.acl.is_some() {
            return Err(s3_error!(
                InvalidArgument,
                "A form may give the ACL once: 'acl' or 'x-amz-acl'."
            ));
        }
        input.acl = Some(ObjectCannedACL::from(acl.to_owned()));
    }
    if let Some(xml) = head.field("tagging") {
        if input.tagging.is_some() {
            return Err(s3_error!(
                InvalidArgument,
                "A form may give the tags once: 'tagging' or 'x-amz-tagging'."
            ));
        }
        input.tagging = Some(tagging_header(xml)?);
    }
    if input.key.contains("${filename}")
        && let Some(name) = head.file_name.as_deref().filter(|n| !n.is_empty())
    {
        input.key = input.key.replace("${filename}", name);
        *form.0.resolved.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((input.bucket.clone(), input.key.clone()));
    }
    Ok(signature)
}

/// The form's `tagging` field (a `Tagging` XML document, as AWS's POST takes it) in the form of
/// the `x-amz-tagging` header, which PutObject checks and stores.
fn tagging_header(xml: &str) -> S3Result<String> {
    let mut d = s3s::xml::Deserializer::new(xml.as_bytes());
    let tagging: Tagging = s3s::xml::Deserialize::deserialize(&mut d).map_err(|_| {
        s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        )
    })?;
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for t in tagging.tag_set {
        out.append_pair(
            t.key.as_deref().unwrap_or_default(),
            t.value.as_deref().unwrap_or_default(),
        );
    }
    Ok(out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use s3s::S3ErrorCode;

    #[test]
    fn the_redirect_gets_the_stored_key() {
        let url = url::Url::parse(
            "https://app.example/done?key=mine&bucket=b&key=up%2F%24%7Bfilename%7D&etag=e",
        )
        .unwrap();
        let fixed = redirect_with_key(url, "up/cat & dog.png").unwrap();
        let back = url::Url::parse(&fixed).unwrap();
        let pairs: Vec<(String, String)> = back.query_pairs().into_owned().collect();
        assert_eq!(
            pairs[0],
            ("key".into(), "mine".into()),
            "the app's own parameter"
        );
        assert_eq!(pairs[2], ("key".into(), "up/cat & dog.png".into()));
        assert_eq!(pairs[3], ("etag".into(), "e".into()));
    }

    #[test]
    fn the_created_body_keeps_s3s_etag() {
        let doc = PostResponse {
            location: "/b/k",
            bucket: "b",
            key: "k",
            etag: "\"abc\"",
        };
        let mut xml = Vec::new();
        let mut ser = s3s::xml::Serializer::new(&mut xml);
        ser.decl().unwrap();
        s3s::xml::Serialize::serialize(&doc, &mut ser).unwrap();
        assert_eq!(created_etag(&xml).as_deref(), Some("\"abc\""));
    }

    #[test]
    fn tagging_field_becomes_the_header() {
        let xml = "<Tagging><TagSet><Tag><Key>team</Key><Value>a b&amp;c</Value></Tag>\
                   <Tag><Key>x=y</Key><Value></Value></Tag></TagSet></Tagging>";
        assert_eq!(tagging_header(xml).unwrap(), "team=a+b%26c&x%3Dy=");
        let e = tagging_header("<Tagging>").unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::MalformedXML);
    }

    #[tokio::test]
    async fn attach_follows_only_form_posts() {
        let req = |method: &str, ct: &str| {
            http::Request::builder()
                .method(method)
                .header("content-type", ct)
                .body(s3s::Body::from(Bytes::from_static(b"--b\r\n")))
                .unwrap()
        };
        assert!(
            PostForm::attach(req("POST", "multipart/form-data; boundary=b"))
                .1
                .is_some()
        );
        assert!(
            PostForm::attach(req("PUT", "multipart/form-data; boundary=b"))
                .1
                .is_none()
        );
        assert!(PostForm::attach(req("POST", "application/xml")).1.is_none());
        let (r, form) = PostForm::attach(req("POST", "multipart/form-data; boundary=b"));
        assert!(r.extensions().get::<PostForm>().is_some());
        use http_body_util::BodyExt as _;
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"--b\r\n");
        let kept = form.unwrap().0.recording.lock().unwrap().take();
        assert_eq!(kept, vec![Bytes::from_static(b"--b\r\n")]);
    }
}
