//! Signature Version 2, for older clients, as MinIO accepts it.
//!
//! s3s verifies SigV2 itself, with the secret keys [`Auth`] gives it (so the root user and every
//! enabled IAM user may sign with it): the header form `Authorization: AWS <key>:<signature>`,
//! presigned URLs `?AWSAccessKeyId=&Expires=&Signature=` (403 `AccessDenied` "Request has
//! expired" once `Expires` has passed) and the browser POST form; a wrong signature is 403
//! `SignatureDoesNotMatch`. The policy sees `s3:signatureversion` `AWS` and `s3:authType`
//! `REST-HEADER` or `REST-QUERY-STRING` ([`crate::iam::action::signature_kind`]), so a bucket
//! policy can refuse V2. This module adds the two things s3s leaves out:
//!
//! - The time stamp rule AWS documents for the header form: its `x-amz-date` (or else `Date`)
//!   must be within 15 minutes of our clock, else 403 `RequestTimeTooSkewed` ([`check_time`]).
//!   Without it a captured V2 request could be replayed for ever; with it, for 15 minutes, as
//!   with SigV4. (A presigned URL is bounded by its `Expires` instead.)
//! - The resource of a bucket: for a path-style request on a bucket, botocore's V2 signers sign
//!   `/bucket/` (the canonical resource AWS gives a bucket) while they send `/bucket`; clients
//!   that follow "the path of the Request-URI" (rclone) sign `/bucket`. s3s checks only the
//!   latter. [`BucketResource`] asks s3s whether the signature covers `/bucket/` and then passes
//!   the request on with that path, which s3s reads as the same bucket. It never widens what a
//!   signature allows: the request that runs is the one that was signed.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::{Timestamp, TimestampFormat};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

use crate::iam::Iam;
use crate::iam::access::Auth;
use crate::iam::action::{query_pairs, signature_kind};
use crate::vhost::Domains;

/// How far a header-signed request's time may be from ours (AWS's 15 minutes).
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// Refuses a request signed with an `Authorization: AWS …` header whose time stamp is missing,
/// unreadable or more than [`MAX_SKEW`] away from `now`. Any other request passes. Call it only
/// for a request s3s accepted as signed.
pub fn check_time(
    headers: &http::HeaderMap,
    query: Option<&str>,
    now: time::OffsetDateTime,
) -> S3Result<()> {
    if signature_kind(headers, &query_pairs(query)) != Some(("REST-HEADER", "AWS")) {
        return Ok(());
    }
    // AWS: "if you include the x-amz-date header, [it] takes precedence over the Date header".
    let stamp = headers
        .get("x-amz-date")
        .or_else(|| headers.get(http::header::DATE))
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date);
    let Some(stamp) = stamp else {
        return Err(s3_error!(
            AccessDenied,
            "AWS authentication requires a valid Date or x-amz-date header"
        ));
    };
    if (now - stamp).unsigned_abs() > MAX_SKEW {
        return Err(S3Error::with_message(
            S3ErrorCode::RequestTimeTooSkewed,
            "The difference between the request time and the server's time is too large.",
        ));
    }
    Ok(())
}

/// An HTTP date as V2 clients send it: RFC 1123 with `GMT` (botocore, the AWS SDKs) or with a
/// numeric zone (`+0000`, AWS's own examples).
fn parse_http_date(s: &str) -> Option<time::OffsetDateTime> {
    if let Ok(t) = Timestamp::parse(TimestampFormat::HttpDate, s) {
        return Some(t.into());
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc2822).ok()
}

/// Finds which path a SigV2 signature on a path-style bucket request covers (module doc).
pub struct BucketResource {
    /// s3s with our secret keys, an S3 that implements nothing, and an access check that
    /// records "the signature held" and refuses: nothing a probe asks for ever runs.
    probe: S3Service,
    domains: Option<Domains>,
}

/// Set by the probe's access check, which s3s calls only once the signature held.
#[derive(Clone)]
struct Covered(Arc<AtomicBool>);

struct Nothing;

impl s3s::S3 for Nothing {}

struct RecordAndRefuse;

