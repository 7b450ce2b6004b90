//! The KES config parser (`kes server --config`), both formats: the current one (`keystore:`,
//! `policy.<name>.allow`) and the MinIO KMS guide's older one (`keys: vault:`, `policy.<name>.paths`),
//! from arbitrary bytes. The first byte picks how `${VAR}` references expand (unset, to a
//! fixed value, or to the variable's own name), so the expansion is fuzzed too. It must return
//! a config or an error, never panic, and never take unbounded time or memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // `kes server --config` reads the file as UTF-8 text.
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let lookup = |name: &str| -> Option<String> {
        match mode % 3 {
            0 => None,
            1 => Some("5m".to_string()),
            _ => Some(name.to_string()),
        }
    };
    let _ = sidecar_kes::config::parse(text, &lookup);
});
