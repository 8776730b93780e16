//! Pan-tilt-zoom: the commands the supervisor routes to a camera's worker and the worker's answers
//! (since schema 5).
//!
//! The API turns a request into a [`PtzCommand`], the manager sends it as
//! [`crate::ToWorker::Ptz`] with a fresh `request_id` and answers the API when the worker's
//! [`crate::ToSupervisor::PtzReply`] with the same id arrives (or with [`PtzErrorKind::Timeout`]
//! after 5 s, or at once with [`PtzErrorKind::WorkerUnavailable`]). The worker runs the commands
//! on its own PTZ thread, one at a time, against the camera's ONVIF service.

use serde::{Deserialize, Serialize};

/// One PTZ command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum PtzCommand {
    /// Move continuously at these velocities (each -1..=1; zoom > 0 zooms in) until the client
    /// stops renewing the command for `onvif.move_timeout_s` (the dead-man window), or a `Stop`.
    /// Sending the same velocities again only renews the window.
    Move { pan: f64, tilt: f64, zoom: f64 },
    /// Stop pan, tilt and zoom.
    Stop,
    /// Go to a preset, by token or by name.
    GotoPreset { preset: String },
    /// Save the current position as a preset with this name; answered with its token.
    SetPreset { name: String },
    /// What the camera can do, its presets and position (`GET /api/cameras/<id>/ptz`).
    Describe,
}

impl PtzCommand {
    /// Checks the command's own values (velocities in -1..=1 and finite, names not empty and not
    /// over 64 characters); the message says which value and the fix.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            PtzCommand::Move { pan, tilt, zoom } => {
                for (name, v) in [("pan", pan), ("tilt", tilt), ("zoom", zoom)] {
                    if !v.is_finite() || !(-1.0..=1.0).contains(v) {
                        return Err(format!(
                            "{name} {v} is out of range; use a number from -1 to 1"
                        ));
                    }
                }
                Ok(())
            }
            PtzCommand::GotoPreset { preset: s } | PtzCommand::SetPreset { name: s } => {
                if s.trim().is_empty() || s.chars().count() > 64 || s.chars().any(char::is_control)
                {
                    Err("write a preset name or token of 1 to 64 characters".into())
                } else {
                    Ok(())
                }
            }
            PtzCommand::Stop | PtzCommand::Describe => Ok(()),
        }
    }
}

/// What the camera answered to a command that worked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PtzAnswer {
    /// Done (`Move`, `Stop`, `GotoPreset`).
    Done,
    /// `SetPreset`: the new preset's token.
    PresetSet { token: String },
    /// `Describe`.
    Described(PtzDescription),
}

/// A PTZ camera's capabilities, presets and state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PtzDescription {
    /// The media profile steered.
    pub profile: String,
    /// Whether the camera pans and tilts.
    pub pan_tilt: bool,
    /// Whether the camera zooms.
    pub zoom: bool,
    pub presets: Vec<PtzPreset>,
    /// Where the camera points, if it says (`GetStatus`).
    pub position: Option<PtzPosition>,
    /// Whether the camera reports it is moving (`None`: it does not say).
    pub moving: Option<bool>,
    /// The camera's clock minus ours, seconds (learned from `GetSystemDateAndTime`; the
    /// WS-Security tokens are signed with it).
    pub clock_offset_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PtzPreset {
    pub token: String,
    pub name: String,
}

/// A position in the camera's generic spaces: pan and tilt -1..=1, zoom 0..=1 as most cameras
/// report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PtzPosition {
    pub pan: f64,
    pub tilt: f64,
    pub zoom: f64,
}

/// Why a command could not be carried out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct PtzError {
    pub kind: PtzErrorKind,
    /// For people: what went wrong and, where there is one, the fix. Never a secret.
    pub detail: String,
}

impl PtzError {
    pub fn new(kind: PtzErrorKind, detail: impl Into<String>) -> Self {
        PtzError {
            kind,
            detail: detail.into(),
        }
    }
}

/// The stable error kinds of the PTZ API (`{"error": "<kind>"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PtzErrorKind {
    /// The camera has no `onvif` section in the config.
    NoOnvif,
    /// The camera's ONVIF service has no PTZ (or no profile with a PTZ configuration).
    NotPtz,
    /// The camera refused the ONVIF credentials.
    Unauthorized,
    /// The camera (or the worker) did not answer in time.
    Timeout,
    /// The camera's worker is not running (starting, in backoff, failed or disabled).
    WorkerUnavailable,
    /// The camera answered with a fault, garbage, or could not be reached.
    CameraError,
    /// The request itself is invalid (a velocity out of range, an unknown preset).
    BadRequest,
    /// Too many commands are waiting for this camera; try again.
    Busy,
}

impl PtzErrorKind {
    /// The stable string of the API.
    pub fn as_str(self) -> &'static str {
        match self {
            PtzErrorKind::NoOnvif => "no_onvif",
            PtzErrorKind::NotPtz => "not_ptz",
            PtzErrorKind::Unauthorized => "unauthorized",
            PtzErrorKind::Timeout => "timeout",
            PtzErrorKind::WorkerUnavailable => "worker_unavailable",
            PtzErrorKind::CameraError => "camera_error",
            PtzErrorKind::BadRequest => "bad_request",
            PtzErrorKind::Busy => "busy",
        }
    }
}

impl std::fmt::Display for PtzErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_read_as_the_api_writes_them() {
        let table = [
            (
                r#"{"action": "move", "pan": -1, "tilt": 0.5, "zoom": 0}"#,
                PtzCommand::Move {
                    pan: -1.0,
                    tilt: 0.5,
                    zoom: 0.0,
                },
            ),
            (r#"{"action": "stop"}"#, PtzCommand::Stop),
            (
                r#"{"action": "goto_preset", "preset": "home"}"#,
                PtzCommand::GotoPreset {
                    preset: "home".into(),
                },
            ),
            (
                r#"{"action": "set_preset", "name": "gate"}"#,
                PtzCommand::SetPreset {
                    name: "gate".into(),
                },
            ),
        ];
        for (json, want) in table {
            let got: PtzCommand = serde_json::from_str(json).unwrap();
            assert_eq!(got, want, "{json}");
            assert!(got.validate().is_ok(), "{json}");
        }
    }

    #[test]
    fn out_of_range_values_are_refused_with_the_fix() {
        let bad = [
            PtzCommand::Move {
                pan: 1.5,
                tilt: 0.0,
                zoom: 0.0,
            },
            PtzCommand::Move {
                pan: 0.0,
                tilt: f64::NAN,
                zoom: 0.0,
            },
            PtzCommand::GotoPreset { preset: " ".into() },
            PtzCommand::SetPreset {
                name: "x".repeat(65),
            },
            PtzCommand::SetPreset {
                name: "a\nb".into(),
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
        assert!(PtzCommand::Move {
            pan: 2.0,
            tilt: 0.0,
            zoom: 0.0
        }
        .validate()
        .unwrap_err()
        .contains("pan"));
    }
}
