//! Round-trip, compatibility and link tests for the protocol.

use super::link::{connect, LinkError, Listener};
use super::*;
use serde::Serialize;
use std::time::{Duration, Instant};

#[test]
fn every_message_round_trips() {
    let camera = CameraSettings::from(
        &nvr_config::parse(
            r#"{"cameras": [{"id": "a", "main_url": "rtsp://h/1", "password": "pw", "onvif": {"port": 2020}}]}"#,
            std::path::Path::new("t.json"),
            &|_| None,
        )
        .unwrap()
        .cameras[0],
    );
    let to_worker = [
        ToWorker::Configure(Box::new(WorkerConfig {
            camera: camera.clone(),
            heartbeat_interval_s: 0.5,
            output_dir: "out".into(),
        })),
        ToWorker::Shutdown { deadline_ms: 3000 },
        ToWorker::Update {
            request_id: 7,
            settings: Box::new(camera),
        },
        ToWorker::Ptz {
            request_id: 8,
            command: ptz::PtzCommand::Move {
                pan: -0.5,
                tilt: 0.25,
                zoom: 0.0,
            },
        },
        ToWorker::Ptz {
            request_id: 9,
            command: ptz::PtzCommand::GotoPreset {
                preset: "home".into(),
            },
        },
    ];
    if let ToWorker::Configure(c) = &to_worker[0] {
        let onvif = c.camera.onvif.as_ref().expect("onvif settings");
        assert_eq!(onvif.device_url(), "http://h:2020/onvif/device_service");
        assert_eq!(onvif.password.as_ref().map(|p| p.expose()), Some("pw"));
    }
    let mut seeds = Vec::new();
    for (i, msg) in to_worker.iter().enumerate() {
        seeds.push(encode(i as u64, msg));
        let env: Envelope<ToWorker> = decode(&encode(i as u64, msg)).unwrap();
        assert_eq!((&env.body, env.seq, env.schema), (msg, i as u64, SCHEMA));
    }
    let to_sup = [
        ToSupervisor::Hello {
            camera_id: "a".into(),
            pid: 42,
            version: "0.1.0".into(),
        },
        ToSupervisor::Heartbeat(WorkerStats {
            uptime_s: 1.5,
            heartbeats_sent: 3,
            sub: Some(StreamStatus {
                state: StreamState::Up,
                fps: 30.0,
                bytes: 1_234_567,
                packet_ring: Some(Box::new(crate::PacketRingStatus {
                    capacity_bytes: 4 << 20,
                    packets: 9,
                    gop_s: 2.0,
                    ..Default::default()
                })),
                ..Default::default()
            }),
            main: None,
            recording: Some(RecordingStatus {
                state: RecorderState::Recording,
                current_file: Some("a/2026-12-01/a_20261201T000000Z.mp4".into()),
                ..Default::default()
            }),
            motion: Some(crate::MotionLevel {
                score: 1.5,
                zones: vec![crate::ZoneLevel {
                    name: "drive way".into(),
                    score: 4.0,
                }],
            }),
        }),
        ToSupervisor::Event(WorkerEvent::ProtocolError { detail: "d".into() }),
        ToSupervisor::Reply {
            request_id: 7,
            error: Some("no".into()),
        },
        ToSupervisor::Event(WorkerEvent::RecordingStarted(RecordingStarted {
            path: "a/x.mp4".into(),
            first_frame_offset_ms: Some(-6000.0),
            open_ms: Some(3.5),
            start_unix_ms: 1,
            codec: "h264".into(),
        })),
        ToSupervisor::Event(WorkerEvent::RecordingFinished(RecordingFinished {
            path: "a/x.mp4".into(),
            start_unix_ms: 1,
            duration_s: 12.0,
            bytes: 6_000_000,
            frames: 360,
            recovered: false,
        })),
        ToSupervisor::Event(WorkerEvent::RecordingError {
            detail: "disk full".into(),
            kind: RecordingErrorKind::DiskFull,
        }),
        ToSupervisor::Event(WorkerEvent::RecordingError {
            detail: "read-only file system".into(),
            kind: RecordingErrorKind::ReadOnly,
        }),
        ToSupervisor::PtzReply {
            request_id: 8,
            result: Ok(ptz::PtzAnswer::Described(ptz::PtzDescription {
                profile: "Profile_1".into(),
                pan_tilt: true,
                zoom: true,
                presets: vec![ptz::PtzPreset {
                    token: "1".into(),
                    name: "Gate".into(),
                }],
                position: Some(ptz::PtzPosition {
                    pan: 0.1,
                    tilt: -0.2,
                    zoom: 0.0,
                }),
                moving: Some(false),
                clock_offset_s: 3600.0,
            })),
        },
        ToSupervisor::PtzReply {
            request_id: 9,
            result: Err(ptz::PtzError::new(
                ptz::PtzErrorKind::Unauthorized,
                "the camera refused the ONVIF user",
            )),
        },
    ];
    for msg in &to_sup {
        seeds.push(encode(7, msg));
        let env: Envelope<ToSupervisor> = decode(&encode(7, msg)).unwrap();
        assert_eq!(&env.body, msg);
        assert!(env.sent_at_ns > 0);
    }
    // `NVR_WRITE_SEEDS=1` writes every message as a seed of the `envelope` fuzz target.
    if std::env::var_os("NVR_WRITE_SEEDS").is_some() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/envelope");
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-schema{SCHEMA}-{i:02}")), seed).unwrap();
        }
    }
}

