//! Reading `webhooks`: the URLs signed event notifications are POSTed to (see `docs/config.md`,
//! "Webhooks").

use crate::reader::{kind, ObjReader, Problems};
use crate::{redact_url, url_has_credentials, Password};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a webhook can be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEvent {
    /// A motion event began (its index id, as `/api/events` shows it).
    MotionStart,
    /// A motion event ended (with its clip).
    MotionEnd,
    /// A recording file was closed and indexed.
    RecordingFinished,
    /// A camera stayed unhealthy (worker down or stream not up) for 30 s.
    CameraDown,
    /// A camera reported down is healthy again.
    CameraUp,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 5] = [
        WebhookEvent::MotionStart,
        WebhookEvent::MotionEnd,
        WebhookEvent::RecordingFinished,
        WebhookEvent::CameraDown,
        WebhookEvent::CameraUp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::MotionStart => "motion_start",
            WebhookEvent::MotionEnd => "motion_end",
            WebhookEvent::RecordingFinished => "recording_finished",
            WebhookEvent::CameraDown => "camera_down",
            WebhookEvent::CameraUp => "camera_up",
        }
    }

    pub fn parse(s: &str) -> Option<WebhookEvent> {
        WebhookEvent::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// One receiver of signed JSON POSTs.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// `http://` or `https://`, without credentials.
    pub url: String,
    /// What it is told about. Default: every event.
    pub events: Vec<WebhookEvent>,
    /// The cameras it is told about (ids). Empty (the default): every camera.
    pub cameras: Vec<String>,
    /// The HMAC-SHA256 key of `X-NVR-Signature`, read from the environment variable `secret_env`.
    pub secret: Password,
    /// Attempts per delivery before it is dropped (and counted). Default 10.
    pub tries: u32,
    /// How long one attempt may take, connect to response. Default 10 s.
    pub timeout_s: f64,
    /// Per camera, the quiet time after a `motion_start` during which further motion events of
    /// that camera are not sent. Default 0 (off).
    pub cooldown_s: f64,
}

impl WebhookConfig {
    /// Whether this webhook wants `event` of `camera`.
    pub fn wants(&self, event: WebhookEvent, camera: &str) -> bool {
        self.events.contains(&event)
            && (self.cameras.is_empty() || self.cameras.iter().any(|c| c == camera))
    }
}

const URL_HINT: &str = "write the receiver's URL, e.g. \"https://hooks.example.com/nvr\"";

/// The `http(s)` URL of `key`: a host, no credentials, no space.
fn read_url(obj: &mut ObjReader<'_>, problems: &mut Problems) -> Option<String> {
    let path = obj.field_path("url");
    let Some(url) = obj.get::<String>("url", URL_HINT, problems) else {
        if obj.raw("url").is_none() {
            problems.push(path, format!("missing; {URL_HINT}"));
        }
        return None;
    };
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"));
    let Some(rest) = rest else {
        problems.push(
            path,
            format!(
                "\"{}\" is not an http:// or https:// URL; {URL_HINT}",
                redact_url(&url)
            ),
        );
        return None;
    };
    if url_has_credentials(&url) {
        problems.push(
            path,
            format!(
                "\"{}\" has credentials in the URL (user:password@, or a parameter such as token= in the query or the path), where logs would show them; remove them and let the receiver check X-NVR-Signature (the secret comes from \"secret_env\")",
                redact_url(&url)
            ),
        );
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_ok = !authority.is_empty()
        && !authority.starts_with(':')
        && match authority.rsplit_once(':') {
            // An IPv6 literal ends with `]`; otherwise what follows the last ':' is the port.
            Some((_, port)) if !authority.ends_with(']') => {
                port.parse::<u16>().is_ok_and(|p| p > 0)
            }
            _ => true,
        };
    if !host_ok || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        problems.push(
            path,
            format!(
                "\"{}\" has no usable host (or port), or contains spaces; {URL_HINT}",
                redact_url(&url)
            ),
        );
        return None;
    }
    Some(url)
}

