//! JSON → [`serde_json::Value`] as `serde_json` builds it, noting the first key repeated
//! within one object (JSON leaves duplicates to the reader; serde_json keeps the last).
//! The check rides on the map insert the parse does anyway, so it costs no extra lookup.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;

/// A key that appeared twice in one object: the path of keys leading to it, itself last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate(pub Vec<String>);

impl Duplicate {
    /// The path dot-joined, e.g. `data.user`.
    pub fn path(&self) -> String {
        self.0.join(".")
    }

    /// The repeated key itself.
    pub fn key(&self) -> &str {
        self.0.last().map_or("", String::as_str)
    }
}

/// A parsed JSON document: each value with the first duplicate key found in it. An
/// array's elements are checked one by one, so one bad event does not spoil the others.
pub enum Document {
    /// A top-level array: its elements.
    Array(Vec<(Value, Option<Duplicate>)>),
    /// Anything else.
    Single(Value, Option<Duplicate>),
}

/// Parses one JSON document (a request body).
pub fn parse_document(bytes: &[u8]) -> Result<Document, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let dup = RefCell::new(None);
    let top = de.deserialize_any(TopVisitor { dup: &dup })?;
    de.end()?;
    Ok(match top {
        Top::Array(items) => Document::Array(items),
        Top::Single(value) => Document::Single(value, dup.into_inner()),
    })
}

/// Parses one JSON value (an NDJSON line).
pub fn parse_value(bytes: &[u8]) -> Result<(Value, Option<Duplicate>), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let dup = RefCell::new(None);
    let value = ValueSeed { dup: &dup }.deserialize(&mut de)?;
    de.end()?;
    Ok((value, dup.into_inner()))
}

enum Top {
    Array(Vec<(Value, Option<Duplicate>)>),
    Single(Value),
}

/// The top level: an array yields its elements each with its own duplicate; any other
/// value is parsed as a [`ValueVisitor`] would.
struct TopVisitor<'a> {
    dup: &'a RefCell<Option<Duplicate>>,
}

impl TopVisitor<'_> {
    fn value(&self) -> ValueVisitor<'_> {
        ValueVisitor { dup: self.dup }
    }
}

macro_rules! single {
    ($($method:ident($ty:ty)),* $(,)?) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Top, E> {
            self.value().$method(v).map(Top::Single)
        }
    )*};
}

impl<'de> Visitor<'de> for TopVisitor<'_> {
    type Value = Top;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    single! {
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64),
        visit_str(&str),
        visit_string(String),
    }

    fn visit_unit<E: de::Error>(self) -> Result<Top, E> {
        self.value().visit_unit().map(Top::Single)
    }

    fn visit_none<E: de::Error>(self) -> Result<Top, E> {
        self.visit_unit()
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Top, A::Error> {
        self.value().visit_map(map).map(Top::Single)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top, A::Error> {
        let mut items = Vec::new();
        loop {
            let dup = RefCell::new(None);
            match seq.next_element_seed(ValueSeed { dup: &dup })? {
                Some(value) => items.push((value, dup.into_inner())),
                None => break,
            }
        }
        Ok(Top::Array(items))
    }
}

/// Deserializes a [`Value`], recording the first duplicate key into `dup`.
struct ValueSeed<'a> {
    dup: &'a RefCell<Option<Duplicate>>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor { dup: self.dup })
    }
}

struct ValueVisitor<'a> {
    dup: &'a RefCell<Option<Duplicate>>,
}

impl<'de> Visitor<'de> for ValueVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        ValueSeed { dup: self.dup }.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(value) = seq.next_element_seed(ValueSeed { dup: self.dup })? {
            items.push(value);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let clean = self.dup.borrow().is_none();
            let value = map.next_value_seed(ValueSeed { dup: self.dup })?;
            if clean && let Some(found) = self.dup.borrow_mut().as_mut() {
                // Found inside this key's value: prefix the path with the key.
                found.0.insert(0, key.clone());
            }
            match out.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                Entry::Occupied(mut slot) => {
                    let mut dup = self.dup.borrow_mut();
                    if dup.is_none() {
                        *dup = Some(Duplicate(vec![slot.key().clone()]));
                    }
                    slot.insert(value);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dup_of(text: &str) -> Option<String> {
        parse_value(text.as_bytes()).unwrap().1.map(|d| d.path())
    }

    #[test]
    fn the_first_repeat_is_named_by_its_path() {
        assert_eq!(dup_of(r#"{"a":1,"b":2}"#), None);
        assert_eq!(dup_of(r#"{"a":1,"a":2}"#), Some("a".into()));
        assert_eq!(
            dup_of(r#"{"x":{"ok":[{"k":1,"k":2}]},"y":1,"y":2}"#),
            Some("x.ok.k".into())
        );
        assert_eq!(
            dup_of(r#"{"a":{"b":1},"b":1}"#),
            None,
            "same key, other objects"
        );
    }

    #[test]
    fn array_elements_are_checked_each_alone() {
        let Document::Array(items) = parse_document(br#"[{"a":1,"a":1},{"a":1}]"#).unwrap() else {
            panic!("an array");
        };
        let dups: Vec<_> = items
            .iter()
            .map(|(_, d)| d.as_ref().map(Duplicate::key))
            .collect();
        assert_eq!(dups, [Some("a"), None]);
    }

    #[test]
    fn what_serde_json_refuses_is_refused() {
        assert!(parse_value(b"{} x").is_err());
        assert!(parse_document(b"[1,]").is_err());
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        assert!(parse_document(deep.as_bytes()).is_err());
        assert!(matches!(
            parse_document(b"\"s\"").unwrap(),
            Document::Single(Value::String(_), None)
        ));
    }
}
