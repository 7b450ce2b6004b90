//! The JSON request bodies of the key API (generate, encrypt, decrypt, hmac, import), through
//! the same parsing the routes use, then used as the routes use them with a fixed key:
//! decrypting the ciphertext (KES's binary format and the legacy JSON and msgpack ones),
//! encrypting the plaintext, building an imported key. Any body gives a result or an error,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sidecar_kes::crypto::{Cipher, SecretKey};
use std::sync::LazyLock;

static KEYS: LazyLock<[SecretKey; 2]> = LazyLock::new(|| {
    [
        SecretKey::new(Cipher::Aes256, &[7u8; 32]).unwrap(),
        SecretKey::new(Cipher::ChaCha20, &[9u8; 32]).unwrap(),
    ]
});

fuzz_target!(|data: &[u8]| {
    for key in KEYS.iter() {
        sidecar_kes::api::exercise_key_request_body(data, key);
    }
});
