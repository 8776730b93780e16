//! SOAP 1.2 requests to an ONVIF device and a total reader of its replies: any bytes give a typed
//! answer or a [`SoapError`], never a panic (fuzzed: `fuzz/fuzz_targets/soap.rs`).
//!
//! Replies are read into a small element tree keyed by **local names**: prefixes are dropped
//! unresolved, so an undeclared prefix (ipycam's `ptz:`) reads like a declared one, and a value
//! that does not parse (an unfilled `{{placeholder}}`) reads as absent, not as an error.

use nvr_proto::ptz::{PtzPosition, PtzPreset};
use quick_xml::escape::escape;
use quick_xml::events::Event;
use quick_xml::{Reader, XmlVersion};

/// Namespaces of the operations we send.
pub const NS_DEVICE: &str = "http://www.onvif.org/ver10/device/wsdl";
pub const NS_MEDIA: &str = "http://www.onvif.org/ver10/media/wsdl";
pub const NS_PTZ: &str = "http://www.onvif.org/ver20/ptz/wsdl";

/// Elements nested deeper than this make the reply unreadable (a hostile reply cannot recurse
/// the reader's stack; real replies nest under 15).
const MAX_DEPTH: usize = 64;
/// Elements in one reply; real ones have a few hundred.
const MAX_ELEMENTS: usize = 50_000;
/// Characters of camera text quoted in an error.
const MAX_QUOTE: usize = 160;

/// One element: its local name, attributes (local names) and text, children in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The first child with this local name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child with this local name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The first element with this local name at any depth below this one (depth-first).
    pub fn find(&self, name: &str) -> Option<&Element> {
        self.children.iter().find_map(|c| {
            if c.name == name {
                Some(c)
            } else {
                c.find(name)
            }
        })
    }

    /// Every element with this local name below this one, not looking inside a match.
    pub fn find_all<'a>(&'a self, name: &str, out: &mut Vec<&'a Element>) {
        for c in &self.children {
            if c.name == name {
                out.push(c);
            } else {
                c.find_all(name, out);
            }
        }
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The trimmed text of the first child with this local name.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }
}

/// A SOAP fault: the code, its subcodes (innermost last) and the reason, as the camera wrote them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fault {
    pub code: String,
    pub subcodes: Vec<String>,
    pub reason: String,
}

impl Fault {
    /// Whether the fault says the credentials were refused: a `NotAuthorized` subcode (ONVIF Core's
    /// `ter:NotAuthorized`) or a reason saying so (ipycam: "Sender not authorized").
    pub fn is_not_authorized(&self) -> bool {
        let local = |s: &str| s.rsplit(':').next().unwrap_or(s).trim().to_string();
        self.subcodes
            .iter()
            .chain(std::iter::once(&self.code))
            .any(|c| local(c).eq_ignore_ascii_case("NotAuthorized"))
            || self.reason.to_ascii_lowercase().contains("not authorized")
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&quote(&self.code))?;
        for s in &self.subcodes {
            write!(f, "/{}", quote(s))?;
        }
        if !self.reason.is_empty() {
            write!(f, " \"{}\"", quote(&self.reason))?;
        }
        Ok(())
    }
}

/// Why a reply could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SoapError {
    #[error("the camera's answer is not SOAP: {0}")]
    NotSoap(String),
    #[error("the camera answered with a SOAP fault: {0}")]
    Fault(Fault),
    #[error("the camera's answer has no {0}")]
    Missing(&'static str),
}

/// Cuts camera text for an error message (on a character boundary) and drops control characters.
pub fn quote(s: &str) -> String {
    let mut out: String = s
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_QUOTE)
        .collect();
    if s.trim().chars().count() > MAX_QUOTE {
        out.push('…');
    }
    out
}

