//! The client against small fakes of our own on loopback, for what the real test device
//! (ipycam, `nvr-tests`' `onvif_client` module) cannot show: HTTP Digest (ipycam's 401 offers
//! none), the ONVIF Core fault form, a clock offset applied to `Created`, the XAddr rewrite.

use super::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// A request as the fake saw it.
#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: String,
}

impl Seen {
    fn op(&self) -> &str {
        let action = self
            .head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-type"))
            .and_then(|l| l.split("action=\"").nth(1))
            .unwrap_or("");
        action
            .trim_end_matches('"')
            .rsplit('/')
            .next()
            .unwrap_or("")
    }

    fn authorization(&self) -> Option<&str> {
        self.head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
            .map(|l| l["authorization:".len()..].trim())
    }
}

/// Serves every connection with `answer(request) -> raw HTTP response`; records the requests.
fn fake(answer: impl Fn(&Seen) -> String + Send + Sync + 'static) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { return };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let request = loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(i) = text.find("\r\n\r\n") {
                    let len: usize = text[..i]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if text.len() >= i + 4 + len {
                        break Some(Seen {
                            head: text[..i].to_string(),
                            body: text[i + 4..].to_string(),
                        });
                    }
                }
            };
            let Some(request) = request else { continue };
            let reply = answer(&request);
            log.lock().unwrap().push(request);
            let _ = s.write_all(reply.as_bytes());
        }
    });
    (port, seen)
}

fn ok(body: &str) -> String {
    let env = format!(
        r#"<?xml version="1.0"?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body>{body}</env:Body></env:Envelope>"#
    );
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nContent-Length: {}\r\n\r\n{env}",
        env.len()
    )
}

