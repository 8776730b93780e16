//! Reading `mqtt`: the broker event notifications are published to (see `docs/config.md`, "MQTT").

use crate::reader::{ObjReader, Problems};
use crate::Password;
use serde_json::Value;
use std::path::PathBuf;

/// Where and how the supervisor publishes to an MQTT broker.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttConfig {
    /// The broker's host name or IP address.
    pub host: String,
    /// The broker's port. Default 1883 (8883 with `tls`).
    pub port: u16,
    /// The MQTT client id. Default `nvr-<topic_prefix>`.
    pub client_id: String,
    /// The first level of every topic. Default `nvr`.
    pub topic_prefix: String,
    pub username: Option<String>,
    pub password: Option<Password>,
    /// Connect with TLS (rustls); `ca_file` adds a CA to the system's roots.
    pub tls: bool,
    /// A PEM file of CA certificates to trust (a broker with its own CA).
    pub ca_file: Option<PathBuf>,
    /// Publish Home Assistant discovery configs under `homeassistant/`. Default false.
    pub home_assistant: bool,
}

/// Whether `s` may be a topic level: not empty, no wildcard, no separator, no control character.
fn topic_level_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s
            .chars()
            .any(|c| matches!(c, '+' | '#' | '/') || c.is_control())
}

pub(crate) fn read_mqtt(
    value: &Value,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<MqttConfig> {
    let mut obj = ObjReader::new(value, "mqtt", problems)?;
    let host: Option<String> = obj.get("host", "write the broker's host name", problems);
    if host.is_none() && obj.raw("host").is_none() {
        problems.push(
            "mqtt.host",
            "missing; write the broker's host name, e.g. \"localhost\"",
        );
    }
    let tls: bool = obj
        .get("tls", "write true or false", problems)
        .unwrap_or(false);
    let port = match obj.raw("port") {
        None => Some(if tls { 8883 } else { 1883 }),
        Some(v) => match v.as_u64() {
            Some(p @ 1..=65535) => Some(p as u16),
            _ => {
                problems.push(
                    "mqtt.port",
                    format!("{v} is not a port; write a number from 1 to 65535"),
                );
                None
            }
        },
    };
    let topic_prefix: String = obj
        .get(
            "topic_prefix",
            "write a topic level such as \"nvr\"",
            problems,
        )
        .unwrap_or_else(|| "nvr".into());
    if !topic_level_ok(&topic_prefix) {
        problems.push(
            "mqtt.topic_prefix",
            format!("{topic_prefix:?} cannot be a topic level; write 1-64 characters without '/', '+' or '#'"),
        );
    }
    let client_id: String = obj
        .get("client_id", "write a client id such as \"nvr\"", problems)
        .unwrap_or_else(|| format!("nvr-{topic_prefix}"));
    if client_id.is_empty() || client_id.len() > 64 {
        problems.push("mqtt.client_id", "write 1-64 characters");
    }
    let username: Option<String> = obj.get("username", "write the user name as a string", problems);
    let password = crate::camera::read_password(&mut obj, env, problems);
    if password.is_some() && username.is_none() {
        problems.push(
            "mqtt.username",
            "missing; a password needs a user name (MQTT sends none without one)",
        );
    }
    let ca_file: Option<String> = obj.get("ca_file", "write the path of a PEM file", problems);
    if ca_file.is_some() && !tls {
        problems.push("mqtt.ca_file", "set \"tls\": true to use a CA file");
    }
    let home_assistant: bool = obj
        .get("home_assistant", "write true or false", problems)
        .unwrap_or(false);
    obj.finish(problems);
    Some(MqttConfig {
        host: host?,
        port: port?,
        client_id,
        topic_prefix,
        username,
        password,
        tls,
        ca_file: ca_file.map(PathBuf::from),
        home_assistant,
    })
}
