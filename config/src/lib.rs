//! Loads and validates `config/cameras.json`.
//!
//! Parsing walks the JSON by hand (see [`reader`]) so that one run reports **every** problem, each with
//! the file, the field's JSON path and a fix: `config/cameras.json: cameras[2].sub_url: ...`. Every field
//! and default is documented in `docs/config.md`; the defaults below are the source of truth for it.

mod camera;
#[doc(hidden)]
pub mod fuzzing;
pub mod layout;
mod metrics;
mod mqtt;
mod notify;
mod onvif;
mod reader;
mod schedule;
mod secret;
mod webhook;

pub use metrics::{MetricsConfig, MAX_SAMPLE_EVERY_S, MIN_SAMPLE_EVERY_S};
pub use mqtt::MqttConfig;
pub use notify::NotifyConfig;
pub use onvif::{url_host, OnvifConfig};
pub use reader::Problem;
pub use secret::{redact_url, url_has_credentials, Password};
pub use webhook::{WebhookConfig, WebhookEvent};

use reader::{kind, ObjReader, Problems};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// The whole configuration, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where recordings go; relative paths are relative to the working directory.
    pub output_dir: PathBuf,
    pub api: ApiConfig,
    /// How often a worker sends a heartbeat; three missed ones get it restarted.
    pub heartbeat_interval_s: f64,
    pub restart: RestartConfig,
    pub retention: RetentionConfig,
    /// Every camera, enabled or not, in file order.
    pub cameras: Vec<CameraConfig>,
    /// What was accepted but deserves a word (a deprecated field and how it was read), with its
    /// JSON path: `--check-config` prints these and the supervisor logs them.
    pub notes: Vec<Problem>,
    /// Named recording schedules that cameras refer to (`schedule`), by name.
    pub schedules: BTreeMap<String, Schedule>,
    /// The MQTT broker event notifications go to (`None`: no MQTT).
    pub mqtt: Option<MqttConfig>,
    /// Receivers of signed event POSTs (empty: none).
    pub webhooks: Vec<WebhookConfig>,
    /// The metrics history: sampling period and how long each resolution is kept.
    pub metrics: MetricsConfig,
}

impl Config {
    pub fn camera(&self, id: &str) -> Option<&CameraConfig> {
        self.cameras.iter().find(|c| c.id.as_str() == id)
    }

    /// The schedule a camera follows, if it names one.
    pub fn schedule_of(&self, camera: &CameraConfig) -> Option<&Schedule> {
        camera.schedule.as_ref().and_then(|s| self.schedules.get(s))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// Address of the HTTP API. Default `127.0.0.1:5001`.
    pub listen: SocketAddr,
    /// Login for the web UI and API; required to listen beyond loopback.
    pub auth: Option<AuthConfig>,
    /// Extra `Host` names (lower case, without port) the API answers to without a login, besides
    /// loopback names and addresses: a guard against DNS rebinding. Default none.
    pub allowed_hosts: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed: addresses or
    /// CIDR ranges. Default none: the client is the TCP peer.
    pub trusted_proxies: Vec<ProxyNet>,
    /// Longest time a client may take to send a request's headers, and to start the next request
    /// on a kept-alive connection. Default 10 s.
    pub header_read_timeout_s: f64,
    /// Longest time from a request's headers to its answer, which covers reading its body.
    /// Default 30 s.
    pub body_timeout_s: f64,
    /// A connection that moves no byte either way for this long is closed. Default 60 s.
    pub idle_timeout_s: f64,
    /// Most connections served at once; further ones wait in the kernel's queue. The supervisor
    /// also keeps this many below its descriptor limit minus a reserve. Default 256.
    pub max_connections: u32,
    /// A bearer token that opens `/ready` and `/metrics` without a session, for Prometheus and
    /// uptime monitors (`api.metrics_token`, or read from the variable `api.metrics_token_env`).
    /// A [`Password`], so it never prints. Default none.
    pub metrics_token: Option<Password>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: default_listen(),
            auth: None,
            allowed_hosts: Vec::new(),
            trusted_proxies: Vec::new(),
            header_read_timeout_s: 10.0,
            body_timeout_s: 30.0,
            idle_timeout_s: 60.0,
            max_connections: 256,
            metrics_token: None,
        }
    }
}

/// A trusted proxy: one address (`127.0.0.1`, `::1`) or a range in CIDR form (`10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyNet(ipnet::IpNet);

