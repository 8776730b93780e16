//! Which recording mode is in force for a camera, and why: the pure decision the manager takes on
//! every pass. The supervisor owns the mode (decision 55): a camera's fixed `recording.mode`, its
//! schedule, or a runtime override, in that order of strength; the worker is only told.

use nvr_config::{CameraConfig, RecordingMode as Mode, Schedule};
use nvr_schedule::instant_ms;
use serde::Serialize;

/// A runtime override of a camera's mode (`POST /api/cameras/<id>/mode`), kept in the state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Override {
    pub mode: Mode,
    /// When it ends by itself, Unix ms; `None`: until it is deleted.
    pub until_ms: Option<i64>,
    /// When it was set, Unix ms.
    pub set_at_ms: i64,
}

impl Override {
    /// Whether it still applies at `now_ms`.
    pub fn active(&self, now_ms: i64) -> bool {
        self.until_ms.is_none_or(|u| now_ms < u)
    }
}

/// The next change of mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NextMode {
    pub at_ms: i64,
    pub mode: Mode,
}

/// A camera's mode as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModeStatus {
    /// The mode in force.
    pub current: Mode,
    /// Where it comes from: `config`, `schedule <name>` or `override`.
    pub source: String,
    /// When the override in force ends, Unix ms (`None` without one, or for one without a limit).
    pub override_until_ms: Option<i64>,
    /// The next change of mode, if one is known.
    pub next: Option<NextMode>,
    /// When the answer must be worked out again (a transition or an override's end), Unix ms.
    #[serde(skip)]
    pub recheck_at_ms: Option<i64>,
}

impl Default for ModeStatus {
    fn default() -> Self {
        ModeStatus {
            current: Mode::Motion,
            source: "config".into(),
            override_until_ms: None,
            next: None,
            recheck_at_ms: None,
        }
    }
}

/// The mode the camera's config alone gives at `t_ms` (its schedule's, or its fixed mode).
pub fn base_mode(cfg: &CameraConfig, schedule: Option<&Schedule>, t_ms: i64) -> Mode {
    match schedule {
        Some(s) => s.mode_at(instant_ms(t_ms)),
        None => cfg.recording.mode,
    }
}

/// The first change of the config's mode after `t_ms`.
fn base_next(schedule: Option<&Schedule>, t_ms: i64) -> Option<NextMode> {
    let t = schedule?.next_transition(instant_ms(t_ms))?;
    Some(NextMode {
        at_ms: t.at.as_millisecond(),
        mode: t.mode,
    })
}

/// The mode in force at `now_ms`. An override that has ended counts as none.
pub fn resolve(
    cfg: &CameraConfig,
    schedule: Option<&Schedule>,
    ovr: Option<&Override>,
    now_ms: i64,
) -> ModeStatus {
    match ovr.filter(|o| o.active(now_ms)) {
        Some(o) => {
            let next = match o.until_ms {
                None => None,
                Some(until) => {
                    let after = base_mode(cfg, schedule, until);
                    if after == o.mode {
                        base_next(schedule, until)
                    } else {
                        Some(NextMode {
                            at_ms: until,
                            mode: after,
                        })
                    }
                }
            };
            ModeStatus {
                current: o.mode,
                source: "override".into(),
                override_until_ms: o.until_ms,
                next,
                recheck_at_ms: o.until_ms,
            }
        }
        None => {
            let next = base_next(schedule, now_ms);
            ModeStatus {
                current: base_mode(cfg, schedule, now_ms),
                source: match &cfg.schedule {
                    Some(name) if schedule.is_some() => format!("schedule {name}"),
                    _ => "config".into(),
                },
                override_until_ms: None,
                next,
                recheck_at_ms: next.map(|n| n.at_ms),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> nvr_config::Config {
        let json = r#"{
          "schedules": {"nights": {"timezone": "UTC", "default": "motion",
            "rules": [{"days": ["mon","tue","wed","thu","fri","sat","sun"], "from": "22:00", "to": "06:00", "mode": "continuous"}]}},
          "cameras": [
            {"id": "fixed", "main_url": "rtsp://h/1", "recording": {"mode": "off"}},
            {"id": "sched", "main_url": "rtsp://h/2", "schedule": "nights"}
          ]}"#;
        nvr_config::parse(json, "t.json".as_ref(), &|_| None).unwrap()
    }

    fn ms(s: &str) -> i64 {
        s.parse::<nvr_schedule::Timestamp>()
            .unwrap()
            .as_millisecond()
    }

    #[test]
    fn config_schedule_and_override_in_order_of_strength() {
        let c = config();
        let (fixed, sched) = (&c.cameras[0], &c.cameras[1]);
        let s = c.schedule_of(sched);
        let noon = ms("2026-06-01T12:00:00Z");
        let ovr = |mode, until_ms| Override {
            mode,
            until_ms,
            set_at_ms: noon,
        };
        // (camera, its schedule, override, now, current, source, override_until, next)
        type Row<'a> = (
            &'a CameraConfig,
            Option<&'a Schedule>,
            Option<Override>,
            i64,
            Mode,
            &'a str,
            Option<i64>,
            Option<(&'a str, Mode)>,
        );
        let table: Vec<Row> = vec![
            (fixed, None, None, noon, Mode::Off, "config", None, None),
            (
                sched,
                s,
                None,
                noon,
                Mode::Motion,
                "schedule nights",
                None,
                Some(("2026-06-01T22:00:00Z", Mode::Continuous)),
            ),
            (
                sched,
                s,
                None,
                ms("2026-06-01T23:00:00Z"),
                Mode::Continuous,
                "schedule nights",
                None,
                Some(("2026-06-02T06:00:00Z", Mode::Motion)),
            ),
            // An override for an hour: the schedule's mode comes back at its end.
            (
                sched,
                s,
                Some(ovr(Mode::Off, Some(noon + 3_600_000))),
                noon,
                Mode::Off,
                "override",
                Some(noon + 3_600_000),
                Some(("2026-06-01T13:00:00Z", Mode::Motion)),
            ),
            // Ending where the schedule gives the same mode: the next change is the schedule's.
            (
                sched,
                s,
                Some(ovr(Mode::Continuous, Some(ms("2026-06-01T23:00:00Z")))),
                noon,
                Mode::Continuous,
                "override",
                Some(ms("2026-06-01T23:00:00Z")),
                Some(("2026-06-02T06:00:00Z", Mode::Motion)),
            ),
            // Without a limit: no next change.
            (
                fixed,
                None,
                Some(ovr(Mode::Continuous, None)),
                noon,
                Mode::Continuous,
                "override",
                None,
                None,
            ),
            // Ended: as if there were none.
            (
                fixed,
                None,
                Some(ovr(Mode::Continuous, Some(noon))),
                noon,
                Mode::Off,
                "config",
                None,
                None,
            ),
        ];
        for (n, (cam, sch, o, now, current, source, until, next)) in table.into_iter().enumerate() {
            let got = resolve(cam, sch, o.as_ref(), now);
            assert_eq!(got.current, current, "row {n}");
            assert_eq!(got.source, source, "row {n}");
            assert_eq!(got.override_until_ms, until, "row {n}");
            let next = next.map(|(at, mode)| NextMode {
                at_ms: ms(at),
                mode,
            });
            assert_eq!(got.next, next, "row {n}");
        }
    }
}