fn read_events(obj: &mut ObjReader<'_>, problems: &mut Problems) -> Option<Vec<WebhookEvent>> {
    let path = obj.field_path("events");
    let known = || {
        WebhookEvent::ALL
            .iter()
            .map(|e| format!("\"{}\"", e.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let items = match obj.raw("events") {
        None => return Some(WebhookEvent::ALL.to_vec()),
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(other) => {
            problems.push(
                path,
                format!(
                    "expected a non-empty array of event names, found {}; write some of {}, or leave \"events\" out for all of them",
                    kind(other),
                    known()
                ),
            );
            return None;
        }
    };
    let mut events = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match item.as_str().and_then(WebhookEvent::parse) {
            Some(e) if !events.contains(&e) => events.push(e),
            Some(_) => {}
            None => {
                ok = false;
                problems.push(
                    format!("{path}[{i}]"),
                    format!("{item} is not an event; write one of {}", known()),
                );
            }
        }
    }
    ok.then_some(events)
}

fn read_webhook(
    value: &Value,
    path: &str,
    camera_ids: &[&str],
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<WebhookConfig> {
    let mut obj = ObjReader::new(value, path, problems)?;
    let url = read_url(&mut obj, problems);
    let events = read_events(&mut obj, problems);
    let cameras: Vec<String> = obj
        .get(
            "cameras",
            "write an array of camera ids, e.g. [\"front\"], or leave it out for every camera",
            problems,
        )
        .unwrap_or_default();
    for (i, c) in cameras.iter().enumerate() {
        if !camera_ids.contains(&c.as_str()) {
            problems.push(
                format!("{path}.cameras[{i}]"),
                format!(
                    "\"{c}\" is not a camera id of this config; write one of: {}",
                    camera_ids.join(", ")
                ),
            );
        }
    }
    // The secret only from the environment: never in the file, never in a message.
    let secret = match obj.get::<String>(
        "secret_env",
        "write the name of an environment variable",
        problems,
    ) {
        Some(var) => match env(&var) {
            Some(s) if !s.is_empty() => Some(Password::new(s)),
            _ => {
                problems.push(
                    obj.field_path("secret_env"),
                    format!("environment variable {var} is not set (or empty); export the webhook's signing secret in it before starting"),
                );
                None
            }
        },
        None => {
            if obj.raw("secret_env").is_none() {
                problems.push(
                    obj.field_path("secret_env"),
                    "missing; name the environment variable that holds the signing secret, e.g. \"NVR_WEBHOOK_SECRET\"",
                );
            }
            None
        }
    };
    let tries = match obj.raw("tries") {
        None => Some(10),
        Some(v) => match v.as_u64() {
            Some(n @ 1..=100) => Some(n as u32),
            _ => {
                problems.push(
                    obj.field_path("tries"),
                    format!("{v} is not a number of attempts; write a whole number from 1 to 100"),
                );
                None
            }
        },
    };
    let timeout_s = match obj.raw("timeout_s") {
        None => Some(10.0),
        Some(_) => obj.number_in("timeout_s", 0.1, 300.0, problems),
    };
    let cooldown_s = match obj.raw("cooldown_s") {
        None => Some(0.0),
        Some(_) => obj.number_in("cooldown_s", 0.0, 86_400.0, problems),
    };
    obj.finish(problems);
    let cameras_ok = cameras.iter().all(|c| camera_ids.contains(&c.as_str()));
    Some(WebhookConfig {
        url: url?,
        events: events?,
        cameras: cameras_ok.then_some(cameras)?,
        secret: secret?,
        tries: tries?,
        timeout_s: timeout_s?,
        cooldown_s: cooldown_s?,
    })
}

/// `webhooks`: an array of receivers; `camera_ids` are the config's cameras (a webhook's
/// `cameras` must name them).
pub(crate) fn read_webhooks(
    value: &Value,
    camera_ids: &[&str],
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<Vec<WebhookConfig>> {
    let Value::Array(items) = value else {
        problems.push(
            "webhooks",
            format!(
                "expected an array of webhooks [ {{\"url\": ..., \"secret_env\": ...}} ], found {}",
                kind(value)
            ),
        );
        return None;
    };
    let mut hooks = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match read_webhook(item, &format!("webhooks[{i}]"), camera_ids, env, problems) {
            Some(h) => hooks.push(h),
            None => ok = false,
        }
    }
    ok.then_some(hooks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(hooks: &str) -> Result<crate::Config, String> {
        let text = format!(
            r#"{{"cameras": [{{"id": "front", "main_url": "rtsp://10.0.0.2/s"}}, {{"id": "back", "main_url": "rtsp://10.0.0.3/s"}}], "webhooks": {hooks}}}"#
        );
        crate::parse(&text, Path::new("config/cameras.json"), &|name| {
            (name == "HOOK").then(|| "hook-secret-31".to_string())
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_every_event_every_camera_ten_tries() {
        let c = parse(r#"[{"url": "https://h.example/nvr", "secret_env": "HOOK"}]"#).unwrap();
        let h = &c.webhooks[0];
        assert_eq!(h.events, WebhookEvent::ALL);
        assert!(h.cameras.is_empty() && h.wants(WebhookEvent::CameraUp, "back"));
        assert_eq!((h.tries, h.timeout_s, h.cooldown_s), (10, 10.0, 0.0));
        assert_eq!(h.secret.expose(), "hook-secret-31");
        assert!(!format!("{c:?}").contains("hook-secret-31"));
        let c = parse(
            r#"[{"url": "http://10.0.0.9:8123/x?a=1", "secret_env": "HOOK", "events": ["motion_start", "camera_down"], "cameras": ["front"], "tries": 3, "timeout_s": 2.5, "cooldown_s": 60}]"#,
        )
        .unwrap();
        let h = &c.webhooks[0];
        assert!(h.wants(WebhookEvent::MotionStart, "front"));
        assert!(!h.wants(WebhookEvent::MotionEnd, "front"));
        assert!(!h.wants(WebhookEvent::MotionStart, "back"));
        assert_eq!((h.tries, h.timeout_s, h.cooldown_s), (3, 2.5, 60.0));
    }

    #[test]
    fn problems_name_the_file_the_field_and_the_fix() {
        for (hooks, expected) in [
            (
                r#"[{"url": "ftp://h/x", "secret_env": "HOOK"}]"#,
                "config/cameras.json: webhooks[0].url: \"ftp://h/x\" is not an http:// or https:// URL",
            ),
            (
                r#"[{"url": "https://bob:pw-77@h/x", "secret_env": "HOOK"}]"#,
                "webhooks[0].url: \"https://h/x\" has credentials in the URL",
            ),
            (
                r#"[{"url": "https://h/x?token=t-77", "secret_env": "HOOK"}]"#,
                "has credentials in the URL",
            ),
            (
                r#"[{"url": "https:///x", "secret_env": "HOOK"}]"#,
                "no usable host",
            ),
            (
                r#"[{"url": "http://h:99999/x", "secret_env": "HOOK"}]"#,
                "no usable host",
            ),
            (r#"[{"secret_env": "HOOK"}]"#, "webhooks[0].url: missing"),
            (
                r#"[{"url": "https://h/x"}]"#,
                "webhooks[0].secret_env: missing",
            ),
            (
                r#"[{"url": "https://h/x", "secret_env": "NOPE"}]"#,
                "environment variable NOPE is not set",
            ),
            (
                r#"[{"url": "https://h/x", "secret_env": "HOOK", "events": ["motion"]}]"#,
                "webhooks[0].events[0]: \"motion\" is not an event; write one of \"motion_start\"",
            ),
            (
                r#"[{"url": "https://h/x", "secret_env": "HOOK", "events": []}]"#,
                "webhooks[0].events: expected a non-empty array",
            ),
            (
                r#"[{"url": "https://h/x", "secret_env": "HOOK", "cameras": ["side"]}]"#,
                "webhooks[0].cameras[0]: \"side\" is not a camera id of this config; write one of: front, back",
            ),
            (
                r#"[{"url": "https://h/x", "secret_env": "HOOK", "tries": 0}]"#,
                "webhooks[0].tries: 0 is not a number of attempts",
            ),
            (
                r#"[{"url": "https://h/x", "secret_env": "HOOK", "secret": "s"}]"#,
                "webhooks[0].secret: unknown field",
            ),
            (r#"{"url": "https://h/x"}"#, "webhooks: expected an array"),
        ] {
            let e = parse(hooks).unwrap_err();
            assert!(e.contains(expected), "{hooks}: {e}");
            assert!(
                !e.contains("pw-77") && !e.contains("t-77") && !e.contains("hook-secret-31"),
                "{e}"
            );
        }
    }
}