impl ProxyNet {
    /// Whether `ip` is this proxy, or in its range. An IPv4 address seen as IPv4-mapped IPv6
    /// (`::ffff:a.b.c.d`) counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl From<IpAddr> for ProxyNet {
    fn from(ip: IpAddr) -> Self {
        ProxyNet(ipnet::IpNet::from(ip.to_canonical()))
    }
}

impl std::str::FromStr for ProxyNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(ip.into());
        }
        s.parse::<ipnet::IpNet>()
            .map(|n| ProxyNet(n.trunc()))
            .map_err(|_| format!("{s:?} is not an IP address or a CIDR range"))
    }
}

impl fmt::Display for ProxyNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() {
            write!(f, "{}", self.0.addr())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl<'de> Deserialize<'de> for ProxyNet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One user who may log in. The password is stored only as an Argon2 hash (`supervisor
/// --hash-password` makes one).
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    pub username: String,
    /// PHC string, `$argon2id$v=19$...`.
    pub password_hash: String,
}

/// Free space the supervisor keeps on the output file system, by deleting the oldest finished
/// recordings of any camera (per-camera limits are `recording.keep_days` and `recording.max_gb`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetentionConfig {
    /// Keep at least this many GB free (default 1; 0 turns it off).
    pub min_free_gb: f64,
    /// Keep at least this percent of the file system free (default 0 = off).
    pub min_free_percent: f64,
    /// How often retention runs (default 60 s); it also runs when a worker reports a full disk.
    pub check_every_s: f64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            min_free_gb: 1.0,
            min_free_percent: 0.0,
            check_every_s: 60.0,
        }
    }
}

/// When and how often the supervisor restarts a worker that died.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartConfig {
    /// First restart delay (default 1 s); doubles on every consecutive failure.
    pub initial_s: f64,
    /// Longest restart delay (default 60 s).
    pub max_s: f64,
    /// A worker that ran this long (default 60 s) is healthy: its next failure starts again at `initial_s`.
    pub reset_after_s: f64,
    /// More than `intensity` restarts (default 5) within `period_s` (default 300 s) shows the camera as
    /// `failed`; it is still retried, every `max_s`.
    pub intensity: u32,
    pub period_s: f64,
}

impl Default for RestartConfig {
    fn default() -> Self {
        RestartConfig {
            initial_s: 1.0,
            max_s: 60.0,
            reset_after_s: 60.0,
            intensity: 5,
            period_s: 300.0,
        }
    }
}

/// A camera id: `[A-Za-z0-9_-]`, 1 to 64 characters, because it becomes a file name, a shared-memory
/// name and a log field.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct CameraId(String);

