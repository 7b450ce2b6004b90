//! The checks of PutBucketLifecycleConfiguration, PutObjectLockConfiguration and Put*Tagging
//! bodies, fed what s3s's XML deserializer makes of arbitrary bytes (the path a request takes),
//! and the stored JSON of a lifecycle configuration read back. Properties: nothing panics; what
//! a check accepts survives the trip through its stored JSON unchanged; the rules a GET answers
//! for a stored lifecycle configuration pass the check again and give back the same rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use object_server::lifecycle::LifecycleConfig;
use object_server::s3::checks::{
    lifecycle_rules_of, validate_lifecycle, validate_lock_configuration, validate_tagging,
};
use s3s::dto::{BucketLifecycleConfiguration, ObjectLockConfiguration, Tagging};
use s3s::xml::{Deserialize, Deserializer};

fn parse<'a, T: Deserialize<'a>>(xml: &'a [u8]) -> Option<T> {
    let mut d = Deserializer::new(xml);
    let v = T::deserialize(&mut d).ok()?;
    d.expect_eof().ok()?;
    Some(v)
}

/// A lifecycle configuration the handler accepted: stored, read back, answered by a GET and
/// put again, it stays the same.
fn round_trip(config: &LifecycleConfig) {
    let json = serde_json::to_vec(config).expect("serializes");
    let back: LifecycleConfig = serde_json::from_slice(&json).expect("reads back");
    assert_eq!(&back, config);
    let again = validate_lifecycle(Some(BucketLifecycleConfiguration {
        rules: lifecycle_rules_of(config),
        ..Default::default()
    }))
    .expect("what a GET answers validates");
    assert_eq!(&again, config);
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            if let Some(c) = parse::<BucketLifecycleConfiguration>(rest)
                && let Ok(config) = validate_lifecycle(Some(c))
            {
                round_trip(&config);
            }
        }
        1 => {
            if let Some(c) = parse::<ObjectLockConfiguration>(rest)
                && let Ok(config) = validate_lock_configuration(Some(c))
            {
                let json = serde_json::to_vec(&config).expect("serializes");
                let _: object_server::s3::checks::LockConfig =
                    serde_json::from_slice(&json).expect("reads back");
            }
        }
        2 => {
            if let Some(t) = parse::<Tagging>(rest) {
                let _ = validate_tagging(t.clone(), true);
                let _ = validate_tagging(t, false);
            }
        }
        _ => {
            // A stored file, damaged or not: reading it never panics, and what reads is answered.
            if let Ok(config) = serde_json::from_slice::<LifecycleConfig>(rest) {
                let _ = lifecycle_rules_of(&config);
            }
        }
    }
});
