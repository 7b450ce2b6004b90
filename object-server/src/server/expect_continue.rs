//! Requests sent with `Expect: 100-continue` that are answered without reading their body.
//!
//! hyper sends `100 Continue` only when the body is first read. When a request is refused
//! before that (a failed precondition, a denied request), the client may rightly never send the
//! body (botocore doesn't), while hyper, still expecting it, takes the next request's first
//! bytes for it: that request then fails, typically as `SignatureDoesNotMatch`. Such an answer
//! therefore closes the connection, as Go's net/http does for MinIO.
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use hyper::body::{Body as HttpBody, Frame, SizeHint};
use s3s::Body;

/// Tells whether the body of a watched request was ever read.
pub struct Unread(Arc<AtomicBool>);

/// Watches the body of an HTTP/1.1 request that expects `100 Continue` and has a body; every
/// other request passes untouched (and unwrapped, so the common path costs nothing).
pub fn watch(req: http::Request<Body>) -> (http::Request<Body>, Option<Unread>) {
    let expects = req.version() == http::Version::HTTP_11
        && req
            .headers()
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
        && req.body().size_hint().exact() != Some(0);
    if !expects {
        return (req, None);
    }
    let unread = Arc::new(AtomicBool::new(true));
    let flag = unread.clone();
    let req = req.map(|inner| {
        Body::http_body(Watched {
            inner,
            unread: flag,
        })
    });
    (req, Some(Unread(unread)))
}

/// Marks `resp` as the connection's last when the watched body was never read.
pub fn close_if_unread<B>(
    mut resp: http::Response<B>,
    unread: Option<Unread>,
) -> http::Response<B> {
    if unread.is_some_and(|u| u.0.load(Ordering::Relaxed)) {
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    resp
}

struct Watched {
    inner: Body,
    unread: Arc<AtomicBool>,
}

impl HttpBody for Watched {
    type Data = bytes::Bytes;
    type Error = s3s::StdError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        // Polling is what makes hyper send `100 Continue`, whatever it then returns.
        self.unread.store(false, Ordering::Relaxed);
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
