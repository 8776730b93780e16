//! Walks parsed JSON objects field by field, collecting every problem instead of stopping at the first.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Longest duration a config may give: longer ones overflow the clock arithmetic of the supervisor
/// and workers (`Duration::from_secs_f64`, `Instant + Duration`), which would panic.
pub const MAX_SECONDS: f64 = 1e9;

/// One thing wrong with the config: where (a JSON path such as `cameras[2].sub_url`) and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// The problems found so far, and the notes: things that are accepted but deserve a word (a
/// deprecated field and what it was read as).
#[derive(Debug, Default)]
pub struct Problems(pub Vec<Problem>, pub Vec<Problem>);

impl Problems {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Records a note: the config is valid, but the user should hear this.
    pub fn note(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.1.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// A JSON object being read: remembers which keys were asked for, so the rest can be reported as unknown.
pub struct ObjReader<'a> {
    map: &'a Map<String, Value>,
    path: String,
    known: Vec<&'static str>,
}

impl<'a> ObjReader<'a> {
    /// Reads `value` as an object at `path`; reports a problem and returns `None` when it is not one.
    pub fn new(value: &'a Value, path: &str, problems: &mut Problems) -> Option<Self> {
        match value {
            Value::Object(map) => Some(ObjReader {
                map,
                path: path.to_string(),
                known: Vec::new(),
            }),
            other => {
                problems.push(
                    path,
                    format!("expected an object {{ ... }}, found {}", kind(other)),
                );
                None
            }
        }
    }

    pub fn field_path(&self, key: &str) -> String {
        // An empty key still needs a name in the message.
        let key = if key.is_empty() { "\"\"" } else { key };
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The raw value of `key`, marking it known.
    pub fn raw(&mut self, key: &'static str) -> Option<&'a Value> {
        if !self.known.contains(&key) {
            self.known.push(key);
        }
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// `key` deserialized as `T`; a wrong type is reported with `hint` as the fix.
    pub fn get<T: DeserializeOwned>(
        &mut self,
        key: &'static str,
        hint: &str,
        problems: &mut Problems,
    ) -> Option<T> {
        let value = self.raw(key)?;
        match serde_json::from_value::<T>(value.clone()) {
            Ok(v) => Some(v),
            Err(e) => {
                problems.push(self.field_path(key), format!("{e}; {hint}"));
                None
            }
        }
    }

    /// A duration in seconds that must be a positive number of at most [`MAX_SECONDS`].
    pub fn seconds(&mut self, key: &'static str, problems: &mut Problems) -> Option<f64> {
        let s = self.positive(key, "seconds", problems)?;
        if s > MAX_SECONDS {
            problems.push(
                self.field_path(key),
                format!("{s} seconds is too long; set at most {MAX_SECONDS} (about 31 years)"),
            );
            return None;
        }
        Some(s)
    }

    /// A positive number of `unit`s.
    pub fn positive(
        &mut self,
        key: &'static str,
        unit: &str,
        problems: &mut Problems,
    ) -> Option<f64> {
        let value = self.raw(key)?;
        match value.as_f64() {
            Some(n) if n > 0.0 && n.is_finite() => Some(n),
            Some(n) => {
                problems.push(
                    self.field_path(key),
                    format!("{n} is not positive; set a number of {unit} greater than 0"),
                );
                None
            }
            None => {
                problems.push(
                    self.field_path(key),
                    format!("expected a number of {unit}, found {}", kind(value)),
                );
                None
            }
        }
    }

    /// A number that must lie in `lo..=hi`.
    pub fn number_in(
        &mut self,
        key: &'static str,
        lo: f64,
        hi: f64,
        problems: &mut Problems,
    ) -> Option<f64> {
        let value = self.raw(key)?;
        match value.as_f64() {
            Some(n) if (lo..=hi).contains(&n) => Some(n),
            _ => {
                problems.push(
                    self.field_path(key),
                    format!("{value} is out of range; use a number from {lo} to {hi}"),
                );
                None
            }
        }
    }

    /// Reports every key that no reader asked for. Keys starting with `_` are comments and are ignored.
    pub fn finish(self, problems: &mut Problems) {
        for key in self.map.keys() {
            if key.starts_with('_') || self.known.contains(&key.as_str()) {
                continue;
            }
            let fix = match closest(key, &self.known) {
                Some(near) => format!("did you mean \"{near}\"?"),
                None => format!("known fields here: {}", self.known.join(", ")),
            };
            problems.push(self.field_path(key), format!("unknown field; {fix}"));
        }
    }
}

/// A word for the JSON type of `v`, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The known key nearest to `key` by edit distance, if near enough to be a typo.
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(&key.to_lowercase(), k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_suggestions() {
        let known = ["main_url", "sub_url", "password", "password_env"];
        assert_eq!(closest("mainurl", &known), Some("main_url"));
        assert_eq!(closest("pasword", &known), Some("password"));
        assert_eq!(closest("Sub_Url", &known), Some("sub_url"));
        assert_eq!(closest("banana", &known), None);
    }
}
