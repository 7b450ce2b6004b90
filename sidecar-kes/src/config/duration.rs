//! Go durations, as Go's `time.ParseDuration` reads them: the form KES config files, MinIO's
//! `MINIO_*_TIMEOUT` variables and `kes identity new --expiry` use (`5m0s`, `20s`, `8760h`,
//! `1h30m`, `1.5s`, `500ms`).
//!
//! What it accepts is exactly Go's grammar, so a value that works with MinIO's KES works here
//! and one it refuses is refused here too: an optional sign, then one or more
//! `<number><unit>` parts, where a number is decimal digits with an optional fraction (`1.5`,
//! `.5`, `1.`) and a unit is `ns`, `us`, `µs` (U+00B5 or U+03BC), `ms`, `s`, `m` or `h`;
//! or the bare `0`. There are no days (`d`): Go has none, and a config key that means days
//! has to say so itself. The total is counted in whole nanoseconds, as Go's is (a fraction
//! finer than the unit's nanoseconds is truncated), and must fit Go's `time.Duration` (an
//! `int64` of nanoseconds, about 292 years): a larger value is an error, never a wrap or a
//! panic. A negative duration is an error too, since nothing here can wait a negative time
//! (`-0` and `-0s` are zero). Every failure is an `Err` naming the input; the parser never
//! panics, whatever the bytes.

use std::time::Duration;

/// The largest magnitude of Go's `time.Duration` in nanoseconds (`1 << 63`; the positive
/// limit is one less).
const GO_LIMIT: u64 = 1 << 63;

/// Nanoseconds per unit, with Go's unit names.
fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{00b5}s" | "\u{03bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ => return None,
    })
}

/// Parses a Go duration (see the module doc).
pub fn parse(s: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration \"{s}\"");
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        if !rest.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let (whole, after) = leading_int(rest).ok_or_else(invalid)?;
        let has_whole = after.len() != rest.len();
        rest = after;
        let (mut fraction, mut scale, mut has_fraction) = (0u64, 1f64, false);
        if let Some(after_dot) = rest.strip_prefix('.') {
            let (f, sc, after) = leading_fraction(after_dot);
            has_fraction = after.len() != after_dot.len();
            (fraction, scale, rest) = (f, sc, after);
        }
        if !has_whole && !has_fraction {
            return Err(invalid());
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration \"{s}\""));
        }
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let per_unit = unit_nanos(unit)
            .ok_or_else(|| format!("time: unknown unit \"{unit}\" in duration \"{s}\""))?;
        if whole > GO_LIMIT / per_unit {
            return Err(invalid());
        }
        let mut part = whole * per_unit;
        if fraction > 0 {
            // As Go: the fraction's nanoseconds in floating point, truncated. The value is at
            // most `per_unit` (< 2^43), so the conversion cannot saturate.
            part += (fraction as f64 * (per_unit as f64 / scale)) as u64;
            if part > GO_LIMIT {
                return Err(invalid());
            }
        }
        total = total
            .checked_add(part)
            .filter(|t| *t <= GO_LIMIT)
            .ok_or_else(invalid)?;
    }
    if negative {
        return if total == 0 {
            Ok(Duration::ZERO)
        } else {
            Err(format!(
                "invalid duration \"{s}\": a duration cannot be negative"
            ))
        };
    }
    if total > GO_LIMIT - 1 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(total))
}

/// The leading decimal digits of `s` and the rest; `None` if the number exceeds `1 << 63`.
fn leading_int(s: &str) -> Option<(u64, &str)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let mut x: u64 = 0;
    for b in s[..digits].bytes() {
        if x > GO_LIMIT / 10 {
            return None;
        }
        x = x * 10 + u64::from(b - b'0');
        if x > GO_LIMIT {
            return None;
        }
    }
    Some((x, &s[digits..]))
}

