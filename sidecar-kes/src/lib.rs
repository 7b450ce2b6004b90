//! A KES-compatible key server and the KES client library used by the object server.

pub mod auth;
pub mod client;
pub mod crypto;
pub mod keystore;
