//! Data terms: the keys of the inverted index over events' `data` that both stores keep
//! (PostgreSQL as `(term, time, seq)` rows, the embedded store as segments of posting
//! lists, see [`crate::postings`]).
//!
//! Every string or number leaf reachable through objects only (not inside arrays) gives
//! one term: a 64-bit hash of its path and its value's text, numbers and numeric-looking
//! strings written the same way (`42`, `42.0` and `"42"` share a term). A `data.<path>=v`
//! filter looks up the term of `(path, v)` in that index, so the newest
//! matching events come straight off the index whatever the value's frequency; the exact
//! comparison still runs on the few events found (hash collisions and the text/number
//! distinctions the term blurs are filtered out there).

use crate::query::DataFilter;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The terms of an event's `data`, without repeats.
pub(crate) fn of_data(data: &Map<String, Value>) -> Vec<i64> {
    let mut out = Vec::new();
    let mut path = Vec::new();
    collect(data, &mut path, &mut out);
    out.sort_unstable();
    out.dedup();
    out
}

fn collect<'a>(map: &'a Map<String, Value>, path: &mut Vec<&'a str>, out: &mut Vec<i64>) {
    for (key, value) in map {
        path.push(key);
        match value {
            Value::String(s) => out.push(term(path, s)),
            Value::Number(n) => out.push(term(path, &n.to_string())),
            Value::Object(inner) => collect(inner, path, out),
            // Arrays, booleans and nulls are not matched by data filters.
            _ => {}
        }
        path.pop();
    }
}

/// The term a filter looks up.
pub(crate) fn of_filter(filter: &DataFilter) -> i64 {
    let path: Vec<&str> = filter.path.iter().map(String::as_str).collect();
    term(&path, &filter.value)
}

fn term(path: &[&str], value: &str) -> i64 {
    let mut hash = Sha256::new();
    for segment in path {
        hash.update(segment.as_bytes());
        hash.update([0]);
    }
    hash.update([1]);
    match value.parse::<f64>() {
        Ok(n) if n.is_finite() => {
            // One spelling per number: 42, 42.0 and "42" meet here (-0 is 0).
            let n = if n == 0.0 { 0.0 } else { n };
            hash.update(n.to_string().as_bytes());
        }
        _ => hash.update(value.as_bytes()),
    }
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn filter(path: &[&str], value: &str) -> DataFilter {
        DataFilter {
            path: path.iter().map(|s| s.to_string()).collect(),
            value: value.into(),
        }
    }

    #[test]
    fn leaves_through_objects_become_terms() {
        let data = json!({"station_id": "STN-1", "n": 42, "nested": {"k": "v"}, "list": ["x"], "ok": true, "none": null});
        let terms = of_data(data.as_object().unwrap());
        assert_eq!(terms.len(), 3);
        assert!(terms.contains(&of_filter(&filter(&["station_id"], "STN-1"))));
        assert!(terms.contains(&of_filter(&filter(&["n"], "42"))));
        assert!(terms.contains(&of_filter(&filter(&["n"], "42.0"))));
        assert!(terms.contains(&of_filter(&filter(&["nested", "k"], "v"))));
        assert!(!terms.contains(&of_filter(&filter(&["list"], "x"))));
        assert!(!terms.contains(&of_filter(&filter(&["nested"], "v"))));
        assert!(!terms.contains(&of_filter(&filter(&["station_id"], "STN-2"))));
    }

    proptest! {
        #[test]
        fn every_string_or_number_leaf_is_found_by_its_filter(
            key in "k_[a-z_]{1,8}", inner in "[a-z]{1,5}", s in ".{0,20}", n in any::<i64>()
        ) {
            let data = json!({ key.clone(): { inner.clone(): s.clone() }, "n": n });
            let terms = of_data(data.as_object().unwrap());
            prop_assert!(terms.contains(&of_filter(&filter(&[&key, &inner], &s))));
            prop_assert!(terms.contains(&of_filter(&filter(&["n"], &n.to_string()))));
        }
    }
}
