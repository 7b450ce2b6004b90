//! MD5 of concurrent request bodies, hashed together on one thread.
//!
//! MD5 is the most expensive per-byte step of a PUT and is strictly serial within one body.
//! Concurrent uploads are independent, though, so a thread (the hub) takes the chunks that
//! several bodies have queued and runs them through the 16-lane AVX-512 kernel of [`super::x16`]
//! in lockstep: a call costs the same for 2 lanes as for 16, about what 1.4 scalar blocks do
//! (6.9 GB/s against 0.59 GB/s on the 2-core EPYC dev machine, `md5_speed` in `md5/mod.rs`).
//!
//! - A [`Stream`] queues its body's chunks (`Bytes`, no copy) and does not wait for them to be
//!   hashed, except past [`QUEUE_LIMIT`] bytes (backpressure) and at [`Stream::finalize`].
//! - Whenever fewer lanes have data than there are open streams, both when the hub starts and
//!   each time a lane runs out, it waits up to [`GATHER`] for more, so lanes stay full under
//!   load; a waiting `finalize` or backpressure ends the wait at once. Hashing whatever was at
//!   hand, as it first did, ran mostly 2 to 5 lanes at 8 concurrent 64 MiB uploads (warp's are
//!   multipart, 4 parts at a time, so up to 32 streams); waiting runs half the bytes at 16
//!   lanes, for 7-18 % less server CPU per MiB at 64 MiB (no change beyond the noise at 1 MiB).
//!   One body left is hashed by the scalar assembly.
//! - Bodies up to [`IN_PLACE`] are hashed in place (the hop costs more than their MD5), and so is
//!   every body without AVX-512 (or off x86-64): then there is no hub.
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Partial;

/// Bytes a body may have queued before `update` waits for the hub.
const QUEUE_LIMIT: usize = 4 << 20;

/// How long the hub lets data wait for other bodies' data, so that more lanes are filled.
const GATHER: Duration = Duration::from_millis(3);

/// Blocks per kernel call at most, so a body that arrives meanwhile joins soon.
const MAX_RUN: usize = 256;

/// Bodies are hashed in place up to this size: for small objects the hop to the hub and back
/// costs more than their MD5.
const IN_PLACE: u64 = 16 << 10;

/// The MD5 of one body.
pub struct Stream(Inner);

enum Inner {
    InPlace(Partial),
    Hub(Arc<Lane>),
}

impl Default for Stream {
    fn default() -> Self {
        Self::new()
    }
}

impl Stream {
    /// A fresh hash. It starts in place and moves to the hub (if this CPU has one) once the
    /// body is larger than [`IN_PLACE`].
    pub fn new() -> Self {
        Self(Inner::InPlace(Partial::default()))
    }

    /// Adds a chunk of the body.
    pub async fn update(&mut self, chunk: &Bytes) {
        if let Inner::InPlace(p) = &mut self.0 {
            match hub() {
                Some(h) if p.total + chunk.len() as u64 > IN_PLACE => {
                    lock(&h.state).open += 1;
                    let lane = Lane::default();
                    lock(&lane.state).md5 = p.clone();
                    self.0 = Inner::Hub(Arc::new(lane));
                }
                _ => return p.update(chunk),
            }
        }
        let Inner::Hub(lane) = &mut self.0 else {
            unreachable!("moved to the hub above")
        };
        if chunk.is_empty() {
            return;
        }
        let h = hub().expect("a hub lane exists only with the hub");
        {
            let mut st = lock(&lane.state);
            st.queue.push_back(chunk.clone());
            st.queued += chunk.len();
            if !st.scheduled {
                st.scheduled = true;
                h.schedule(lane.clone());
            }
        }
        loop {
            if lock(&lane.state).queued <= QUEUE_LIMIT {
                return;
            }
            h.urgent(1);
            lane.wake.notified().await;
            h.urgent(-1);
        }
    }

    /// The digest, once the hub has hashed everything queued.
    pub async fn finalize(mut self) -> [u8; 16] {
        let lane = match &mut self.0 {
            Inner::InPlace(p) => return p.finalize(),
            Inner::Hub(l) => l.clone(),
        };
        let h = hub().expect("a hub lane exists only with the hub");
        h.urgent(1);
        let digest = loop {
            {
                let st = lock(&lane.state);
                if !st.scheduled {
                    break st.md5.finalize();
                }
            }
            lane.wake.notified().await;
        };
        h.urgent(-1);
        digest
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Inner::Hub(lane) = &self.0 {
            // An abandoned body (a failed request) frees its queued chunks now.
            let mut st = lock(&lane.state);
            st.queue.clear();
            st.queued = 0;
            drop(st);
            if let Some(h) = hub() {
                lock(&h.state).open -= 1;
                // One stream fewer may be all the hub is waiting for.
                h.work.notify_one();
            }
        }
    }
}

