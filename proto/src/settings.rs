//! A camera's settings as they travel to its worker: the protocol's own types (since schema 3).
//!
//! The supervisor converts the validated config at its edge ([`CameraSettings::from`]), so the
//! config file's shape can change without changing the wire, and the wire follows the protocol's
//! versioning rule (fields are only added, each with a default). The worker runs on these types
//! alone, supervised or standalone.
//!
//! Settings fall in two groups: what the worker connects with (URLs, credentials, transport,
//! whether it records and with what pre-roll, whether it detects motion), which only a restart
//! changes; and what it applies in place on [`crate::ToWorker::Update`] ([`CameraSettings::live_only_change`]).

use nvr_config::{CameraConfig, LiveConfig, MotionConfig, Password, RecordingConfig};
use serde::{Deserialize, Serialize};

/// A polygon in coordinates normalised to 0..1 (x right, y down).
pub type Polygon = Vec<[f64; 2]>;

/// Everything a worker needs to run its camera (since 3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraSettings {
    pub id: String,
    /// Display name, for the worker's log.
    pub name: String,
    /// The high-resolution stream that is recorded.
    pub main_url: String,
    /// The low-resolution stream that is decoded; `None` decodes `main_url`.
    pub sub_url: Option<String>,
    pub username: Option<String>,
    /// Travels only inside `Configure`/`Update`, never on a command line; prints as `***`.
    pub password: Option<Password>,
    pub transport: Transport,
    pub motion: MotionSettings,
    pub recording: RecordingSettings,
    /// Sizes of the camera's packet rings (added within schema 3: an older supervisor's
    /// `Configure` without it gets the defaults).
    #[serde(default)]
    pub live: LiveSettings,
    /// The camera's ONVIF service for pan-tilt-zoom; `None`: no PTZ (since 5).
    #[serde(default)]
    pub onvif: Option<OnvifSettings>,
}

/// Where and how the worker reaches the camera's ONVIF service (`onvif` in the config, with the
/// defaults resolved: the host of `main_url`, the camera's credentials).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnvifSettings {
    pub host: String,
    pub port: u16,
    /// The media profile token to steer; `None`: the first profile with a PTZ configuration.
    pub profile: Option<String>,
    pub username: Option<String>,
    /// Travels only inside `Configure`, never on a command line; prints as `***`.
    pub password: Option<Password>,
    /// The dead-man window, seconds: a move not renewed for this long is stopped.
    pub move_timeout_s: f64,
    /// Seconds after a stop before motion detection watches again.
    pub settle_s: f64,
}

impl OnvifSettings {
    /// The device service's URL, e.g. `http://192.168.1.20:2020/onvif/device_service`.
    pub fn device_url(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("http://{host}:{}/onvif/device_service", self.port)
    }
}

/// The packet rings' sizes (`live` in the config): MiB of encoded SUB and MAIN packets kept in
/// shared memory for live view; 0 = no ring for that stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSettings {
    pub main_ring_mb: u32,
    pub sub_ring_mb: u32,
}

impl Default for LiveSettings {
    fn default() -> Self {
        LiveSettings::from(&LiveConfig::default())
    }
}