fn testdata(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/src/onvif/testdata/{name}.xml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The device's replies as ipycam gives them, for each operation, with the XAddrs on `xaddr_host`.
fn device_reply(seen: &Seen, xaddr_host: &str) -> String {
    let file = match seen.op() {
        "GetSystemDateAndTime" => "sdt",
        "GetCapabilities" => "caps",
        "GetServices" => "services",
        "GetProfiles" => "profiles",
        "GetPresets" => "presets",
        "GetStatus" => "status",
        "SetPreset" => "setpreset",
        _ => "stop",
    };
    let body = testdata(file).replace("127.0.0.1:46549", xaddr_host);
    format!(
        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn settings(port: u16, password: &str) -> OnvifSettings {
    OnvifSettings {
        host: "127.0.0.1".into(),
        port,
        profile: None,
        username: Some("admin".into()),
        password: Some(nvr_config::Password::new(password)),
        move_timeout_s: 0.5,
        settle_s: 1.0,
    }
}

const SECOND: Duration = Duration::from_secs(2);

#[test]
fn a_digest_challenge_is_answered_once_with_the_token_still_in_the_body() {
    let (port, seen) = fake(move |req| {
        let host = format!(
            "127.0.0.1:{}",
            req.head
                .split("Host: 127.0.0.1:")
                .nth(1)
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
        );
        if req.op() != "GetSystemDateAndTime" && req.authorization().is_none() {
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"cam\", nonce=\"abc\", qop=\"auth\", algorithm=MD5\r\nContent-Length: 0\r\n\r\n".into()
        } else {
            device_reply(req, &host)
        }
    });
    let mut c = Client::connect(&settings(port, "pw"), SECOND).unwrap();
    c.stop().unwrap();
    let seen = seen.lock().unwrap();
    let ops: Vec<_> = seen
        .iter()
        .map(|s| (s.op().to_string(), s.authorization().is_some()))
        .collect();
    assert_eq!(
        ops,
        [
            ("GetSystemDateAndTime".into(), false),
            ("GetCapabilities".into(), false),
            ("GetCapabilities".into(), true),
            ("GetProfiles".into(), false),
            ("GetProfiles".into(), true),
            ("Stop".into(), false),
            ("Stop".into(), true),
        ]
    );
    let last = &seen[6];
    let auth = last.authorization().unwrap();
    assert!(
        auth.starts_with("Digest username=\"admin\", realm=\"cam\", uri=\"/onvif/ptz_service\""),
        "{auth}"
    );
    assert!(
        auth.contains("qop=auth") && auth.contains("nc=00000001"),
        "{auth}"
    );
    assert!(last.body.contains("PasswordDigest") && !last.body.contains("pw<"));
    assert!(last
        .body
        .contains("<tptz:PanTilt>true</tptz:PanTilt><tptz:Zoom>true</tptz:Zoom>"));
}

#[test]
fn a_refused_digest_is_unauthorized_after_one_retry() {
    let (port, seen) = fake(|req| {
        if req.op() == "GetSystemDateAndTime" {
            device_reply(req, "192.0.2.1:1")
        } else {
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"cam\", nonce=\"abc\", algorithm=SHA-256, qop=\"auth\"\r\nContent-Length: 0\r\n\r\n".into()
        }
    });
    let e = Client::connect(&settings(port, "secret-pw"), SECOND).unwrap_err();
    assert_eq!(e.kind, PtzErrorKind::Unauthorized, "{e}");
    assert!(e.detail.contains("also with HTTP Digest"), "{e}");
    assert!(!e.detail.contains("secret-pw"));
    assert_eq!(
        seen.lock().unwrap().len(),
        3,
        "one clock request, one try, one retry"
    );
}

#[test]
fn the_onvif_core_not_authorized_fault_is_unauthorized() {
    let (port, _) = fake(|req| {
        if req.op() == "GetSystemDateAndTime" {
            return device_reply(req, "192.0.2.1:1");
        }
        let body = r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body><env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value>ter:NotAuthorized</env:Value></env:Subcode></env:Code><env:Reason><env:Text>Sender not Authorized</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>"#;
        format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    });
    let e = Client::connect(&settings(port, "pw"), SECOND).unwrap_err();
    assert_eq!(e.kind, PtzErrorKind::Unauthorized, "{e}");
    assert!(e.detail.contains("ter:NotAuthorized"), "{e}");
}

#[test]
fn tokens_are_signed_with_the_cameras_clock() {
    // A camera one hour ahead of us.
    let (port, seen) = fake(|req| {
        if req.op() == "GetSystemDateAndTime" {
            let t = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
            let t = t.to_zoned(jiff::tz::TimeZone::UTC);
            ok(&format!(
                "<tds:GetSystemDateAndTimeResponse xmlns:tds=\"x\" xmlns:tt=\"y\"><tds:SystemDateAndTime><tt:UTCDateTime><tt:Time><tt:Hour>{}</tt:Hour><tt:Minute>{}</tt:Minute><tt:Second>{}</tt:Second></tt:Time><tt:Date><tt:Year>{}</tt:Year><tt:Month>{}</tt:Month><tt:Day>{}</tt:Day></tt:Date></tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>",
                t.hour(), t.minute(), t.second(), t.year(), t.month(), t.day()
            ))
        } else {
            device_reply(req, "192.0.2.1:1")
        }
    });
    let c = Client::connect(&settings(port, "pw"), SECOND).unwrap();
    assert!(
        (c.clock_offset_s() - 3600.0).abs() < 2.0,
        "{}",
        c.clock_offset_s()
    );
    let seen = seen.lock().unwrap();
    let body = &seen[1].body;
    assert!(
        !seen[0].body.contains("Security"),
        "GetSystemDateAndTime goes without a token"
    );
    let created = body
        .split("<wsu:Created>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap();
    let created: jiff::Timestamp = created.parse().unwrap();
    let ahead = (created - jiff::Timestamp::now()).get_seconds();
    assert!(
        (3598..=3602).contains(&ahead),
        "Created {created} is {ahead} s ahead"
    );
}

#[test]
fn services_are_reached_on_the_configured_host_when_the_camera_names_another() {
    // Behind NAT a camera names its LAN address: only the path is taken from it.
    let (port, seen) = fake(|req| device_reply(req, "192.0.2.7:8080"));
    let mut c = Client::connect(&settings(port, "pw"), SECOND).unwrap();
    let d = c.describe().unwrap();
    assert_eq!(d.profile, "Profile_Main");
    assert!(d.pan_tilt && d.zoom);
    assert_eq!(d.presets.len(), 1);
    assert_eq!(d.position, Some(PtzPosition::default()));
    let seen = seen.lock().unwrap();
    assert!(seen
        .iter()
        .any(|s| s.head.starts_with("POST /onvif/ptz_service ")));
    assert!(seen
        .iter()
        .any(|s| s.head.starts_with("POST /onvif/media_service ")));
}

#[test]
fn presets_resolve_by_token_then_name() {
    let presets = [
        PtzPreset {
            token: "1".into(),
            name: "Gate".into(),
        },
        PtzPreset {
            token: "Gate".into(),
            name: "Door".into(),
        },
    ];
    assert_eq!(resolve_preset(&presets, "1").unwrap(), "1");
    assert_eq!(resolve_preset(&presets, "Gate").unwrap(), "Gate");
    assert_eq!(resolve_preset(&presets, "Door").unwrap(), "Gate");
    let e = resolve_preset(&presets, "Garage").unwrap_err();
    assert_eq!(e.kind, PtzErrorKind::BadRequest);
    assert!(e.detail.contains(r#"it has: "Gate", "Door""#), "{e}");
}

#[test]
fn service_addresses() {
    let device = ServiceAddress {
        host: "10.0.0.5".into(),
        port: 2020,
        path: DEVICE_PATH.into(),
    };
    let at = |host: &str, port: u16, path: &str| ServiceAddress {
        host: host.into(),
        port,
        path: path.into(),
    };
    assert_eq!(
        service_address(&device, "http://10.0.0.5:8000/onvif/ptz"),
        at("10.0.0.5", 8000, "/onvif/ptz")
    );
    assert_eq!(
        service_address(&device, "http://10.0.0.5/onvif/ptz"),
        at("10.0.0.5", 80, "/onvif/ptz")
    );
    assert_eq!(
        service_address(&device, "http://192.168.1.9:80/onvif/PTZ"),
        at("10.0.0.5", 2020, "/onvif/PTZ")
    );
    assert_eq!(
        service_address(&device, "https://10.0.0.5/onvif/ptz"),
        device
    );
    assert_eq!(
        service_address(&device, "http://[fe80::1]:81"),
        at("10.0.0.5", 2020, "/")
    );
}

#[test]
fn garbage_and_refusals_are_camera_errors() {
    let (port, _) = fake(|_| "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n<<garbage".into());
    let e = Client::connect(&settings(port, "pw"), SECOND).unwrap_err();
    assert_eq!(e.kind, PtzErrorKind::CameraError, "{e}");
    assert!(e.detail.contains("the camera's answer is not SOAP"), "{e}");
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = Client::connect(&settings(closed, "pw"), SECOND).unwrap_err();
    assert_eq!(e.kind, PtzErrorKind::CameraError, "{e}");
    assert!(e.detail.contains("cannot reach"), "{e}");
}
