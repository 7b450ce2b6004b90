//! AWS's answers to a browser form s3s refuses before any hook of ours runs.
//!
//! s3s 0.14.1 checks the policy while it prepares the request and answers on its own: a failed
//! condition or a form field that differs from the URL's bucket is `400 InvalidPolicyDocument`,
//! a missing `key` field `400 InvalidRequest`. AWS answers `403 AccessDenied` ("Invalid according
//! to Policy: …") to every form the policy does not allow — an expired policy, a failed or
//! missing condition, a field the policy does not name — and `400 InvalidArgument` to a form
//! without a key. The refusal is recognised by s3s's code and wording (s3s is pinned, and
//! `test_post_object.py` asserts each of these answers); the status, code and message are
//! replaced, nothing else about the decision changes. A malformed policy stays
//! `400 InvalidPolicyDocument`, as AWS has it.
use s3s::dto::Error as ErrorDocument;
use s3s::{S3Error, S3ErrorCode};

/// AWS's words for a form the policy does not allow.
const NOT_BY_POLICY: &str = "Invalid according to Policy";

/// The refusal of a form field that no condition of the policy names (AWS's wording).
pub(super) fn extra_field(name: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::AccessDenied,
        format!("{NOT_BY_POLICY}: Extra input fields: {name}"),
    )
}

/// AWS's refusal in place of s3s's, or `None` when s3s's answer is already AWS's.
pub(super) fn aws_refusal(code: &S3ErrorCode, message: &str) -> Option<S3Error> {
    let denied = |why: String| Some(S3Error::with_message(S3ErrorCode::AccessDenied, why));
    match code {
        S3ErrorCode::InvalidPolicyDocument
            if message.starts_with("Policy condition ")
                || message.starts_with("Bucket in form field ")
                || message.ends_with(" does not match policy") =>
        {
            denied(format!(
                "{NOT_BY_POLICY}: Policy Condition failed: {message}"
            ))
        }
        S3ErrorCode::AccessDenied if message == "Request has expired" => {
            denied(format!("{NOT_BY_POLICY}: Policy expired."))
        }
        S3ErrorCode::AccessDenied if message.starts_with("Each form field that you specify") => {
            // s3s: `… "NAME" not specified in the policy.`; a field name holds no quote.
            let name = message.split('"').nth(1)?;
            Some(extra_field(name))
        }
        S3ErrorCode::InvalidRequest if message == "missing key" => Some(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.",
        )),
        _ => None,
    }
}

/// The code and message of an S3 error document.
pub(super) fn read_error(xml: &[u8]) -> Option<(S3ErrorCode, String)> {
    let mut d = s3s::xml::Deserializer::new(xml);
    let doc: ErrorDocument = d.named_element("Error", |d| d.content()).ok()?;
    Some((S3ErrorCode::from_bytes(doc.code?.as_bytes())?, doc.message?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(code: S3ErrorCode, msg: &str) -> Option<(String, u16, String)> {
        aws_refusal(&code, msg).map(|e| {
            (
                e.code().as_str().to_owned(),
                e.status_code().unwrap().as_u16(),
                e.message().unwrap().to_owned(),
            )
        })
    }

    #[test]
    fn policy_refusals_are_access_denied() {
        let (code, status, msg) = mapped(
            S3ErrorCode::InvalidPolicyDocument,
            "Policy condition 'starts-with' for field 'key' failed: expected prefix 'a/', got 'b'",
        )
        .unwrap();
        assert_eq!((code.as_str(), status), ("AccessDenied", 403));
        assert!(msg.starts_with("Invalid according to Policy: Policy Condition failed: "));
        let (code, _, msg) = mapped(S3ErrorCode::AccessDenied, "Request has expired").unwrap();
        assert_eq!(
            (code.as_str(), msg.as_str()),
            (
                "AccessDenied",
                "Invalid according to Policy: Policy expired."
            )
        );
        let extra = "Each form field that you specify in a form must appear in the list of policy \
                     conditions. \"x-amz-meta-b\" not specified in the policy.";
        let (_, _, msg) = mapped(S3ErrorCode::AccessDenied, extra).unwrap();
        assert_eq!(
            msg,
            "Invalid according to Policy: Extra input fields: x-amz-meta-b"
        );
        let (code, status, _) = mapped(S3ErrorCode::InvalidRequest, "missing key").unwrap();
        assert_eq!((code.as_str(), status), ("InvalidArgument", 400));
    }

    #[test]
    fn other_refusals_are_left_alone() {
        for (code, msg) in [
            (
                S3ErrorCode::InvalidPolicyDocument,
                "failed to parse POST policy",
            ),
            (S3ErrorCode::AccessDenied, "Access Denied."),
            (S3ErrorCode::SignatureDoesNotMatch, ""),
            (S3ErrorCode::EntityTooLarge, "Your proposed upload exceeds"),
        ] {
            assert_eq!(mapped(code, msg), None);
        }
    }

    #[test]
    fn error_documents_are_read_with_s3s() {
        let xml = S3Error::with_message(S3ErrorCode::InvalidPolicyDocument, "Policy condition x")
            .to_http_response()
            .unwrap()
            .into_body()
            .bytes()
            .unwrap();
        assert_eq!(
            read_error(&xml),
            Some((
                S3ErrorCode::InvalidPolicyDocument,
                "Policy condition x".to_owned()
            ))
        );
        assert_eq!(read_error(b"<Error><Code>X"), None);
    }
}
