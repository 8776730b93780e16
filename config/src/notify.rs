//! Reading a camera's `notify`: quiet hours and a cooldown for its motion notifications, and how
//! long it must be unhealthy before `camera_down` (see `docs/config.md`, "Notifications").

use crate::reader::{ObjReader, Problems};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a camera's events become notifications (MQTT `events`/`snapshot`, webhooks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyConfig {
    /// The name of a schedule (in `schedules`) whose periods in a mode other than `off` are quiet
    /// hours: no motion notifications then. `None` (the default): never quiet.
    pub quiet: Option<String>,
    /// After a motion notification, the camera's further motion events starting within this many
    /// seconds are not notified. Default 0 (off).
    pub cooldown_s: f64,
    /// How long the camera must be unhealthy, without a break, before webhooks hear
    /// `camera_down`. Default 30.
    pub down_after_s: f64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            quiet: None,
            cooldown_s: 0.0,
            down_after_s: 30.0,
        }
    }
}

/// `notify` of a camera (or of `defaults`) at `path`; `quiet` must name one of `schedule_names`.
pub(crate) fn read_notify(
    value: &Value,
    path: &str,
    schedule_names: &[String],
    problems: &mut Problems,
) -> Option<NotifyConfig> {
    let mut obj = ObjReader::new(value, path, problems)?;
    let d = NotifyConfig::default();
    let quiet: Option<String> = obj.get(
        "quiet",
        "write the name of a schedule from \"schedules\" whose on-times are quiet hours, e.g. \"nights\"",
        problems,
    );
    let quiet_ok = match &quiet {
        Some(name) if !schedule_names.contains(name) => {
            let known = if schedule_names.is_empty() {
                "there is no \"schedules\" section; add one whose rules cover the quiet hours (see docs/config.md, \"Notifications\")".to_string()
            } else {
                format!("defined: {}", schedule_names.join(", "))
            };
            problems.push(
                obj.field_path("quiet"),
                format!("no schedule is named {name:?}; {known}"),
            );
            false
        }
        _ => true,
    };
    let cooldown_s = match obj.raw("cooldown_s") {
        None => Some(d.cooldown_s),
        Some(_) => obj.number_in("cooldown_s", 0.0, 86_400.0, problems),
    };
    let down_after_s = match obj.raw("down_after_s") {
        None => Some(d.down_after_s),
        Some(_) => obj.number_in("down_after_s", 1.0, 86_400.0, problems),
    };
    obj.finish(problems);
    if !quiet_ok {
        return None;
    }
    Some(NotifyConfig {
        quiet,
        cooldown_s: cooldown_s?,
        down_after_s: down_after_s?,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn parse(camera_notify: &str, defaults_notify: &str) -> Result<crate::Config, String> {
        let text = format!(
            r#"{{"schedules": {{"nights": {{"timezone": "UTC", "default": "off",
                  "rules": [{{"days": ["mon"], "from": "22:00", "to": "06:00", "mode": "motion"}}]}}}},
                "defaults": {{"notify": {defaults_notify}}},
                "cameras": [{{"id": "front", "main_url": "rtsp://10.0.0.2/s", "notify": {camera_notify}}}]}}"#
        );
        crate::parse(&text, Path::new("config/cameras.json"), &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn quiet_names_a_schedule_and_fields_merge_with_defaults() {
        let c = parse(r#"{"quiet": "nights"}"#, r#"{"cooldown_s": 60}"#).unwrap();
        let n = &c.cameras[0].notify;
        assert_eq!(n.quiet.as_deref(), Some("nights"));
        assert_eq!((n.cooldown_s, n.down_after_s), (60.0, 30.0));
        let c = parse("{}", "{}").unwrap();
        assert_eq!(c.cameras[0].notify, super::NotifyConfig::default());
        let c = parse(r#"{"down_after_s": 5, "cooldown_s": 0}"#, "{}").unwrap();
        assert_eq!(c.cameras[0].notify.down_after_s, 5.0);
    }

    #[test]
    fn problems_name_the_file_the_field_and_the_fix() {
        for (notify, expected) in [
            (
                r#"{"quiet": "weekends"}"#,
                "config/cameras.json: cameras[0].notify.quiet: no schedule is named \"weekends\"; defined: nights",
            ),
            (r#"{"quiet": 3}"#, "cameras[0].notify.quiet: invalid type"),
            (r#"{"cooldown_s": -1}"#, "cameras[0].notify.cooldown_s"),
            (r#"{"down_after_s": 0}"#, "cameras[0].notify.down_after_s"),
            (r#"{"quiet_hours": "nights"}"#, "cameras[0].notify.quiet_hours: unknown field"),
            (r#""nights""#, "cameras[0].notify: expected"),
        ] {
            let e = parse(notify, "{}").unwrap_err();
            assert!(e.contains(expected), "{notify}: {e}");
        }
        let e = parse("{}", r#"{"quiet": "nope"}"#).unwrap_err();
        assert!(
            e.contains("defaults.notify.quiet: no schedule is named \"nope\""),
            "{e}"
        );
    }
}
