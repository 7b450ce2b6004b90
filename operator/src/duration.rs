//! Go-style durations (`30s`, `5m`, `1h30m`), the form KES and the CRDs use.

use std::time::Duration;

/// A duration string was not `<number><h|m|s>` repeated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {0:?}: expected e.g. 30s, 5m or 1h30m")]
pub struct InvalidDuration(pub String);

/// Parses `1h30m`, `90s`, `2160h`: one or more `<digits><h|m|s>` parts; at least one second.
pub fn parse(s: &str) -> Result<Duration, InvalidDuration> {
    let err = || InvalidDuration(s.to_string());
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut parts = 0;
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(err()),
        };
        let n: u64 = digits.parse().map_err(|_| err())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(err)?;
        digits.clear();
        parts += 1;
    }
    if parts == 0 || !digits.is_empty() || total == 0 {
        return Err(err());
    }
    Ok(Duration::from_secs(total))
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
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "5", "m", "1d", "1h5", "-1s", "0s", "1.5h"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
