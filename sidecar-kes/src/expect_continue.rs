//! Requests sent with `Expect: 100-continue` that are answered without reading their body.
//!
//! hyper sends `100 Continue` only when the body is first read. When a request is refused
//! before that (a denied request, an unknown path, a failed precondition), the client may rightly
//! never send the body (botocore and curl don't), while hyper, still expecting it, drains the
//! next request's first bytes as that body: the next request on the connection is then garbled
//! (an S3 request fails as `SignatureDoesNotMatch`, a KES request as a bad method or path). Such
//! an answer therefore closes the connection, as Go's net/http does for MinIO and KES.
//!
//! Shared by both servers of this workspace: `kes` and `object-server` serve through hyper alike.
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use hyper::body::{Body, Frame, SizeHint};

/// A request, sorted by whether its body needs watching.
pub enum Watch<B> {
    /// Nothing to watch (no `Expect`, no body, or not HTTP/1.1): the request as it came.
    Plain(http::Request<B>),
    /// An HTTP/1.1 request that expects `100 Continue` and has a body, with the handle that
    /// tells whether that body was ever read.
    Watched(http::Request<Watched<B>>, Unread),
}

/// Sorts `req`: only a request that expects `100 Continue` and has a body is wrapped, so every
/// other one passes as it is.
pub fn watch<B: Body>(req: http::Request<B>) -> Watch<B> {
    let expects = req.version() == http::Version::HTTP_11
        && req
            .headers()
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
        && req.body().size_hint().exact() != Some(0);
    if !expects {
        return Watch::Plain(req);
    }
    let unread = Arc::new(AtomicBool::new(true));
    let flag = unread.clone();
    let req = req.map(|inner| Watched {
        inner,
        unread: flag,
    });
    Watch::Watched(req, Unread(unread))
}

/// Tells whether the body of a watched request was ever read.
pub struct Unread(Arc<AtomicBool>);

impl Unread {
    /// Marks `resp` as the connection's last when the watched body was never read.
    pub fn close_if_unread<R>(self, mut resp: http::Response<R>) -> http::Response<R> {
        if self.0.load(Ordering::Relaxed) {
            resp.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        resp
    }
}

/// A request body that records the first time it is read.
pub struct Watched<B> {
    inner: B,
    unread: Arc<AtomicBool>,
}

impl<B: Body + Unpin> Body for Watched<B> {
    type Data = B::Data;
    type Error = B::Error;

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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    fn request(expect: bool, body: &'static str) -> http::Request<Full<bytes::Bytes>> {
        let mut b = http::Request::builder().method("POST").uri("/v1/x");
        if expect {
            b = b.header("expect", "100-Continue");
        }
        b.body(Full::new(bytes::Bytes::from_static(body.as_bytes())))
            .unwrap()
    }

    fn closes(resp: &http::Response<()>) -> bool {
        resp.headers().get(http::header::CONNECTION) == Some(&"close".parse().unwrap())
    }

    #[test]
    fn only_expecting_requests_with_a_body_are_watched() {
        assert!(matches!(watch(request(false, "body")), Watch::Plain(_)));
        assert!(matches!(watch(request(true, "")), Watch::Plain(_)));
        let mut old = request(true, "body");
        *old.version_mut() = http::Version::HTTP_10;
        assert!(matches!(watch(old), Watch::Plain(_)));
        assert!(matches!(watch(request(true, "body")), Watch::Watched(..)));
    }

    #[tokio::test]
    async fn an_answer_before_the_body_is_read_closes_the_connection() {
        let Watch::Watched(_, unread) = watch(request(true, "body")) else {
            panic!("not watched")
        };
        assert!(closes(&unread.close_if_unread(http::Response::new(()))));

        let Watch::Watched(req, unread) = watch(request(true, "body")) else {
            panic!("not watched")
        };
        let read = req.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&read[..], b"body");
        assert!(!closes(&unread.close_if_unread(http::Response::new(()))));
    }
}
