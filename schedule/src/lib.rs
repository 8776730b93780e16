//! Recording schedules: the pure time engine.
//!
//! A [`Schedule`] is a time zone, a default mode and weekly rules (`mon`–`fri` from `22:00` to
//! `06:30`: `continuous`). The engine answers three questions over UTC instants:
//! [`Schedule::mode_at`], [`Schedule::next_transition`] and [`Schedule::intervals`] (the modes over
//! a range, for a week strip). No IO and no clock: every answer is a function of the instant it is
//! asked about, so the engine is tested with tables of instants around daylight-saving changes.
//!
//! Local times become instants through the zone's rules (the IANA database, via jiff):
//! - a rule boundary inside a spring-forward gap (02:30 on the night clocks jump from 02:00 to
//!   03:00) takes effect at the first instant after the gap (the jump itself);
//! - a boundary inside a fall-back hour (02:30 on the night 02:00–03:00 happens twice) takes
//!   effect at its first occurrence.
//!
//! A rule whose `to` is not after its `from` crosses midnight and belongs to the day it starts on.

use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
/// The instant type of the engine's answers (jiff's), so callers need not name jiff themselves.
pub use jiff::Timestamp;
use jiff::ToSpan;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a camera records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Motion,
    Continuous,
    Off,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Off, Mode::Motion, Mode::Continuous];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Motion => "motion",
            Mode::Continuous => "continuous",
            Mode::Off => "off",
        }
    }

    /// Parses `off`, `motion` or `continuous`.
    pub fn parse(s: &str) -> Result<Mode, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!("{s:?} is not a mode; write \"off\", \"motion\" or \"continuous\"")
            })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A time of day in whole minutes, `00:00` to `24:00` (the end of the day, allowed only as `to`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay(u16);

const DAY_MIN: u16 = 24 * 60;
const WEEK_MIN: i32 = 7 * DAY_MIN as i32;

impl TimeOfDay {
    /// Parses `HH:MM`; `24:00` only when `end_of_day_ok`.
    pub fn parse(s: &str, end_of_day_ok: bool) -> Result<TimeOfDay, String> {
        let bad = || {
            format!(
                "{s:?} is not a time of day; write \"HH:MM\" from \"00:00\" to \"23:59\"{}",
                if end_of_day_ok {
                    " (or \"24:00\" for the end of the day)"
                } else {
                    ""
                }
            )
        };
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        match (h, m) {
            (24, 0) if end_of_day_ok => Ok(TimeOfDay(DAY_MIN)),
            (0..=23, 0..=59) => Ok(TimeOfDay(h * 60 + m)),
            _ => Err(bad()),
        }
    }

    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// Parses a day name: `mon`, `tue`, `wed`, `thu`, `fri`, `sat`, `sun`.
pub fn parse_day(s: &str) -> Result<Weekday, String> {
    DAY_NAMES
        .iter()
        .position(|d| *d == s)
        .and_then(|i| Weekday::from_monday_zero_offset(i as i8).ok())
        .ok_or_else(|| {
            format!("{s:?} is not a day; write one of \"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"")
        })
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day_name(d: Weekday) -> &'static str {
    DAY_NAMES[d.to_monday_zero_offset() as usize]
}

/// One weekly rule: on each of `days`, from `from` to `to` (crossing midnight when `to` is not
/// after `from`), record in `mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub days: Vec<Weekday>,
    pub from: TimeOfDay,
    pub to: TimeOfDay,
    pub mode: Mode,
}

impl Rule {
    fn crosses_midnight(&self) -> bool {
        self.to <= self.from
    }

    /// The rule's stretches in minutes of the local week (Monday 00:00 = 0), end exclusive; a
    /// stretch that crosses Sunday midnight ends past [`WEEK_MIN`].
    fn week_minutes(&self) -> impl Iterator<Item = (Weekday, i32, i32)> + '_ {
        self.days.iter().map(|d| {
            let start =
                i32::from(d.to_monday_zero_offset()) * i32::from(DAY_MIN) + i32::from(self.from.0);
            let mut len = i32::from(self.to.0) - i32::from(self.from.0);
            if self.crosses_midnight() {
                len += i32::from(DAY_MIN);
            }
            (*d, start, start + len)
        })
    }
}

/// Why a schedule cannot be used. Config reading turns these into problems with JSON paths.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("{name:?} is not a known IANA time zone ({detail}); write a name such as \"Europe/Berlin\" or \"America/New_York\", or leave timezone out for the host's zone")]
    UnknownZone { name: String, detail: String },
    #[error("the host's time zone cannot be read ({0}); set \"timezone\" to an IANA name such as \"Europe/Berlin\"")]
    NoHostZone(String),
    #[error("rules[{rule}] lists no day; write days such as [\"mon\", \"tue\"]")]
    NoDays { rule: usize },
    #[error("rules[{rule}] lists {day} twice")]
    DuplicateDay { rule: usize, day: &'static str },
    #[error("rules[{rule}] runs from {from} to {from}, which is empty; for a whole day write \"from\": \"00:00\", \"to\": \"24:00\"")]
    Empty { rule: usize, from: TimeOfDay },
    #[error("rules[{rule}] ({day} {from}-{to}) overlaps rules[{other}] ({other_day} {other_from}-{other_to}) with another mode; a moment may have one mode only")]
    Overlap {
        rule: usize,
        day: &'static str,
        from: TimeOfDay,
        to: TimeOfDay,
        other: usize,
        other_day: &'static str,
        other_from: TimeOfDay,
        other_to: TimeOfDay,
    },
}

impl ScheduleError {
    /// The index of the rule at fault, if one is (for the JSON path).
    pub fn rule(&self) -> Option<usize> {
        match self {
            ScheduleError::UnknownZone { .. } | ScheduleError::NoHostZone(_) => None,
            ScheduleError::NoDays { rule }
            | ScheduleError::DuplicateDay { rule, .. }
            | ScheduleError::Empty { rule, .. }
            | ScheduleError::Overlap { rule, .. } => Some(*rule),
        }
    }
}

/// A validated schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    zone_name: String,
    tz: TimeZone,
    default: Mode,
    rules: Vec<Rule>,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.zone_name == other.zone_name
            && self.default == other.default
            && self.rules == other.rules
    }
}