/// A body's place on the hub.
#[derive(Default)]
struct Lane {
    state: Mutex<LaneState>,
    /// Wakes the body's task when chunks were hashed or the lane was released.
    wake: tokio::sync::Notify,
}

#[derive(Default)]
struct LaneState {
    queue: VecDeque<Bytes>,
    queued: usize,
    /// On the hub's ready list or being hashed: the hub owns `md5` until it clears this.
    scheduled: bool,
    md5: Partial,
}

struct Hub {
    state: Mutex<HubState>,
    work: Condvar,
    kernel: super::x16::Avx512,
}

#[derive(Default)]
struct HubState {
    ready: VecDeque<Arc<Lane>>,
    /// Since when `ready` has been non-empty.
    since: Option<Instant>,
    /// Streams that exist: the most lanes worth waiting for.
    open: usize,
    /// Tasks waiting on the hub (finalize, backpressure): then it does not gather.
    urgent: isize,
    /// The hub is waiting for lanes, holding `at_work` with data: `schedule` wakes it only when
    /// that changes what it does (the first data, or enough lanes).
    waiting: bool,
    at_work: usize,
}

impl HubState {
    /// Lanes worth waiting for: one per open stream.
    fn want(&self) -> usize {
        self.open.clamp(1, super::x16::LANES)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(target_arch = "x86_64")]
fn hub() -> Option<&'static Hub> {
    static HUB: OnceLock<Option<&'static Hub>> = OnceLock::new();
    *HUB.get_or_init(|| {
        let kernel = super::x16::Avx512::detect()?;
        let hub: &'static Hub = Box::leak(Box::new(Hub {
            state: Mutex::default(),
            work: Condvar::new(),
            kernel,
        }));
        std::thread::Builder::new()
            .name("md5-lanes".into())
            .spawn(move || hub.run())
            .ok()?;
        Some(hub)
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn hub() -> Option<&'static Hub> {
    None
}

/// A lane the hub is working on: its state checked out of the `Lane`, and the chunk at hand.
struct Active {
    lane: Arc<Lane>,
    md5: Partial,
    chunk: Bytes,
    at: usize,
}

impl Hub {
    fn schedule(&self, lane: Arc<Lane>) {
        let mut st = lock(&self.state);
        if st.ready.is_empty() {
            st.since = Some(Instant::now());
        }
        st.ready.push_back(lane);
        let have = st.at_work + st.ready.len();
        let wake = st.waiting && (have == 1 || have >= st.want());
        drop(st);
        if wake {
            self.work.notify_one();
        }
    }

    fn urgent(&self, by: isize) {
        lock(&self.state).urgent += by;
        if by > 0 {
            self.work.notify_one();
        }
    }

    fn run(&self) {
        let mut active: Vec<Active> = Vec::with_capacity(super::x16::LANES);
        loop {
            // Drop the lanes whose queued data is all hashed, then take the ready ones.
            let before = active.len();
            active.retain_mut(Self::ready_block);
            let gather = active.is_empty() || active.len() < before;
            let fresh = self.take_ready(active.len(), super::x16::LANES - active.len(), gather);
            for lane in fresh {
                let mut st = lock(&lane.state);
                let md5 = st.md5.clone();
                match st.queue.front().cloned() {
                    Some(chunk) => {
                        drop(st);
                        active.push(Active {
                            lane,
                            md5,
                            chunk,
                            at: 0,
                        });
                    }
                    None => {
                        st.scheduled = false;
                        drop(st);
                        lane.wake.notify_one();
                    }
                }
            }
            // Bring every lane to a whole block at hand; drop the ones with nothing left.
            active.retain_mut(Self::ready_block);
            match active.len() {
                0 => {}
                1 => {
                    let a = &mut active[0];
                    let whole = (a.chunk.len() - a.at) / 64 * 64;
                    super::compress_blocks(&mut a.md5.state, &a.chunk[a.at..a.at + whole]);
                    a.md5.total += whole as u64;
                    a.at += whole;
                }
                _ => {
                    let blocks = active
                        .iter()
                        .map(|a| (a.chunk.len() - a.at) / 64)
                        .min()
                        .unwrap_or(0)
                        .min(MAX_RUN);
                    let mut states: Vec<[u32; 4]> = active.iter().map(|a| a.md5.state).collect();
                    let data: Vec<&[u8]> = active.iter().map(|a| &a.chunk[a.at..]).collect();
                    self.kernel.compress(&mut states, &data, blocks);
                    for (a, s) in active.iter_mut().zip(states) {
                        a.md5.state = s;
                        a.md5.total += (blocks * 64) as u64;
                        a.at += blocks * 64;
                    }
                }
            }
        }
    }