impl CameraId {
    pub fn new(id: &str) -> Result<Self, String> {
        let ok_chars = id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if id.is_empty() || id.len() > 64 || !ok_chars {
            return Err(format!(
                "{id:?} is not a valid camera id; use 1 to 64 characters from A-Z, a-z, 0-9, _ and -"
            ));
        }
        Ok(CameraId(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CameraId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CameraId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CameraId::new(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
}

/// What a camera records: `motion`, `continuous` or `off` (the schedule engine's type, so a
/// schedule's modes and a camera's fixed mode are one vocabulary).
pub use nvr_schedule::Mode as RecordingMode;
pub use nvr_schedule::Schedule;

/// A polygon in coordinates normalised to 0..1 (x right, y down), so it survives a resolution change.
pub type Polygon = Vec<[f64; 2]>;

/// Most zones one camera may have (the detector keeps a zone set per pixel as a 32-bit mask).
pub const MAX_ZONES: usize = 32;

/// A watched area. Its name goes into motion events (which zones the moving object touched) and
/// the per-zone motion level; a zone written as a bare polygon is named `zone<N>` by its 1-based
/// position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Zone {
    pub name: String,
    pub points: Polygon,
}

/// One camera, with `defaults` already applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraConfig {
    pub id: CameraId,
    /// Display name; defaults to the id.
    pub name: String,
    pub enabled: bool,
    /// The high-resolution stream that is recorded.
    pub main_url: String,
    /// The low-resolution stream that is decoded for motion and preview; `None` uses `main_url`.
    pub sub_url: Option<String>,
    pub username: Option<String>,
    pub password: Option<Password>,
    pub transport: Transport,
    pub motion: MotionConfig,
    pub recording: RecordingConfig,
    pub limits: LimitsConfig,
    /// Quiet hours, cooldown and `camera_down` delay of its notifications.
    #[serde(default)]
    pub notify: NotifyConfig,
    /// The name of the schedule (in `schedules`) that decides the recording mode; `None`: the
    /// fixed `recording.mode`. A camera may not set both.
    pub schedule: Option<String>,
    pub live: LiveConfig,
    /// The camera's ONVIF service, for pan-tilt-zoom; `None`: no PTZ.
    pub onvif: Option<OnvifConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MotionConfig {
    pub enabled: bool,
    /// Per-pixel brightness change (0-255) that counts as "changed". Default 30.
    pub threshold: u8,
    /// Percent of the watched area that must change in all for a frame to count as moving, on top
    /// of the object rule. Default 0 (the object rule alone decides).
    pub min_area: f64,
    /// Side of the smallest moving object that counts, as a fraction of the picture's width: a
    /// connected changed region at least half the area of that square. Default 0.02.
    pub min_object: f64,
    /// Seconds an object must keep moving before motion starts (at least two frames when above
    /// zero). Default 0.03 (two frames at 30 fps). Replaces `min_frames`, which is read as `(min_frames - 1) / 30` s.
    pub min_motion_s: f64,
    /// Seconds without a moving frame before motion ends. Default 5.
    pub post_motion_s: f64,
    /// Areas to watch (none = the whole frame), each with a unique name.
    pub zones: Vec<Zone>,
    /// Areas to ignore, subtracted from the zones.
    pub masks: Vec<Polygon>,
}

impl Default for MotionConfig {
    fn default() -> Self {
        MotionConfig {
            enabled: true,
            threshold: 30,
            min_area: 0.0,
            min_object: 0.02,
            min_motion_s: 0.03,
            post_motion_s: 5.0,
            zones: Vec::new(),
            masks: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingConfig {
    /// The fixed mode, for a camera without a schedule (a scheduled camera keeps the default here,
    /// unused).
    pub mode: RecordingMode,
    /// Seconds kept before the motion starts. Default 5.
    pub pre_roll_s: f64,
    /// Seconds recorded after the motion ends. Default 10.
    pub post_roll_s: f64,
    /// Longest file; a new one starts at the next keyframe. Default 300.
    pub max_segment_s: f64,
    /// Delete recordings older than this many days (none = keep by age).
    pub keep_days: Option<f64>,
    /// Delete the oldest recordings of this camera past this many GB (none = no size limit).
    pub max_gb: Option<f64>,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            mode: RecordingMode::Motion,
            pre_roll_s: 5.0,
            post_roll_s: 10.0,
            max_segment_s: 300.0,
            keep_days: None,
            max_gb: None,
        }
    }
}

/// Resource limits the supervisor enforces on the camera's worker by restarting it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitsConfig {
    /// Resident memory limit in MB. Default 200.
    pub max_rss_mb: f64,
    /// CPU limit in percent of one core. Default 100.
    pub max_cpu_percent: f64,
    /// How long the CPU may stay over its limit before a restart. Default 30 s.
    pub cpu_grace_s: f64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_rss_mb: 200.0,
            max_cpu_percent: 100.0,
            cpu_grace_s: 30.0,
        }
    }
}

/// The camera's shared-memory packet rings (encoded SUB and MAIN packets for live view).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveConfig {
    /// MiB of MAIN packets kept (0 = no MAIN ring, so no full-resolution live view). Default 4
    /// (decision 111).
    pub main_ring_mb: u32,
    /// MiB of SUB packets kept (0 = no SUB ring, so no MSE live view). Default 1.
    pub sub_ring_mb: u32,
}

/// Largest packet ring, MiB.
pub const MAX_RING_MB: u32 = 1024;

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            main_ring_mb: 4,
            sub_ring_mb: 1,
        }
    }
}

/// The config could not be used. `Display` prints one line per problem: `file: path: message`.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if p.path.is_empty() {
                write!(f, "{}: {}", self.file.display(), p.message)?;
            } else {
                write!(f, "{}: {}: {}", self.file.display(), p.path, p.message)?;
            }
        }
        Ok(())
    }
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let fail = |message: String| ConfigError {
        file: path.to_path_buf(),
        problems: vec![Problem {
            path: String::new(),
            message,
        }],
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        fail(format!(
            "cannot read the config file: {e}; create it (see docs/config.md) or pass --config PATH"
        ))
    })?;
    parse(&text, path, &|name| std::env::var(name).ok())
}