/// Reads a whole XML document into its root element.
pub fn parse_xml(bytes: &[u8]) -> Result<Element, SoapError> {
    let text = String::from_utf8_lossy(bytes);
    let mut reader = Reader::from_str(&text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut n_elements = 0usize;
    let bad = |what: String| SoapError::NotSoap(what);
    loop {
        let event = reader.read_event().map_err(|e| {
            bad(quote(&format!(
                "{} (at byte {})",
                e,
                reader.buffer_position()
            )))
        })?;
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                n_elements += 1;
                if n_elements > MAX_ELEMENTS || stack.len() >= MAX_DEPTH {
                    return Err(bad("too many or too deeply nested elements".into()));
                }
                if root.is_some() {
                    return Err(bad("text after the document's end".into()));
                }
                let mut el = Element {
                    name: local(start.name().as_ref()),
                    ..Element::default()
                };
                for attr in start.attributes() {
                    let attr = attr.map_err(|e| bad(quote(&format!("a broken attribute: {e}"))))?;
                    let value = attr
                        .normalized_value(XmlVersion::Implicit1_0)
                        .map_err(|e| bad(quote(&format!("a broken attribute value: {e}"))))?;
                    el.attrs
                        .push((local(attr.key.as_ref()), value.into_owned()));
                }
                if matches!(event, Event::Empty(_)) {
                    close(el, &mut stack, &mut root);
                } else {
                    stack.push(el);
                }
            }
            Event::End(_) => {
                // quick-xml checks that end names match their start.
                let el = stack
                    .pop()
                    .ok_or_else(|| bad("an end tag without a start".into()))?;
                close(el, &mut stack, &mut root);
            }
            Event::Text(t) => push_text(&mut stack, &t.xml10_content(), &root)?,
            Event::CData(t) => push_text(&mut stack, &t.xml10_content(), &root)?,
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => quick_xml::escape::resolve_predefined_entity(&r)
                        .ok_or_else(|| bad(format!("an unknown entity &{};", quote(&r))))?
                        .to_string(),
                    Err(e) => {
                        return Err(bad(quote(&format!("a broken character reference: {e}"))))
                    }
                };
                push_text(&mut stack, &resolved, &root)?;
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(bad(format!("it ends inside <{}>", quote(&stack[0].name))));
    }
    root.ok_or_else(|| bad("no XML element".into()))
}

fn local(qname: &str) -> String {
    match qname.rsplit_once(':') {
        Some((_, l)) => l.to_string(),
        None => qname.to_string(),
    }
}

fn close(el: Element, stack: &mut [Element], root: &mut Option<Element>) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => *root = Some(el),
    }
}

fn push_text(stack: &mut [Element], text: &str, root: &Option<Element>) -> Result<(), SoapError> {
    match stack.last_mut() {
        Some(el) => {
            el.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None if root.is_some() => Err(SoapError::NotSoap("text after the document's end".into())),
        None => Err(SoapError::NotSoap(format!(
            "it starts with text, not XML: \"{}\"",
            quote(text)
        ))),
    }
}

/// Reads a SOAP reply: the `Body`'s first element, or the fault it carries.
pub fn parse_reply(bytes: &[u8]) -> Result<Element, SoapError> {
    let root = parse_xml(bytes)?;
    if root.name != "Envelope" {
        return Err(SoapError::NotSoap(format!(
            "its root element is <{}>, not <Envelope>",
            quote(&root.name)
        )));
    }
    let body = root
        .child("Body")
        .ok_or_else(|| SoapError::NotSoap("the envelope has no <Body>".into()))?;
    let first = body.children.first().cloned().unwrap_or_default();
    if first.name == "Fault" {
        return Err(SoapError::Fault(fault(&first)));
    }
    Ok(first)
}

/// Reads a `Fault` element, SOAP 1.2 (`Code/Value`, `Subcode/Value`, `Reason/Text`) or 1.1
/// (`faultcode`, `faultstring`).
fn fault(el: &Element) -> Fault {
    let mut f = Fault::default();
    if let Some(code) = el.child("Code") {
        f.code = code.child_text("Value").unwrap_or_default().to_string();
        let mut sub = code.child("Subcode");
        while let Some(s) = sub {
            f.subcodes
                .push(s.child_text("Value").unwrap_or_default().to_string());
            sub = s.child("Subcode");
            if f.subcodes.len() > 8 {
                break;
            }
        }
    } else if let Some(code) = el.child_text("faultcode") {
        f.code = code.to_string();
    }
    f.reason = el
        .child("Reason")
        .and_then(|r| r.child_text("Text"))
        .or_else(|| el.child_text("faultstring"))
        .unwrap_or_default()
        .to_string();
    f
}

// ---------------------------------------------------------------------------------------------
// Requests

/// A SOAP 1.2 envelope around `body`, with the `header` (the WS-Security token, or empty).
pub fn envelope(header: &str, body: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope""#,
            r#" xmlns:tds="{}" xmlns:trt="{}" xmlns:tptz="{}" xmlns:tt="http://www.onvif.org/ver10/schema">"#,
            r#"<s:Header>{}</s:Header><s:Body>{}</s:Body></s:Envelope>"#
        ),
        NS_DEVICE, NS_MEDIA, NS_PTZ, header, body
    )
}

