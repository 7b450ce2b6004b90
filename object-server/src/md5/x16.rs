//! MD5 of up to 16 independent streams at once: one AVX-512 register holds the same state word of
//! 16 streams, and each MD5 step runs on all of them in one instruction (the multi-buffer method
//! of Intel's isa-l and MinIO's md5-simd; our own code). MD5 itself cannot be parallelized within
//! one stream, so this is how concurrent uploads share the work: 16 lanes cost about as much as
//! 1.4 scalar blocks. Each step is a dependency chain, so the kernel's speed is that chain's
//! length (see `step!`).
use std::arch::x86_64::*;

/// Lanes per call.
pub const LANES: usize = 16;

/// The sine-derived constants of RFC 1321, step by step.
const K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
];

/// Proof that the CPU has AVX-512F, so the kernel may run.
#[derive(Clone, Copy)]
pub struct Avx512(());

impl Avx512 {
    /// `Some` when this CPU can run the kernel.
    pub fn detect() -> Option<Self> {
        std::arch::is_x86_feature_detected!("avx512f").then_some(Self(()))
    }

    /// Runs `blocks` 64-byte blocks of `data[i]` through `states[i]`, for each lane `i`.
    /// Every lane needs at least `blocks * 64` bytes; 1 to 16 lanes.
    pub fn compress(self, states: &mut [[u32; 4]], data: &[&[u8]], blocks: usize) {
        let n = states.len();
        assert!((1..=LANES).contains(&n) && data.len() == n, "1 to 16 lanes");
        assert!(
            data.iter().all(|d| d.len() >= blocks * 64),
            "every lane holds the blocks"
        );
        if blocks == 0 {
            return;
        }
        // Unused lanes read lane 0 again; their result is dropped.
        let mut ptrs = [data[0].as_ptr(); LANES];
        for (p, d) in ptrs.iter_mut().zip(data) {
            *p = d.as_ptr();
        }
        let mut soa = [[0u32; LANES]; 4];
        for (lane, s) in states.iter().enumerate() {
            for w in 0..4 {
                soa[w][lane] = s[w];
            }
        }
        // SAFETY: AVX-512F is present (this type's proof); lane i is read at its pointer plus
        // up to blocks * 64 bytes, inside its slice.
        unsafe { compress_avx512(&mut soa, &ptrs, blocks) };
        for (lane, s) in states.iter_mut().enumerate() {
            for w in 0..4 {
                s[w] = soa[w][lane];
            }
        }
    }
}

/// The truth table `f` (index bit 2 = b, bit 1 = c, bit 0 = d) for operands given as (d, b, c):
/// the ternary instruction then overwrites the copy of d, the oldest of the three.
const fn d_first(f: i32) -> i32 {
    let mut out = 0;
    let mut idx = 0;
    while idx < 8 {
        let (d, b, c) = ((idx >> 2) & 1, (idx >> 1) & 1, idx & 1);
        if (f >> ((b << 2) | (c << 1) | d)) & 1 == 1 {
            out |= 1 << idx;
        }
        idx += 1;
    }
    out
}

/// One MD5 step on 16 lanes: `a = b + rotl(a + f(b, c, d) + k + m, s)`. Written out so that
/// the chain from `b` (the step before's result) is four instructions: `a + m + k` is summed
/// off that chain, and f overwrites a copy of `d`, not of `b` (LLVM otherwise adds `f` first
/// and copies `b`).
macro_rules! step {
    ($f:expr, $s:literal, $a:expr, $b:expr, $c:expr, $d:expr, $m:expr, $k:expr) => {{
        let amk = _mm512_add_epi32($a, _mm512_add_epi32($m, _mm512_set1_epi32($k as i32)));
        let out: __m512i;
        // Register-only AVX-512F instructions: used inside the kernel's unsafe block.
        {
            core::arch::asm!(
                "vpternlogd {f}, {b}, {c}, {imm}",
                "vpaddd {f}, {f}, {amk}",
                "vprold {f}, {f}, {s}",
                "vpaddd {f}, {f}, {b}",
                f = inout(zmm_reg) $d => out,
                b = in(zmm_reg) $b,
                c = in(zmm_reg) $c,
                amk = in(zmm_reg) amk,
                imm = const d_first($f),
                s = const $s,
                options(pure, nomem, nostack),
            );
        }
        out
    }};
}

