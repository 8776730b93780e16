//! Home Assistant MQTT discovery (`mqtt.home_assistant`): per camera a motion binary sensor, an
//! fps sensor and a recording switch, retained under `homeassistant/`, all following
//! `<prefix>/available`. Pure: config topics and payloads from the prefix and the cameras.

use super::outbox::{Kind, Message};
use serde_json::json;

/// The discovery messages for `cameras` (`(id, display name)`).
pub fn configs(prefix: &str, cameras: &[(String, String)]) -> Vec<Message> {
    let mut out = Vec::new();
    for (id, name) in cameras {
        let object = format!("{prefix}_{id}");
        let device = json!({
            "identifiers": [object],
            "name": name,
            "manufacturer": "nvr",
        });
        let availability = format!("{prefix}/available");
        let entities = [
            (
                "binary_sensor",
                "motion",
                json!({
                    "name": "Motion",
                    "device_class": "motion",
                    "state_topic": format!("{prefix}/{id}/motion"),
                    "payload_on": "ON",
                    "payload_off": "OFF",
                }),
            ),
            (
                "sensor",
                "fps",
                json!({
                    "name": "FPS",
                    "unit_of_measurement": "fps",
                    "state_topic": format!("{prefix}/{id}/status"),
                    "value_template": "{{ value_json.fps }}",
                }),
            ),
            (
                "switch",
                "recordings",
                json!({
                    "name": "Recording",
                    "state_topic": format!("{prefix}/{id}/recordings/state"),
                    "command_topic": format!("{prefix}/{id}/recordings/set"),
                    "payload_on": "ON",
                    "payload_off": "OFF",
                }),
            ),
        ];
        for (component, what, mut config) in entities {
            config["unique_id"] = json!(format!("{object}_{what}"));
            config["availability_topic"] = json!(availability);
            config["device"] = device.clone();
            out.push(Message {
                topic: format!("homeassistant/{component}/{object}_{what}/config"),
                payload: config.to_string().into_bytes(),
                retain: true,
                kind: Kind::State,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_entities_per_camera_follow_availability() {
        let m = configs("nvr", &[("front".into(), "Front door".into())]);
        let topics: Vec<&str> = m.iter().map(|m| m.topic.as_str()).collect();
        assert_eq!(
            topics,
            [
                "homeassistant/binary_sensor/nvr_front_motion/config",
                "homeassistant/sensor/nvr_front_fps/config",
                "homeassistant/switch/nvr_front_recordings/config"
            ]
        );
        let switch: serde_json::Value = serde_json::from_slice(&m[2].payload).unwrap();
        assert_eq!(switch["command_topic"], "nvr/front/recordings/set");
        assert_eq!(switch["availability_topic"], "nvr/available");
        assert_eq!(switch["device"]["name"], "Front door");
        assert!(m.iter().all(|m| m.retain));
    }
}