/// Validates config text. `env` looks up environment variables (for `password_env`).
pub fn parse(
    text: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ConfigError {
        file: file.to_path_buf(),
        problems: vec![Problem {
            path: String::new(),
            message: format!(
                "line {}, column {}: invalid JSON: {}; fix the syntax there",
                e.line(),
                e.column(),
                strip_position(&e.to_string())
            ),
        }],
    })?;
    let mut problems = Problems::default();
    let config = read_config(&value, env, &mut problems);
    match config {
        Some(mut c) if problems.0.is_empty() => {
            c.notes = problems.1;
            Ok(c)
        }
        _ => Err(ConfigError {
            file: file.to_path_buf(),
            problems: problems.0,
        }),
    }
}

/// serde_json appends " at line L column C"; the message states the position first instead.
fn strip_position(msg: &str) -> &str {
    msg.rfind(" at line ").map_or(msg, |i| &msg[..i])
}

fn read_config(
    value: &Value,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<Config> {
    let mut top = ObjReader::new(value, "", problems)?;
    let output_dir: Option<String> = top.get("output_dir", "write a directory path", problems);
    let api = match top.raw("api") {
        Some(v) => read_api(v, env, problems),
        None => Some(ApiConfig::default()),
    };
    let heartbeat_interval_s = top.seconds("heartbeat_interval_s", problems);
    let restart = match top.raw("restart") {
        Some(v) => read_restart(v, problems),
        None => Some(RestartConfig::default()),
    };
    let retention = match top.raw("retention") {
        Some(v) => read_retention(v, problems),
        None => Some(RetentionConfig::default()),
    };
    let (schedules, schedule_names) = match top.raw("schedules") {
        Some(v) => schedule::read_schedules(v, problems),
        None => (BTreeMap::new(), Vec::new()),
    };
    let mqtt = top.raw("mqtt").map(|v| mqtt::read_mqtt(v, env, problems));
    let metrics = match top.raw("metrics") {
        Some(v) => metrics::read_metrics(v, problems),
        None => Some(MetricsConfig::default()),
    };
    // Defaults are validated on their own (errors point at `defaults.*`); cameras inherit them only
    // when they are valid, so one mistake is reported once.
    let defaults = top.raw("defaults").cloned();
    let defaults_ok = match &defaults {
        Some(d) => {
            let before = problems.0.len();
            camera::read_camera(d, "defaults", true, &schedule_names, env, problems);
            problems.0.len() == before
        }
        None => true,
    };
    let cameras = match top.raw("cameras") {
        Some(Value::Array(items)) => {
            let mut cams = Vec::new();
            let mut seen_ids = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let path = format!("cameras[{i}]");
                let merged = match (&defaults, defaults_ok) {
                    (Some(d), true) => camera::merge_defaults(d, item),
                    _ => item.clone(),
                };
                cams.extend(camera::read_camera(
                    &merged,
                    &path,
                    false,
                    &schedule_names,
                    env,
                    problems,
                ));
                if let Some(id) = item.get("id").and_then(Value::as_str) {
                    if seen_ids.contains(&id) {
                        problems.push(
                            format!("{path}.id"),
                            format!("duplicate camera id \"{id}\"; every camera needs its own id"),
                        );
                    }
                    seen_ids.push(id);
                }
            }
            Some(cams)
        }
        Some(other) => {
            problems.push(
                "cameras",
                format!(
                    "expected an array of cameras [ {{...}} ], found {}",
                    kind(other)
                ),
            );
            None
        }
        None => {
            problems.push(
                "cameras",
                "missing; add \"cameras\": [ { \"id\": \"front\", \"main_url\": \"rtsp://...\" } ]",
            );
            None
        }
    };
    let webhooks = match (top.raw("webhooks"), &cameras) {
        (None, _) => Some(Vec::new()),
        (Some(v), Some(cams)) => {
            let ids: Vec<&str> = cams.iter().map(|c| c.id.as_str()).collect();
            webhook::read_webhooks(v, &ids, env, problems)
        }
        (Some(_), None) => None,
    };
    top.finish(problems);
    Some(Config {
        output_dir: PathBuf::from(output_dir.unwrap_or_else(|| "output".into())),
        api: api?,
        heartbeat_interval_s: heartbeat_interval_s.unwrap_or(5.0),
        restart: restart?,
        retention: retention?,
        cameras: cameras?,
        notes: Vec::new(),
        schedules,
        mqtt: match mqtt {
            Some(m) => Some(m?),
            None => None,
        },
        webhooks: webhooks?,
        metrics: metrics?,
    })
}