// Truth tables (index bit 2 = b, bit 1 = c, bit 0 = d) of MD5's four round functions.
const FF: i32 = 0xca; // (b & c) | (!b & d)
const GG: i32 = 0xe4; // (b & d) | (c & !d)
const HH: i32 = 0x96; // b ^ c ^ d
const II: i32 = 0x39; // c ^ (b | !d)

/// Transposes 16 rows of 16 words (one block of each lane) into 16 vectors of one word of every
/// lane: three stages of interleaving within and across 128-bit lanes.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose(r: [__m512i; 16]) -> [__m512i; 16] {
    // t: pairs of rows interleaved by 32-bit words, within each 128-bit lane.
    let mut t = [_mm512_setzero_si512(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    // u[4i + m], 128-bit lane k: word 4k + m of rows 4i .. 4i + 3.
    let mut u = [_mm512_setzero_si512(); 16];
    for i in 0..4 {
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    // Word 4k + m of all rows: 128-bit lane k of u[m], u[4 + m], u[8 + m], u[12 + m].
    let mut out = [_mm512_setzero_si512(); 16];
    for m in 0..4 {
        let v0 = _mm512_shuffle_i32x4::<0x44>(u[m], u[4 + m]);
        let v1 = _mm512_shuffle_i32x4::<0xee>(u[m], u[4 + m]);
        let v2 = _mm512_shuffle_i32x4::<0x44>(u[8 + m], u[12 + m]);
        let v3 = _mm512_shuffle_i32x4::<0xee>(u[8 + m], u[12 + m]);
        out[m] = _mm512_shuffle_i32x4::<0x88>(v0, v2);
        out[4 + m] = _mm512_shuffle_i32x4::<0xdd>(v0, v2);
        out[8 + m] = _mm512_shuffle_i32x4::<0x88>(v1, v3);
        out[12 + m] = _mm512_shuffle_i32x4::<0xdd>(v1, v3);
    }
    out
}

#[target_feature(enable = "avx512f")]
unsafe fn compress_avx512(soa: &mut [[u32; LANES]; 4], ptrs: &[*const u8; LANES], blocks: usize) {
    // SAFETY: the caller guarantees AVX-512F and that every read lies inside its lane's slice.
    unsafe {
        let mut a = _mm512_loadu_si512(soa[0].as_ptr().cast());
        let mut b = _mm512_loadu_si512(soa[1].as_ptr().cast());
        let mut c = _mm512_loadu_si512(soa[2].as_ptr().cast());
        let mut d = _mm512_loadu_si512(soa[3].as_ptr().cast());
        for blk in 0..blocks {
            let mut rows = [_mm512_setzero_si512(); 16];
            for (row, p) in rows.iter_mut().zip(ptrs) {
                *row = _mm512_loadu_si512(p.add(blk * 64).cast());
            }
            let m = transpose(rows);
            let (aa, bb, cc, dd) = (a, b, c, d);
            macro_rules! round {
                ($f:ident, $s0:literal, $s1:literal, $s2:literal, $s3:literal, $g:expr, $i0:literal) => {
                    for q in 0..4 {
                        let i = $i0 + 4 * q;
                        let g = |i: usize| -> usize { $g(i) };
                        a = step!($f, $s0, a, b, c, d, m[g(i)], K[i]);
                        d = step!($f, $s1, d, a, b, c, m[g(i + 1)], K[i + 1]);
                        c = step!($f, $s2, c, d, a, b, m[g(i + 2)], K[i + 2]);
                        b = step!($f, $s3, b, c, d, a, m[g(i + 3)], K[i + 3]);
                    }
                };
            }
            round!(FF, 7, 12, 17, 22, |i: usize| i, 0);
            round!(GG, 5, 9, 14, 20, |i: usize| (5 * i + 1) % 16, 16);
            round!(HH, 4, 11, 16, 23, |i: usize| (3 * i + 5) % 16, 32);
            round!(II, 6, 10, 15, 21, |i: usize| (7 * i) % 16, 48);
            a = _mm512_add_epi32(a, aa);
            b = _mm512_add_epi32(b, bb);
            c = _mm512_add_epi32(c, cc);
            d = _mm512_add_epi32(d, dd);
        }
        _mm512_storeu_si512(soa[0].as_mut_ptr().cast(), a);
        _mm512_storeu_si512(soa[1].as_mut_ptr().cast(), b);
        _mm512_storeu_si512(soa[2].as_mut_ptr().cast(), c);
        _mm512_storeu_si512(soa[3].as_mut_ptr().cast(), d);
    }
}