#[async_trait::async_trait]
impl S3Access for RecordAndRefuse {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if let Some(c) = cx.extensions_mut().get::<Covered>() {
            c.0.store(true, Ordering::SeqCst);
        }
        Err(s3_error!(AccessDenied))
    }
}

impl BucketResource {
    /// The probe for the server's IAM state and virtual-host domains.
    pub fn new(iam: Arc<Iam>, domains: Option<Domains>) -> Self {
        let mut b = S3ServiceBuilder::new(Nothing);
        b.set_auth(Auth(iam));
        b.set_access(RecordAndRefuse);
        if let Some(d) = &domains {
            b.set_host(d.clone());
        }
        Self {
            probe: b.build(),
            domains,
        }
    }

    /// `req` with the path `/bucket/` when it is a SigV2-signed path-style request on
    /// `/bucket` whose signature covers `/bucket/`; otherwise `req` unchanged (s3s then checks
    /// it as sent). The body is never touched.
    pub async fn resolve<B>(&self, mut req: http::Request<B>) -> http::Request<B> {
        let Some(slashed) = slashed_bucket_uri(&req, self.domains.as_ref()) else {
            return req;
        };
        let covered = Covered(Arc::new(AtomicBool::new(false)));
        let mut probe = http::Request::new(s3s::Body::empty());
        *probe.method_mut() = req.method().clone();
        *probe.uri_mut() = slashed.clone();
        *probe.version_mut() = req.version();
        *probe.headers_mut() = req.headers().clone();
        probe.extensions_mut().insert(covered.clone());
        // The probe's answer is always a refusal; only the flag says anything.
        let _ = self.probe.call(probe).await;
        if covered.0.load(Ordering::SeqCst) {
            *req.uri_mut() = slashed;
        }
        req
    }
}

