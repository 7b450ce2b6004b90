//! `${NAME}` expansion in config values, from the process environment.

/// Replaces every `${NAME}` with the value of the environment variable (empty if unset).
pub fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                out.push_str(&lookup(after[..end].trim()).unwrap_or_default());
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Expands every string in a YAML/JSON value tree.
pub fn expand_value(v: &mut serde_json::Value, lookup: &dyn Fn(&str) -> Option<String>) {
    match v {
        serde_json::Value::String(s) if s.contains("${") => *s = expand(s, lookup),
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| expand_value(x, lookup)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| expand_value(x, lookup)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands() {
        let env = |k: &str| (k == "A").then(|| "x".to_string());
        assert_eq!(expand("${A}", &env), "x");
        assert_eq!(expand("a-${A}-${B}-b", &env), "a-x--b");
        assert_eq!(expand("${A", &env), "${A");
        assert_eq!(expand("plain", &env), "plain");
    }
}
