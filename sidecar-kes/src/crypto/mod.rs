//! Key types and the ciphertext formats of KES.

pub mod ciphertext;
pub mod key;
pub mod rand;
pub mod ring;
pub mod version;

pub use key::{Cipher, CryptoError, HmacKey, SecretKey};
pub use ring::{KeyRing, RingError};
pub use version::KeyVersion;
