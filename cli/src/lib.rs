//! What the `supervisor` and `worker` command lines share: the version string (with the git commit
//! the binaries were built from), the exit codes, the log options (`--log-level`, `--log-format`)
//! and the one JSON line format both processes write to stderr.
//!
//! Log lines are flat JSON objects: `timestamp`, `level`, `target`, `message`, then the event's
//! fields at the top level, numbers as numbers and absent values absent (an `Option` field that is
//! `None` is not written). A process may add fixed fields to every line: the worker adds
//! `camera_id`, so a camera's lines carry the same field name whichever process wrote them.

use std::io::IsTerminal;
use std::sync::OnceLock;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// `0.1.0 (commit 0123456789ab)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("NVR_GIT_COMMIT"),
    ")"
);

/// Exit codes of the supervisor (the worker's are in `nvr_proto::exit_code`).
pub mod exit {
    /// An internal error.
    pub const INTERNAL: u8 = 1;
    /// The config or the command line is unusable (systemd must not restart: nothing would change).
    pub const BAD_CONFIG: u8 = 2;
    /// The API's address cannot be bound (taken, or not this machine's).
    pub const CANNOT_BIND: u8 = 3;
    /// The output directory or the recordings index cannot be opened.
    pub const CANNOT_OPEN_STORAGE: u8 = 4;

    /// The exit codes, for `--help`.
    /// `probe`: a probed stream cannot be used.
    pub const PROBE_FAILED: u8 = 5;
    pub const HELP: &str = "Exit codes:\n  0  stopped cleanly (SIGTERM, SIGINT), or the subcommand succeeded\n  1  internal error\n  2  bad config or command line\n  3  cannot bind the API's address\n  4  cannot open the output directory or the recordings index\n  5  probe: a stream cannot be used";
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One flat JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Json => "json",
            LogFormat::Text => "text",
        }
    }
}

/// The log options both binaries take.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Which lines to log: a level (error, warn, info, debug, trace) or `RUST_LOG` directives
    /// (`info,supervisor::api=debug`). Default: `RUST_LOG`, else `info`.
    #[arg(long, env = "NVR_LOG_LEVEL", value_name = "FILTER", global = true)]
    pub log_level: Option<String>,
    /// `json` or `text`. Default: JSON unless stderr is a terminal.
    #[arg(long, env = "NVR_LOG_FORMAT", value_name = "FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
}

/// What [`init`] chose, for processes started from this one (the supervisor's workers inherit it).
#[derive(Debug, Clone)]
pub struct Chosen {
    pub filter: String,
    pub format: LogFormat,
}

static CHOSEN: OnceLock<Chosen> = OnceLock::new();

/// The log filter and format in force, once [`init`] ran.
pub fn chosen() -> Option<&'static Chosen> {
    CHOSEN.get()
}

/// Sets up logging to stderr. `fixed` fields are added to every JSON line (the worker's
/// `camera_id`). A filter that does not parse is an error the caller reports as a bad command line.
pub fn init(args: &LogArgs, fixed: &[(&str, &str)]) -> Result<Chosen, String> {
    let filter = args
        .log_level
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .filter(|f| !f.trim().is_empty())
        .unwrap_or_else(|| "info".to_string());
    let env_filter = EnvFilter::builder()
        .parse(&filter)
        .map_err(|e| format!("--log-level / RUST_LOG {filter:?}: {e}"))?;
    let format = args
        .log_format
        .unwrap_or(if std::io::stderr().is_terminal() {
            LogFormat::Text
        } else {
            LogFormat::Json
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr)
        // A broken stderr (its reader gone) must not panic the thread that logs: the default
        // reports the failed write with `eprintln!`, which panics.
        .log_internal_errors(false);
    match format {
        LogFormat::Json => builder
            .event_format(JsonLines::new(fixed))
            .try_init()
            .map_err(|e| e.to_string())?,
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
            .map_err(|e| e.to_string())?,
    }
    let chosen = Chosen { filter, format };
    let _ = CHOSEN.set(chosen.clone());
    Ok(chosen)
}

/// The JSON line format: flat fields, typed values, fixed fields on every line.
#[derive(Debug, Clone)]
pub struct JsonLines {
    fixed: Vec<(String, serde_json::Value)>,
}

impl JsonLines {
    pub fn new(fixed: &[(&str, &str)]) -> Self {
        JsonLines {
            fixed: fixed
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
                .collect(),
        }
    }
}

/// Now, as the JSON lines write it (RFC 3339, UTC).
pub fn timestamp() -> String {
    let mut ts = String::new();
    let _ = SystemTime.format_time(&mut Writer::new(&mut ts));
    ts
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut map = serde_json::Map::new();
        map.insert("timestamp".into(), timestamp().into());
        map.insert("level".into(), meta.level().as_str().into());
        map.insert("target".into(), meta.target().into());
        for (k, v) in &self.fixed {
            map.insert(k.clone(), v.clone());
        }
        event.record(&mut Fields(&mut map));
        let line = serde_json::to_string(&map).map_err(|_| std::fmt::Error)?;
        writeln!(w, "{line}")
    }
}

