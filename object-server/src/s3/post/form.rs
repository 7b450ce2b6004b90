//! The head of a browser form (every field before the file, and the file's name), read again
//! from the very bytes s3s parsed.
//!
//! s3s 0.14.1 parses the form, checks the policy against it and then drops the field list and
//! the file's name; its parser is private. So the body is passed to s3s through a [`Recorder`]
//! that keeps a copy of its first bytes, and the head is parsed from that copy (with `multer`)
//! when the access hook needs it. s3s refuses a form whose head does not fit in
//! `form_max_fields_size` bytes, so a copy of that many bytes always holds the whole head of a
//! form s3s accepted; the copy stops there, whatever the size of the file. A head that cannot be
//! parsed from the copy, or whose key differs from the key s3s read, is refused: both parsers
//! must agree on the form before anything is stored.
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The first bytes of a body, in the chunks it came in.
#[derive(Debug, Default)]
pub(super) struct Recording {
    chunks: Vec<Bytes>,
    len: usize,
    limit: usize,
}

impl Recording {
    pub(super) fn new(limit: usize) -> Self {
        Recording {
            limit,
            ..Default::default()
        }
    }

    fn keep(&mut self, chunk: &Bytes) {
        if self.len < self.limit {
            self.len += chunk.len();
            // A clone of `Bytes` shares the buffer: nothing is copied.
            self.chunks.push(chunk.clone());
        }
    }

    /// The recorded chunks; the recording is empty afterwards.
    pub(super) fn take(&mut self) -> Vec<Bytes> {
        self.len = self.limit;
        std::mem::take(&mut self.chunks)
    }
}

pin_project_lite::pin_project! {
    /// `inner` unchanged, its first bytes also kept in a shared [`Recording`].
    pub(super) struct Recorder<B> {
        #[pin]
        inner: B,
        recording: Arc<Mutex<Recording>>,
    }
}

impl<B> Recorder<B> {
    pub(super) fn new(inner: B, recording: Arc<Mutex<Recording>>) -> Self {
        Recorder { inner, recording }
    }
}

impl<B: Body<Data = Bytes>> Body for Recorder<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let frame = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &frame
            && let Some(data) = f.data_ref()
        {
            this.recording
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .keep(data);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The fields of a form before its file (names lowercased, as s3s has them) and the file's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FormHead {
    pub fields: Vec<(String, String)>,
    pub file_name: Option<String>,
}

impl FormHead {
    /// The value of field `name` (lowercase); the last one when the form repeats it, as s3s.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find_map(|(n, v)| (n == name).then_some(v.as_str()))
    }

    /// Parses the head from the first chunks of a form body: `None` when they do not hold a
    /// well-formed head up to the `file` part.
    pub async fn parse(chunks: Vec<Bytes>, boundary: &str) -> Option<FormHead> {
        let stream = futures::stream::iter(
            chunks
                .into_iter()
                .map(Ok::<Bytes, std::convert::Infallible>),
        );
        let mut form = multer::Multipart::new(stream, boundary);
        let mut fields = Vec::new();
        loop {
            let field = form.next_field().await.ok()??;
            let name = field.name()?.to_ascii_lowercase();
            if name == "file" {
                let file_name = field.file_name().map(str::to_owned);
                return Some(FormHead { fields, file_name });
            }
            let value = field.bytes().await.ok()?;
            fields.push((name, String::from_utf8(value.to_vec()).ok()?));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    fn form(parts: &[(&str, Option<&str>, &str)]) -> String {
        let mut s = String::new();
        for (name, file, value) in parts {
            s.push_str("--XyZ\r\nContent-Disposition: form-data; name=\"");
            s.push_str(name);
            s.push('"');
            if let Some(f) = file {
                s.push_str("; filename=\"");
                s.push_str(f);
                s.push_str("\"\r\nContent-Type: image/png");
            }
            s.push_str("\r\n\r\n");
            s.push_str(value);
            s.push_str("\r\n");
        }
        s.push_str("--XyZ--\r\n");
        s
    }

    #[tokio::test]
    async fn the_head_is_read_from_the_recorded_prefix_only() {
        let body = form(&[
            ("Key", None, "up/${filename}"),
            ("x-amz-meta-a", None, "1"),
            ("key", None, "up/last/${filename}"),
            ("file", Some("cat.png"), &"x".repeat(100_000)),
            ("submit", None, "Upload"),
        ]);
        let chunks: Vec<Bytes> = body
            .as_bytes()
            .chunks(7)
            .map(Bytes::copy_from_slice)
            .collect();
        let recording = Arc::new(Mutex::new(Recording::new(400)));
        let stream = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::convert::Infallible>(Frame::data(c))),
        );
        let rec = Recorder::new(http_body_util::StreamBody::new(stream), recording.clone());
        let all = rec.collect().await.unwrap().to_bytes();
        assert_eq!(all, body.as_bytes(), "the body passes unchanged");
        let kept = recording.lock().unwrap().take();
        let kept_len: usize = kept.iter().map(Bytes::len).sum();
        assert!((400..407).contains(&kept_len), "kept {kept_len} bytes");
        let head = FormHead::parse(kept, "XyZ").await.unwrap();
        assert_eq!(head.field("key"), Some("up/last/${filename}"));
        assert_eq!(head.field("x-amz-meta-a"), Some("1"));
        assert_eq!(head.file_name.as_deref(), Some("cat.png"));
        assert_eq!(head.fields.len(), 3);
    }

    #[tokio::test]
    async fn a_prefix_that_stops_before_the_file_is_no_head() {
        let body = form(&[("key", None, "k"), ("file", Some("a"), "data")]);
        let cut = Bytes::copy_from_slice(&body.as_bytes()[..40]);
        assert_eq!(FormHead::parse(vec![cut], "XyZ").await, None);
        let whole = Bytes::copy_from_slice(body.as_bytes());
        assert_eq!(FormHead::parse(vec![whole.clone()], "other").await, None);
        assert!(FormHead::parse(vec![whole], "XyZ").await.is_some());
    }
}
