//! Durations in Tenant and KMS specs (`30s`, `5m`, `2160h`): Go durations, read by the one Go
//! duration parser of the workspace (`sidecar_kes::config::duration`), so a value KES accepts in
//! its config is read the same way here. The specs' CEL rules already keep values to whole
//! `h`/`m`/`s` parts; this adds what a spec needs on top: the duration is at least one second.

use std::time::Duration;

/// A spec duration that is not a Go duration of at least one second.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {0:?}: expected e.g. 30s, 5m or 1h30m")]
pub struct InvalidDuration(pub String);

/// Parses `1h30m`, `90s`, `2160h` as Go does; zero and anything under a second is refused.
pub fn parse(s: &str) -> Result<Duration, InvalidDuration> {
    match sidecar_kes::config::duration::parse(s) {
        Ok(d) if d >= Duration::from_secs(1) => Ok(d),
        _ => Err(InvalidDuration(s.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("2160h"), Ok(Duration::from_secs(2160 * 3600)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
    }

    #[test]
    fn rejects_garbage_zero_and_overflow() {
        for bad in [
            "",
            "5",
            "m",
            "1d",
            "1h5",
            "-1s",
            "0s",
            "0",
            "500ms",
            "6000000000000000h",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
