//! `key=value` pairs separated by spaces, as PAM and auditd write them: values bare,
//! "double-quoted" or 'single-quoted' (auditd nests a whole record in `msg='...'`).

use std::collections::BTreeMap;

/// The pairs of `text`, in a map (a repeated key keeps its last value). Words without
/// `=` are skipped.
pub fn pairs(text: &str) -> BTreeMap<String, String> {
    marked(text).into_iter().map(|(k, v, _)| (k, v)).collect()
}

/// The pairs of `text` in order, each with whether its value was quoted.
pub fn marked(text: &str) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let word_end = rest.find([' ', '=']).unwrap_or(rest.len());
        if rest[word_end..].starts_with('=') {
            let key = &rest[..word_end];
            let after = &rest[word_end + 1..];
            let quoted = after.starts_with(['"', '\'']);
            let (value, next) = value(after);
            out.push((
                key.trim_end_matches(':').to_owned(),
                value.to_owned(),
                quoted,
            ));
            rest = next.trim_start();
        } else {
            rest = rest[word_end..].trim_start();
        }
    }
    out
}

/// One value at the start of `text` and what follows it.
fn value(text: &str) -> (&str, &str) {
    for quote in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(quote) {
            return match inner.find(quote) {
                Some(end) => (&inner[..end], &inner[end + 1..]),
                None => (inner, ""),
            };
        }
    }
    let end = text.find(' ').unwrap_or(text.len());
    (&text[..end], &text[end..])
}
