//! The object file reader on arbitrary bytes (`body ‖ JSON ‖ u32 LE length ‖ magic`, as a damaged
//! disk or another writer may leave them): an error or metadata, never a panic. Metadata it
//! accepts writes back to a trailer that reads the same, and the keys it names stay shut: a
//! sealed key does not open under a key it was not sealed with (and sealed digests are read with
//! a fixed metadata key, so an input can carry ones that open).
#![no_main]

use libfuzzer_sys::fuzz_target;
use object_server::sse::metadata_key::{self, MetadataKey};
use object_server::sse::{ObjectKey, seal};
use object_server::storage::ObjectMeta;

fuzz_target!(|data: &[u8]| {
    metadata_key::install(MetadataKey::from_bytes([0x5a; 32])).expect("one key per process");
    let Ok((meta, body_len)) = ObjectMeta::from_bytes(data) else {
        return;
    };
    assert!(body_len <= data.len() as u64);
    let trailer = meta.to_trailer().expect("the metadata key is installed");
    let (again, again_body) = ObjectMeta::from_bytes(&trailer).expect("its own trailer reads");
    assert_eq!(again_body, 0);
    assert_eq!(
        serde_json::to_value(&again).unwrap(),
        serde_json::to_value(&meta).unwrap()
    );
    if let Some(enc) = &meta.encryption {
        assert!(
            seal::unseal(
                &[7; 32],
                enc.mode.domain(),
                "bucket",
                "object",
                &enc.sealed_key
            )
            .is_err(),
            "a sealed key opened under a key it was not sealed with"
        );
    }
    let object_key = ObjectKey::from_bytes([3; 32]);
    for p in &meta.parts {
        let _ = p.stream_key(&object_key);
    }
});
