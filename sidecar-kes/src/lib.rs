//! A KES-compatible key server and the KES client library used by the object server.

pub mod api;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod client;
pub mod config;
pub mod crypto;
pub mod expect_continue;
pub mod header_wait;
pub mod keys;
pub mod keystore;
pub mod log;
pub mod metrics;
pub mod server;
pub mod tls_files;
