//! JSON read strictly: an object that names a key twice is refused. `serde_json` keeps the last
//! of the two, while other parsers (a proxy, an auditor's tool) may keep the first: the same body
//! would mean two things. Used on every request body and on a `.dockerconfigjson` inside one.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

const MARK: &str = "duplicate key: ";

/// The first key some object of `bytes` names twice (in document order), if any. Syntax errors
/// are not reported here: the caller's parse reports them.
pub fn duplicate_key(bytes: &[u8]) -> Option<String> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    match Walk.deserialize(&mut deserializer) {
        Err(e) => {
            e.to_string().strip_prefix(MARK).map(|rest| rest.split(" at line ").next().unwrap_or(rest).to_owned())
        }
        Ok(()) => None,
    }
}

struct Walk;

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(Walk)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Walk)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("{MARK}{key}")));
            }
            map.next_value_seed(Walk)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::duplicate_key;

    #[test]
    fn a_key_named_twice_at_any_depth_is_found_and_distinct_keys_pass() {
        assert_eq!(duplicate_key(br#"{"name":"a","name":"b"}"#).as_deref(), Some("name"));
        assert_eq!(duplicate_key(br#"{"a":{"x":1,"y":[{"k":1,"k":2}]}}"#).as_deref(), Some("k"));
        assert_eq!(duplicate_key(br#"{"n\u0061me":1,"name":2}"#).as_deref(), Some("name"), "escapes are decoded first");
        assert_eq!(duplicate_key(br#"{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]}"#), None);
        assert_eq!(duplicate_key(b"not json"), None, "syntax errors are the parser's to report");
    }
}