/// The digits of a fraction (after the dot): its value, `10^digits used` and the rest. Digits
/// past what fits are consumed but ignored, as Go does (they are below a nanosecond anyway).
fn leading_fraction(s: &str) -> (u64, f64, &str) {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (mut x, mut scale, mut overflow) = (0u64, 1f64, false);
    for b in s[..digits].bytes() {
        if overflow {
            continue;
        }
        if x > (GO_LIMIT - 1) / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(b - b'0');
        if y > GO_LIMIT {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, &s[digits..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: u64 = 1;
    const US: u64 = 1_000;
    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;
    const M: u64 = 60 * S;
    const H: u64 = 60 * M;

    /// Go's own accepted examples (its `parseDurationTests`, the non-negative ones), and the
    /// KES config forms.
    #[test]
    fn accepts_what_go_accepts() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("5s", 5 * S),
            ("30s", 30 * S),
            ("1478s", 1478 * S),
            ("+5s", 5 * S),
            ("+0", 0),
            ("-0", 0),
            ("-0s", 0),
            ("5.0s", 5 * S),
            ("5.6s", 5 * S + 600 * MS),
            ("5.s", 5 * S),
            (".5s", 500 * MS),
            ("1.0s", S),
            ("1.00s", S),
            ("1.004s", S + 4 * MS),
            ("1.0040s", S + 4 * MS),
            ("100.00100s", 100 * S + MS),
            ("10ns", 10 * NS),
            ("11us", 11 * US),
            ("12\u{00b5}s", 12 * US),
            ("12\u{03bc}s", 12 * US),
            ("13ms", 13 * MS),
            ("14s", 14 * S),
            ("15m", 15 * M),
            ("16h", 16 * H),
            ("3h30m", 3 * H + 30 * M),
            ("10.5s4m", 4 * M + 10 * S + 500 * MS),
            (
                "1h2m3s4ms5us6ns",
                H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS,
            ),
            ("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425 * MS),
            ("52763797000ns", 52763797000 * NS),
            ("0.3333333333333333333h", 20 * M),
            ("9007199254740993ns", (1 << 53) + 1),
            ("9223372036854775807ns", (1 << 63) - 1),
            ("9223372036854775.807us", (1 << 63) - 1),
            ("9223372036s854ms775us807ns", (1 << 63) - 1),
            ("0.100000000000000000000h", 6 * M),
            ("0.830103483285477580700h", 49 * M + 48 * S + 372539827 * NS),
            // KES config and guide forms.
            ("5m0s", 5 * M),
            ("20s", 20 * S),
            ("8760h", 8760 * H),
            ("1h30m", 90 * M),
            ("500ms", 500 * MS),
            ("1.5h", 90 * M),
        ];
        for (input, nanos) in cases {
            assert_eq!(
                parse(input),
                Ok(Duration::from_nanos(*nanos)),
                "parse({input:?})"
            );
        }
    }

    /// Go's refused examples, units Go does not have, overflow, and what Rust's number
    /// parsing would take but Go's grammar does not.
    #[test]
    fn refuses_what_go_refuses() {
        for input in [
            "",
            "3",
            "-",
            "s",
            ".",
            "-.",
            ".s",
            "+.s",
            "1d",
            "2d",
            "1h1d",
            "5x",
            "abc",
            " 5s",
            "5s ",
            "5 s",
            "1e3s",
            "inf",
            "NaNs",
            "1_000s",
            "0x10s",
            "\u{00b5}s",
            "3000000h",
            "9223372036854775808ns",
            "9223372036854775.808us",
            "9223372036854ms775us808ns",
            "6000000000000000h",
            "18446744073709551616ns",
            "99999999999999999999999999999s",
            "2562048h",
            "2562047h48m",
            "1s\u{0}",
        ] {
            assert!(
                parse(input).is_err(),
                "parse({input:?}) = {:?}",
                parse(input)
            );
        }
    }

    #[test]
    fn negative_durations_are_errors() {
        for input in ["-5s", "-1ns", "-9223372036854775808ns", "-3h30m"] {
            let err = parse(input).unwrap_err();
            assert!(err.contains("negative"), "{input}: {err}");
        }
    }

    /// The largest Go duration, 2562047h47m16.854775807s, parses; one nanosecond more does not.
    #[test]
    fn the_limit_is_gos() {
        assert_eq!(
            parse("2562047h47m16.854775807s"),
            Ok(Duration::from_nanos(i64::MAX as u64))
        );
        assert!(parse("2562047h47m16.854775808s").is_err());
    }

    #[test]
    fn errors_name_the_input_and_the_unit() {
        assert_eq!(
            parse("1d").unwrap_err(),
            "time: unknown unit \"d\" in duration \"1d\""
        );
        assert_eq!(
            parse("5").unwrap_err(),
            "time: missing unit in duration \"5\""
        );
        assert_eq!(
            parse("6000000000000000h").unwrap_err(),
            "time: invalid duration \"6000000000000000h\""
        );
    }
}
