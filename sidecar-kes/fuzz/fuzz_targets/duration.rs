//! The Go duration parser (KES config durations, MinIO's `MINIO_*_TIMEOUT`, `kes identity new
//! --expiry`): any string gives a duration within Go's range or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = sidecar_kes::config::duration::parse(text) {
        assert!(d.as_nanos() <= i64::MAX as u128, "{text:?} gave {d:?}, beyond Go's range");
    }
});