/// Records an event's fields with their own JSON types.
struct Fields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        self.0.insert(field.name().to_string(), value);
    }
}

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity: those are written as text.
        let v = serde_json::Number::from_f64(value)
            .map(serde_json::Value::Number)
            .unwrap_or_else(|| value.to_string().into());
        self.put(field, v);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // `%x` arrives here as its Display text; `?x` as Debug text, which call sites avoid.
        self.put(field, format!("{value:?}").into());
    }
}

/// A line a worker wrote to stderr, as the supervisor passes it on in JSON mode: a JSON object gets
/// `camera_id` if it lacks one; anything else (a panic message, a library's own output) becomes a
/// JSON line of its own with `camera_id`, so every line the supervisor writes parses.
pub fn relay_worker_line(line: &str, camera_id: &str) -> String {
    if let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str(line) {
        if !map.contains_key("camera_id") {
            map.insert("camera_id".into(), camera_id.into());
        }
        return serde_json::to_string(&map).unwrap_or_else(|_| line.to_string());
    }
    serde_json::json!({
        "timestamp": timestamp(),
        "level": "ERROR",
        "target": "worker::stderr",
        "camera_id": camera_id,
        "message": "worker wrote a line that is not a log line",
        "line": line,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_lines_are_passed_on_as_json_with_their_camera() {
        for (line, camera, expect_message) in [
            (
                r#"{"level":"INFO","message":"configured","camera_id":"a"}"#,
                "a",
                "configured",
            ),
            (r#"{"level":"INFO","message":"x"}"#, "b", "x"),
            (
                "thread 'sub' panicked at worker/src/sub.rs:1:1:",
                "c",
                "worker wrote a line that is not a log line",
            ),
            ("", "d", "worker wrote a line that is not a log line"),
            ("[1, 2]", "e", "worker wrote a line that is not a log line"),
            (
                "{\"half\":",
                "f",
                "worker wrote a line that is not a log line",
            ),
        ] {
            let out: serde_json::Value = serde_json::from_str(&relay_worker_line(line, camera))
                .unwrap_or_else(|e| panic!("{line:?}: {e}"));
            assert_eq!(out["camera_id"], camera, "{line:?}");
            assert_eq!(out["message"], expect_message, "{line:?}");
            if expect_message.starts_with("worker wrote") {
                assert_eq!(out["line"], line);
            }
        }
        // A camera id the worker wrote is kept (it is the same camera; never overwritten).
        let out = relay_worker_line(r#"{"camera_id":"own"}"#, "other");
        assert!(out.contains(r#""camera_id":"own""#), "{out}");
    }

    #[test]
    fn the_version_names_a_commit() {
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")), "{VERSION}");
        assert!(VERSION.contains("(commit "), "{VERSION}");
    }

    #[test]
    fn fields_keep_their_types_and_absent_options_are_absent() {
        use tracing_subscriber::layer::SubscriberExt;
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let layer = tracing_subscriber::fmt::layer()
            .event_format(JsonLines::new(&[("camera_id", "cam1")]))
            .with_writer(move || out.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let offset: Option<f64> = Some(-6000.09);
            let open: Option<f64> = None;
            let pid: Option<u32> = Some(42);
            tracing::info!(
                first_frame_offset_ms = offset,
                open_ms = open,
                pid,
                ok = true,
                path = %"a/b.mp4",
                nan = f64::NAN,
                "recording started"
            );
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["message"], "recording started");
        assert_eq!(v["camera_id"], "cam1");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["first_frame_offset_ms"], -6000.09);
        assert!(v.get("open_ms").is_none(), "{text}");
        assert_eq!(v["pid"], 42);
        assert_eq!(v["ok"], true);
        assert_eq!(v["path"], "a/b.mp4");
        assert_eq!(v["nan"], "NaN");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'), "{text}");
        assert!(!text.contains("Some("), "{text}");
    }
}
