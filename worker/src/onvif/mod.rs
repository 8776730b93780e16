//! A blocking ONVIF client for pan-tilt-zoom: what the worker's PTZ thread needs and no more
//! (`GetSystemDateAndTime`, `GetCapabilities`/`GetServices`, `GetProfiles`, `ContinuousMove`,
//! `Stop`, `GetPresets`, `GotoPreset`, `SetPreset`, `GetStatus`).
//!
//! - Every request is SOAP 1.2 with a WS-Security UsernameToken (PasswordDigest) signed with the
//!   **camera's** clock: ours plus the offset learned, unauthenticated, from
//!   `GetSystemDateAndTime` at [`Client::connect`] ([`wsse`]).
//! - A 401 that offers HTTP Digest is answered once with it (RFC 7616, [`http`]), never in a loop.
//! - Every exchange is bounded by the timeout given to `connect`; `connect` as a whole by twice it.
//! - Replies are read by a total parser ([`soap`]): garbage gives [`PtzErrorKind::CameraError`],
//!   never a panic. Errors never carry the password, a digest or a request body.
//!
//! No async runtime: the worker calls this from its own PTZ thread.

pub mod http;
pub mod soap;
pub mod wsse;

use nvr_proto::ptz::{PtzDescription, PtzError, PtzErrorKind, PtzPosition, PtzPreset};
use nvr_proto::settings::OnvifSettings;
use soap::{Element, Fault, SoapError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The device service's path; ONVIF fixes it, and `OnvifSettings::device_url` uses it.
const DEVICE_PATH: &str = "/onvif/device_service";

/// A connected camera: where its services are, which profile is steered, its clock offset.
#[derive(Debug)]
pub struct Client {
    /// Where the requests go (the configured host; see [`service_address`]).
    host: String,
    port: u16,
    /// `None`: no credentials configured, requests go without a token.
    username: Option<String>,
    password: Option<nvr_config::Password>,
    /// The bound of one HTTP exchange.
    timeout: Duration,
    /// The camera's clock minus ours, milliseconds.
    offset_ms: i64,
    media: ServiceAddress,
    ptz: ServiceAddress,
    /// The media profile steered, and the axes its PTZ configuration names.
    profile: soap::Profile,
    axes: soap::PtzAxes,
}

/// Where one service answers.
#[derive(Debug, Clone, PartialEq)]
struct ServiceAddress {
    host: String,
    port: u16,
    path: String,
}

/// How one exchange failed, before it is named for the API.
#[derive(Debug)]
enum Failure {
    Http(http::HttpError),
    /// A 401 that still stands after the digest retry (or had no Digest challenge).
    Unauthorized {
        digest_tried: bool,
    },
    Fault(Fault),
    NotSoap {
        status: u16,
        detail: String,
    },
    Status(u16),
}

/// One ONVIF operation: its name and its service's namespace.
#[derive(Debug, Clone, Copy)]
struct Op {
    name: &'static str,
    ns: &'static str,
}

const GET_SYSTEM_DATE_AND_TIME: Op = Op {
    name: "GetSystemDateAndTime",
    ns: soap::NS_DEVICE,
};
const GET_CAPABILITIES: Op = Op {
    name: "GetCapabilities",
    ns: soap::NS_DEVICE,
};
const GET_SERVICES: Op = Op {
    name: "GetServices",
    ns: soap::NS_DEVICE,
};
const GET_PROFILES: Op = Op {
    name: "GetProfiles",
    ns: soap::NS_MEDIA,
};
const fn ptz_op(name: &'static str) -> Op {
    Op {
        name,
        ns: soap::NS_PTZ,
    }
}

impl Client {
    /// `GetSystemDateAndTime` (unauthenticated) -> the clock offset; `GetCapabilities` (falling
    /// back to `GetServices`) -> the PTZ and media services; `GetProfiles` -> the configured
    /// profile, or the first with a PTZ configuration. Each exchange is bounded by `timeout`, the
    /// whole by `2 * timeout`.
    pub fn connect(settings: &OnvifSettings, timeout: Duration) -> Result<Client, PtzError> {
        let overall = Instant::now() + 2 * timeout;
        let deadline = || (Instant::now() + timeout).min(overall);
        let device = ServiceAddress {
            host: settings.host.clone(),
            port: settings.port,
            path: DEVICE_PATH.into(),
        };
        if device.host.trim().is_empty() {
            return Err(PtzError::new(
                PtzErrorKind::CameraError,
                "no ONVIF host: set onvif.host or the camera's main_url",
            ));
        }
        let mut client = Client {
            host: settings.host.clone(),
            port: settings.port,
            username: settings.username.clone().filter(|u| !u.is_empty()),
            password: settings.password.clone(),
            timeout,
            offset_ms: 0,
            media: device.clone(),
            ptz: device.clone(),
            profile: soap::Profile::default(),
            axes: soap::PtzAxes::default(),
        };

        // The clock first, without a token: a token signed with a skewed clock is refused.
        let sent = unix_ms();
        match client.exchange(
            &device,
            GET_SYSTEM_DATE_AND_TIME,
            &soap::get_system_date_and_time(),
            false,
            deadline(),
        ) {
            Ok(reply) => {
                let mid = sent + (unix_ms() - sent) / 2;
                match soap::system_date_and_time(&reply) {
                    // The camera's seconds are truncated: its time is half a second later on average.
                    Ok(s) => client.offset_ms = s * 1000 + 500 - mid,
                    Err(e) => tracing::debug!(
                        "GetSystemDateAndTime unreadable ({e}); signing with our clock"
                    ),
                }
            }
            Err(Failure::Http(e)) => {
                return Err(client.named(GET_SYSTEM_DATE_AND_TIME, Failure::Http(e)))
            }
            Err(f) => tracing::debug!(
                "GetSystemDateAndTime refused ({}); signing with our clock",
                client.named(GET_SYSTEM_DATE_AND_TIME, f).detail
            ),
        }

        // The services. A device that answers neither readably is broken, not without PTZ.
        let mut unreadable = None;
        let caps = client.exchange(
            &device,
            GET_CAPABILITIES,
            &soap::get_capabilities(),
            true,
            deadline(),
        );
        let mut xaddrs = match caps {
            Ok(reply) => soap::capabilities(&reply),
            Err(f @ (Failure::Http(_) | Failure::Unauthorized { .. })) => {
                return Err(client.named(GET_CAPABILITIES, f))
            }
            Err(f) => {
                unreadable = Some(client.named(GET_CAPABILITIES, f));
                soap::XAddrs::default()
            }
        };
        if xaddrs.ptz.is_none() {
            match client.exchange(
                &device,
                GET_SERVICES,
                &soap::get_services(),
                true,
                deadline(),
            ) {
                Ok(reply) => {
                    let s = soap::services(&reply);
                    xaddrs.ptz = s.ptz;
                    xaddrs.media = xaddrs.media.or(s.media);
                    unreadable = None;
                }
                Err(f @ (Failure::Http(_) | Failure::Unauthorized { .. })) => {
                    return Err(client.named(GET_SERVICES, f))
                }
                Err(_) => {}
            }
        }
        let Some(ptz) = xaddrs.ptz else {
            return Err(unreadable.unwrap_or_else(|| {
                PtzError::new(
                    PtzErrorKind::NotPtz,
                    "the camera names no PTZ service (GetCapabilities, GetServices)",
                )
            }));
        };
        client.ptz = service_address(&device, &ptz);
        if let Some(media) = xaddrs.media {
            client.media = service_address(&device, &media);
        }

        // The profile.
        let media = client.media.clone();
        let reply = client
            .exchange(
                &media,
                GET_PROFILES,
                &soap::get_profiles(),
                true,
                deadline(),
            )
            .map_err(|f| client.named(GET_PROFILES, f))?;
        let profiles = soap::profiles(&reply);
        let chosen = match &settings.profile {
            Some(want) => {
                let p = profiles
                    .iter()
                    .find(|p| &p.token == want)
                    .or_else(|| profiles.iter().find(|p| &p.name == want))
                    .ok_or_else(|| {
                        PtzError::new(
                            PtzErrorKind::CameraError,
                            format!(
                                "the camera has no media profile {want:?} (onvif.profile); it has: {}",
                                list(profiles.iter().map(|p| p.token.as_str()))
                            ),
                        )
                    })?;
                if p.ptz.is_none() {
                    return Err(PtzError::new(
                        PtzErrorKind::NotPtz,
                        format!(
                            "the media profile {want:?} (onvif.profile) has no PTZ configuration"
                        ),
                    ));
                }
                p
            }
            None => profiles.iter().find(|p| p.ptz.is_some()).ok_or_else(|| {
                PtzError::new(
                    PtzErrorKind::NotPtz,
                    "no media profile of the camera has a PTZ configuration",
                )
            })?,
        };
        client.axes = chosen.ptz.unwrap_or_default();
        client.profile = chosen.clone();
        Ok(client)
    }

    /// `GetPresets` + `GetStatus` + the axes of the profile's PTZ configuration. A camera whose
    /// `GetStatus` faults is described without a position.
    pub fn describe(&mut self) -> Result<PtzDescription, PtzError> {
        let presets = self.presets()?;
        let (position, moving) = match self.status() {
            Ok(s) => s,
            Err(e) if e.kind == PtzErrorKind::CameraError => {
                tracing::debug!("GetStatus failed: {}", e.detail);
                (None, None)
            }
            Err(e) => return Err(e),
        };
        Ok(PtzDescription {
            profile: self.profile.token.clone(),
            pan_tilt: self.axes.pan_tilt,
            zoom: self.axes.zoom,
            presets,
            position,
            moving,
            clock_offset_s: self.clock_offset_s(),
        })
    }

    /// `ContinuousMove` at these velocities (each clamped to -1..=1) for the axes the camera
    /// has, always with a `Timeout` (the camera stops by itself if we go silent, where it honours
    /// it).
    pub fn continuous_move(
        &mut self,
        pan: f64,
        tilt: f64,
        zoom: f64,
        timeout: Duration,
    ) -> Result<(), PtzError> {
        let body = soap::continuous_move(
            &self.profile.token,
            self.axes.pan_tilt.then_some((pan, tilt)),
            self.axes.zoom.then_some(zoom),
            timeout,
        );
        self.ptz_call(ptz_op("ContinuousMove"), &body).map(drop)
    }

    /// `Stop`, with `PanTilt` and `Zoom` both true in the body.
    pub fn stop(&mut self) -> Result<(), PtzError> {
        let body = soap::stop(&self.profile.token);
        self.ptz_call(ptz_op("Stop"), &body).map(drop)
    }

    /// `GotoPreset` by token, or by name resolved through `GetPresets`; a preset the camera does
    /// not list is a [`PtzErrorKind::BadRequest`] naming the ones it has.
    pub fn goto_preset(&mut self, token_or_name: &str) -> Result<(), PtzError> {
        let presets = self.presets()?;
        let token = resolve_preset(&presets, token_or_name)?;
        let body = soap::goto_preset(&self.profile.token, &token);
        self.ptz_call(ptz_op("GotoPreset"), &body).map(drop)
    }

    /// `SetPreset` with this name (a new preset at the current position); returns its token.
    pub fn set_preset(&mut self, name: &str) -> Result<String, PtzError> {
        let op = ptz_op("SetPreset");
        let reply = self.ptz_call(op, &soap::set_preset(&self.profile.token, name))?;
        soap::preset_token(&reply).map_err(|e| self.named(op, soap_failure(200, e)))
    }

    /// `GetStatus`: the position, and whether the camera says it is moving.
    pub fn status(&mut self) -> Result<(Option<PtzPosition>, Option<bool>), PtzError> {
        let reply = self.ptz_call(ptz_op("GetStatus"), &soap::get_status(&self.profile.token))?;
        Ok(soap::status(&reply))
    }

    /// The camera's clock minus ours, seconds.
    pub fn clock_offset_s(&self) -> f64 {
        self.offset_ms as f64 / 1000.0
    }

    /// The token of the media profile steered.
    pub fn profile_token(&self) -> &str {
        &self.profile.token
    }

    fn presets(&mut self) -> Result<Vec<PtzPreset>, PtzError> {
        let reply = self.ptz_call(
            ptz_op("GetPresets"),
            &soap::get_presets(&self.profile.token),
        )?;
        Ok(soap::presets(&reply))
    }

    fn ptz_call(&mut self, op: Op, body: &str) -> Result<Element, PtzError> {
        let ptz = self.ptz.clone();
        let deadline = Instant::now() + self.timeout;
        self.exchange(&ptz, op, body, true, deadline)
            .map_err(|f| self.named(op, f))
    }

    /// One SOAP exchange: the request signed (when `auth` and a user is configured), one HTTP
    /// Digest retry on a 401 that offers it, the reply's `Body` element.
    fn exchange(
        &self,
        to: &ServiceAddress,
        op: Op,
        body: &str,
        auth: bool,
        deadline: Instant,
    ) -> Result<Element, Failure> {
        let content_type = format!(
            "application/soap+xml; charset=utf-8; action=\"{}/{}\"",
            op.ns, op.name
        );
        let user = self.username.as_deref().filter(|_| auth);
        let password = self.password.as_ref().map(|p| p.expose()).unwrap_or("");
        let envelope = || {
            let header = match user {
                Some(u) => {
                    wsse::security_header(u, password, unix_ms() + self.offset_ms, &wsse::nonce())
                }
                None => String::new(),
            };
            soap::envelope(&header, body)
        };
        let post = |extra: Option<&str>| {
            let mut headers = vec![("Content-Type", content_type.as_str())];
            if let Some(a) = extra {
                headers.push(("Authorization", a));
            }
            http::post(
                &to.host,
                to.port,
                &to.path,
                &headers,
                envelope().as_bytes(),
                deadline,
            )
            .map_err(Failure::Http)
        };
        let mut response = post(None)?;
        let mut digest_tried = false;
        if response.status == 401 {
            if let (Some(u), Some(challenge)) = (
                user,
                http::digest_challenge(response.header_values("www-authenticate")),
            ) {
                tracing::debug!("{}: answering the camera's HTTP Digest challenge", op.name);
                let cnonce: String = wsse::nonce().iter().map(|b| format!("{b:02x}")).collect();
                let authorization = http::digest_authorization(
                    &challenge, u, password, "POST", &to.path, 1, &cnonce,
                );
                digest_tried = true;
                response = post(Some(&authorization))?;
            }
        }
        let status = response.status;
        match soap::parse_reply(&response.body) {
            // A fault is read for what it says ("not authorized" among others), unless it came
            // with a 401: that one is the credentials whatever the text.
            Err(SoapError::Fault(f)) if status != 401 => Err(Failure::Fault(f)),
            _ if status == 401 => Err(Failure::Unauthorized { digest_tried }),
            Ok(_) if !(200..300).contains(&status) => Err(Failure::Status(status)),
            Ok(reply) => Ok(reply),
            Err(e) => Err(soap_failure(status, e)),
        }
    }

    /// Names a failure for the API: its kind, and a detail that says which operation and why.
    fn named(&self, op: Op, f: Failure) -> PtzError {
        let at = format!("{}:{}", self.host, self.port);
        let (kind, detail) = match f {
            Failure::Http(http::HttpError::Timeout(m)) => (
                PtzErrorKind::Timeout,
                format!(
                    "the camera's ONVIF service at {at} did not answer {} within {:.1} s ({m})",
                    op.name,
                    self.timeout.as_secs_f64()
                ),
            ),
            Failure::Http(http::HttpError::Unreachable(m)) => (
                PtzErrorKind::CameraError,
                format!("cannot reach the camera's ONVIF service: {m}"),
            ),
            Failure::Http(http::HttpError::Protocol(m)) => {
                (PtzErrorKind::CameraError, format!("{}: {m}", op.name))
            }
            Failure::Unauthorized { digest_tried } => (
                PtzErrorKind::Unauthorized,
                format!(
                    "the camera refused the ONVIF user name or password ({}: HTTP 401{}); check onvif.username and the password",
                    op.name,
                    if digest_tried { ", also with HTTP Digest" } else { "" }
                ),
            ),
            Failure::Fault(fault) if fault.is_not_authorized() => (
                PtzErrorKind::Unauthorized,
                format!(
                    "the camera refused the ONVIF user name or password ({}: {fault}); check onvif.username and the password",
                    op.name
                ),
            ),
            Failure::Fault(fault) => (
                PtzErrorKind::CameraError,
                format!("the camera answered {} with a SOAP fault: {fault}", op.name),
            ),
            Failure::NotSoap { status, detail } => (
                PtzErrorKind::CameraError,
                format!(
                    "{} (HTTP {status}): the camera's answer is not SOAP: {detail}",
                    op.name
                ),
            ),
            Failure::Status(s) => (
                PtzErrorKind::CameraError,
                format!("the camera answered {} with HTTP {s}", op.name),
            ),
        };
        PtzError::new(kind, detail)
    }
}

fn soap_failure(status: u16, e: SoapError) -> Failure {
    match e {
        SoapError::Fault(f) => Failure::Fault(f),
        SoapError::NotSoap(detail) => Failure::NotSoap { status, detail },
        e @ SoapError::Missing(_) => Failure::NotSoap {
            status,
            detail: e.to_string(),
        },
    }
}

/// Our clock, Unix milliseconds.
fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where a service named by `xaddr` answers. The XAddr's own host and port are used when its
/// host is the one we reach the device at; otherwise (a camera behind NAT or port forwarding
/// names its LAN address) only its path is, on the configured host and port.
fn service_address(device: &ServiceAddress, xaddr: &str) -> ServiceAddress {
    let Some(rest) = xaddr.trim().strip_prefix("http://") else {
        return device.clone();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
            Ok(p) => (h, p),
            Err(_) => (authority, 80),
        },
        _ => (authority, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case(&device.host) {
        ServiceAddress {
            host: device.host.clone(),
            port,
            path: path.to_string(),
        }
    } else {
        ServiceAddress {
            host: device.host.clone(),
            port: device.port,
            path: path.to_string(),
        }
    }
}

/// A preset's token from a token or a name (tokens first).
fn resolve_preset(presets: &[PtzPreset], token_or_name: &str) -> Result<String, PtzError> {
    presets
        .iter()
        .find(|p| p.token == token_or_name)
        .or_else(|| presets.iter().find(|p| p.name == token_or_name))
        .map(|p| p.token.clone())
        .ok_or_else(|| {
            PtzError::new(
                PtzErrorKind::BadRequest,
                format!(
                    "the camera has no preset named {token_or_name:?}; it has: {}",
                    list(presets.iter().map(|p| p.name.as_str()))
                ),
            )
        })
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|n| format!("{n:?}")).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests;
