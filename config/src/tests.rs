//! Table tests for config validation: one case per class of error, each checking file, field and fix.

use super::*;

fn parse_with_env(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parse(text, Path::new("config/cameras.json"), &move |name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
}

fn errors(text: &str) -> String {
    match parse_with_env(text, &[]) {
        Ok(_) => panic!("expected an error for {text}"),
        Err(e) => e.to_string(),
    }
}

const MINIMAL: &str = r#"{"cameras": [{"id": "front", "main_url": "rtsp://10.0.0.2/stream1"}]}"#;

#[test]
fn minimal_config_gets_documented_defaults() {
    let c = parse_with_env(MINIMAL, &[]).unwrap();
    assert_eq!(c.output_dir, PathBuf::from("output"));
    assert_eq!(c.api.listen.to_string(), "127.0.0.1:5001");
    assert_eq!(c.heartbeat_interval_s, 5.0);
    assert_eq!(c.restart, RestartConfig::default());
    let cam = &c.cameras[0];
    assert_eq!(cam.name, "front");
    assert!(cam.enabled);
    assert_eq!(cam.sub_url, None);
    assert_eq!(cam.transport, Transport::Tcp);
    assert_eq!(cam.motion, MotionConfig::default());
    assert_eq!(cam.recording.pre_roll_s, 5.0);
    assert_eq!(cam.recording.post_roll_s, 10.0);
    assert_eq!(cam.recording.max_segment_s, 300.0);
    assert_eq!(cam.limits.max_rss_mb, 200.0);
    assert_eq!((cam.live.main_ring_mb, cam.live.sub_ring_mb), (4, 1));
}

#[test]
fn defaults_apply_field_by_field_and_camera_wins() {
    let c = parse_with_env(
        r#"{
          "defaults": {"transport": "udp", "motion": {"threshold": 40, "min_frames": 4}, "password_env": "CAM_PW", "username": "admin"},
          "cameras": [
            {"id": "a", "main_url": "rtsp://h/1", "motion": {"threshold": 20}},
            {"id": "b", "main_url": "rtsp://h/2", "password": "own"}
          ]}"#,
        &[("CAM_PW", "from-env")],
    )
    .unwrap();
    let (a, b) = (&c.cameras[0], &c.cameras[1]);
    assert_eq!(a.transport, Transport::Udp);
    assert_eq!(a.motion.threshold, 20);
    assert!((a.motion.min_motion_s - 0.1).abs() < 1e-9);
    assert!(!c.notes.is_empty(), "{:?}", c.notes);
    assert_eq!(a.password.as_ref().unwrap().expose(), "from-env");
    assert_eq!(a.username.as_deref(), Some("admin"));
    assert_eq!(b.password.as_ref().unwrap().expose(), "own");
    assert_eq!(b.motion.threshold, 40);
}

