//! The edits the web UI makes to the config document, pure: a camera added, changed or removed,
//! its zones and masks, the first login. Every result is checked by the start-up validator
//! (`nvr_config::parse`) before anyone writes it.
//!
//! A changed camera field is written only where the user's value differs from what the camera
//! had; there, a value equal to what `defaults` (or the built-in default) gives is removed from the
//! camera rather than written, so the camera keeps following `defaults`. A field the request does
//! not name is left as it is, and a secret sent back as `"***"` keeps the stored one.

use super::doc::Doc;
use nvr_config::{CameraConfig, Config, Problem};
use serde_json::{json, Value};
use std::path::Path;

/// What a secret looks like to the UI.
pub const MASK: &str = "***";

/// Sections of a camera whose fields are edited one by one.
const SECTIONS: [&str; 5] = ["motion", "recording", "limits", "live", "onvif"];

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("no camera with id {0:?}")]
    NoCamera(String),
    #[error("a camera with id {0:?} exists already; choose another id")]
    Exists(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("the config would be invalid ({} problem(s))", .0.len())]
    Invalid(Vec<Problem>),
}

/// Whether a config key holds a secret: shown as `"***"`, never sent to a browser. Covers every
/// section's secrets by name (`password`, `password_hash`, `token`, `secret`, `*_password`,
/// `*_token`, `*_secret`, `*_key`), so a section added later is covered; `password_env` names a
/// variable and is no secret.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    if k.ends_with("_env") {
        return false;
    }
    matches!(
        k.as_str(),
        "password" | "password_hash" | "passwd" | "token" | "secret" | "api_key" | "key"
    ) || ["_password", "_token", "_secret", "_key", "_hash"]
        .iter()
        .any(|s| k.ends_with(s))
}

/// `v` with every secret's value replaced by `"***"` (a `null` stays `null`).
pub fn masked(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) && !v.is_null() && !v.is_object() {
                        Value::String(MASK.into())
                    } else {
                        masked(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(masked).collect()),
        other => other.clone(),
    }
}