/// Shortest metrics token: anything shorter is guessable.
const MIN_TOKEN_CHARS: usize = 16;

/// `api.metrics_token` or `api.metrics_token_env` (one of them), at least [`MIN_TOKEN_CHARS`]
/// long. The token never appears in a message.
fn read_metrics_token(
    obj: &mut ObjReader<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<Password> {
    let token: Option<String> = obj.get("metrics_token", "write the token in quotes", problems);
    let var: Option<String> = obj.get(
        "metrics_token_env",
        "write the name of an environment variable",
        problems,
    );
    let (token, path) = match (token, var) {
        (Some(_), Some(_)) => {
            problems.push(
                "api.metrics_token_env",
                "both metrics_token and metrics_token_env are set; keep one",
            );
            return None;
        }
        (Some(t), None) => (t, "api.metrics_token"),
        (None, Some(var)) => match env(&var) {
            Some(t) => (t, "api.metrics_token_env"),
            None => {
                problems.push(
                    "api.metrics_token_env",
                    format!("environment variable {var} is not set; export it before starting, or use \"metrics_token\""),
                );
                return None;
            }
        },
        (None, None) => return None,
    };
    let ok =
        token.chars().count() >= MIN_TOKEN_CHARS && token.bytes().all(|b| b.is_ascii_graphic());
    if !ok {
        problems.push(
            path,
            format!("the token must be at least {MIN_TOKEN_CHARS} printable characters without spaces; make one with `openssl rand -hex 32`"),
        );
        return None;
    }
    Some(Password::new(token))
}

fn read_retention(value: &Value, problems: &mut Problems) -> Option<RetentionConfig> {
    let d = RetentionConfig::default();
    let mut obj = ObjReader::new(value, "retention", problems)?;
    let r = RetentionConfig {
        min_free_gb: obj
            .number_in("min_free_gb", 0.0, 1e6, problems)
            .unwrap_or(d.min_free_gb),
        min_free_percent: obj
            .number_in("min_free_percent", 0.0, 90.0, problems)
            .unwrap_or(d.min_free_percent),
        check_every_s: obj
            .seconds("check_every_s", problems)
            .unwrap_or(d.check_every_s),
    };
    obj.finish(problems);
    Some(r)
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5001))
}

/// Longest time a connection timeout may be: a client that may hold a connection longer is no
/// timeout at all.
const MAX_CONN_TIMEOUT_S: f64 = 3600.0;

fn read_api(
    value: &Value,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<ApiConfig> {
    let d = ApiConfig::default();
    let mut obj = ObjReader::new(value, "api", problems)?;
    let listen = match obj.get::<String>("listen", "write \"host:port\"", problems) {
        Some(s) => match s.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                problems.push(
                    "api.listen",
                    format!("\"{s}\" is not an address; write IP:port, e.g. \"127.0.0.1:5001\""),
                );
                None
            }
        },
        None => Some(default_listen()),
    };
    let auth = obj.raw("auth").and_then(|v| read_auth(v, problems));
    let allowed_hosts: Vec<String> = obj
        .get(
            "allowed_hosts",
            "write a list of host names, e.g. [\"nvr.home.arpa\"]",
            problems,
        )
        .unwrap_or_default();
    let allowed_hosts = allowed_hosts
        .into_iter()
        .enumerate()
        .filter_map(|(i, h)| {
            let ok = !h.is_empty()
                && h.len() <= 253
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !ok {
                problems.push(
                    format!("api.allowed_hosts[{i}]"),
                    format!("{h:?} is not a host name; write a name such as \"nvr.home.arpa\", without scheme, port or path"),
                );
            }
            ok.then(|| h.to_ascii_lowercase())
        })
        .collect();
    let trusted_proxies: Vec<ProxyNet> = obj
        .get(
            "trusted_proxies",
            "write a list of IP addresses or CIDR ranges, e.g. [\"127.0.0.1\", \"10.0.0.0/8\"]",
            problems,
        )
        .unwrap_or_default();
    let mut timeout = |key: &'static str, default: f64| {
        let s = obj.seconds(key, problems)?;
        if s > MAX_CONN_TIMEOUT_S {
            problems.push(
                format!("api.{key}"),
                format!("{s} seconds is too long for a connection timeout; set at most {MAX_CONN_TIMEOUT_S}"),
            );
            return Some(default);
        }
        Some(s)
    };
    let header_read_timeout_s = timeout("header_read_timeout_s", d.header_read_timeout_s)
        .unwrap_or(d.header_read_timeout_s);
    let body_timeout_s = timeout("body_timeout_s", d.body_timeout_s).unwrap_or(d.body_timeout_s);
    let idle_timeout_s = timeout("idle_timeout_s", d.idle_timeout_s).unwrap_or(d.idle_timeout_s);
    let max_connections = match obj.raw("max_connections") {
        None => d.max_connections,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=65536) => n as u32,
            _ => {
                problems.push(
                    "api.max_connections",
                    format!("{v} is out of range; write a whole number from 1 to 65536"),
                );
                d.max_connections
            }
        },
    };
    let metrics_token = read_metrics_token(&mut obj, env, problems);
    obj.finish(problems);
    Some(ApiConfig {
        listen: listen?,
        auth,
        allowed_hosts,
        trusted_proxies,
        header_read_timeout_s,
        body_timeout_s,
        idle_timeout_s,
        max_connections,
        metrics_token,
    })
}