#[test]
fn the_password_survives_configure_for_the_worker() {
    let camera = nvr_config::parse(
        r#"{"cameras": [{"id": "a", "main_url": "rtsp://h/1", "password": "s3cret"}]}"#,
        std::path::Path::new("t.json"),
        &|_| None,
    )
    .unwrap()
    .cameras
    .remove(0);
    let msg = ToWorker::Configure(Box::new(WorkerConfig {
        camera: CameraSettings::from(&camera),
        heartbeat_interval_s: 1.0,
        output_dir: "out".into(),
    }));
    let ToWorker::Configure(cfg) = decode::<ToWorker>(&encode(0, &msg)).unwrap().body else {
        panic!("wrong variant")
    };
    assert_eq!(cfg.camera.password.unwrap().expose(), "s3cret");
}

#[test]
fn an_older_heartbeat_without_newer_fields_still_decodes() {
    // A heartbeat as an older worker of this schema would send it: none of the optional fields.
    #[derive(Serialize)]
    struct OldStats {
        uptime_s: f64,
        heartbeats_sent: u64,
    }
    #[derive(Serialize)]
    enum OldToSupervisor {
        Heartbeat(OldStats),
    }
    let old = rmp_serde::to_vec_named(&Envelope {
        schema: SCHEMA,
        seq: 9,
        sent_at_ns: 1,
        body: OldToSupervisor::Heartbeat(OldStats {
            uptime_s: 2.0,
            heartbeats_sent: 4,
        }),
    })
    .unwrap();
    let env: Envelope<ToSupervisor> = decode(&old).unwrap();
    assert_eq!(
        env.body,
        ToSupervisor::Heartbeat(WorkerStats {
            uptime_s: 2.0,
            heartbeats_sent: 4,
            ..WorkerStats::default()
        })
    );
}

#[test]
fn a_recording_error_without_its_kind_still_decodes_as_other() {
    // A `RecordingError` as a worker of this schema sent it before `kind` was added.
    #[derive(Serialize)]
    enum OldWorkerEvent {
        RecordingError { detail: String },
    }
    #[derive(Serialize)]
    enum OldToSupervisor {
        Event(OldWorkerEvent),
    }
    let old = rmp_serde::to_vec_named(&Envelope {
        schema: SCHEMA,
        seq: 3,
        sent_at_ns: 1,
        body: OldToSupervisor::Event(OldWorkerEvent::RecordingError {
            detail: "disk full".into(),
        }),
    })
    .unwrap();
    let env: Envelope<ToSupervisor> = decode(&old).unwrap();
    assert_eq!(
        env.body,
        ToSupervisor::Event(WorkerEvent::RecordingError {
            detail: "disk full".into(),
            kind: RecordingErrorKind::Other,
        })
    );
}

