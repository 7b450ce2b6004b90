//! The package stream reader on bytes it did not write: decrypting arbitrary bytes as a package
//! stream of an arbitrary claimed size under a fixed key, whole and package by package as a
//! ranged GET does, must fail cleanly — never panic, never return plaintext. And a valid stream,
//! changed in any way (a bit, its length, its claimed size, two packages swapped), must never
//! open to anything but its own plaintext.
//!
//! Input: `mode ‖ u64 LE (claimed size or mutation) ‖ u64 LE (range or piece size) ‖ bytes`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use object_server::sse::ObjectKey;
use object_server::sse::package::{
    Decryptor, Encryptor, PACKAGE, PAYLOAD, TAG, decrypt_all, encrypted_size, package_count,
};

const KEY: [u8; 32] = [0x42; 32];

fuzz_target!(|data: &[u8]| {
    if data.len() < 17 {
        return;
    }
    let mode = data[0];
    let a = u64::from_le_bytes(data[1..9].try_into().unwrap());
    let b = u64::from_le_bytes(data[9..17].try_into().unwrap());
    let bytes = &data[17..];
    let key = ObjectKey::from_bytes(KEY);
    if mode & 1 == 0 {
        arbitrary_stream(&key, a, b, bytes);
    } else {
        changed_stream(&key, mode >> 1, a, b, bytes);
    }
});

/// Bytes no one encrypted: every way of reading them is an error.
fn arbitrary_stream(key: &ObjectKey, claimed: u64, range: u64, stream: &[u8]) {
    // The claimed size as stored metadata may say it (any u64), and one that fits the bytes so
    // that the tags are really checked.
    for size in [claimed, claimed % (stream.len() as u64 + 1)] {
        // The arithmetic is exact where the result fits in a u64 and saturates where it does
        // not, never wraps (checked in wide integers, so also in builds without overflow checks).
        let count = package_count(size);
        assert!(
            count >= 1 && u128::from(count) == u128::from(size.max(1)).div_ceil(PAYLOAD as u128)
        );
        let exact = u128::from(size) + u128::from(count) * TAG as u128;
        assert_eq!(
            u128::from(encrypted_size(size)),
            exact.min(u128::from(u64::MAX)),
            "encrypted_size({size}) wrapped"
        );
        assert!(
            decrypt_all(key, size, stream).is_err(),
            "unauthenticated bytes decrypted"
        );
        if size == 0 {
            continue;
        }
        let d = Decryptor::new(key, size);
        let start = range % size;
        let end = start + 1 + (range >> 32) % (size - start);
        let (first, last) = d.packages_for(start, end);
        assert!(first <= last && last < package_count(size));
        let mut out = vec![0u8; PAYLOAD];
        for seq in [first, last, package_count(size) - 1]
            .into_iter()
            .chain(first..=last.min(first + 4))
        {
            let (off, len) = d.package_span(seq);
            assert_eq!(
                u128::from(off),
                (u128::from(seq) * PACKAGE as u128).min(u128::from(u64::MAX)),
                "package_span({seq}) wrapped"
            );
            assert!(len >= TAG && len <= PACKAGE);
            let stored = usize::try_from(off)
                .ok()
                .and_then(|o| stream.get(o..o.checked_add(len)?));
            let stored = stored.unwrap_or(&stream[..len.min(stream.len())]);
            assert!(
                d.open_into(seq, stored, &mut out).is_err(),
                "unauthenticated package {seq} opened"
            );
        }
    }
}

/// A stream this code wrote, then changed as `how` says: it opens only if unchanged, and then
/// to its own plaintext.
fn changed_stream(key: &ObjectKey, how: u8, at: u64, piece: u64, plain: &[u8]) {
    let size = plain.len() as u64;
    let mut e = Encryptor::new(key);
    let mut stream = Vec::new();
    for c in plain.chunks((piece % (2 * PAYLOAD as u64)) as usize + 1) {
        e.update(c, &mut stream);
    }
    e.finish(&mut stream);
    assert_eq!(stream.len() as u64, encrypted_size(size));
    assert!(decrypt_all(key, size, &stream).expect("own stream opens") == plain);
    let original = stream.clone();
    let mut claimed = size;
    match how % 5 {
        0 => {
            let i = (at % stream.len() as u64) as usize;
            stream[i] ^= 1 << (at >> 61);
        }
        1 => stream.truncate((at % stream.len() as u64) as usize),
        2 => stream.extend_from_slice(&at.to_le_bytes()[..(at >> 60) as usize % 8 + 1]),
        3 => claimed = at,
        _ => {
            let n = package_count(size);
            let (i, j) = ((at % n) as usize, ((at >> 32) % n) as usize);
            if i != j && j + 1 < n as usize && i + 1 < n as usize {
                let (pi, pj) = (i * PACKAGE, j * PACKAGE);
                let (x, y) = (
                    stream[pi..pi + PACKAGE].to_vec(),
                    stream[pj..pj + PACKAGE].to_vec(),
                );
                stream[pi..pi + PACKAGE].copy_from_slice(&y);
                stream[pj..pj + PACKAGE].copy_from_slice(&x);
            }
        }
    }
    if let Ok(got) = decrypt_all(key, claimed, &stream) {
        assert!(
            stream == original && claimed == size && got == plain,
            "a changed stream opened"
        );
    }
}