fn read_auth(value: &Value, problems: &mut Problems) -> Option<AuthConfig> {
    let mut obj = ObjReader::new(value, "api.auth", problems)?;
    let username: Option<String> = obj.get("username", "write a user name", problems);
    let hash: Option<String> = obj.get(
        "password_hash",
        "write the output of `supervisor --hash-password`",
        problems,
    );
    obj.finish(problems);
    if username.as_deref().is_none_or(str::is_empty) {
        problems.push(
            "api.auth.username",
            "missing; set the user name to log in with",
        );
    }
    match &hash {
        Some(h) if h.starts_with("$argon2") => {}
        Some(_) => problems.push(
            "api.auth.password_hash",
            "not an Argon2 hash; run `supervisor --hash-password` and paste what it prints (never the password itself)",
        ),
        None => problems.push(
            "api.auth.password_hash",
            "missing; run `supervisor --hash-password` and paste what it prints",
        ),
    }
    Some(AuthConfig {
        username: username.filter(|u| !u.is_empty())?,
        password_hash: hash.filter(|h| h.starts_with("$argon2"))?,
    })
}

fn read_restart(value: &Value, problems: &mut Problems) -> Option<RestartConfig> {
    let d = RestartConfig::default();
    let mut obj = ObjReader::new(value, "restart", problems)?;
    let r = RestartConfig {
        initial_s: obj.seconds("initial_s", problems).unwrap_or(d.initial_s),
        max_s: obj.seconds("max_s", problems).unwrap_or(d.max_s),
        reset_after_s: obj
            .seconds("reset_after_s", problems)
            .unwrap_or(d.reset_after_s),
        intensity: obj
            .get(
                "intensity",
                "write a whole number of restarts, e.g. 5",
                problems,
            )
            .unwrap_or(d.intensity),
        period_s: obj.seconds("period_s", problems).unwrap_or(d.period_s),
    };
    obj.finish(problems);
    if r.max_s < r.initial_s {
        problems.push(
            "restart.max_s",
            format!(
                "{} is less than initial_s ({}); make max_s at least initial_s",
                r.max_s, r.initial_s
            ),
        );
    }
    Some(r)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proxy_net_tests {
    use super::*;

    #[test]
    fn proxies_are_addresses_or_ranges() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for (spec, inside, outside) in [
            ("127.0.0.1", "127.0.0.1", "127.0.0.2"),
            ("::1", "::1", "::2"),
            ("10.0.0.0/8", "10.200.3.4", "11.0.0.1"),
            // Host bits are dropped: a range is its network.
            ("192.168.1.77/24", "192.168.1.1", "192.168.2.1"),
            ("fd00::/8", "fd12::1", "fe80::1"),
            // An IPv4 proxy seen on a dual-stack socket.
            ("127.0.0.1", "::ffff:127.0.0.1", "::ffff:127.0.0.2"),
            ("10.0.0.0/8", "::ffff:10.1.2.3", "::ffff:11.1.2.3"),
        ] {
            let net: ProxyNet = spec.parse().unwrap();
            assert!(net.contains(ip(inside)), "{spec} contains {inside}");
            assert!(!net.contains(ip(outside)), "{spec} excludes {outside}");
        }
        for bad in ["", "localhost", "10.0.0.0/33", "1.2.3.4:80", "10.0.0.0/"] {
            assert!(bad.parse::<ProxyNet>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "10.1.2.3/8".parse::<ProxyNet>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!("::1".parse::<ProxyNet>().unwrap().to_string(), "::1");
    }
}
