//! Decoding JSON the way Go's `encoding/json` does, because the programs
//! that write our input (containerd's go-cni, libcni, Podman, the reference
//! plugins' results) and the plugins a config was written for are Go.
//!
//! Go matches an object key to a struct field exactly first and then
//! case-insensitively, and ignores unknown keys. containerd's go-cni has no
//! JSON tags on its capability structs, so it sends
//! `{"HostPort":18082,"ContainerPort":80,…}`, which the reference portmap
//! accepts. [`from_value`] gives every typed decode in the suite the same
//! rule in one place: a [`serde::Deserializer`] over a [`Value`] that, when
//! serde asks for a struct (and so names its fields), renames each key to
//! the field it matches before the struct sees it. Nested structs, options,
//! sequences and maps are wrapped the same way, so the rule holds at every
//! depth; error paths name the field as the struct spells it.
//!
//! Limits, by construction: `#[serde(flatten)]` and untagged enums buffer
//! their input and match exactly, so no type we decode uses them.

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

/// Decodes `v` into `T` with Go's key matching.
pub fn from_value<T: DeserializeOwned>(v: &Value) -> Result<T, serde_json::Error> {
    T::deserialize(GoValue(v))
}

/// Decodes `v` into `T` with Go's key matching, keeping the path of the
/// field that failed (`portMappings[0].hostPort`) for the error message.
pub fn from_value_with_path<T: DeserializeOwned>(
    v: &Value,
) -> Result<T, serde_path_to_error::Error<serde_json::Error>> {
    serde_path_to_error::deserialize(GoValue(v))
}

/// The member of `object` that Go would decode into a field named `key`:
/// the exact key if present, otherwise the first key equal to it under
/// Go's case folding. For the few places that read one member of a raw
/// document before (or instead of) decoding it.
pub fn get<'a>(object: &'a Value, key: &str) -> Option<&'a Value> {
    member(object.as_object()?, key)
}

/// [`get`] on an object already taken apart.
pub fn member<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| map.iter().find(|(k, _)| fold_eq(k, key)).map(|(_, v)| v))
}

/// Go's `bytes.EqualFold` for the keys we meet: simple Unicode case
/// folding, including the two non-ASCII letters that fold to ASCII
/// (KELVIN SIGN to `k`, LONG S to `s`).
fn fold_eq(a: &str, b: &str) -> bool {
    fn fold(c: char) -> char {
        match c {
            '\u{212A}' => 'k',
            '\u{017F}' => 's',
            c => {
                let mut l = c.to_lowercase();
                match (l.next(), l.next()) {
                    (Some(one), None) => one,
                    _ => c,
                }
            }
        }
    }
    let mut x = a.chars().map(fold);
    let mut y = b.chars().map(fold);
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(p), Some(q)) if p == q => continue,
            _ => return false,
        }
    }
}

/// `v` with every object key re-cased at random (from `seed`), except the
/// keys of members named in `verbatim` (maps whose keys are data, such as
/// tuning's `sysctl` or a conflist's `capabilities`). Tests of every crate
/// use it to show that any spelling Go accepts decodes to the same value.
pub fn refold_keys(v: &Value, seed: u64, verbatim: &[&str]) -> Value {
    fn walk(v: &Value, state: &mut u64, verbatim: &[&str], keep_keys: bool) -> Value {
        match v {
            Value::Array(items) => Value::Array(items.iter().map(|i| walk(i, state, verbatim, false)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, val)| {
                        let key = if keep_keys {
                            k.clone()
                        } else {
                            k.chars()
                                .map(|c| {
                                    // xorshift64: one bit per letter.
                                    *state ^= *state << 13;
                                    *state ^= *state >> 7;
                                    *state ^= *state << 17;
                                    if *state & 1 == 1 {
                                        c.to_ascii_uppercase()
                                    } else {
                                        c.to_ascii_lowercase()
                                    }
                                })
                                .collect()
                        };
                        (key, walk(val, state, verbatim, verbatim.contains(&k.as_str())))
                    })
                    .collect(),
            ),
            scalar => scalar.clone(),
        }
    }
    let mut state = seed | 1;
    walk(v, &mut state, verbatim, false)
}

/// The members of `map` keyed by the struct field each one decodes into.
/// An exact key wins over a folded one for the same field (Go keeps the
/// last one in document order, which a parsed `Value` no longer has; the
/// exact spelling is the one a writer meant). Unknown keys pass unchanged;
/// `null` members are dropped, as Go leaves such a field at its zero value.
fn match_fields<'de>(map: &'de Map<String, Value>, fields: &'static [&'static str]) -> Vec<(&'de str, &'de Value)> {
    let mut out: Vec<(&'de str, &'de Value, bool)> = Vec::with_capacity(map.len());
    // Go leaves a field at its zero value for `null`; absent does the same
    // here (`"portMappings": null` is an empty list, not an error).
    for (k, v) in map.iter().filter(|(_, v)| !v.is_null()) {
        let (name, exact): (&'de str, bool) = if fields.contains(&k.as_str()) {
            (k.as_str(), true)
        } else if let Some(f) = fields.iter().find(|f| fold_eq(f, k)) {
            (f, false)
        } else {
            (k.as_str(), true)
        };
        match out.iter_mut().find(|(n, _, _)| *n == name) {
            Some(slot) if exact || !slot.2 => *slot = (name, v, exact),
            Some(_) => {}
            None => out.push((name, v, exact)),
        }
    }
    out.into_iter().map(|(n, v, _)| (n, v)).collect()
}

