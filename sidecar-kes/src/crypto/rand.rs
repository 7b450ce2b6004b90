//! Random bytes for keys, IVs and nonces, drawn from aws-lc's DRBG in batches.
//!
//! Every call into aws-lc's `RAND_bytes` pays a fixed cost that dwarfs the few bytes an op
//! needs (a generate takes 60: the data key, the IV and the nonce): it reads fresh CPU
//! entropy (RDRAND, slow on some hosts) as additional input and updates the CTR-DRBG twice,
//! each time with a new AES key schedule. Here each thread draws a batch at once and hands
//! it out in pieces, so that cost is paid once per batch instead of per op.
//!
//! What is handed out is wiped from the pool at once, so the pool never holds a byte that
//! was already used: a memory dump shows at most secrets not yet generated (which the DRBG's
//! state determines anyway). A forked child would share the pool; kes never forks (other than
//! to exec).

use std::cell::RefCell;
use zeroize::{Zeroize, Zeroizing};

/// Bytes drawn from aws-lc at once (about 17 generate ops).
const POOL_SIZE: usize = 1024;

/// Requests larger than this go to aws-lc directly (they would drain the pool for little).
const POOLED_MAX: usize = 64;

struct Pool {
    bytes: Zeroizing<[u8; POOL_SIZE]>,
    /// How many leading bytes were handed out (and wiped) already.
    used: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool {
        bytes: Zeroizing::new([0; POOL_SIZE]),
        used: POOL_SIZE,
    });
}

/// Fills `out` with random bytes from the system's DRBG.
pub fn fill(out: &mut [u8]) {
    if out.len() > POOLED_MAX {
        aws_lc_rs::rand::fill(out).expect("system randomness");
        return;
    }
    POOL.with_borrow_mut(|pool| {
        if POOL_SIZE - pool.used < out.len() {
            aws_lc_rs::rand::fill(&mut pool.bytes[..]).expect("system randomness");
            pool.used = 0;
        }
        let piece = &mut pool.bytes[pool.used..pool.used + out.len()];
        out.copy_from_slice(piece);
        piece.zeroize();
        pool.used += out.len();
    });
}

/// `N` random bytes.
pub fn array<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    fill(&mut b);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_distinct_and_used_bytes_are_wiped() {
        // Far more than one pool's worth, in odd sizes, so refills and pool ends are crossed.
        let mut seen = std::collections::HashSet::new();
        for i in 0..2000 {
            let n = 16 + i % 17;
            let mut b = vec![0u8; n];
            fill(&mut b);
            assert!(seen.insert(b), "a random piece repeated");
            POOL.with_borrow(|p| {
                assert!(p.bytes[..p.used].iter().all(|&x| x == 0));
                assert!(p.used == POOL_SIZE || p.bytes[p.used..].iter().any(|&x| x != 0));
            });
        }
        let mut big = [0u8; POOLED_MAX + 1];
        fill(&mut big);
        assert!(big.iter().any(|&x| x != 0));
    }
}