/// The `/bucket/` form of a request [`BucketResource`] probes, if it is one: SigV2-signed,
/// path style, on a bucket, without the slash.
fn slashed_bucket_uri<B>(req: &http::Request<B>, domains: Option<&Domains>) -> Option<http::Uri> {
    let uri = req.uri();
    let query = uri.query();
    let v2 = matches!(
        signature_kind(req.headers(), &query_pairs(query)),
        Some((_, "AWS"))
    );
    let bucket = uri.path().strip_prefix('/')?;
    if !v2 || bucket.is_empty() || bucket.contains('/') {
        return None;
    }
    // Virtual-host style: `/name` is an object there, and `/name/` another one.
    // (HTTP/2 names the host in the URI's authority, which s3s reads as the Host header.)
    let host = match req.headers().get(http::header::HOST) {
        Some(h) => Some(h.to_str().ok()?),
        None => uri.authority().map(http::uri::Authority::as_str),
    };
    if let (Some(domains), Some(host)) = (domains, host)
        && domains.bucket_of(host).is_some()
    {
        return None;
    }
    let mut parts = uri.clone().into_parts();
    let pq = match query {
        Some(q) => format!("/{bucket}/?{q}"),
        None => format!("/{bucket}/"),
    };
    parts.path_and_query = Some(pq.parse().ok()?);
    http::Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn at(s: &str) -> time::OffsetDateTime {
        parse_http_date(s).unwrap()
    }

    #[test]
    fn http_dates_in_both_zone_spellings() {
        assert_eq!(
            at("Tue, 27 Mar 2007 19:36:42 GMT"),
            at("Tue, 27 Mar 2007 19:36:42 +0000")
        );
        assert_eq!(
            at("Tue, 27 Mar 2007 19:36:42 GMT").unix_timestamp(),
            1175024202
        );
        assert!(parse_http_date("2007-03-27T19:36:42Z").is_none());
        assert!(parse_http_date("").is_none());
    }

    #[test]
    fn header_signed_requests_must_be_recent() {
        let now = at("Tue, 27 Mar 2007 19:36:42 GMT");
        let v2 = |date: &str| headers(&[("authorization", "AWS ak:sig"), ("date", date)]);
        assert!(check_time(&v2("Tue, 27 Mar 2007 19:36:42 GMT"), None, now).is_ok());
        assert!(check_time(&v2("Tue, 27 Mar 2007 19:51:42 GMT"), None, now).is_ok());
        assert!(check_time(&v2("Tue, 27 Mar 2007 19:21:42 GMT"), None, now).is_ok());
        for late in [
            "Tue, 27 Mar 2007 19:51:43 GMT",
            "Tue, 27 Mar 2007 19:21:41 GMT",
        ] {
            let e = check_time(&v2(late), None, now).unwrap_err();
            assert_eq!(e.code(), &S3ErrorCode::RequestTimeTooSkewed, "{late}");
        }
        // x-amz-date wins over Date.
        let h = headers(&[
            ("authorization", "AWS ak:sig"),
            ("date", "Tue, 27 Mar 2007 19:36:42 GMT"),
            ("x-amz-date", "Mon, 26 Mar 2007 19:36:42 GMT"),
        ]);
        let e = check_time(&h, None, now).unwrap_err();
        assert_eq!(e.code(), &S3ErrorCode::RequestTimeTooSkewed);
        // No usable time stamp at all.
        for h in [
            headers(&[("authorization", "AWS ak:sig")]),
            headers(&[("authorization", "AWS ak:sig"), ("date", "yesterday")]),
        ] {
            let e = check_time(&h, None, now).unwrap_err();
            assert_eq!(e.code(), &S3ErrorCode::AccessDenied);
        }
    }

    #[test]
    fn only_the_v2_header_form_is_timed_here() {
        let now = at("Tue, 27 Mar 2007 19:36:42 GMT");
        let old = "Mon, 01 Jan 2001 00:00:00 GMT";
        // Presigned V2: its Expires bounds it (s3s checks that).
        let h = headers(&[("date", old)]);
        assert!(check_time(&h, Some("AWSAccessKeyId=a&Expires=1&Signature=s"), now).is_ok());
        // A V2 query signature wins over a header (s3s's order): not the header form.
        let h = headers(&[("authorization", "AWS ak:sig"), ("date", old)]);
        assert!(check_time(&h, Some("Signature=s"), now).is_ok());
        // SigV4: s3s checks its own time.
        let h = headers(&[
            ("authorization", "AWS4-HMAC-SHA256 Credential=x"),
            ("date", old),
        ]);
        assert!(check_time(&h, None, now).is_ok());
    }

    fn request(uri: &str, pairs: &[(&'static str, &str)]) -> http::Request<()> {
        let mut r = http::Request::new(());
        *r.uri_mut() = uri.parse().unwrap();
        *r.headers_mut() = headers(pairs);
        r
    }

    #[test]
    fn candidates_are_v2_path_style_bucket_requests_without_a_slash() {
        let domains = Domains::parse("example.com").unwrap();
        let v2 = [("authorization", "AWS ak:sig")];
        let got = |uri: &str, h: &[(&'static str, &str)]| {
            slashed_bucket_uri(&request(uri, h), Some(&domains)).map(|u| u.to_string())
        };
        assert_eq!(got("/bkt", &v2).as_deref(), Some("/bkt/"));
        assert_eq!(
            got("/bkt?list-type=2&prefix=a%2F", &v2).as_deref(),
            Some("/bkt/?list-type=2&prefix=a%2F")
        );
        assert_eq!(
            got("/bkt?AWSAccessKeyId=a&Expires=1&Signature=s", &[]).as_deref(),
            Some("/bkt/?AWSAccessKeyId=a&Expires=1&Signature=s")
        );
        // Already slashed, an object, the root, SigV4, unsigned: nothing to find.
        assert_eq!(got("/bkt/", &v2), None);
        assert_eq!(got("/bkt/key", &v2), None);
        assert_eq!(got("/", &v2), None);
        assert_eq!(
            got(
                "/bkt",
                &[("authorization", "AWS4-HMAC-SHA256 Credential=x")]
            ),
            None
        );
        assert_eq!(got("/bkt", &[]), None);
        // Virtual-host style: `/bkt` is the object `bkt` of the host's bucket.
        assert_eq!(
            got(
                "/bkt",
                &[
                    ("authorization", "AWS ak:sig"),
                    ("host", "photos.example.com")
                ]
            ),
            None
        );
        assert_eq!(
            got(
                "/bkt",
                &[("authorization", "AWS ak:sig"), ("host", "example.com")]
            )
            .as_deref(),
            Some("/bkt/")
        );
    }
}
