//! The config file as an ordered JSON document: keys keep the order the user wrote them in (and
//! `_comment` keys stay), and [`Doc::print`] writes it back in the file's own style: two-space
//! indentation, a value on one line when it fits in [`WIDTH`] columns (`"api": { "listen": ... }`,
//! a polygon's points), one entry per line otherwise.

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Number, Value};
use std::fmt;

/// Longest line [`Doc::print`] writes a value on one line in.
pub const WIDTH: usize = 110;

/// A JSON value whose objects keep their key order.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Doc>),
    Object(Vec<(String, Doc)>),
}

impl Doc {
    /// Parses JSON text. A key given twice keeps its first place and its last value (as the
    /// validator reads it).
    pub fn parse(text: &str) -> Result<Doc, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The same value as a `serde_json::Value` (keys sorted), for the validator and comparisons.
    pub fn to_value(&self) -> Value {
        match self {
            Doc::Null => Value::Null,
            Doc::Bool(b) => Value::Bool(*b),
            Doc::Number(n) => Value::Number(n.clone()),
            Doc::String(s) => Value::String(s.clone()),
            Doc::Array(a) => Value::Array(a.iter().map(Doc::to_value).collect()),
            Doc::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), v.to_value()))
                    .collect::<Map<_, _>>(),
            ),
        }
    }

    /// A `serde_json::Value` as a document; object keys in `order` first (in that order), then
    /// the rest alphabetically.
    pub fn from_value(v: &Value) -> Doc {
        match v {
            Value::Null => Doc::Null,
            Value::Bool(b) => Doc::Bool(*b),
            Value::Number(n) => Doc::Number(n.clone()),
            Value::String(s) => Doc::String(s.clone()),
            Value::Array(a) => Doc::Array(a.iter().map(Doc::from_value).collect()),
            Value::Object(o) => {
                let mut entries: Vec<(String, Doc)> = o
                    .iter()
                    .map(|(k, v)| (k.clone(), Doc::from_value(v)))
                    .collect();
                entries.sort_by_key(|(k, _)| (key_rank(k), k.clone()));
                Doc::Object(entries)
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&Doc> {
        match self {
            Doc::Object(o) => o.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Doc> {
        match self {
            Doc::Object(o) => o.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets `key` in an object: in place if it exists, else after the last key that comes before
    /// it in the canonical order (a key outside that order goes last).
    pub fn set(&mut self, key: &str, value: Doc) {
        let Doc::Object(o) = self else { return };
        if let Some(slot) = o.iter_mut().find(|(k, _)| k == key) {
            slot.1 = value;
            return;
        }
        let rank = key_rank(key);
        let at = if rank == usize::MAX {
            o.len()
        } else {
            // After the last key that comes before it in the canonical order.
            o.iter()
                .rposition(|(k, _)| key_rank(k) <= rank)
                .map_or(0, |i| i + 1)
        };
        o.insert(at, (key.to_string(), value));
    }

    /// Removes `key` from an object; returns whether it was there.
    pub fn remove(&mut self, key: &str) -> bool {
        let Doc::Object(o) = self else { return false };
        let before = o.len();
        o.retain(|(k, _)| k != key);
        o.len() != before
    }

    /// The document as the file's text, ending with a newline.
    pub fn print(&self) -> String {
        let mut out = String::new();
        self.write_block(&mut out, 0);
        out.push('\n');
        out
    }

    /// One-line form: `{ "a": 1, "b": [1, 2] }`.
    fn inline(&self) -> String {
        match self {
            Doc::Null => "null".into(),
            Doc::Bool(b) => b.to_string(),
            Doc::Number(n) => n.to_string(),
            Doc::String(s) => Value::String(s.clone()).to_string(),
            Doc::Array(a) if a.is_empty() => "[]".into(),
            Doc::Array(a) => format!(
                "[{}]",
                a.iter().map(Doc::inline).collect::<Vec<_>>().join(", ")
            ),
            Doc::Object(o) if o.is_empty() => "{}".into(),
            Doc::Object(o) => format!(
                "{{ {} }}",
                o.iter()
                    .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), v.inline()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Writes the value starting at the current position (after `"key": ` or the indentation), its
    /// inner lines indented by `indent + 2`; the top level is always a block.
    fn write_block(&self, out: &mut String, indent: usize) {
        let pad = " ".repeat(indent + 2);
        match self {
            Doc::Array(a) if !a.is_empty() => {
                out.push_str("[\n");
                for (i, v) in a.iter().enumerate() {
                    out.push_str(&pad);
                    v.write_value(out, indent + 2, "", i + 1 < a.len());
                }
                out.push_str(&" ".repeat(indent));
                out.push(']');
            }
            Doc::Object(o) if !o.is_empty() => {
                out.push_str("{\n");
                for (i, (k, v)) in o.iter().enumerate() {
                    out.push_str(&pad);
                    let key = format!("{}: ", Value::String(k.clone()));
                    out.push_str(&key);
                    v.write_value(out, indent + 2, &key, i + 1 < o.len());
                }
                out.push_str(&" ".repeat(indent));
                out.push('}');
            }
            other => out.push_str(&other.inline()),
        }
    }

    /// Writes one entry's value, inline when the whole line fits, then `,` and the newline.
    fn write_value(&self, out: &mut String, indent: usize, key: &str, comma: bool) {
        let one_line = self.inline();
        let fits = indent + key.len() + one_line.len() + usize::from(comma) <= WIDTH;
        let scalar = !matches!(self, Doc::Array(_) | Doc::Object(_));
        if fits || scalar {
            out.push_str(&one_line);
        } else {
            self.write_block(out, indent);
        }
        if comma {
            out.push(',');
        }
        out.push('\n');
    }
}

/// Where a key goes among its siblings when it is added: the order of `docs/config.md` for
/// a camera's fields and sections, then everything else after them.
fn key_rank(key: &str) -> usize {
    const ORDER: &[&str] = &[
        "_comment",
        "id",
        "name",
        "enabled",
        "main_url",
        "sub_url",
        "username",
        "password",
        "password_env",
        "transport",
        "schedule",
        "motion",
        "recording",
        "limits",
        "live",
        // motion
        "threshold",
        "min_area",
        "min_object",
        "min_motion_s",
        "post_motion_s",
        "zones",
        "masks",
        // a zone
        "points",
        // recording
        "mode",
        "pre_roll_s",
        "post_roll_s",
        "max_segment_s",
        "keep_days",
        "max_gb",
        // api
        "listen",
        "auth",
        "password_hash",
    ];
    ORDER.iter().position(|k| *k == key).unwrap_or(usize::MAX)
}

impl<'de> Deserialize<'de> for Doc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Doc, D::Error> {
        d.deserialize_any(DocVisitor)
    }
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Doc;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Doc, E> {
        Ok(Doc::Null)
    }
    fn visit_none<E>(self) -> Result<Doc, E> {
        Ok(Doc::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Doc, E> {
        Ok(Doc::Bool(b))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Doc, E> {
        Ok(Doc::Number(n.into()))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Doc, E> {
        Ok(Doc::Number(n.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Doc, E> {
        Number::from_f64(n)
            .map(Doc::Number)
            .ok_or_else(|| E::custom("not a finite number"))
    }
    fn visit_str<E>(self, s: &str) -> Result<Doc, E> {
        Ok(Doc::String(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Doc, E> {
        Ok(Doc::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Doc::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc, A::Error> {
        let mut entries: Vec<(String, Doc)> = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Doc>()? {
            match entries.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v,
                None => entries.push((k, v)),
            }
        }
        Ok(Doc::Object(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(path: &str) -> String {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        std::fs::read_to_string(root.join(path)).unwrap()
    }

    #[test]
    fn the_shipped_configs_print_back_byte_for_byte() {
        for path in ["config/cameras.json", "deploy/cameras.example.json"] {
            let text = shipped(path);
            let doc = Doc::parse(&text).unwrap();
            assert_eq!(doc.print(), text, "{path}");
        }
    }

    #[test]
    fn order_and_comments_are_kept_and_new_keys_take_their_place() {
        let mut doc =
            Doc::parse(r#"{"_comment": "mine", "zeta": 1, "id": "a", "main_url": "rtsp://h/"}"#)
                .unwrap();
        doc.set("name", Doc::String("A".into()));
        doc.set("recording", Doc::parse(r#"{"mode": "off"}"#).unwrap());
        doc.set("zeta", Doc::Bool(true));
        let keys: Vec<&str> = match &doc {
            Doc::Object(o) => o.iter().map(|(k, _)| k.as_str()).collect(),
            _ => unreachable!(),
        };
        assert_eq!(
            keys,
            ["_comment", "zeta", "id", "name", "main_url", "recording"]
        );
        assert!(doc.remove("zeta") && !doc.remove("zeta"));
        assert_eq!(
            doc.print(),
            "{\n  \"_comment\": \"mine\",\n  \"id\": \"a\",\n  \"name\": \"A\",\n  \"main_url\": \"rtsp://h/\",\n  \"recording\": { \"mode\": \"off\" }\n}\n"
        );
    }

    #[test]
    fn long_values_break_into_lines_and_polygons_stay_readable() {
        let points: Vec<Value> = (0..12)
            .map(|i| serde_json::json!([i as f64 / 20.0, 0.5]))
            .collect();
        let doc = Doc::from_value(&serde_json::json!({"masks": [points], "n": [1, 2]}));
        let text = doc.print();
        assert!(text.contains("\"n\": [1, 2]"), "{text}");
        assert!(text.contains("\n    [\n      [0.0, 0.5],\n"), "{text}");
        assert_eq!(Doc::parse(&text).unwrap(), doc);
        // Numbers keep their form: integers stay integers.
        let doc = Doc::parse(r#"{"a": 5, "b": 5.0, "c": 0.05, "d": -3}"#).unwrap();
        assert_eq!(
            doc.print(),
            "{\n  \"a\": 5,\n  \"b\": 5.0,\n  \"c\": 0.05,\n  \"d\": -3\n}\n"
        );
    }
}
