//! Reading one camera's section (or `defaults`): URLs, credentials, transport, motion, recording and
//! limits, each problem reported with its JSON path.

use crate::reader::{kind, ObjReader, Problems};
use crate::{
    redact_url, url_has_credentials, CameraConfig, CameraId, LimitsConfig, LiveConfig,
    MotionConfig, Password, Polygon, RecordingConfig, Transport, Zone, MAX_RING_MB, MAX_ZONES,
};
use serde::Deserialize;
use serde_json::Value;

/// `camera` with the `defaults` object underneath it: sections merge field by field, the camera wins.
pub(crate) fn merge_defaults(defaults: &Value, camera: &Value) -> Value {
    let (Value::Object(d), Value::Object(c)) = (defaults, camera) else {
        return camera.clone();
    };
    let mut out = d.clone();
    if c.contains_key("password") || c.contains_key("password_env") {
        out.remove("password");
        out.remove("password_env");
    }
    for (k, v) in c {
        match (out.get_mut(k), v) {
            (Some(Value::Object(base)), Value::Object(over)) => {
                for (k2, v2) in over {
                    base.insert(k2.clone(), v2.clone());
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

const URL_HINT: &str = "write the camera's stream URL, e.g. \"rtsp://192.168.1.20:554/stream1\"";

/// Reads a camera object (or, with `is_defaults`, the `defaults` object, which has no identity fields).
pub(crate) fn read_camera(
    value: &Value,
    path: &str,
    is_defaults: bool,
    schedule_names: &[String],
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<CameraConfig> {
    let mut obj = ObjReader::new(value, path, problems)?;
    let (id, name, main_url, sub_url) = if is_defaults {
        (None, None, None, None)
    } else {
        let id = match obj.get::<String>("id", "write a short name such as \"front\"", problems) {
            Some(s) => CameraId::new(&s)
                .map_err(|e| problems.push(obj.field_path("id"), e))
                .ok(),
            None => {
                if obj.raw("id").is_none() {
                    problems.push(
                        obj.field_path("id"),
                        "missing; every camera needs an id such as \"front\"",
                    );
                }
                None
            }
        };
        let name: Option<String> = obj.get("name", "write a display name", problems);
        let main_url = read_url(&mut obj, "main_url", problems);
        if main_url.is_none() && obj.raw("main_url").is_none() {
            problems.push(obj.field_path("main_url"), format!("missing; {URL_HINT}"));
        }
        let sub_url = read_url(&mut obj, "sub_url", problems);
        (id, name, main_url, sub_url)
    };
    let enabled = obj
        .get("enabled", "write true or false", problems)
        .unwrap_or(true);
    let username: Option<String> = obj.get("username", "write the user name as a string", problems);
    let password = read_password(&mut obj, env, problems);
    let transport = obj
        .get("transport", "write \"tcp\" or \"udp\"", problems)
        .unwrap_or(Transport::Tcp);
    let motion = match obj.raw("motion") {
        Some(v) => read_motion(v, &obj.field_path("motion"), problems),
        None => Some(MotionConfig::default()),
    };
    let recording = match obj.raw("recording") {
        Some(v) => read_recording(v, &obj.field_path("recording"), problems),
        None => Some(RecordingConfig::default()),
    };
    let limits = match obj.raw("limits") {
        Some(v) => read_limits(v, &obj.field_path("limits"), problems),
        None => Some(LimitsConfig::default()),
    };
    let notify = match obj.raw("notify") {
        Some(v) => {
            crate::notify::read_notify(v, &obj.field_path("notify"), schedule_names, problems)
        }
        None => Some(crate::NotifyConfig::default()),
    };
    let schedule = read_schedule_ref(&mut obj, schedule_names, problems);
    let live = match obj.raw("live") {
        Some(v) => read_live(v, &obj.field_path("live"), problems),
        None => Some(LiveConfig::default()),
    };
    let onvif_path = obj.field_path("onvif");
    let onvif = obj
        .raw("onvif")
        .map(|v| crate::onvif::read_onvif(v, &onvif_path, env, problems));
    obj.finish(problems);
    let id = id?;
    Some(CameraConfig {
        name: name.unwrap_or_else(|| id.to_string()),
        id,
        enabled,
        main_url: main_url?,
        sub_url,
        username,
        password,
        transport,
        motion: motion?,
        recording: recording?,
        limits: limits?,
        notify: notify?,
        schedule,
        live: live?,
        onvif: onvif.map(|o| o.ok_or(())).transpose().ok()?,
    })
}

/// `password` or `password_env` (one of them) of a camera, the MQTT broker or anything else with
/// a secret. The secret never appears in a message.
pub(crate) fn read_password(
    obj: &mut ObjReader<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<Password> {
    // Not `obj.get`: serde's type error would quote the value, and this one is a secret.
    let password = match obj.raw("password") {
        Some(Value::String(p)) => Some(p.clone()),
        Some(other) => {
            problems.push(
                obj.field_path("password"),
                format!(
                    "expected a string, found {}; write the password in quotes",
                    kind(other)
                ),
            );
            None
        }
        None => None,
    };
    let password_env = obj.get::<String>(
        "password_env",
        "write the name of an environment variable",
        problems,
    );
    match (password, password_env) {
        (Some(_), Some(_)) => {
            problems.push(
                obj.field_path("password_env"),
                "both password and password_env are set; keep one",
            );
            None
        }
        (Some(p), None) => Some(Password::new(p)),
        (None, Some(var)) => match env(&var) {
            Some(p) => Some(Password::new(p)),
            None => {
                problems.push(
                    obj.field_path("password_env"),
                    format!("environment variable {var} is not set; export it before starting, or use \"password\""),
                );
                None
            }
        },
        (None, None) => None,
    }
}

/// The camera's `schedule`: the name of a schedule that exists, on a camera that does not also
/// fix `recording.mode`.
fn read_schedule_ref(
    obj: &mut ObjReader<'_>,
    names: &[String],
    problems: &mut Problems,
) -> Option<String> {
    let name: String = obj.get(
        "schedule",
        "write the name of a schedule from \"schedules\", e.g. \"night_watch\"",
        problems,
    )?;
    if !names.contains(&name) {
        let known = if names.is_empty() {
            "there is no \"schedules\" section; add one (see docs/config.md)".to_string()
        } else {
            format!("defined: {}", names.join(", "))
        };
        problems.push(
            obj.field_path("schedule"),
            format!("no schedule is named {name:?}; {known}"),
        );
        return None;
    }
    let fixed_mode = obj
        .raw("recording")
        .and_then(|r| r.get("mode"))
        .is_some_and(|m| !m.is_null());
    if fixed_mode {
        problems.push(
            obj.field_path("schedule"),
            "both \"schedule\" and \"recording.mode\" are set (one may come from \"defaults\"); keep one: the schedule decides the mode, or write \"schedule\": null to use the fixed mode",
        );
        return None;
    }
    Some(name)
}

fn read_url(obj: &mut ObjReader<'_>, key: &'static str, problems: &mut Problems) -> Option<String> {
    let url: String = obj.get(key, URL_HINT, problems)?;
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("rtsp://") || lower.starts_with("rtsps://")) {
        problems.push(
            obj.field_path(key),
            format!("\"{}\" is not an rtsp:// URL; {URL_HINT}", redact_url(&url)),
        );
        return None;
    }
    if url_has_credentials(&url) {
        problems.push(
            obj.field_path(key),
            format!(
                "\"{}\" has credentials in the URL (user:password@, or a parameter such as password= in the query or the path), where logs would show them; remove them from the URL and set \"username\" and \"password\" (or \"password_env\") instead",
                redact_url(&url)
            ),
        );
        return None;
    }
    Some(url)
}

fn read_motion(value: &Value, path: &str, problems: &mut Problems) -> Option<MotionConfig> {
    let d = MotionConfig::default();
    let mut obj = ObjReader::new(value, path, problems)?;
    let m = MotionConfig {
        enabled: obj
            .get("enabled", "write true or false", problems)
            .unwrap_or(d.enabled),
        threshold: obj
            .number_in("threshold", 1.0, 255.0, problems)
            .map_or(d.threshold, |n| n as u8),
        min_area: obj
            .number_in("min_area", 0.0, 100.0, problems)
            .unwrap_or(d.min_area),
        min_object: obj
            .number_in("min_object", 0.0, 1.0, problems)
            .unwrap_or(d.min_object),
        min_motion_s: read_min_motion(&mut obj, problems).unwrap_or(d.min_motion_s),
        post_motion_s: obj
            .seconds("post_motion_s", problems)
            .unwrap_or(d.post_motion_s),
        zones: read_zones(&mut obj, problems),
        masks: read_areas(&mut obj, "masks", problems)
            .into_iter()
            .map(|(_, points)| points)
            .collect(),
    };
    obj.finish(problems);
    Some(m)
}

/// `min_motion_s`, or the deprecated `min_frames` (consecutive frames, which meant a different time
/// at every frame rate) read as the time that many frames span at 30 fps, with a note.
fn read_min_motion(obj: &mut ObjReader<'_>, problems: &mut Problems) -> Option<f64> {
    let frames: Option<u32> = obj.get(
        "min_frames",
        "write min_motion_s instead, in seconds, e.g. 0.03",
        problems,
    );
    let seconds = obj.seconds("min_motion_s", problems);
    match (frames, seconds) {
        (Some(_), Some(s)) => {
            problems.note(
                obj.field_path("min_frames"),
                "ignored: min_motion_s is set; remove min_frames",
            );
            Some(s)
        }
        (Some(n), None) => {
            let s = f64::from(n.saturating_sub(1)) / 30.0;
            problems.note(
                obj.field_path("min_frames"),
                format!(
                    "deprecated (a frame count means another time at every frame rate): read as \
                     min_motion_s = {s:.3} s, the span of {n} frames at 30 fps; write \
                     \"min_motion_s\": {s:.3} instead"
                ),
            );
            Some(s)
        }
        (None, s) => s,
    }
}

/// An item of `zones` or `masks` written as an object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamedArea {
    #[serde(default)]
    name: Option<String>,
    points: Polygon,
}

/// `key`'s areas with their names as written (`None` for a bare polygon), each checked; an item is
/// a bare polygon or `{"name": ..., "points": ...}`.
fn read_areas(
    obj: &mut ObjReader<'_>,
    key: &'static str,
    problems: &mut Problems,
) -> Vec<(Option<String>, Polygon)> {
    let hint =
        "write a polygon (a list of [x, y] points from 0 to 1, e.g. [[0,0],[0.5,0],[0.5,1]]) \
                or {\"name\": \"driveway\", \"points\": [[0,0],[0.5,0],[0.5,1]]}";
    let Some(items) = obj.get::<Vec<Value>>(key, hint, problems) else {
        return Vec::new();
    };
    let mut areas = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("{}[{i}]", obj.field_path(key));
        let area = match item {
            Value::Object(_) => {
                serde_json::from_value::<NamedArea>(item).map(|n| (n.name, n.points))
            }
            other => serde_json::from_value::<Polygon>(other).map(|p| (None, p)),
        };
        let (name, poly) = match area {
            Ok(a) => a,
            Err(e) => {
                problems.push(&at, format!("{e}; {hint}"));
                continue;
            }
        };
        if poly.len() < 3 {
            problems.push(
                &at,
                format!("has {} points; a polygon needs at least 3", poly.len()),
            );
        }
        if poly.iter().flatten().any(|c| !(0.0..=1.0).contains(c)) {
            problems.push(&at, "has a coordinate outside 0..1; coordinates are fractions of the frame width and height");
        }
        areas.push((name, poly));
    }
    areas
}

/// `zones`, each named (by its position when the config gives no name), names unique.
fn read_zones(obj: &mut ObjReader<'_>, problems: &mut Problems) -> Vec<Zone> {
    let areas = read_areas(obj, "zones", problems);
    if areas.len() > MAX_ZONES {
        problems.push(
            obj.field_path("zones"),
            format!(
                "has {} zones; a camera may have at most {MAX_ZONES} (merge some, or use masks to leave areas out)",
                areas.len()
            ),
        );
    }
    let mut zones: Vec<Zone> = Vec::with_capacity(areas.len());
    for (i, (name, points)) in areas.into_iter().enumerate() {
        let at = format!("{}[{i}].name", obj.field_path("zones"));
        let name = name.unwrap_or_else(|| format!("zone{}", i + 1));
        let trimmed = name.trim();
        if trimmed.is_empty() || trimmed.chars().count() > 64 || name.chars().any(char::is_control)
        {
            problems.push(
                &at,
                "a zone name is 1 to 64 printable characters, e.g. \"driveway\"",
            );
        } else if zones.iter().any(|z| z.name == name) {
            problems.push(
                &at,
                format!("\"{name}\" names another zone of this camera too; give each zone its own name (a zone without a name is called zone<N> by its position)"),
            );
        }
        zones.push(Zone { name, points });
    }
    zones
}

fn read_recording(value: &Value, path: &str, problems: &mut Problems) -> Option<RecordingConfig> {
    let d = RecordingConfig::default();
    let mut obj = ObjReader::new(value, path, problems)?;
    let r = RecordingConfig {
        mode: obj
            .get(
                "mode",
                "write \"motion\", \"continuous\" or \"off\"",
                problems,
            )
            .unwrap_or(d.mode),
        pre_roll_s: obj.seconds("pre_roll_s", problems).unwrap_or(d.pre_roll_s),
        post_roll_s: obj
            .seconds("post_roll_s", problems)
            .unwrap_or(d.post_roll_s),
        max_segment_s: obj
            .seconds("max_segment_s", problems)
            .unwrap_or(d.max_segment_s),
        keep_days: obj.positive("keep_days", "days", problems),
        max_gb: obj.positive("max_gb", "GB", problems),
    };
    obj.finish(problems);
    Some(r)
}

fn read_limits(value: &Value, path: &str, problems: &mut Problems) -> Option<LimitsConfig> {
    let d = LimitsConfig::default();
    let mut obj = ObjReader::new(value, path, problems)?;
    let l = LimitsConfig {
        max_rss_mb: obj
            .positive("max_rss_mb", "MB", problems)
            .unwrap_or(d.max_rss_mb),
        max_cpu_percent: obj
            .positive("max_cpu_percent", "percent of one core", problems)
            .unwrap_or(d.max_cpu_percent),
        cpu_grace_s: obj
            .seconds("cpu_grace_s", problems)
            .unwrap_or(d.cpu_grace_s),
    };
    obj.finish(problems);
    Some(l)
}

fn read_live(value: &Value, path: &str, problems: &mut Problems) -> Option<LiveConfig> {
    let d = LiveConfig::default();
    let mut obj = ObjReader::new(value, path, problems)?;
    let mut ring_mb = |key: &'static str, default: u32| match obj.raw(key) {
        None => default,
        Some(v) => match v.as_u64() {
            Some(n) if n <= u64::from(MAX_RING_MB) => n as u32,
            _ => {
                problems.push(
                    obj.field_path(key),
                    format!(
                        "{v} is not a ring size; write a whole number of MiB from 0 (no ring) to {MAX_RING_MB}"
                    ),
                );
                default
            }
        },
    };
    let l = LiveConfig {
        main_ring_mb: ring_mb("main_ring_mb", d.main_ring_mb),
        sub_ring_mb: ring_mb("sub_ring_mb", d.sub_ring_mb),
    };
    obj.finish(problems);
    Some(l)
}