/// A borrowed JSON value that deserialises with Go's key matching.
#[derive(Clone, Copy)]
struct GoValue<'de>(&'de Value);

impl<'de> de::Deserializer<'de> for GoValue<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Array(items) => visitor.visit_seq(GoSeq(items.iter())),
            Value::Object(map) => visitor.visit_map(GoMap::new(map.iter().map(|(k, v)| (k.as_str(), v)).collect())),
            scalar => de::Deserializer::deserialize_any(scalar, visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(GoMap::new(match_fields(map, fields))),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_enum(self.0, name, variants, visitor)
    }

    // Scalars: serde_json's own messages ("invalid type: string, expected u16").
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_bool(self.0, v)
    }
    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_i8(self.0, v)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_i16(self.0, v)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_i32(self.0, v)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_i64(self.0, v)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_u8(self.0, v)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_u16(self.0, v)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_u32(self.0, v)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_u64(self.0, v)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_f32(self.0, v)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_f64(self.0, v)
    }
    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_char(self.0, v)
    }
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_str(self.0, v)
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_string(self.0, v)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_bytes(self.0, v)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_byte_buf(self.0, v)
    }
    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_unit(self.0, v)
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, v: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_unit_struct(self.0, name, v)
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_identifier(self.0, v)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        v.visit_unit()
    }

    forward_to_deserialize_any! { i128 u128 seq tuple tuple_struct map }
}

impl<'de> IntoDeserializer<'de, serde_json::Error> for GoValue<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// The elements of an array, each with Go's key matching.
struct GoSeq<'de>(std::slice::Iter<'de, Value>);

impl<'de> SeqAccess<'de> for GoSeq<'de> {
    type Error = serde_json::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Self::Error> {
        self.0.next().map(|v| seed.deserialize(GoValue(v))).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// The members of an object (keys already matched to fields), each value
/// with Go's key matching.
struct GoMap<'de> {
    members: std::vec::IntoIter<(&'de str, &'de Value)>,
    value: Option<&'de Value>,
}

impl<'de> GoMap<'de> {
    fn new(members: Vec<(&'de str, &'de Value)>) -> Self {
        GoMap { members: members.into_iter(), value: None }
    }
}

impl<'de> MapAccess<'de> for GoMap<'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        match self.members.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(BorrowedStrDeserializer::new(k)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
        let v = self.value.take().ok_or_else(|| de::Error::custom("value requested before key"))?;
        seed.deserialize(GoValue(v))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.members.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Mapping {
        #[serde(rename = "hostPort")]
        host_port: u16,
        #[serde(rename = "hostIP", default)]
        host_ip: String,
        #[serde(default)]
        inner: Option<Inner>,
        #[serde(default)]
        list: Vec<Inner>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        #[serde(rename = "rangeStart")]
        range_start: String,
    }

    #[test]
    fn keys_match_case_insensitively_at_every_depth() {
        let m: Mapping = from_value(&json!({
            "HostPort": 80, "HOSTIP": "1.2.3.4",
            "Inner": {"RANGESTART": "a"}, "LIST": [{"rangestart": "b"}]
        }))
        .unwrap();
        assert_eq!(m.host_port, 80);
        assert_eq!(m.host_ip, "1.2.3.4");
        assert_eq!(m.inner, Some(Inner { range_start: "a".into() }));
        assert_eq!(m.list, vec![Inner { range_start: "b".into() }]);
    }

    #[test]
    fn exact_key_wins_over_folded() {
        let m: Mapping = from_value(&json!({"HostPort": 1, "hostPort": 2})).unwrap();
        assert_eq!(m.host_port, 2);
        let m: Mapping = from_value(&json!({"hostPort": 2, "HOSTPORT": 1})).unwrap();
        assert_eq!(m.host_port, 2);
    }

    #[test]
    fn errors_name_the_field_as_spelled_by_the_spec() {
        let e = from_value_with_path::<Mapping>(&json!({"HostPort": "x", "List": [{"RangeStart": 5}]})).unwrap_err();
        assert!(e.path().to_string() == "hostPort" || e.path().to_string() == "list[0].rangeStart", "{}", e.path());
        let e = from_value_with_path::<Mapping>(&json!({"HostPort": 1, "List": [{"RangeStart": 5}]})).unwrap_err();
        assert_eq!(e.path().to_string(), "list[0].rangeStart");
    }

    #[test]
    fn null_is_the_zero_value_as_in_go() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct Caps {
            #[serde(rename = "portMappings", default)]
            port_mappings: Vec<u16>,
            #[serde(default)]
            name: String,
        }
        let c: Caps = from_value(&json!({"portMappings": null, "Name": null})).unwrap();
        assert_eq!(c, Caps { port_mappings: vec![], name: String::new() });
    }

    #[test]
    fn kelvin_and_long_s_fold_like_go() {
        assert!(fold_eq("\u{212A}ey", "key"));
        assert!(fold_eq("\u{017F}ubnet", "SUBNET"));
        assert!(!fold_eq("subnets", "subnet"));
    }

    #[test]
    fn get_prefers_exact() {
        let v = json!({"CNIVERSION": "0.4.0", "cniVersion": "1.0.0"});
        assert_eq!(get(&v, "cniVersion"), Some(&json!("1.0.0")));
        assert_eq!(get(&json!({"CniVersion": "1.0.0"}), "cniVersion"), Some(&json!("1.0.0")));
    }
}