pub fn get_system_date_and_time() -> String {
    "<tds:GetSystemDateAndTime/>".into()
}

pub fn get_capabilities() -> String {
    "<tds:GetCapabilities><tds:Category>All</tds:Category></tds:GetCapabilities>".into()
}

pub fn get_services() -> String {
    "<tds:GetServices><tds:IncludeCapability>false</tds:IncludeCapability></tds:GetServices>".into()
}

pub fn get_profiles() -> String {
    "<trt:GetProfiles/>".into()
}

fn with_profile(op: &str, profile: &str, rest: &str) -> String {
    format!(
        "<tptz:{op}><tptz:ProfileToken>{}</tptz:ProfileToken>{rest}</tptz:{op}>",
        escape(profile)
    )
}

pub fn get_presets(profile: &str) -> String {
    with_profile("GetPresets", profile, "")
}

pub fn get_status(profile: &str) -> String {
    with_profile("GetStatus", profile, "")
}

pub fn goto_preset(profile: &str, token: &str) -> String {
    with_profile(
        "GotoPreset",
        profile,
        &format!("<tptz:PresetToken>{}</tptz:PresetToken>", escape(token)),
    )
}

pub fn set_preset(profile: &str, name: &str) -> String {
    with_profile(
        "SetPreset",
        profile,
        &format!("<tptz:PresetName>{}</tptz:PresetName>", escape(name)),
    )
}

/// `Stop` with both `PanTilt` and `Zoom` true: some cameras stop only what the body names.
pub fn stop(profile: &str) -> String {
    with_profile(
        "Stop",
        profile,
        "<tptz:PanTilt>true</tptz:PanTilt><tptz:Zoom>true</tptz:Zoom>",
    )
}

/// `ContinuousMove` with the velocities the camera has axes for, and always a `Timeout`.
pub fn continuous_move(
    profile: &str,
    pan_tilt: Option<(f64, f64)>,
    zoom: Option<f64>,
    timeout: std::time::Duration,
) -> String {
    let mut velocity = String::new();
    if let Some((pan, tilt)) = pan_tilt {
        velocity += &format!(
            r#"<tt:PanTilt x="{}" y="{}"/>"#,
            velocity_value(pan),
            velocity_value(tilt)
        );
    }
    if let Some(z) = zoom {
        velocity += &format!(r#"<tt:Zoom x="{}"/>"#, velocity_value(z));
    }
    with_profile(
        "ContinuousMove",
        profile,
        &format!(
            "<tptz:Velocity>{velocity}</tptz:Velocity><tptz:Timeout>{}</tptz:Timeout>",
            xs_duration(timeout)
        ),
    )
}

/// A velocity as an `xs:float`: clamped to -1..=1, never NaN, never in exponent notation.
fn velocity_value(v: f64) -> String {
    let v = if v.is_finite() {
        v.clamp(-1.0, 1.0)
    } else {
        0.0
    };
    // Four decimals are finer than any camera's speed steps; trims "0.2000" to "0.2".
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    match s {
        "-0" | "" => "0".into(),
        s => s.into(),
    }
}

/// An `xs:duration` in seconds with millisecond precision: `PT1.5S`, `PT2S`, `PT0.05S`.
pub fn xs_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    let (s, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        format!("PT{s}S")
    } else {
        let f = format!("{frac:03}");
        format!("PT{s}.{}S", f.trim_end_matches('0'))
    }
}

