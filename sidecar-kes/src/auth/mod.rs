//! Who is calling: identities derived from client certificates or API keys, and
//! the policies that say what an identity may do.

pub mod apikey;
pub mod identity;
pub mod policy;

pub use apikey::ApiKey;
pub use identity::Identity;
pub use policy::Policy;