impl From<&LiveConfig> for LiveSettings {
    fn from(l: &LiveConfig) -> Self {
        LiveSettings {
            main_ring_mb: l.main_ring_mb,
            sub_ring_mb: l.sub_ring_mb,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
}

/// Motion detection's settings (the fields of `motion` in the config; see docs/config.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MotionSettings {
    pub enabled: bool,
    /// Per-pixel brightness change (0-255) that counts as "changed".
    pub threshold: u8,
    /// Percent of the watched area that must change in all for a frame to count as moving (0: the
    /// object rule alone decides).
    pub min_area: f64,
    /// Side of the smallest moving object that counts, as a fraction of the picture's width (since 4).
    pub min_object: f64,
    /// Seconds an object must keep moving before motion starts (since 4; replaced `min_frames`).
    pub min_motion_s: f64,
    /// Seconds without a moving frame before motion ends.
    pub post_motion_s: f64,
    /// Areas to watch (none = the whole frame).
    pub zones: Vec<Polygon>,
    /// Areas to ignore, subtracted from the zones.
    pub masks: Vec<Polygon>,
    /// The zones' names, in the order of `zones` (added within schema 4 under the compatibility
    /// rule: an older peer sends none, and a zone without a name is called `zone<N>`).
    #[serde(default)]
    pub zone_names: Vec<String>,
}

impl MotionSettings {
    /// The name of zone `i` (0-based).
    pub fn zone_name(&self, i: usize) -> String {
        self.zone_names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("zone{}", i + 1))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingMode {
    Motion,
    Continuous,
    Off,
}

/// The recorder's settings (the worker's part of `recording` in the config; retention stays with
/// the supervisor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingSettings {
    pub mode: RecordingMode,
    pub pre_roll_s: f64,
    pub post_roll_s: f64,
    pub max_segment_s: f64,
    /// Keep the MAIN stream connected and its pre-roll filled even while the mode is `off`, so the
    /// mode can change in place in every direction: set for a camera whose mode the supervisor
    /// changes at run time (a schedule). Added within schema 3 under the compatibility rule: an
    /// older peer omits it (`false`, the behaviour before it) or ignores it (a worker that then
    /// refuses an `Update` out of `off` is restarted by the supervisor with the new mode).
    #[serde(default)]
    pub keep_main: bool,
}

impl RecordingSettings {
    /// Whether the worker runs its MAIN pipeline (stream, pre-roll buffer, recorder) at all.
    pub fn runs_main(&self) -> bool {
        self.mode != RecordingMode::Off || self.keep_main
    }
}

impl From<nvr_config::RecordingMode> for RecordingMode {
    fn from(m: nvr_config::RecordingMode) -> Self {
        match m {
            nvr_config::RecordingMode::Motion => RecordingMode::Motion,
            nvr_config::RecordingMode::Continuous => RecordingMode::Continuous,
            nvr_config::RecordingMode::Off => RecordingMode::Off,
        }
    }
}

impl CameraSettings {
    /// Whether `new` differs from `self` only in what a running worker applies in place: motion
    /// thresholds, zones and masks; the recording mode between `motion` and `continuous`; post-roll
    /// and segment length; the name. Anything else (URLs, credentials, transport, recording turned
    /// on or off, pre-roll, motion detection turned on or off, packet ring sizes) needs a new worker.
    pub fn live_only_change(&self, new: &CameraSettings) -> bool {
        let connects_the_same = self.id == new.id
            && self.main_url == new.main_url
            && self.sub_url == new.sub_url
            && self.username == new.username
            && self.password == new.password
            && self.transport == new.transport;
        let records_the_same = self.recording.runs_main() == new.recording.runs_main()
            && self.recording.pre_roll_s == new.recording.pre_roll_s;
        connects_the_same
            && records_the_same
            && self.motion.enabled == new.motion.enabled
            && self.live == new.live
            && self.onvif == new.onvif
    }
}

impl From<&CameraConfig> for CameraSettings {
    fn from(c: &CameraConfig) -> Self {
        CameraSettings {
            id: c.id.to_string(),
            name: c.name.clone(),
            main_url: c.main_url.clone(),
            sub_url: c.sub_url.clone(),
            username: c.username.clone(),
            password: c.password.clone(),
            transport: match c.transport {
                nvr_config::Transport::Tcp => Transport::Tcp,
                nvr_config::Transport::Udp => Transport::Udp,
            },
            motion: MotionSettings::from(&c.motion),
            recording: RecordingSettings {
                keep_main: c.schedule.is_some(),
                ..RecordingSettings::from(&c.recording)
            },
            live: LiveSettings::from(&c.live),
            onvif: c.onvif.as_ref().map(|o| OnvifSettings {
                host: o
                    .host
                    .clone()
                    .or_else(|| nvr_config::url_host(&c.main_url))
                    .unwrap_or_default(),
                port: o.port,
                profile: o.profile.clone(),
                username: o.username.clone().or_else(|| c.username.clone()),
                password: o.password.clone().or_else(|| c.password.clone()),
                move_timeout_s: o.move_timeout_s,
                settle_s: o.settle_s,
            }),
        }
    }
}

impl From<&MotionConfig> for MotionSettings {
    fn from(m: &MotionConfig) -> Self {
        MotionSettings {
            enabled: m.enabled,
            threshold: m.threshold,
            min_area: m.min_area,
            min_object: m.min_object,
            min_motion_s: m.min_motion_s,
            post_motion_s: m.post_motion_s,
            zones: m.zones.iter().map(|z| z.points.clone()).collect(),
            masks: m.masks.clone(),
            zone_names: m.zones.iter().map(|z| z.name.clone()).collect(),
        }
    }
}

impl From<&RecordingConfig> for RecordingSettings {
    fn from(r: &RecordingConfig) -> Self {
        RecordingSettings {
            mode: r.mode.into(),
            pre_roll_s: r.pre_roll_s,
            post_roll_s: r.post_roll_s,
            max_segment_s: r.max_segment_s,
            keep_main: false,
        }
    }
}

/// The config's defaults, so there is one place that says what they are.
impl Default for MotionSettings {
    fn default() -> Self {
        MotionSettings::from(&MotionConfig::default())
    }
}

/// The config's defaults, so there is one place that says what they are.
impl Default for RecordingSettings {
    fn default() -> Self {
        RecordingSettings::from(&RecordingConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &str) -> CameraSettings {
        let json = format!(
            r#"{{"cameras": [{{"id": "a", "main_url": "rtsp://h/1", "password": "pw"{extra}}}]}}"#
        );
        let config = nvr_config::parse(&json, "t.json".as_ref(), &|_| None).unwrap();
        CameraSettings::from(&config.cameras[0])
    }

    #[test]
    fn what_a_running_worker_can_take_in_place() {
        let base = settings("");
        // (a change to the camera, applied in place?)
        let table = [
            (r#", "name": "Gate""#, true),
            (
                r#", "motion": {"threshold": 12, "min_object": 0.05, "min_motion_s": 0.2}"#,
                true,
            ),
            (
                r#", "motion": {"zones": [[[0,0],[1,0],[1,1]]], "masks": [[[0,0],[0.5,0],[0.5,0.5]]]}"#,
                true,
            ),
            (
                r#", "recording": {"mode": "continuous", "post_roll_s": 3, "max_segment_s": 60}"#,
                true,
            ),
            (r#", "limits": {"max_rss_mb": 300}"#, true),
            (r#", "recording": {"keep_days": 3}"#, true),
            (r#", "motion": {"enabled": false}"#, false),
            (r#", "recording": {"mode": "off"}"#, false),
            (r#", "recording": {"pre_roll_s": 2}"#, false),
            (r#", "sub_url": "rtsp://h/2""#, false),
            (r#", "transport": "udp""#, false),
            (r#", "live": {"main_ring_mb": 32}"#, false),
            (r#", "live": {"sub_ring_mb": 1}"#, true),
            (r#", "live": {"sub_ring_mb": 4}"#, false),
            (r#", "username": "admin""#, false),
            (r#", "onvif": {"port": 2020}"#, false),
        ];
        for (extra, live) in table {
            assert_eq!(base.live_only_change(&settings(extra)), live, "{extra}");
        }
        // With the MAIN stream kept (a schedule), every mode change is in place.
        let mut kept = base.clone();
        kept.recording.keep_main = true;
        for mode in [
            RecordingMode::Off,
            RecordingMode::Continuous,
            RecordingMode::Motion,
        ] {
            let mut to = kept.clone();
            to.recording.mode = mode;
            assert!(kept.live_only_change(&to), "{mode:?}");
            assert!(to.live_only_change(&kept), "{mode:?}");
        }
        let mut off_kept = kept.clone();
        off_kept.recording.mode = RecordingMode::Off;
        let mut off = base.clone();
        off.recording.mode = RecordingMode::Off;
        assert!(
            !off.live_only_change(&off_kept),
            "starting MAIN needs a new worker"
        );
        let mut other_password = base.clone();
        other_password.password = Some(Password::new("new"));
        assert!(!base.live_only_change(&other_password));
    }

    #[test]
    fn the_password_reaches_the_worker_but_never_a_debug_print() {
        let s = settings("");
        assert_eq!(s.password.as_ref().map(Password::expose), Some("pw"));
        assert!(!format!("{s:?}").contains("pw\""), "{s:?}");
    }
}