#[test]
fn each_error_class_names_file_field_and_fix() {
    // (config text, expected substrings of the one error line)
    let cases: &[(&str, &[&str])] = &[
        (
            r#"{"cameras": [{"id": "a", "main_url": "rtsp://h/1", "mainurl": "x"}]}"#,
            &[
                "config/cameras.json: cameras[0].mainurl: unknown field",
                "did you mean \"main_url\"",
            ],
        ),
        (
            r#"{"cameras": [{"id": "a", "main_url": "rtsp://h/1", "sub_url": "rtps://h/2"}]}"#,
            &[
                "cameras[0].sub_url: \"rtps://h/2\" is not an rtsp:// URL",
                "e.g. \"rtsp://",
            ],
        ),
        (
            r#"{"cameras": [{"id": "a", "main_url": "rtsp://admin:secret@h/1"}]}"#,
            &[
                "cameras[0].main_url: \"rtsp://h/1\" has credentials in the URL",
                "set \"username\" and \"password\"",
            ],
        ),
        (
            r#"{"retention": {"min_free_percent": 95}, "cameras": [{"id": "a", "main_url": "rtsp://h/1"}]}"#,
            &[
                "config/cameras.json: retention.min_free_percent: 95 is out of range",
                "use a number from 0 to 90",
            ],
        ),
        (
            r#"{"cameras": [{"id": "a", "main_url": "rtsp://h/1"}, {"id": "a", "main_url": "rtsp://h/2"}]}"#,
            &["cameras[1].id: duplicate camera id \"a\"", "its own id"],
        ),
        (
            r#"{"cameras": [{"id": "../etc", "main_url": "rtsp://h/1"}]}"#,
            &[
                "cameras[0].id: \"../etc\" is not a valid camera id",
                "A-Z, a-z, 0-9, _ and -",
            ],
        ),
        (
            r#"{"cameras": [{"id": "a", "main_url": "rtsp://h/1", "recording": {"pre_roll_s": 0}}]}"#,
            &[
                "cameras[0].recording.pre_roll_s: 0 is not positive",
                "greater than 0",
            ],
        ),
        (
            r#"{"heartbeat_interval_s": -1, "cameras": []}"#,
            &["heartbeat_interval_s: -1 is not positive"],
        ),
        (
            r#"{"cameras": [{"id": "a", "main_url": "rtsp://h/1", "transport": "tpc"}]}"#,
            &[
                "cameras[0].transport: unknown variant `tpc`",
                "write \"tcp\" or \"udp\"",
            ],
        ),
        (
            r#"{"cameras": [{"id": "a", "main_url": "rtsp://h/1", "motion": {"threshold": "high"}}]}"#,
            &[
                "cameras[0].motion.threshold: \"high\" is out of range",
                "from 1 to 255",
            ],
        ),
        (
            r#"{"cameras": [{"id": "a", "main_url": "rtsp://h/1", "password_env": "NOPE"}]}"#,
            &[
                "cameras[0].password_env: environment variable NOPE is not set",
                "export it",
            ],
        ),
        (
            r#"{"cameras": [{"id": "a", "main_url": "rtsp://h/1", "motion": {"zones": [[[0,0],[2,0],[1,1]]]}}]}"#,
            &["cameras[0].motion.zones[0]: has a coordinate outside 0..1"],
        ),
        (
            r#"{"cameras": [{"id": "a"}]}"#,
            &["cameras[0].main_url: missing", "rtsp://"],
        ),
        (
            r#"{"api": {"listen": "localhost"}, "cameras": []}"#,
            &[
                "api.listen: \"localhost\" is not an address",
                "127.0.0.1:5001",
            ],
        ),
        (
            r#"{"restart": {"initial_s": 10, "max_s": 5}, "cameras": []}"#,
            &["restart.max_s: 5 is less than initial_s"],
        ),
        (r#"{"cameras": {}}"#, &["cameras: expected an array"]),
        (
            "{\n  \"cameras\": [\n    {\"id\": \"a\",}\n  ]\n}",
            &[
                "config/cameras.json: line 3, column 16: invalid JSON",
                "fix the syntax",
            ],
        ),
    ];
    for (text, wants) in cases {
        let msg = errors(text);
        assert_eq!(
            msg.lines().count(),
            1,
            "one problem expected for {text}:\n{msg}"
        );
        for want in *wants {
            assert!(
                msg.contains(want),
                "for {text}\n  got:  {msg}\n  want: {want}"
            );
        }
    }
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let msg = errors(
        r#"{"outptu_dir": "x", "defaults": {"transport": "carrier-pigeon"},
            "cameras": [
              {"id": "ok", "main_url": "http://h/1"},
              {"id": "bad id", "main_url": "rtsp://h/1", "limits": {"max_rss_mb": 0}},
              {"id": "ok", "main_url": "rtsp://h/2"}
            ]}"#,
    );
    for want in [
        "outptu_dir: unknown field; did you mean \"output_dir\"",
        "defaults.transport: unknown variant",
        "cameras[0].main_url: \"http://h/1\" is not an rtsp:// URL",
        "cameras[1].id: \"bad id\" is not a valid camera id",
        "cameras[1].limits.max_rss_mb: 0 is not positive",
        "cameras[2].id: duplicate camera id \"ok\"",
    ] {
        assert!(msg.contains(want), "missing {want:?} in:\n{msg}");
    }
    assert!(msg.lines().all(|l| l.starts_with("config/cameras.json: ")));
}

