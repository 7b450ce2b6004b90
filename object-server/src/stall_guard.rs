//! A request body that fails when its client stops sending: the slow-body half of MinIO's
//! `MINIO_IDLE_TIMEOUT`. Without it a client that sends a request head and then part of a body
//! holds the request (its temp file, its place in the MD5 lanes, a KES data key) for ever.
//!
//! A frame only sets a flag: the timer is armed when the body first waits and, when it fires,
//! re-armed if a frame came meanwhile. So a stall is caught between one and two timeouts after
//! the last byte, and a body that keeps flowing pays no clock read or timer change per frame.
//! The timer runs only while the handler waits on the body: a handler busy elsewhere (a full
//! queue, a KMS call) is never charged to the client.
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The error a stalled body ends with.
#[derive(Debug, thiserror::Error)]
#[error("the client sent no request body bytes for {0:?}")]
pub struct Stalled(Duration);

pin_project_lite::pin_project! {
    /// `inner`, failing with [`Stalled`] when it yields nothing for `idle` (up to twice that).
    pub struct StallGuard<B> {
        #[pin]
        inner: B,
        idle: Duration,
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
        progressed: bool,
    }
}

impl<B> StallGuard<B> {
    pub fn new(inner: B, idle: Duration) -> Self {
        StallGuard {
            inner,
            idle,
            timer: None,
            progressed: false,
        }
    }
}

impl<B> Body for StallGuard<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            *this.progressed = true;
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        let idle = *this.idle;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        while timer.as_mut().poll(cx).is_ready() {
            if !std::mem::take(this.progressed) {
                return Poll::Ready(Some(Err(Box::new(Stalled(idle)))));
            }
            timer.as_mut().reset(tokio::time::Instant::now() + idle);
        }
        Poll::Pending
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
    use http_body_util::BodyExt;

    /// A body fed by hand: `send` a chunk, or drop the sender to end it.
    fn channel() -> (
        futures::channel::mpsc::Sender<Bytes>,
        impl Body<Data = Bytes, Error = std::convert::Infallible>,
    ) {
        use futures::StreamExt as _;
        let (tx, rx) = futures::channel::mpsc::channel::<Bytes>(4);
        let frames = rx.map(|b| Ok::<_, std::convert::Infallible>(Frame::data(b)));
        (tx, http_body_util::StreamBody::new(frames))
    }

    use futures::SinkExt as _;

    #[tokio::test(start_paused = true)]
    async fn a_flowing_body_passes_and_a_stalled_one_fails() {
        let idle = Duration::from_secs(30);
        let (mut tx, body) = channel();
        let mut guarded = StallGuard::new(body, idle);
        // Bytes every 20 s, for far longer than the timeout: never stalled.
        let feeder = tokio::spawn(async move {
            for i in 0..10u8 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                tx.send(Bytes::from(vec![i])).await.unwrap();
            }
            tx
        });
        for i in 0..10u8 {
            let f = guarded.frame().await.unwrap().unwrap();
            assert_eq!(f.into_data().unwrap(), Bytes::from(vec![i]));
        }
        // Then nothing: the body fails within one to two timeouts.
        let _tx = feeder.await.unwrap();
        let waited = tokio::time::Instant::now();
        let e = guarded.frame().await.unwrap().unwrap_err();
        assert!(e.to_string().contains("no request body bytes"), "{e}");
        let took = waited.elapsed();
        assert!(took >= idle && took <= idle * 2, "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_ends_ends() {
        let (mut tx, body) = channel();
        let guarded = StallGuard::new(body, Duration::from_secs(1));
        tx.send(Bytes::from_static(b"all")).await.unwrap();
        drop(tx);
        let all = guarded.collect().await.unwrap().to_bytes();
        assert_eq!(all, Bytes::from_static(b"all"));
    }
}