/// A mode change: from `at` on, `mode` is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub at: Timestamp,
    pub mode: Mode,
}

/// A stretch of time with one mode, `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub from: Timestamp,
    pub to: Timestamp,
    pub mode: Mode,
}

/// How far ahead [`Schedule::next_transition`] looks: a week and a day covers every weekly rule,
/// including one that starts on the last day and crosses midnight.
const LOOKAHEAD_DAYS: i64 = 8;

/// An instant from Unix milliseconds, clamped to the range the engine can represent.
pub fn instant_ms(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

impl Schedule {
    /// Validates a schedule: the zone (`None`: the host's), the rules' days, emptiness and overlaps.
    /// Every problem is returned, not only the first.
    pub fn new(
        zone: Option<&str>,
        default: Mode,
        rules: Vec<Rule>,
    ) -> Result<Schedule, Vec<ScheduleError>> {
        let mut errors = Vec::new();
        let tz = match zone {
            Some(name) => TimeZone::get(name)
                .map_err(|e| {
                    errors.push(ScheduleError::UnknownZone {
                        name: name.to_string(),
                        detail: e.to_string(),
                    })
                })
                .ok(),
            None => TimeZone::try_system()
                .map_err(|e| errors.push(ScheduleError::NoHostZone(e.to_string())))
                .ok(),
        };
        for (i, r) in rules.iter().enumerate() {
            if r.days.is_empty() {
                errors.push(ScheduleError::NoDays { rule: i });
            }
            for (j, d) in r.days.iter().enumerate() {
                if r.days[..j].contains(d) {
                    errors.push(ScheduleError::DuplicateDay {
                        rule: i,
                        day: day_name(*d),
                    });
                }
            }
            if r.from == r.to {
                errors.push(ScheduleError::Empty {
                    rule: i,
                    from: r.from,
                });
            }
        }
        if errors.iter().all(|e| e.rule().is_none()) {
            errors.extend(overlaps(&rules));
        }
        match tz {
            Some(tz) if errors.is_empty() => Ok(Schedule {
                zone_name: tz.iana_name().unwrap_or(zone.unwrap_or("host")).to_string(),
                tz,
                default,
                rules,
            }),
            _ => Err(errors),
        }
    }

    /// The zone's IANA name (the host's when the config gave none and the host has a name).
    pub fn zone_name(&self) -> &str {
        &self.zone_name
    }

    pub fn default_mode(&self) -> Mode {
        self.default
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The mode in force at `t`.
    pub fn mode_at(&self, t: Timestamp) -> Mode {
        let end = t.checked_add(1.nanosecond()).unwrap_or(t);
        self.intervals(t, end)
            .first()
            .map_or(self.default, |i| i.mode)
    }

    /// The first change of mode after `t` (strictly), or `None` when the mode never changes.
    pub fn next_transition(&self, t: Timestamp) -> Option<Transition> {
        let end = t.checked_add((LOOKAHEAD_DAYS * 24).hours()).ok()?;
        self.intervals(t, end).get(1).map(|i| Transition {
            at: i.from,
            mode: i.mode,
        })
    }

    /// The modes over `[from, to)`, in order, adjacent stretches of one mode merged. Empty when
    /// `to` is not after `from`.
    pub fn intervals(&self, from: Timestamp, to: Timestamp) -> Vec<Interval> {
        if to <= from {
            return Vec::new();
        }
        let mut occurrences = self.occurrences(from, to);
        occurrences.sort_by_key(|o| o.from);
        let mut out: Vec<Interval> = Vec::new();
        let push = |out: &mut Vec<Interval>, i: Interval| {
            if i.to <= i.from {
                return;
            }
            match out.last_mut() {
                Some(last) if last.mode == i.mode && last.to == i.from => last.to = i.to,
                _ => out.push(i),
            }
        };
        let mut cursor = from;
        for o in occurrences {
            let (start, end) = (o.from.max(cursor), o.to.min(to));
            if end <= start {
                continue;
            }
            if start > cursor {
                push(
                    &mut out,
                    Interval {
                        from: cursor,
                        to: start,
                        mode: self.default,
                    },
                );
            }
            push(
                &mut out,
                Interval {
                    from: start,
                    to: end,
                    mode: o.mode,
                },
            );
            cursor = end;
        }
        push(
            &mut out,
            Interval {
                from: cursor,
                to,
                mode: self.default,
            },
        );
        out
    }

    /// Every rule occurrence that may touch `[from, to)`, as instants (possibly extending past it).
    fn occurrences(&self, from: Timestamp, to: Timestamp) -> Vec<Interval> {
        let first = from
            .to_zoned(self.tz.clone())
            .date()
            .yesterday()
            .unwrap_or(Date::MIN);
        let last = to.to_zoned(self.tz.clone()).date();
        let mut out = Vec::new();
        let mut day = first;
        while day <= last {
            for r in &self.rules {
                if !r.days.contains(&day.weekday()) {
                    continue;
                }
                let start = self.instant(at(day, r.from));
                let end_day = if r.crosses_midnight() {
                    day.tomorrow().ok()
                } else {
                    Some(day)
                };
                let Some(end) = end_day.map(|d| self.instant(at(d, r.to))) else {
                    continue;
                };
                if end > start && end > from && start < to {
                    out.push(Interval {
                        from: start,
                        to: end,
                        mode: r.mode,
                    });
                }
            }
            match day.tomorrow() {
                Ok(d) => day = d,
                Err(_) => break,
            }
        }
        out
    }

    /// The instant a local wall-clock time takes effect: a time in a gap at the end of the gap (the
    /// transition), a time that happens twice at its first occurrence.
    fn instant(&self, local: DateTime) -> Timestamp {
        let ambiguous = self.tz.to_ambiguous_timestamp(local);
        let at = |offset: jiff::tz::Offset| {
            offset
                .to_timestamp(local)
                .unwrap_or(if local.date() <= Date::constant(1970, 1, 1) {
                    Timestamp::MIN
                } else {
                    Timestamp::MAX
                })
        };
        match ambiguous.offset() {
            AmbiguousOffset::Unambiguous { offset } => at(offset),
            // `before` is the earlier offset's reading: the first occurrence.
            AmbiguousOffset::Fold { before, .. } => at(before),
            AmbiguousOffset::Gap { after, .. } => {
                // Read with the later offset, the time falls before the jump; the jump is the
                // zone's next transition from there.
                let early = at(after);
                self.tz
                    .following(early)
                    .next()
                    .map_or(early, |t| t.timestamp())
            }
        }
    }
}

fn at(day: Date, t: TimeOfDay) -> DateTime {
    if t.0 == DAY_MIN {
        day.tomorrow().unwrap_or(day).at(0, 0, 0, 0)
    } else {
        day.at((t.0 / 60) as i8, (t.0 % 60) as i8, 0, 0)
    }
}

/// Every pair of rule stretches with different modes that share a minute of the local week. Rules
/// of one mode may overlap (a weeknight rule running into an all-day weekend rule): they say the
/// same thing, and the engine takes their union.
fn overlaps(rules: &[Rule]) -> Vec<ScheduleError> {
    let stretches: Vec<(usize, Weekday, i32, i32)> = rules
        .iter()
        .enumerate()
        .flat_map(|(i, r)| r.week_minutes().map(move |(d, s, e)| (i, d, s, e)))
        .collect();
    let mut errors = Vec::new();
    for (a, &(i, di, si, ei)) in stretches.iter().enumerate() {
        for &(j, dj, sj, ej) in &stretches[..a] {
            let shared = [-WEEK_MIN, 0, WEEK_MIN]
                .iter()
                .any(|shift| si < ej + shift && sj + shift < ei);
            if shared && rules[i].mode != rules[j].mode {
                errors.push(ScheduleError::Overlap {
                    rule: i,
                    day: day_name(di),
                    from: rules[i].from,
                    to: rules[i].to,
                    other: j,
                    other_day: day_name(dj),
                    other_from: rules[j].from,
                    other_to: rules[j].to,
                });
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests;
