//! Server-side encryption: the per-object key and how it is sealed ([`seal`]), the authenticated
//! package stream that carries an object's body ([`package`]), and the rules that turn request
//! headers into an encryption mode ([`headers`]). Why no two package streams ever share a key and
//! nonce, for every way a stream comes to exist, is in [`package`]'s module doc. What the metadata
//! says about the plaintext (ETags, checksums) is sealed under the data directory's
//! [`metadata_key`]. S3 Bucket Keys, a KMS data key per bucket under which object keys are sealed
//! instead of under one data key each, are in [`bucket_key`].
pub mod bucket_key;
pub mod headers;
pub mod metadata_key;
pub mod package;
pub mod seal;

pub use headers::{SseError, SseRequest};
pub use package::{ObjectKey, PackageError, PartSalt};
pub use seal::{SealError, SealedKey};
