//! Reading a camera's `onvif` section: where its ONVIF service listens, with which account, and
//! the pan-tilt-zoom safety settings (see `docs/config.md`, "PTZ over ONVIF").

use crate::reader::{ObjReader, Problems};
use crate::Password;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How the camera's worker reaches the camera's ONVIF service for pan-tilt-zoom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnvifConfig {
    /// Host name or address; `None`: the host of the camera's `main_url`.
    pub host: Option<String>,
    /// The ONVIF service's HTTP port. Default 80 (Tapo cameras: 2020).
    pub port: u16,
    /// The media profile token to steer; `None`: the first profile with a PTZ configuration.
    pub profile: Option<String>,
    /// `None`: the camera's `username`.
    pub username: Option<String>,
    /// `None`: the camera's `password`.
    pub password: Option<Password>,
    /// The dead-man window: a continuous move the client stops renewing for this long is stopped
    /// by the worker. Default 0.5.
    pub move_timeout_s: f64,
    /// Seconds after a stop before motion detection watches again (the picture settles, the
    /// background is learned afresh). Default 2.
    pub settle_s: f64,
}

impl Default for OnvifConfig {
    fn default() -> Self {
        OnvifConfig {
            host: None,
            port: 80,
            profile: None,
            username: None,
            password: None,
            move_timeout_s: 0.5,
            settle_s: 2.0,
        }
    }
}

/// The host part of a URL such as `rtsp://cam.local:554/stream1` (`cam.local`; an IPv6 address
/// keeps no brackets). `None` when there is none.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_string())
}

/// Whether `host` can be put in an `http://` URL as it is: letters, digits, `.`, `-`, `:` (IPv6).
fn host_ok(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
}

pub(crate) fn read_onvif(
    value: &Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<OnvifConfig> {
    let d = OnvifConfig::default();
    let mut obj = ObjReader::new(value, path, problems)?;
    let host: Option<String> = obj.get(
        "host",
        "write the camera's host name or address, e.g. \"192.168.1.20\"",
        problems,
    );
    let host = match host {
        Some(h) if !host_ok(&h) => {
            problems.push(
                obj.field_path("host"),
                format!("{h:?} is not a host name or address; write only the host, e.g. \"192.168.1.20\" (no scheme, port or path)"),
            );
            None
        }
        other => other,
    };
    let port = match obj.raw("port") {
        None => Some(d.port),
        Some(v) => match v.as_u64() {
            Some(p @ 1..=65535) => Some(p as u16),
            _ => {
                problems.push(
                    obj.field_path("port"),
                    format!("{v} is not a port; write a number from 1 to 65535 (Tapo: 2020)"),
                );
                None
            }
        },
    };
    let profile: Option<String> = obj.get(
        "profile",
        "write a media profile token, or leave it out to use the first profile with PTZ",
        problems,
    );
    let username: Option<String> = obj.get("username", "write the user name as a string", problems);
    let password = crate::camera::read_password(&mut obj, env, problems);
    let move_timeout_s = match obj.raw("move_timeout_s") {
        None => Some(d.move_timeout_s),
        Some(_) => obj.number_in("move_timeout_s", 0.1, 10.0, problems),
    };
    let settle_s = match obj.raw("settle_s") {
        None => Some(d.settle_s),
        Some(_) => obj.number_in("settle_s", 0.0, 60.0, problems),
    };
    obj.finish(problems);
    Some(OnvifConfig {
        host,
        port: port?,
        profile,
        username,
        password,
        move_timeout_s: move_timeout_s?,
        settle_s: settle_s?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_of_a_stream_url() {
        let table = [
            ("rtsp://192.168.1.20:554/stream1", Some("192.168.1.20")),
            ("rtsp://cam.local/stream1", Some("cam.local")),
            ("rtsp://[fe80::1]:554/x", Some("fe80::1")),
            ("rtsp://cam.local?x=1", Some("cam.local")),
            ("rtsp:///x", None),
            ("not a url", None),
        ];
        for (url, host) in table {
            assert_eq!(url_host(url).as_deref(), host, "{url}");
        }
    }
}
