//! The SOAP reader on real replies (captured from ipycam 1.3.0 through tests/onvif/ipycam_device.py,
//! patched and `--raw`) and on broken ones; the request envelopes.

use super::*;
use std::time::Duration;

fn reply(name: &str) -> Element {
    let bytes = std::fs::read(format!(
        "{}/src/onvif/testdata/{name}.xml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    parse_reply(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn the_device_clock_reads_as_unix_seconds() {
    // 2026-12-03T13:55:36Z
    assert_eq!(
        system_date_and_time(&reply("sdt")).unwrap(),
        1_796_302_800 + 55 * 60 + 36
    );
}

#[test]
fn capabilities_and_services_name_the_ptz_and_media_services() {
    let caps = capabilities(&reply("caps"));
    assert_eq!(
        caps.ptz.as_deref(),
        Some("http://127.0.0.1:46549/onvif/ptz_service")
    );
    assert_eq!(
        caps.media.as_deref(),
        Some("http://127.0.0.1:46549/onvif/media_service")
    );
    assert_eq!(services(&reply("services")), caps);
}

#[test]
fn profiles_with_their_ptz_axes() {
    let p = profiles(&reply("profiles"));
    let tokens: Vec<_> = p.iter().map(|p| p.token.as_str()).collect();
    assert_eq!(tokens, ["Profile_Main", "Profile_Sub"]);
    assert_eq!(p[0].name, "MainStream");
    assert_eq!(
        p[0].ptz,
        Some(PtzAxes {
            pan_tilt: true,
            zoom: true
        })
    );
}

#[test]
fn presets_status_and_preset_token() {
    assert_eq!(
        presets(&reply("presets")),
        [PtzPreset {
            token: "home".into(),
            name: "Home".into()
        }]
    );
    let zero = PtzPosition::default();
    assert_eq!(status(&reply("status")), (Some(zero), Some(false)));
    assert_eq!(status(&reply("status_moving")), (Some(zero), Some(true)));
    assert_eq!(
        preset_token(&reply("setpreset")).unwrap(),
        "preset_8b19eac2"
    );
    // Stop's reply is an empty response element: fine, nothing is read from it.
    assert_eq!(reply("stop").name, "StopResponse");
}

#[test]
fn unpatched_ipycam_reads_too() {
    // Undeclared `ptz:`/`tptz:` prefixes and `{{placeholder}}` move states.
    assert_eq!(presets(&reply("raw_presets")).len(), 1);
    assert_eq!(
        status(&reply("raw_status")),
        (Some(PtzPosition::default()), None)
    );
}

#[test]
fn faults_are_read_with_their_code_and_reason() {
    let bytes = std::fs::read(format!(
        "{}/src/onvif/testdata/unauthorized.xml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let SoapError::Fault(f) = parse_reply(&bytes).unwrap_err() else {
        panic!("not a fault")
    };
    assert_eq!(f.code, "s:Receiver");
    assert_eq!(f.reason, "Sender not authorized");
    assert!(f.is_not_authorized());

    // The ONVIF Core form: env:Sender / ter:NotAuthorized.
    let core = br#"<?xml version="1.0"?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:ter="http://www.onvif.org/ver10/error"><env:Body><env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value>ter:NotAuthorized</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="en">The action requested requires authorization</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>"#;
    let SoapError::Fault(f) = parse_reply(core).unwrap_err() else {
        panic!("not a fault")
    };
    assert_eq!(f.subcodes, ["ter:NotAuthorized"]);
    assert!(f.is_not_authorized());

    // Any other fault is not about credentials; SOAP 1.1 faults read too.
    let other = br#"<s:Envelope><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>ter:NoToken</faultstring></s:Fault></s:Body></s:Envelope>"#;
    let SoapError::Fault(f) = parse_reply(other).unwrap_err() else {
        panic!("not a fault")
    };
    assert_eq!(
        (f.code.as_str(), f.reason.as_str()),
        ("s:Client", "ter:NoToken")
    );
    assert!(!f.is_not_authorized());
    let SoapError::Fault(f) = parse_reply(
        &std::fs::read(format!(
            "{}/src/onvif/testdata/unknown.xml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap_err() else {
        panic!("not a fault")
    };
    assert!(!f.is_not_authorized());
    assert!(f.to_string().contains("Action not supported"), "{f}");
}

#[test]
fn garbage_is_not_soap_with_a_reason() {
    let table: &[(&[u8], &str)] = &[
        (b"", "no XML element"),
        (b"hello world", "starts with text"),
        (b"<html><body>Not Found</body></html>", "not <Envelope>"),
        (b"<s:Envelope><s:Header/></s:Envelope>", "no <Body>"),
        (b"<s:Envelope><s:Body><a>", "ends inside"),
        (
            b"<s:Envelope><s:Body></a></s:Body></s:Envelope>",
            "not SOAP",
        ),
        (b"<a x='1' x='2'/>", "attribute"),
        (b"<a>&bogus;</a>", "unknown entity"),
        (b"<a/><b/>", "after the document's end"),
        (b"\xff\xfe<\x00a\x00>", "not SOAP"),
    ];
    for (bytes, want) in table {
        let e = parse_reply(bytes).unwrap_err();
        assert!(matches!(e, SoapError::NotSoap(_)), "{bytes:?}: {e:?}");
        let text = e.to_string();
        assert!(
            text.starts_with("the camera's answer is not SOAP: "),
            "{text}"
        );
        assert!(text.contains(want), "{bytes:?}: {text}");
    }
    let deep = "<a>".repeat(10_000);
    assert!(parse_reply(deep.as_bytes()).is_err());
}

#[test]
fn entities_and_cdata_are_text() {
    let el = parse_xml(b"<a n='x&amp;y'>1 &lt; 2 &#x41;<![CDATA[<b>]]></a>").unwrap();
    assert_eq!(el.text, "1 < 2 A<b>");
    assert_eq!(el.attr("n"), Some("x&y"));
}

#[test]
fn missing_or_unparsable_values_are_absent_not_errors() {
    let el = parse_xml(b"<R><PTZStatus><Position><PanTilt x='NaN' y='{{y}}'/><Zoom x='0.5'/></Position><MoveStatus><PanTilt>IDLE</PanTilt><Zoom>MOVING</Zoom></MoveStatus></PTZStatus></R>").unwrap();
    assert_eq!(
        status(&el),
        (
            Some(PtzPosition {
                pan: 0.0,
                tilt: 0.0,
                zoom: 0.5
            }),
            Some(true)
        )
    );
    assert_eq!(status(&parse_xml(b"<R/>").unwrap()), (None, None));
    assert!(preset_token(&parse_xml(b"<R><PresetToken> </PresetToken></R>").unwrap()).is_err());
    assert!(
        system_date_and_time(&parse_xml(b"<R><UTCDateTime><Date><Year>2026</Year><Month>13</Month><Day>1</Day></Date><Time><Hour>0</Hour><Minute>0</Minute><Second>0</Second></Time></UTCDateTime></R>").unwrap())
            .is_err()
    );
    assert_eq!(
        capabilities(&parse_xml(b"<R/>").unwrap()),
        XAddrs::default()
    );
    assert!(
        profiles(&parse_xml(b"<R><Profiles><Name>no token</Name></Profiles></R>").unwrap())
            .is_empty()
    );
}

#[test]
fn envelopes_carry_the_operation_escaped_values_and_the_header() {
    let e = envelope("<wsse:Security/>", &get_status("Profile_Main"));
    assert!(e.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope""#));
    assert!(e.contains("<s:Header><wsse:Security/></s:Header>"));
    assert!(e.contains("<s:Body><tptz:GetStatus><tptz:ProfileToken>Profile_Main</tptz:ProfileToken></tptz:GetStatus></s:Body>"));
    // The envelope reads back with the reader (it is well-formed, namespaces declared).
    let root = parse_xml(e.as_bytes()).unwrap();
    assert_eq!(root.child("Body").unwrap().children[0].name, "GetStatus");

    assert_eq!(
        set_preset("P", "a<b & \"c\""),
        "<tptz:SetPreset><tptz:ProfileToken>P</tptz:ProfileToken><tptz:PresetName>a&lt;b &amp; &quot;c&quot;</tptz:PresetName></tptz:SetPreset>"
    );
    assert_eq!(
        stop("P"),
        "<tptz:Stop><tptz:ProfileToken>P</tptz:ProfileToken><tptz:PanTilt>true</tptz:PanTilt><tptz:Zoom>true</tptz:Zoom></tptz:Stop>"
    );
    assert_eq!(
        continuous_move(
            "P",
            Some((0.2, -0.1)),
            Some(1.5),
            Duration::from_millis(1500)
        ),
        concat!(
            "<tptz:ContinuousMove><tptz:ProfileToken>P</tptz:ProfileToken><tptz:Velocity>",
            r#"<tt:PanTilt x="0.2" y="-0.1"/><tt:Zoom x="1"/></tptz:Velocity>"#,
            "<tptz:Timeout>PT1.5S</tptz:Timeout></tptz:ContinuousMove>"
        )
    );
    let no_zoom = continuous_move(
        "P",
        Some((f64::NAN, -0.00001)),
        None,
        Duration::from_secs(2),
    );
    assert!(
        no_zoom.contains(r#"<tt:PanTilt x="0" y="0"/></tptz:Velocity><tptz:Timeout>PT2S<"#),
        "{no_zoom}"
    );
    assert!(!no_zoom.contains("Zoom"));
}

#[test]
fn xs_durations() {
    for (ms, want) in [
        (1500, "PT1.5S"),
        (500, "PT0.5S"),
        (2000, "PT2S"),
        (50, "PT0.05S"),
        (1, "PT0.001S"),
        (0, "PT0S"),
        (61_250, "PT61.25S"),
    ] {
        assert_eq!(xs_duration(Duration::from_millis(ms)), want);
    }
}

#[test]
fn a_byte_order_mark_is_not_text() {
    let mut bytes = b"\xef\xbb\xbf".to_vec();
    bytes.extend_from_slice(
        std::fs::read_to_string(format!(
            "{}/src/onvif/testdata/presets.xml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .as_bytes(),
    );
    assert_eq!(presets(&parse_reply(&bytes).unwrap()).len(), 1);
}
