//! What `import-minio` reads from a MinIO drive, from arbitrary bytes: an xl.meta (its versions
//! and inline data) and a DARE 2.0 stream. An error or a value, never a panic; a parsed
//! xl.meta's inline data lookups never panic either.
#![no_main]
use libfuzzer_sys::fuzz_target;
use object_server::import::{dare, xl_meta::XlMeta};

fuzz_target!(|data: &[u8]| {
    if let Ok(meta) = XlMeta::parse(data) {
        for v in &meta.versions {
            let _ = meta.inline_data(v.version_id());
        }
        let _ = meta.inline_data(None);
    }
    let _ = dare::decrypt(&[7; 32], data);
    let _ = dare::decrypted_size(data.len() as u64);
});
