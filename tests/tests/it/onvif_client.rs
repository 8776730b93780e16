//! The worker's ONVIF client (`worker::onvif::Client`) against a real third-party ONVIF PTZ device
//! (ipycam, `nvr_tests::onvif::OnvifDevice`) and our own silent and garbage devices. The PTZ route
//! through the supervisor and worker is tested elsewhere; this is the client alone.

use nvr_proto::ptz::{PtzErrorKind, PtzPosition};
use nvr_tests::onvif::{self, GarbageDevice, OnvifDevice, SilentDevice};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use worker::onvif::{http, soap, wsse, Client};

const USER: &str = "admin";
const PASSWORD: &str = "s3cret";
const TIMEOUT: Duration = Duration::from_secs(5);

fn connect(device: &OnvifDevice) -> Client {
    Client::connect(&device.settings(USER, PASSWORD), TIMEOUT).expect("connect")
}

fn position(client: &mut Client) -> PtzPosition {
    client.status().expect("GetStatus").0.expect("a position")
}

/// Polls the position until `pred` holds (the device integrates velocity at 60 Hz).
fn wait_position(
    client: &mut Client,
    what: &str,
    pred: impl Fn(PtzPosition) -> bool,
) -> PtzPosition {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = position(client);
        if pred(p) {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the position stays {p:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn near(a: PtzPosition, b: PtzPosition) -> bool {
    (a.pan - b.pan).abs() < 1e-3 && (a.tilt - b.tilt).abs() < 1e-3 && (a.zoom - b.zoom).abs() < 1e-3
}

#[test]
fn continuous_move_moves_and_stop_freezes_the_position() {
    let device = OnvifDevice::start(USER, PASSWORD, 0).unwrap();
    let mut c = connect(&device);
    let d = c.describe().unwrap();
    assert_eq!(d.profile, "Profile_Main");
    assert!(d.pan_tilt && d.zoom, "{d:?}");
    assert!(d.clock_offset_s.abs() < 2.0, "{d:?}");
    let start = position(&mut c);

    // Small velocities: ipycam ignores the move's Timeout and clamps at the limits.
    c.continuous_move(0.2, -0.1, 0.1, Duration::from_millis(1500))
        .unwrap();
    let moved = wait_position(&mut c, "after ContinuousMove", |p| {
        p.pan > start.pan + 0.02 && p.tilt < start.tilt - 0.01 && p.zoom > start.zoom + 0.01
    });
    // Still moving: the check below could fail.
    wait_position(&mut c, "still moving", |p| p.pan > moved.pan + 0.01);
    assert_eq!(c.status().unwrap().1, Some(true), "MoveStatus while moving");

    c.stop().unwrap();
    let first = position(&mut c);
    std::thread::sleep(Duration::from_millis(500));
    let (second, moving) = c.status().unwrap();
    assert_eq!(second, Some(first), "the position changed after Stop");
    assert_eq!(moving, Some(false));
    assert!(
        first.pan < 0.9 && first.tilt > -0.9,
        "away from the clamp: {first:?}"
    );
}

#[test]
fn presets_are_listed_set_and_reached_by_token_and_by_name() {
    let device = OnvifDevice::start(USER, PASSWORD, 0).unwrap();
    let mut c = connect(&device);
    let presets = c.describe().unwrap().presets;
    assert!(
        presets
            .iter()
            .any(|p| p.token == "home" && p.name == "Home"),
        "{presets:?}"
    );

    // Away from home, saved as "gate".
    c.continuous_move(0.2, 0.2, 0.0, Duration::from_secs(1))
        .unwrap();
    wait_position(&mut c, "moving away", |p| p.pan > 0.05 && p.tilt > 0.05);
    c.stop().unwrap();
    let gate = position(&mut c);
    let token = c.set_preset("gate").unwrap();
    assert!(!token.is_empty());
    let listed = c.describe().unwrap().presets;
    assert!(
        listed.iter().any(|p| p.token == token && p.name == "gate"),
        "{token} not in {listed:?}"
    );

    // By name back home, by token to the gate.
    c.goto_preset("Home").unwrap();
    wait_position(&mut c, "GotoPreset Home", |p| {
        near(p, PtzPosition::default())
    });
    c.goto_preset(&token).unwrap();
    wait_position(&mut c, "GotoPreset by token", |p| near(p, gate));
    c.goto_preset("home").unwrap();
    wait_position(&mut c, "GotoPreset home (token)", |p| {
        near(p, PtzPosition::default())
    });

    // ipycam answers 200 to an unknown token: the client refuses it itself, naming the presets.
    let e = c.goto_preset("garage").unwrap_err();
    assert_eq!(e.kind, PtzErrorKind::BadRequest, "{e}");
    assert!(
        e.detail.contains("\"Home\"") && e.detail.contains("\"gate\""),
        "{e}"
    );
}

#[test]
fn a_wrong_password_is_unauthorized() {
    let device = OnvifDevice::start(USER, PASSWORD, 0).unwrap();
    let e = Client::connect(&device.settings(USER, "wrong-pw"), TIMEOUT).unwrap_err();
    assert_eq!(e.kind, PtzErrorKind::Unauthorized, "{e}");
    assert!(!e.detail.contains("wrong-pw"), "{e}");
    let e = Client::connect(&device.settings("intruder", PASSWORD), TIMEOUT).unwrap_err();
    assert_eq!(e.kind, PtzErrorKind::Unauthorized, "{e}");
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `GetCapabilities` with a token signed at `created_ms`: the device's HTTP status.
fn capabilities_signed_at(device: &OnvifDevice, created_ms: i64) -> u16 {
    let header = wsse::security_header(USER, PASSWORD, created_ms, &wsse::nonce());
    let body = soap::envelope(&header, &soap::get_capabilities());
    http::post(
        "127.0.0.1",
        device.port(),
        "/onvif/device_service",
        &[(
            "Content-Type",
            "application/soap+xml; charset=utf-8; action=\"http://www.onvif.org/ver10/device/wsdl/GetCapabilities\"",
        )],
        body.as_bytes(),
        Instant::now() + TIMEOUT,
    )
    .unwrap()
    .status
}

#[test]
fn a_device_clock_an_hour_ahead_still_authenticates() {
    let device = OnvifDevice::start(USER, PASSWORD, 3600).unwrap();
    let mut c = connect(&device);
    let offset = c.clock_offset_s();
    assert!((offset - 3600.0).abs() < 3.0, "offset {offset}");
    let d = c.describe().unwrap();
    assert!(!d.presets.is_empty());
    c.stop().unwrap();

    // The device enforces its window, so the offset is what made that work: signed with the
    // device's time it accepts, 4 minutes stale too, but not 10 minutes stale, nor with our
    // clock (an hour stale to it).
    let device_now = unix_ms() + (offset * 1000.0) as i64;
    assert_eq!(capabilities_signed_at(&device, device_now), 200);
    assert_eq!(capabilities_signed_at(&device, device_now - 240_000), 200);
    assert_eq!(capabilities_signed_at(&device, device_now - 600_000), 401);
    assert_eq!(capabilities_signed_at(&device, unix_ms()), 401);
}

#[test]
fn unpatched_ipycam_replies_read() {
    // Undeclared `ptz:` prefixes and `{{placeholder}}` move states, as cheap firmware sends.
    let device = OnvifDevice::start_with(USER, PASSWORD, 0, &["--raw"]).unwrap();
    let mut c = connect(&device);
    let d = c.describe().unwrap();
    assert!(d.presets.iter().any(|p| p.token == "home"), "{d:?}");
    assert_eq!(d.position, Some(PtzPosition::default()));
    assert_eq!(d.moving, None, "a placeholder is no move state");
    c.continuous_move(0.1, 0.0, 0.0, Duration::from_secs(1))
        .unwrap();
    wait_position(&mut c, "raw ContinuousMove", |p| p.pan > 0.01);
    c.stop().unwrap();
}

#[test]
fn a_silent_device_times_out_within_the_bound() {
    let silent = SilentDevice::start().unwrap();
    let settings = onvif::settings(silent.port(), USER, PASSWORD);
    let t0 = Instant::now();
    let e = Client::connect(&settings, Duration::from_secs(2)).unwrap_err();
    let took = t0.elapsed();
    assert_eq!(e.kind, PtzErrorKind::Timeout, "{e}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(silent.n_connections() >= 1);
}

#[test]
fn a_garbage_device_is_a_camera_error() {
    let garbage = GarbageDevice::start().unwrap();
    let settings = onvif::settings(garbage.port(), USER, PASSWORD);
    let e = Client::connect(&settings, TIMEOUT).unwrap_err();
    assert_eq!(e.kind, PtzErrorKind::CameraError, "{e}");
    assert!(e.detail.contains("the camera's answer is not SOAP"), "{e}");
    assert!(garbage.n_served() >= 1);
}