    /// Lanes to start on, up to `room`, besides the `at_work` the hub holds with data. With
    /// `gather` (the hub was idle, or a lane just ran out of data) and fewer lanes with data than
    /// there are open streams, it first waits for more, up to [`GATHER`]: a kernel call costs
    /// the same for 2 lanes as for 16. A waiting task ends the wait at once.
    fn take_ready(&self, at_work: usize, room: usize, gather: bool) -> Vec<Arc<Lane>> {
        let mut st = lock(&self.state);
        let mut started: Option<Instant> = None;
        loop {
            let have = at_work + st.ready.len();
            if have == 0 {
                st.waiting = true;
                st.at_work = 0;
                st = self.work.wait(st).unwrap_or_else(|e| e.into_inner());
                st.waiting = false;
                continue;
            }
            if !gather || have >= st.want() || st.urgent > 0 {
                break;
            }
            // An idle hub counts from its first ready lane's arrival.
            let since = *started.get_or_insert_with(|| {
                st.since
                    .filter(|_| at_work == 0)
                    .unwrap_or_else(Instant::now)
            });
            let waited = since.elapsed();
            if waited >= GATHER {
                break;
            }
            st.waiting = true;
            st.at_work = at_work;
            st = self
                .work
                .wait_timeout(st, GATHER - waited)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            st.waiting = false;
        }
        let n = room.min(st.ready.len());
        let out: Vec<_> = st.ready.drain(..n).collect();
        st.since = (!st.ready.is_empty()).then(Instant::now);
        out
    }

    /// Makes `a` have a whole block at `a.at` with an empty tail, moving through its queue;
    /// false (the lane released) when its queued data is all hashed.
    fn ready_block(a: &mut Active) -> bool {
        loop {
            if a.md5.tail_len > 0 {
                a.at += a.md5.fill_tail(&a.chunk[a.at..]);
            }
            let left = a.chunk.len() - a.at;
            if a.md5.tail_len == 0 && left >= 64 {
                return true;
            }
            if a.md5.tail_len == 0 && left > 0 {
                a.at += a.md5.fill_tail(&a.chunk[a.at..]);
            }
            // This chunk is used up: the next one, or release the lane.
            let mut st = lock(&a.lane.state);
            if st
                .queue
                .front()
                .is_some_and(|c| c.as_ptr() == a.chunk.as_ptr())
            {
                st.queue.pop_front();
                st.queued = st.queued.saturating_sub(a.chunk.len());
            }
            match st.queue.front().cloned() {
                Some(next) => {
                    drop(st);
                    a.lane.wake.notify_one();
                    a.chunk = next;
                    a.at = 0;
                }
                None => {
                    st.md5 = a.md5.clone();
                    st.scheduled = false;
                    drop(st);
                    a.lane.wake.notify_one();
                    return false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::md5::Md5;

    fn body(seed: u32, len: usize) -> Vec<u8> {
        (0..len as u32)
            .map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed) >> 13) as u8)
            .collect()
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn kernel_matches_scalar_in_every_lane() {
        let Some(k) = super::super::x16::Avx512::detect() else {
            eprintln!("no AVX-512 here: kernel not tested");
            return;
        };
        for lanes in [1, 2, 7, 16] {
            let bodies: Vec<Vec<u8>> = (0..lanes).map(|i| body(i as u32, 64 * 5)).collect();
            let mut states = vec![super::super::INIT; lanes];
            let data: Vec<&[u8]> = bodies.iter().map(|b| &b[..]).collect();
            k.compress(&mut states, &data, 5);
            for (s, b) in states.iter().zip(&bodies) {
                let mut want = super::super::INIT;
                super::super::compress_blocks(&mut want, b);
                assert_eq!(*s, want, "{lanes} lanes");
            }
        }
    }

    /// Many concurrent bodies of odd sizes and chunkings, against the plain MD5.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_streams_give_each_its_own_md5() {
        let mut tasks = Vec::new();
        for i in 0..40u32 {
            tasks.push(tokio::spawn(async move {
                let len = [0usize, 1, 63, 64, 65, 1000, 65536, 200_003, 1 << 20][i as usize % 9];
                let data = body(i, len);
                let piece = [1usize, 63, 64, 4096, 65536, 100_000][i as usize % 6];
                let mut s = Stream::new();
                for c in data.chunks(piece.max(1)) {
                    s.update(&Bytes::copy_from_slice(c)).await;
                    if i % 3 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                assert_eq!(
                    s.finalize().await,
                    Md5::digest(&data),
                    "body {i} of {len} bytes"
                );
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }

    #[tokio::test]
    async fn an_abandoned_stream_does_not_stop_others() {
        let mut dropped = Stream::new();
        dropped.update(&Bytes::from(body(1, 100_000))).await;
        drop(dropped);
        let data = body(2, 300_000);
        let mut s = Stream::new();
        s.update(&Bytes::from(data.clone())).await;
        assert_eq!(s.finalize().await, Md5::digest(&data));
    }
}