#[test]
fn missing_file_says_how_to_fix() {
    let err = load(Path::new("/nonexistent/cameras.json"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("/nonexistent/cameras.json: cannot read the config file"),
        "{err}"
    );
    assert!(err.contains("--config PATH"), "{err}");
}

#[test]
fn passwords_never_reach_debug_or_errors() {
    let c = parse_with_env(
        r#"{"cameras": [{"id": "a", "main_url": "rtsp://h/1", "password": "hunter2-secret"},
                        {"id": "b", "main_url": "rtsp://h/2", "password_env": "PW"}]}"#,
        &[("PW", "env-secret-99")],
    )
    .unwrap();
    let debug = format!("{c:?} {:#?}", c);
    assert!(!debug.contains("hunter2-secret") && !debug.contains("env-secret-99"));
    let err = errors(r#"{"cameras": [{"id": "a", "main_url": "rtsp://u:hunter2-secret@h/1"}]}"#);
    assert!(!err.contains("hunter2-secret"), "{err}");
}

#[test]
fn comment_keys_are_ignored() {
    let c = parse_with_env(
        r#"{"_comment": "hi", "cameras": [{"_note": "x", "id": "a", "main_url": "rtsp://h/1"}]}"#,
        &[],
    );
    assert!(c.is_ok(), "{c:?}");
}