// ---------------------------------------------------------------------------------------------
// Replies

/// `GetSystemDateAndTimeResponse`: the camera's UTC time as Unix seconds.
pub fn system_date_and_time(reply: &Element) -> Result<i64, SoapError> {
    let utc = reply
        .find("UTCDateTime")
        .ok_or(SoapError::Missing("UTCDateTime"))?;
    let (date, time) = (
        utc.child("Date")
            .ok_or(SoapError::Missing("UTCDateTime/Date"))?,
        utc.child("Time")
            .ok_or(SoapError::Missing("UTCDateTime/Time"))?,
    );
    let num = |el: &Element, name: &'static str| -> Result<i64, SoapError> {
        el.child_text(name)
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or(SoapError::Missing(name))
    };
    let civil = |v: i64, lo: i64, hi: i64, name: &'static str| {
        if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(SoapError::Missing(name))
        }
    };
    let year = civil(num(date, "Year")?, 1970, 9999, "Year")? as i16;
    let month = civil(num(date, "Month")?, 1, 12, "Month")? as i8;
    let day = civil(num(date, "Day")?, 1, 31, "Day")? as i8;
    let hour = civil(num(time, "Hour")?, 0, 23, "Hour")? as i8;
    let minute = civil(num(time, "Minute")?, 0, 59, "Minute")? as i8;
    // 60: a leap second, read as the next minute's first.
    let second = civil(num(time, "Second")?, 0, 60, "Second")?;
    let dt = jiff::civil::DateTime::new(year, month, day, hour, minute, 0, 0)
        .map_err(|_| SoapError::Missing("a valid UTCDateTime"))?;
    let ts = dt
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|_| SoapError::Missing("a valid UTCDateTime"))?
        .timestamp();
    Ok(ts.as_second() + second)
}

/// The services' addresses a device names (`GetCapabilities` or `GetServices`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct XAddrs {
    pub media: Option<String>,
    pub ptz: Option<String>,
}

/// `GetCapabilitiesResponse`: `Capabilities/Media/XAddr` and `Capabilities/PTZ/XAddr`.
pub fn capabilities(reply: &Element) -> XAddrs {
    let caps = reply.find("Capabilities");
    let xaddr = |name: &str| {
        caps.and_then(|c| c.child(name))
            .and_then(|s| s.child_text("XAddr"))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    XAddrs {
        media: xaddr("Media"),
        ptz: xaddr("PTZ"),
    }
}

/// `GetServicesResponse`: the XAddrs of the media (ver10) and PTZ (ver20) services.
pub fn services(reply: &Element) -> XAddrs {
    let mut out = XAddrs::default();
    for s in reply.children_named("Service") {
        let (Some(ns), Some(xaddr)) = (s.child_text("Namespace"), s.child_text("XAddr")) else {
            continue;
        };
        if xaddr.is_empty() {
            continue;
        }
        if ns == NS_MEDIA {
            out.media = Some(xaddr.to_string());
        } else if ns == NS_PTZ {
            out.ptz = Some(xaddr.to_string());
        }
    }
    out
}

/// A media profile, and what its PTZ configuration (if any) says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    pub token: String,
    pub name: String,
    pub ptz: Option<PtzAxes>,
}

/// Which axes a PTZ configuration moves.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PtzAxes {
    pub pan_tilt: bool,
    pub zoom: bool,
}

