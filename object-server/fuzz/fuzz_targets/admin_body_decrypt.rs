//! madmin's encrypted admin bodies (`salt ‖ id ‖ nonce ‖ sio stream`) from arbitrary bytes with
//! a fixed password: an error or the plaintext, never a panic. Argon2id (ids 0 and 1: 64 MiB,
//! ~0.1 s a try) would leave the fuzzer a few thousand runs, so those ids go through the same
//! stream code with a fixed derived key; PBKDF2 (id 2) and malformed headers go through
//! `decrypt` itself. A round trip checks the stream's success path: what is sealed opens to the
//! same bytes, and the sealed body with one byte changed or cut short does not open.
#![no_main]
use libfuzzer_sys::fuzz_target;
use object_server::admin::crypt::{self, NONCE, SALT};

const PASSWORD: &str = "fuzz-secret-key";
const KEY: [u8; 32] = [7; 32];

fuzz_target!(|data: &[u8]| {
    let slow_kdf = matches!(data.get(SALT), Some(0 | 1));
    if !slow_kdf {
        let _ = crypt::decrypt(PASSWORD, data);
    }
    let _ = crypt::decrypt_with_key(&KEY, data);

    let Some((&selector, plain)) = data.split_first() else {
        return;
    };
    let id = selector % 3;
    let sealed = crypt::seal(&KEY, id, &[1; SALT], &[2; NONCE], plain);
    let opened = crypt::decrypt_with_key(&KEY, &sealed).expect("a sealed body opens");
    assert_eq!(&opened[..], plain);
    let mut changed = sealed.clone();
    let at = (usize::from(selector) * 131 + plain.len()) % changed.len();
    if at >= SALT {
        // The salt is not authenticated by the stream itself (it only feeds the key
        // derivation, which is fixed here).
        changed[at] ^= 0x01;
        assert!(crypt::decrypt_with_key(&KEY, &changed).is_err());
    }
    let cut = sealed.len() - 1 - usize::from(selector) % 17;
    assert!(crypt::decrypt_with_key(&KEY, &sealed[..cut]).is_err());
});
