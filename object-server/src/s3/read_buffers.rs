//! Reusable buffers for reading object bodies.
//!
//! A GET reads its body a chunk (about 1 MiB) at a time. A fresh zeroed 1 MiB allocation per
//! chunk is, with glibc, an `mmap` whose every page faults in and is cleared, and a `munmap` once
//! hyper has sent it: a fifth of a plain GET's CPU in the profile. A buffer taken from here goes
//! back to the pool when the last [`Bytes`] that points into it is dropped, and is reused as it
//! is: it stays initialised, so it is never zeroed again. A reused buffer still holds an earlier
//! read's bytes, so only bytes a read has just written may be handed out (the reader slices
//! exactly what it read and, for encrypted objects, what authenticated).
use std::sync::Mutex;

use bytes::Bytes;

/// Bytes of every pooled buffer: one chunk of ciphertext (16 packages with their tags).
pub(crate) const SIZE: usize = 16 * crate::sse::package::PACKAGE;

/// Reads shorter than this get an allocation of their own size (small allocations come from
/// malloc's arenas, cheaply, and a 4 KiB GET should not pin 1 MiB).
const POOLED_FROM: usize = 128 * 1024;

/// Idle buffers kept at most (32 MiB); more than this are freed when they come back.
const KEEP: usize = 32;

/// The idle buffers.
struct Pool(Mutex<Vec<Vec<u8>>>);

static POOL: Pool = Pool(Mutex::new(Vec::new()));

impl Pool {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&'static self, len: usize) -> ReadBuffer {
        if !(POOLED_FROM..=SIZE).contains(&len) {
            return ReadBuffer {
                buf: vec![0; len],
                pool: None,
            };
        }
        let reused = self.idle().pop();
        ReadBuffer {
            buf: reused.unwrap_or_else(|| vec![0; SIZE]),
            pool: Some(self),
        }
    }
}

/// A buffer of at least the asked-for length, owned until frozen into [`Bytes`].
pub(crate) struct ReadBuffer {
    buf: Vec<u8>,
    /// Where it goes back to (`None`: freed).
    pool: Option<&'static Pool>,
}

impl ReadBuffer {
    /// A buffer of at least `len` bytes (`len` ≤ [`SIZE`] is pooled when worth it).
    pub(crate) fn take(len: usize) -> Self {
        POOL.take(len)
    }

    /// The whole buffer, to read into.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// Shares the buffer; it returns to the pool when the last slice of it is dropped.
    pub(crate) fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for ReadBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        let Some(pool) = self.pool else { return };
        let mut idle = pool.idle();
        if idle.len() < KEEP {
            idle.push(std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> &'static Pool {
        Box::leak(Box::new(Pool(Mutex::new(Vec::new()))))
    }

    #[test]
    fn small_reads_are_not_pooled() {
        let p = pool();
        let small = p.take(4096);
        assert!(small.pool.is_none());
        assert_eq!(small.as_ref().len(), 4096);
        drop(small);
        assert!(p.idle().is_empty());
    }

    #[test]
    fn a_chunk_comes_back_when_its_last_slice_is_dropped() {
        let p = pool();
        let mut big = p.take(SIZE - 10);
        assert_eq!(big.as_ref().len(), SIZE);
        big.as_mut_slice()[0] = 7;
        let addr = big.as_ref().as_ptr();
        let bytes = big.freeze();
        let part = bytes.slice(0..1);
        drop(bytes);
        assert!(p.idle().is_empty(), "still referenced by a slice");
        assert_eq!(part[0], 7);
        drop(part);
        assert_eq!(p.idle().len(), 1);
        // Reused as it is, not zeroed again.
        let again = p.take(SIZE);
        assert_eq!(again.as_ref().as_ptr(), addr);
        assert_eq!(again.as_ref()[0], 7);
    }

    #[test]
    fn at_most_keep_buffers_stay_idle() {
        let p = pool();
        let all: Vec<_> = (0..KEEP + 3).map(|_| p.take(SIZE)).collect();
        drop(all);
        assert_eq!(p.idle().len(), KEEP);
    }
}