#[test]
fn fuzzer_findings_stay_fixed() {
    // An empty key is still named in its error.
    let e = errors(r#"{"cameras": [], "": 1}"#);
    assert!(
        e.contains("config/cameras.json: \"\": unknown field"),
        "{e}"
    );
    // A password typed as a number is not echoed (serde's type error would quote it).
    let e = errors(r#"{"cameras": [{"id": "a", "main_url": "rtsp://h/1", "password": 12345678}]}"#);
    assert!(
        e.contains("cameras[0].password: expected a string, found a number"),
        "{e}"
    );
    assert!(!e.contains("12345678"), "{e}");
    // A duration too long for `Duration`/`Instant` arithmetic is rejected, not left to panic later.
    let e = errors(
        r#"{"heartbeat_interval_s": 1e20, "cameras": [{"id": "a", "main_url": "rtsp://h/1"}]}"#,
    );
    assert!(e.contains("heartbeat_interval_s: 100000000000000000000 seconds is too long; set at most 1000000000"), "{e}");
}

#[test]
fn a_camera_follows_a_named_schedule_possibly_from_defaults() {
    let c = parse_with_env(
        r#"{
          "schedules": {"night_watch": {"timezone": "Europe/Berlin", "default": "motion",
             "rules": [{"days": ["mon","tue","wed","thu","fri"], "from": "22:00", "to": "06:30", "mode": "continuous"}]},
             "home": {"timezone": "America/New_York", "rules": []}},
          "defaults": {"schedule": "night_watch"},
          "cameras": [
            {"id": "a", "main_url": "rtsp://h/1"},
            {"id": "b", "main_url": "rtsp://h/2", "schedule": "home"},
            {"id": "c", "main_url": "rtsp://h/3", "schedule": null, "recording": {"mode": "off"}}
          ]}"#,
        &[],
    )
    .unwrap();
    assert_eq!(c.cameras[0].schedule.as_deref(), Some("night_watch"));
    assert_eq!(c.cameras[1].schedule.as_deref(), Some("home"));
    assert_eq!(c.cameras[2].schedule, None);
    assert_eq!(c.cameras[2].recording.mode, RecordingMode::Off);
    let s = c.schedule_of(&c.cameras[0]).unwrap();
    assert_eq!(s.zone_name(), "Europe/Berlin");
    assert_eq!(s.rules().len(), 1);
    assert_eq!(
        c.schedule_of(&c.cameras[1]).unwrap().default_mode(),
        RecordingMode::Motion
    );
    assert!(c.schedule_of(&c.cameras[2]).is_none());
}

#[test]
fn every_schedule_problem_is_reported_at_once_with_its_path() {
    let text = r#"{
      "schedules": {
        "bad zone": {"rules": []},
        "w": {"timezone": "Europe/Berlni", "default": "sometimes",
              "rules": [
                {"days": ["mon", "funday"], "from": "25:00", "to": "06:30", "mode": "continuous"},
                {"days": "sat", "from": "00:00", "to": "24:00", "mode": "always"},
                {"days": ["sat"], "from": "24:00", "too": "01:00", "mode": "off"}
              ]},
        "o": {"timezone": "UTC", "rules": [
                {"days": ["fri"], "from": "22:00", "to": "06:30", "mode": "continuous"},
                {"days": ["sat"], "from": "00:00", "to": "24:00", "mode": "off"}]}
      },
      "defaults": {"schedule": "o", "recording": {"post_roll_s": 3}},
      "cameras": [
        {"id": "a", "main_url": "rtsp://h/1", "schedule": "nope"},
        {"id": "b", "main_url": "rtsp://h/2", "recording": {"mode": "continuous"}},
        {"id": "c", "main_url": "rtsp://h/3", "schedule": 7}
      ]}"#;
    let e = errors(text);
    let want = [
        "schedules.bad zone: \"bad zone\" is not a valid schedule name",
        "schedules.o.rules[1]: rules[1] (sat 00:00-24:00) overlaps rules[0] (fri 22:00-06:30) with another mode",
        "schedules.w.default: \"sometimes\" is not a mode",
        "schedules.w.rules[0].days[1]: \"funday\" is not a day",
        "schedules.w.rules[0].from: \"25:00\" is not a time of day",
        "schedules.w.rules[1].days: expected a list of days",
        "schedules.w.rules[1].mode: \"always\" is not a mode",
        "schedules.w.rules[2].from: \"24:00\" is not a time of day",
        "schedules.w.rules[2].to: missing",
        "schedules.w.rules[2].too: unknown field; did you mean \"to\"?",
        "schedules.w.timezone: \"Europe/Berlni\" is not a known IANA time zone",
        "cameras[0].schedule: no schedule is named \"nope\"; defined: o, w",
        "cameras[1].schedule: both \"schedule\" and \"recording.mode\" are set",
        "cameras[2].schedule: invalid type: integer `7`, expected a string",
    ];
    for w in want {
        assert!(
            e.contains(&format!("config/cameras.json: {w}")),
            "missing {w:?} in:\n{e}"
        );
    }
    assert_eq!(e.lines().count(), want.len(), "{e}");
}

