//! Server-side encryption: the per-object key and how it is sealed ([`seal`]), the authenticated
//! package stream that carries an object's body ([`package`]), and the rules that turn request
//! headers into an encryption mode ([`headers`]).
pub mod headers;
pub mod package;
pub mod seal;

pub use headers::{SseError, SseRequest};
pub use package::{ObjectKey, PackageError};
pub use seal::{SealError, SealedKey};