/// Runs the start-up validator over a document: every problem, with its JSON path.
pub fn validate(doc: &Doc, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Vec<Problem>> {
    let text = doc.print();
    nvr_config::parse(&text, Path::new("cameras.json"), env).map_err(|e| e.problems)
}

/// A camera with `defaults` applied, as the UI edits it (secrets masked).
pub fn effective_camera(c: &CameraConfig) -> Value {
    masked(&serde_json::to_value(c).unwrap_or(Value::Null))
}

/// What a camera that sets nothing but its id and URL gets from `defaults` and the built-in
/// defaults, with `name` = `id`.
fn camera_defaults(doc: &Doc, id: &str) -> Result<Value, EditError> {
    let mut probe = doc.clone();
    probe.set(
        "cameras",
        Doc::from_value(&json!([{"id": id, "main_url": "rtsp://defaults.invalid/"}])),
    );
    // Only `defaults` matters here: a variable it names counts as set.
    let config = validate(&probe, &|_| Some(String::new())).map_err(EditError::Invalid)?;
    let camera = config
        .cameras
        .first()
        .ok_or_else(|| EditError::BadRequest("no camera".into()))?;
    Ok(effective_camera(camera))
}

fn cameras_mut(doc: &mut Doc) -> Result<&mut Vec<Doc>, EditError> {
    match doc.get_mut("cameras") {
        Some(Doc::Array(a)) => Ok(a),
        _ => Err(EditError::BadRequest(
            "the config has no \"cameras\" array".into(),
        )),
    }
}

fn camera_index(doc: &Doc, id: &str) -> Option<usize> {
    match doc.get("cameras") {
        Some(Doc::Array(a)) => a
            .iter()
            .position(|c| matches!(c.get("id"), Some(Doc::String(s)) if s == id)),
        _ => None,
    }
}

/// JSON equality with numbers compared by value (`30` equals `30.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Sets or removes `key` of `obj` for the user's value `new`: untouched when it equals what the
/// camera had (`old`), removed when it equals the default (or is `null`), written otherwise.
fn apply_field(
    obj: &mut Doc,
    key: &str,
    new: &Value,
    old: Option<&Value>,
    default: Option<&Value>,
) {
    if old.is_some_and(|o| same(o, new)) {
        return;
    }
    if new.is_null() || default.is_some_and(|d| same(d, new)) {
        obj.remove(key);
    } else {
        obj.set(key, Doc::from_value(new));
    }
}

/// Applies the user's camera object `edit` to the camera's own object `raw`, given what the
/// camera had (`old`, effective, masked) and what it would get from the defaults (`default`).
fn apply_camera(
    raw: &mut Doc,
    edit: &Value,
    old: &Value,
    default: &Value,
) -> Result<(), EditError> {
    let Value::Object(fields) = edit else {
        return Err(EditError::BadRequest(
            "send the camera as a JSON object".into(),
        ));
    };
    for (key, new) in fields {
        match key.as_str() {
            "id" => {} // checked by the caller
            "password" => match new {
                Value::String(s) if s == MASK => {}
                Value::Null => {
                    raw.remove("password");
                }
                _ => {
                    raw.set("password", Doc::from_value(new));
                    raw.remove("password_env");
                }
            },
            "password_env" => match new {
                Value::Null => {
                    raw.remove("password_env");
                }
                _ => {
                    raw.set("password_env", Doc::from_value(new));
                    if !fields.contains_key("password") || fields["password"] == MASK {
                        raw.remove("password");
                    }
                }
            },
            section if SECTIONS.contains(&section) && new.is_object() => {
                let mut obj = raw
                    .get(section)
                    .cloned()
                    .filter(|d| matches!(d, Doc::Object(_)))
                    .unwrap_or(Doc::Object(Vec::new()));
                for (sub, value) in new.as_object().into_iter().flatten() {
                    // A section's secret sent back masked (`onvif.password`) keeps the stored one.
                    if is_secret_key(sub) && value == MASK {
                        continue;
                    }
                    apply_field(
                        &mut obj,
                        sub,
                        value,
                        old.get(section).and_then(|s| s.get(sub)),
                        default.get(section).and_then(|s| s.get(sub)),
                    );
                }
                if obj == Doc::Object(Vec::new()) {
                    raw.remove(section);
                } else {
                    raw.set(section, obj);
                }
            }
            _ => apply_field(raw, key, new, old.get(key), default.get(key)),
        }
    }
    Ok(())
}

/// The document with camera `id` changed by `edit` (only the fields it names), validated.
pub fn put_camera(
    doc: &Doc,
    id: &str,
    edit: &Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Doc, Config), EditError> {
    if let Some(sent) = edit.get("id") {
        if sent.as_str() != Some(id) {
            return Err(EditError::BadRequest(format!(
                "the camera's id cannot change (from {id:?}); add a new camera and delete this one"
            )));
        }
    }
    let current = validate(doc, env).map_err(EditError::Invalid)?;
    let old = current
        .camera(id)
        .map(effective_camera)
        .ok_or_else(|| EditError::NoCamera(id.into()))?;
    let default = camera_defaults(doc, id)?;
    let i = camera_index(doc, id).ok_or_else(|| EditError::NoCamera(id.into()))?;
    let mut out = doc.clone();
    let raw = &mut cameras_mut(&mut out)?[i];
    apply_camera(raw, edit, &old, &default)?;
    let config = validate(&out, env).map_err(EditError::Invalid)?;
    Ok((out, config))
}

/// The document with the camera `edit` appended (its fields written only where they differ from
/// the defaults), validated.
pub fn add_camera(
    doc: &Doc,
    edit: &Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Doc, Config), EditError> {
    let id = match edit.get("id") {
        Some(Value::String(s)) => s.clone(),
        _ => {
            return Err(EditError::Invalid(vec![Problem {
                path: "id".into(),
                message: "missing; every camera needs an id such as \"front\"".into(),
            }]))
        }
    };
    if camera_index(doc, &id).is_some() {
        return Err(EditError::Exists(id));
    }
    validate(doc, env).map_err(EditError::Invalid)?;
    let default = camera_defaults(doc, &id)?;
    let mut raw = Doc::Object(vec![("id".into(), Doc::String(id.clone()))]);
    // `main_url` is always written, even if it happened to equal the placeholder.
    if let Some(url) = edit.get("main_url") {
        raw.set("main_url", Doc::from_value(url));
    }
    apply_camera(&mut raw, edit, &default, &default)?;
    let mut out = doc.clone();
    if out.get("cameras").is_none() {
        out.set("cameras", Doc::Array(Vec::new()));
    }
    cameras_mut(&mut out)?.push(raw);
    let config = validate(&out, env).map_err(EditError::Invalid)?;
    Ok((out, config))
}

/// The document without camera `id`, validated.
pub fn delete_camera(
    doc: &Doc,
    id: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Doc, Config), EditError> {
    let i = camera_index(doc, id).ok_or_else(|| EditError::NoCamera(id.into()))?;
    let mut out = doc.clone();
    cameras_mut(&mut out)?.remove(i);
    let config = validate(&out, env).map_err(EditError::Invalid)?;
    Ok((out, config))
}

/// The camera `edit` as it would run, validated against the document (added, or changed if its id
/// exists), without saving anything: what a probe tests.
pub fn candidate(
    doc: &Doc,
    edit: &Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<CameraConfig, EditError> {
    let id = edit
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("probe")
        .to_string();
    let mut edit = edit.clone();
    edit["id"] = Value::String(id.clone());
    let (_, config) = if camera_index(doc, &id).is_some() {
        put_camera(doc, &id, &edit, env)?
    } else {
        add_camera(doc, &edit, env)?
    };
    config.camera(&id).cloned().ok_or(EditError::NoCamera(id))
}

/// The document with `api.auth` set to this login, validated.
pub fn set_login(
    doc: &Doc,
    username: &str,
    password_hash: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Doc, Config), EditError> {
    let mut out = doc.clone();
    let mut api = out
        .get("api")
        .cloned()
        .filter(|d| matches!(d, Doc::Object(_)))
        .unwrap_or(Doc::Object(Vec::new()));
    api.set(
        "auth",
        Doc::from_value(&json!({"username": username, "password_hash": password_hash})),
    );
    out.set("api", api);
    let config = validate(&out, env).map_err(EditError::Invalid)?;
    Ok((out, config))
}

#[cfg(test)]
mod tests;