#[test]
fn packet_ring_sizes_are_whole_mib_from_0_to_1024() {
    let cam = |live: &str| {
        format!(
            r#"{{"defaults": {{"live": {{"sub_ring_mb": 2}}}}, "cameras": [{{"id": "a", "main_url": "rtsp://h/1", "live": {live}}}]}}"#
        )
    };
    let c = parse_with_env(&cam(r#"{"main_ring_mb": 0}"#), &[]).unwrap();
    assert_eq!(
        (
            c.cameras[0].live.main_ring_mb,
            c.cameras[0].live.sub_ring_mb
        ),
        (0, 2)
    );
    let c = parse_with_env(&cam(r#"{"main_ring_mb": 1024, "sub_ring_mb": 1}"#), &[]).unwrap();
    assert_eq!(
        (
            c.cameras[0].live.main_ring_mb,
            c.cameras[0].live.sub_ring_mb
        ),
        (1024, 1)
    );
    for (live, field) in [
        (r#"{"main_ring_mb": 1025}"#, "main_ring_mb"),
        (r#"{"sub_ring_mb": -1}"#, "sub_ring_mb"),
        (r#"{"sub_ring_mb": 2.5}"#, "sub_ring_mb"),
        (r#"{"sub_ring_mb": "4"}"#, "sub_ring_mb"),
    ] {
        let e = errors(&cam(live));
        assert!(
            e.contains(&format!("cameras[0].live.{field}: "))
                && e.contains("from 0 (no ring) to 1024"),
            "{live}: {e}"
        );
    }
    let e = errors(&cam(r#"{"main_ring": 8}"#));
    assert!(e.contains("cameras[0].live.main_ring"), "{e}");
}

#[test]
fn zones_may_be_named_and_names_are_unique() {
    let c = parse_with_env(
        r#"{"cameras": [{"id": "a", "main_url": "rtsp://h/1", "motion": {
            "zones": [{"name": "drive way", "points": [[0,0],[0.5,0],[0.5,1]]}, [[0.5,0],[1,0],[1,1]]],
            "masks": [{"name": "tree", "points": [[0,0],[0.1,0],[0.1,0.1]]}, [[0.9,0.9],[1,0.9],[1,1]]]}}]}"#,
        &[],
    )
    .unwrap();
    let m = &c.cameras[0].motion;
    let names: Vec<_> = m.zones.iter().map(|z| z.name.as_str()).collect();
    assert_eq!(names, ["drive way", "zone2"]);
    assert_eq!(m.zones[1].points, vec![[0.5, 0.0], [1.0, 0.0], [1.0, 1.0]]);
    assert_eq!(m.masks.len(), 2);

    for (text, wanted) in [
        (
            r#"[{"name": "zone2", "points": [[0,0],[1,0],[1,1]]}, [[0,0],[1,0],[1,1]]]"#,
            "cameras[0].motion.zones[1].name: \"zone2\" names another zone",
        ),
        (
            r#"[{"name": "", "points": [[0,0],[1,0],[1,1]]}]"#,
            "cameras[0].motion.zones[0].name: a zone name is 1 to 64 printable characters",
        ),
        (
            r#"[{"name": "a", "points": [[0,0],[1,0],[1,1]], "colour": "red"}]"#,
            "cameras[0].motion.zones[0]: unknown field `colour`, expected `name` or `points`",
        ),
        (
            r#"[{"name": "a", "points": [[0,0],[1,0]]}]"#,
            "cameras[0].motion.zones[0]: has 2 points",
        ),
    ] {
        let text = format!(
            r#"{{"cameras": [{{"id": "a", "main_url": "rtsp://h/1", "motion": {{"zones": {text}}}}}]}}"#
        );
        let e = errors(&text);
        assert!(e.contains(wanted), "{e}\n  should contain: {wanted}");
    }
    let many = vec!["[[0,0],[1,0],[1,1]]"; MAX_ZONES + 1].join(",");
    let e = errors(&format!(
        r#"{{"cameras": [{{"id": "a", "main_url": "rtsp://h/1", "motion": {{"zones": [{many}]}}}}]}}"#
    ));
    assert!(
        e.contains("has 33 zones; a camera may have at most 32"),
        "{e}"
    );
}

#[test]
fn mqtt_defaults_and_secret_rules() {
    let c = parse_with_env(
        r#"{"mqtt": {"host": "broker", "username": "nvr", "password_env": "MQ"}, "cameras": []}"#,
        &[("MQ", "mq-secret-77")],
    )
    .unwrap();
    let m = c.mqtt.as_ref().unwrap();
    assert_eq!((m.host.as_str(), m.port), ("broker", 1883));
    assert_eq!(m.topic_prefix, "nvr");
    assert_eq!(m.client_id, "nvr-nvr");
    assert!(!m.tls && !m.home_assistant);
    assert_eq!(m.password.as_ref().unwrap().expose(), "mq-secret-77");
    assert!(!format!("{c:?}").contains("mq-secret-77"));
    assert_eq!(parse_with_env(MINIMAL, &[]).unwrap().mqtt, None);
    let tls = parse_with_env(
        r#"{"mqtt": {"host": "b", "tls": true, "ca_file": "/etc/ca.pem"}, "cameras": []}"#,
        &[],
    )
    .unwrap();
    assert_eq!(tls.mqtt.unwrap().port, 8883);
}

#[test]
fn mqtt_problems_name_the_field_and_the_fix() {
    for (text, expected) in [
        (r#"{"mqtt": {}}"#, "mqtt.host: missing"),
        (
            r#"{"mqtt": {"host": "b", "port": 0}}"#,
            "mqtt.port: 0 is not a port",
        ),
        (
            r#"{"mqtt": {"host": "b", "topic_prefix": "a/b"}}"#,
            "mqtt.topic_prefix",
        ),
        (
            r#"{"mqtt": {"host": "b", "password": "x"}}"#,
            "mqtt.username: missing",
        ),
        (
            r#"{"mqtt": {"host": "b", "username": "u", "password": "x", "password_env": "Y"}}"#,
            "both password and password_env",
        ),
        (
            r#"{"mqtt": {"host": "b", "username": "u", "password_env": "NOPE"}}"#,
            "environment variable NOPE is not set",
        ),
        (
            r#"{"mqtt": {"host": "b", "ca_file": "/c"}}"#,
            "mqtt.ca_file: set \"tls\": true",
        ),
        (
            r#"{"mqtt": {"host": "b", "prefix": "x"}}"#,
            "mqtt.prefix: unknown field",
        ),
        (
            r#"{"mqtt": {"host": "b", "username": "u", "password": 424242}}"#,
            "expected a string, found a number",
        ),
    ] {
        let text = text.replace("}}", "}, \"cameras\": []}");
        let e = errors(&text);
        assert!(e.contains(expected), "{text}: {e}");
        assert!(!e.contains("424242"), "{e}");
    }
}

#[test]
fn metrics_token_rules() {
    let c = parse_with_env(MINIMAL, &[]).unwrap();
    assert!(c.api.metrics_token.is_none());
    let with = |api: &str| {
        format!(r#"{{"api": {api}, "cameras": [{{"id": "a", "main_url": "rtsp://h/1"}}]}}"#)
    };
    let token = "0123456789abcdef-secret";
    let c = parse_with_env(&with(&format!(r#"{{"metrics_token": "{token}"}}"#)), &[]).unwrap();
    assert_eq!(c.api.metrics_token.as_ref().unwrap().expose(), token);
    assert!(!format!("{c:?}").contains(token), "the token never prints");
    let c = parse_with_env(&with(r#"{"metrics_token_env": "TOK"}"#), &[("TOK", token)]).unwrap();
    assert_eq!(c.api.metrics_token.unwrap().expose(), token);
    for (text, want) in [
        (
            with(r#"{"metrics_token": "short"}"#),
            "api.metrics_token: the token must be at least 16",
        ),
        (
            with(r#"{"metrics_token_env": "NOPE"}"#),
            "api.metrics_token_env: environment variable NOPE is not set",
        ),
        (
            with(&format!(
                r#"{{"metrics_token": "{token}", "metrics_token_env": "TOK"}}"#
            )),
            "api.metrics_token_env: both metrics_token and metrics_token_env are set",
        ),
    ] {
        let e = errors(&text);
        assert!(e.contains(want), "{e}\nwanted: {want}");
        assert!(!e.contains("0123456789abcdef"), "no token in errors: {e}");
    }
}

#[test]
fn metrics_history_settings() {
    let c = parse_with_env(MINIMAL, &[]).unwrap();
    assert_eq!(c.metrics, MetricsConfig::default());
    assert_eq!(c.metrics.sample_every_s, 10.0);
    assert_eq!(c.metrics.keep_hour_s, 7_776_000.0);
    let with = |m: &str| {
        format!(r#"{{"metrics": {m}, "cameras": [{{"id": "a", "main_url": "rtsp://h/1"}}]}}"#)
    };
    let c = parse_with_env(
        &with(r#"{"sample_every_s": 1, "keep_raw_s": 7200, "keep_minute_s": 86400, "keep_hour_s": 864000}"#),
        &[],
    )
    .unwrap();
    assert_eq!(
        c.metrics,
        MetricsConfig {
            sample_every_s: 1.0,
            keep_raw_s: 7200.0,
            keep_minute_s: 86_400.0,
            keep_hour_s: 864_000.0
        }
    );
    for (text, want) in [
        (
            with(r#"{"sample_every_s": 0.5}"#),
            "metrics.sample_every_s: 0.5 is out of range; use a number from 1 to 60",
        ),
        (
            with(r#"{"keep_raw_s": 60}"#),
            "metrics.keep_raw_s: 60 seconds is too short; keep at least 3600",
        ),
        (
            with(r#"{"keep_hour_s": -1}"#),
            "metrics.keep_hour_s: -1 is not positive",
        ),
        (with(r#"{"keep_days": 3}"#), "metrics.keep_days"),
    ] {
        let e = errors(&text);
        assert!(e.contains(want), "{e}\nwanted: {want}");
    }
}

#[test]
fn onvif_defaults_and_problems() {
    let c = parse_with_env(
        r#"{"defaults": {"onvif": {"port": 2020}}, "cameras": [
            {"id": "a", "main_url": "rtsp://10.0.0.5:554/s1", "username": "u", "password": "pw"},
            {"id": "b", "main_url": "rtsp://h/1", "onvif": {"host": "10.0.0.9", "username": "ptz", "password_env": "PTZ_PW", "move_timeout_s": 1, "settle_s": 0, "profile": "Profile_2"}},
            {"id": "c", "main_url": "rtsp://h/1", "onvif": null}]}"#,
        &[("PTZ_PW", "from-env")],
    )
    .unwrap();
    let a = c.cameras[0].onvif.clone().unwrap();
    assert_eq!(
        (a.host, a.port, a.move_timeout_s, a.settle_s),
        (None, 2020, 0.5, 2.0)
    );
    let b = c.cameras[1].onvif.clone().unwrap();
    assert_eq!(b.host.as_deref(), Some("10.0.0.9"));
    assert_eq!(b.password.as_ref().map(|p| p.expose()), Some("from-env"));
    assert_eq!((b.move_timeout_s, b.settle_s), (1.0, 0.0));
    assert_eq!(b.profile.as_deref(), Some("Profile_2"));
    assert!(
        c.cameras[2].onvif.is_none(),
        "null turns the defaults' onvif off"
    );

    let e = errors(
        r#"{"cameras": [{"id": "a", "main_url": "rtsp://h/1", "onvif": {"port": 70000, "host": "http://h/x", "move_timeout_s": 0, "pasword": "x"}}]}"#,
    );
    for want in [
        "cameras[0].onvif.port: 70000 is not a port",
        "cameras[0].onvif.host: \"http://h/x\" is not a host name",
        "cameras[0].onvif.move_timeout_s: 0 is out of range; use a number from 0.1 to 10",
        "cameras[0].onvif.pasword: unknown field; did you mean \"password\"",
    ] {
        assert!(e.contains(want), "{want}\nin:\n{e}");
    }
    let e = errors(
        r#"{"cameras": [{"id": "a", "main_url": "rtsp://h/1", "onvif": {"password": 12345678}}]}"#,
    );
    assert!(
        e.contains("cameras[0].onvif.password: expected a string"),
        "{e}"
    );
    assert!(!e.contains("12345678"), "{e}");
}