/// `GetProfilesResponse`: each profile with a token.
pub fn profiles(reply: &Element) -> Vec<Profile> {
    reply
        .children_named("Profiles")
        .filter_map(|p| {
            let token = p.attr("token")?.trim();
            if token.is_empty() {
                return None;
            }
            Some(Profile {
                token: token.to_string(),
                name: p.child_text("Name").unwrap_or(token).to_string(),
                ptz: p.child("PTZConfiguration").map(axes),
            })
        })
        .collect()
}

/// The axes a PTZ configuration names in its default spaces, speeds or limits. A configuration
/// that names neither is taken as pan-tilt (what PTZ is for) without zoom.
fn axes(conf: &Element) -> PtzAxes {
    let has = |names: &[&str]| names.iter().any(|n| conf.find(n).is_some());
    let speed = conf.child("DefaultPTZSpeed");
    let pan_tilt = has(&[
        "DefaultContinuousPanTiltVelocitySpace",
        "DefaultAbsolutePantTiltPositionSpace",
        "DefaultAbsolutePanTiltPositionSpace",
        "PanTiltLimits",
    ]) || speed.is_some_and(|s| s.child("PanTilt").is_some());
    let zoom = has(&[
        "DefaultContinuousZoomVelocitySpace",
        "DefaultAbsoluteZoomPositionSpace",
        "ZoomLimits",
    ]) || speed.is_some_and(|s| s.child("Zoom").is_some());
    PtzAxes {
        pan_tilt: pan_tilt || !zoom,
        zoom,
    }
}

/// `GetPresetsResponse`: each preset with a token; a preset without a name is named by its token.
pub fn presets(reply: &Element) -> Vec<PtzPreset> {
    reply
        .children_named("Preset")
        .filter_map(|p| {
            let token = p.attr("token")?.trim();
            if token.is_empty() {
                return None;
            }
            let name = p
                .child_text("Name")
                .filter(|n| !n.is_empty())
                .unwrap_or(token);
            Some(PtzPreset {
                token: token.to_string(),
                name: name.to_string(),
            })
        })
        .collect()
}

/// `GetStatusResponse`: the position (absent if the camera gives none that reads as numbers;
/// a missing axis reads 0) and whether it moves (`None` when it does not say, or says neither
/// IDLE nor MOVING).
pub fn status(reply: &Element) -> (Option<PtzPosition>, Option<bool>) {
    let Some(st) = reply.find("PTZStatus") else {
        return (None, None);
    };
    let num = |el: Option<&Element>, attr: &str| {
        el.and_then(|e| e.attr(attr))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
    };
    let position = st.child("Position").and_then(|p| {
        let (pt, z) = (p.child("PanTilt"), p.child("Zoom"));
        let (pan, tilt, zoom) = (num(pt, "x"), num(pt, "y"), num(z, "x"));
        if pan.is_none() && tilt.is_none() && zoom.is_none() {
            return None;
        }
        Some(PtzPosition {
            pan: pan.unwrap_or(0.0),
            tilt: tilt.unwrap_or(0.0),
            zoom: zoom.unwrap_or(0.0),
        })
    });
    let moving = st.child("MoveStatus").and_then(|m| {
        let states: Vec<Option<bool>> = ["PanTilt", "Zoom"]
            .iter()
            .filter_map(|axis| m.child_text(axis))
            .map(|s| match s.to_ascii_uppercase().as_str() {
                "MOVING" => Some(true),
                "IDLE" => Some(false),
                _ => None,
            })
            .collect();
        if states.contains(&Some(true)) {
            Some(true)
        } else if !states.is_empty() && states.iter().all(|s| *s == Some(false)) {
            Some(false)
        } else {
            None
        }
    });
    (position, moving)
}

/// `SetPresetResponse`: the new preset's token.
pub fn preset_token(reply: &Element) -> Result<String, SoapError> {
    reply
        .find("PresetToken")
        .map(|t| t.text.trim().to_string())
        .filter(|t| !t.is_empty())
        .ok_or(SoapError::Missing("PresetToken"))
}

#[cfg(test)]
#[path = "soap_tests.rs"]
mod tests;