#[test]
fn unknown_schema_and_garbage_are_errors_not_panics() {
    let future = rmp_serde::to_vec_named(&Envelope {
        schema: 99,
        seq: 0,
        sent_at_ns: 0,
        body: "whatever",
    })
    .unwrap();
    let err = decode::<ToSupervisor>(&future).unwrap_err();
    assert!(
        matches!(err, DecodeError::UnsupportedSchema { got: 99 }),
        "{err}"
    );
    assert!(err.to_string().contains("schema 99"));

    for garbage in [&b""[..], b"\xff\x00garbage", b"\x93\x01\x02"] {
        assert!(decode::<ToSupervisor>(garbage).is_err());
    }
    let wrong_body = encode(5, &"not a message");
    let err = decode::<ToSupervisor>(&wrong_body).unwrap_err();
    assert!(
        matches!(err, DecodeError::MalformedBody { seq: 5, .. }),
        "{err}"
    );
}

#[test]
fn link_carries_messages_both_ways_and_reports_disconnect() {
    let listener = Listener::new().unwrap();
    let name = listener.name().to_string();
    let peer = std::thread::spawn(move || {
        let (mut up, down) = connect(&name).unwrap();
        up.send(&ToSupervisor::Heartbeat(WorkerStats::default()))
            .unwrap();
        let got = down.recv().unwrap();
        assert_eq!(got.body, ToWorker::Shutdown { deadline_ms: 1 });
        // Dropping `up` and `down` closes the worker's ends.
    });
    let (pid, up_rx, mut down_tx) = listener.accept(Duration::from_secs(10)).unwrap();
    assert_eq!(pid, std::process::id());
    let first = up_rx.recv().unwrap();
    assert_eq!(first.seq, 0);
    down_tx
        .send(&ToWorker::Shutdown { deadline_ms: 1 })
        .unwrap();
    peer.join().unwrap();
    assert!(matches!(up_rx.recv(), Err(LinkError::Disconnected)));
}

#[test]
fn a_malformed_message_leaves_the_link_usable() {
    let listener = Listener::new().unwrap();
    let name = listener.name().to_string();
    let peer = std::thread::spawn(move || {
        let (mut up, _down) = connect(&name).unwrap();
        up.send_raw(b"\xc1 not msgpack").unwrap();
        up.send(&ToSupervisor::Heartbeat(WorkerStats::default()))
            .unwrap();
    });
    let (_, up_rx, _down_tx) = listener.accept(Duration::from_secs(10)).unwrap();
    assert!(matches!(up_rx.recv(), Err(LinkError::Decode(_))));
    assert!(matches!(
        up_rx.recv().unwrap().body,
        ToSupervisor::Heartbeat(_)
    ));
    peer.join().unwrap();
}

#[test]
fn accept_gives_up_when_nobody_connects() {
    let listener = Listener::new().unwrap();
    let started = Instant::now();
    let err = listener.accept(Duration::from_millis(200)).err().unwrap();
    assert!(matches!(err, LinkError::AcceptTimeout(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_packet_ring_warns_below_two_gops_and_on_oversize_drops() {
    let ring = |holds_s: f64, gop_s: f64, drops: u64| crate::PacketRingStatus {
        capacity_bytes: 4 << 20,
        bytes_per_s: 1e6,
        gop_s,
        holds_s,
        oversize_drops: drops,
        ..Default::default()
    };
    assert_eq!(ring(4.2, 2.0, 0).warning("sub"), None);
    assert_eq!(ring(0.0, 0.0, 0).warning("sub"), None, "not measured yet");
    let w = ring(3.0, 2.0, 0).warning("main").unwrap();
    assert!(
        w.contains("less than two GOPs") && w.contains("live.main_ring_mb to at least 5"),
        "{w}"
    );
    let w = ring(10.0, 2.0, 3).warning("sub").unwrap();
    assert!(
        w.contains("dropped 3 packets") && !w.contains("GOPs"),
        "{w}"
    );
}
