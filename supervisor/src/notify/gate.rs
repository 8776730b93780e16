//! Which motion events become notifications, pure (no IO; time is the event's own Unix ms): a
//! camera's quiet hours (a schedule whose periods in a mode other than `off` are quiet) and its
//! cooldown (decision 97). Both consumers (MQTT, webhooks) run the same gate over the same notes
//! and judge each event by its start time, so they agree on every event.

use nvr_config::{Config, Schedule};
use nvr_schedule::{instant_ms, Mode};
use std::collections::{HashMap, VecDeque};

/// A camera's notification rule, from its `notify` config.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Quiet while this schedule's mode is not `off`.
    pub quiet: Option<Schedule>,
    /// Motion events starting within this long after the last notified one's start are held.
    pub cooldown_ms: i64,
    /// Unhealthy this long without a break: `camera_down` (webhooks).
    pub down_after_ms: i64,
}

impl Default for Rule {
    fn default() -> Self {
        Rule {
            quiet: None,
            cooldown_ms: 0,
            down_after_ms: 30_000,
        }
    }
}

/// Every camera's rule, in config order (sent to the consumers at start and after a reload).
pub fn rules(config: &Config) -> Vec<(String, Rule)> {
    config
        .cameras
        .iter()
        .map(|c| {
            let n = &c.notify;
            let rule = Rule {
                quiet: n
                    .quiet
                    .as_ref()
                    .and_then(|s| config.schedules.get(s).cloned()),
                cooldown_ms: (n.cooldown_s * 1000.0).round() as i64,
                down_after_ms: (n.down_after_s * 1000.0).round() as i64,
            };
            (c.id.to_string(), rule)
        })
        .collect()
}

/// What becomes of a motion event's notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// It started in the camera's quiet hours (its end follows its start).
    Quiet,
    /// It started within the cooldown after the last notified event of the camera.
    Cooling,
}

/// Events whose start was held, so their end is held too; bounded, as an end may never come.
const HELD_MAX: usize = 1000;

/// The gate: per-camera rules, and what it has let through.
#[derive(Debug, Default)]
pub struct Gate {
    rules: HashMap<String, Rule>,
    /// Per camera: the start (Unix ms) of the last event notified.
    last_start: HashMap<String, i64>,
    /// Held events and why, oldest first.
    held: VecDeque<(String, Verdict)>,
}

impl Gate {
    /// The rules in force from now on (a camera without one is never held).
    pub fn set_rules(&mut self, rules: Vec<(String, Rule)>) {
        self.rules = rules.into_iter().collect();
        self.last_start.retain(|c, _| self.rules.contains_key(c));
    }

    /// The rule of `camera` (the default for an unknown one).
    pub fn rule(&self, camera: &str) -> Rule {
        self.rules.get(camera).cloned().unwrap_or_default()
    }

    /// Judges a motion event's start (`start`: true, at its start `at_ms`) or its end (`start`:
    /// false, judged as its start was).
    pub fn judge(&mut self, camera: &str, event_id: &str, start: bool, at_ms: i64) -> Verdict {
        if !start {
            return match self.held.iter().position(|(id, _)| id == event_id) {
                Some(i) => self.held.remove(i).map_or(Verdict::Send, |(_, v)| v),
                None => Verdict::Send,
            };
        }
        let rule = self.rules.get(camera);
        let quiet = rule
            .and_then(|r| r.quiet.as_ref())
            .is_some_and(|s| s.mode_at(instant_ms(at_ms)) != Mode::Off);
        let cooldown_ms = rule.map_or(0, |r| r.cooldown_ms);
        let verdict = if quiet {
            Verdict::Quiet
        } else {
            match self.last_start.get(camera) {
                Some(&last) if cooldown_ms > 0 && at_ms - last < cooldown_ms => Verdict::Cooling,
                _ => Verdict::Send,
            }
        };
        if verdict == Verdict::Send {
            self.last_start.insert(camera.to_string(), at_ms);
        } else {
            if self.held.len() >= HELD_MAX {
                self.held.pop_front();
            }
            self.held.push_back((event_id.to_string(), verdict));
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nvr_schedule::{parse_day, Rule as ScheduleRule, TimeOfDay};

    /// Quiet 22:00-06:30 local time every Friday night, in Berlin.
    fn nights() -> Schedule {
        Schedule::new(
            Some("Europe/Berlin"),
            Mode::Off,
            vec![ScheduleRule {
                days: vec![parse_day("fri").unwrap()],
                from: TimeOfDay::parse("22:00", false).unwrap(),
                to: TimeOfDay::parse("06:30", false).unwrap(),
                mode: Mode::Motion,
            }],
        )
        .unwrap()
    }

    /// Unix ms of the instants the tables use (as `date -d ... +%s%3N` prints them).
    fn ms(rfc3339: &str) -> i64 {
        match rfc3339 {
            "2026-01-09T20:59:59.999Z" => 1767992399999,
            "2026-01-09T21:00:00Z" => 1767992400000,
            "2026-01-09T23:00:00Z" => 1767999600000,
            "2026-01-10T05:29:59.999Z" => 1768022999999,
            "2026-01-10T05:30:00Z" => 1768023000000,
            "2026-07-10T19:59:59Z" => 1783713599000,
            "2026-07-10T20:00:00Z" => 1783713600000,
            "2026-07-11T04:29:59Z" => 1783744199000,
            "2026-07-11T04:30:00Z" => 1783744200000,
            other => panic!("add {other} to the table"),
        }
    }

    fn gate(rule: Rule) -> Gate {
        let mut g = Gate::default();
        g.set_rules(vec![("a".into(), rule), ("b".into(), Rule::default())]);
        g
    }

    #[test]
    fn quiet_hours_hold_events_that_start_in_them_in_the_schedules_zone() {
        let mut g = gate(Rule {
            quiet: Some(nights()),
            ..Rule::default()
        });
        // 2026-01-09 is a Friday; Berlin is UTC+1 in January: quiet 21:00Z Fri - 05:30Z Sat.
        let table = [
            ("2026-01-09T20:59:59.999Z", Verdict::Send),
            ("2026-01-09T21:00:00Z", Verdict::Quiet),
            ("2026-01-10T05:29:59.999Z", Verdict::Quiet),
            ("2026-01-10T05:30:00Z", Verdict::Send),
            // Summer time (UTC+2): the same wall-clock hours are an hour earlier in UTC.
            ("2026-07-10T19:59:59Z", Verdict::Send),
            ("2026-07-10T20:00:00Z", Verdict::Quiet),
            ("2026-07-11T04:29:59Z", Verdict::Quiet),
            ("2026-07-11T04:30:00Z", Verdict::Send),
        ];
        for (i, (at, expected)) in table.iter().enumerate() {
            let id = format!("e{i}");
            assert_eq!(g.judge("a", &id, true, ms(at)), *expected, "{at}");
            // The end goes as the start went, whenever it comes.
            assert_eq!(
                g.judge("a", &id, false, ms(at) + 3_600_000),
                *expected,
                "{at} end"
            );
        }
        // Another camera without quiet hours is never held.
        assert_eq!(
            g.judge("b", "x", true, ms("2026-01-09T23:00:00Z")),
            Verdict::Send
        );
        // A camera the gate does not know (not configured yet) is never held either.
        assert_eq!(
            g.judge("new", "y", true, ms("2026-01-09T23:00:00Z")),
            Verdict::Send
        );
    }

    #[test]
    fn a_cooldown_counts_from_the_last_notified_start_per_camera() {
        let mut g = gate(Rule {
            cooldown_ms: 60_000,
            ..Rule::default()
        });
        assert_eq!(g.judge("a", "e1", true, 0), Verdict::Send);
        assert_eq!(g.judge("b", "f1", true, 1_000), Verdict::Send, "per camera");
        assert_eq!(g.judge("b", "f2", true, 2_000), Verdict::Send, "b has none");
        assert_eq!(g.judge("a", "e2", true, 59_999), Verdict::Cooling);
        assert_eq!(g.judge("a", "e1", false, 60_500), Verdict::Send);
        assert_eq!(g.judge("a", "e2", false, 61_000), Verdict::Cooling);
        // Held starts do not extend it: 60 s after e1, not after e2.
        assert_eq!(g.judge("a", "e3", true, 60_000), Verdict::Send);
        assert_eq!(g.judge("a", "e4", true, 119_999), Verdict::Cooling);
        assert_eq!(g.judge("a", "e5", true, 120_000), Verdict::Send);
        // A held start's end is held however late it comes.
        assert_eq!(g.judge("a", "e4", false, 130_000), Verdict::Cooling);
    }

    #[test]
    fn quiet_events_do_not_start_a_cooldown_and_rules_change_in_place() {
        let mut always_quiet = Schedule::new(Some("UTC"), Mode::Motion, vec![]).unwrap();
        let mut g = gate(Rule {
            quiet: Some(always_quiet.clone()),
            cooldown_ms: 60_000,
            ..Rule::default()
        });
        assert_eq!(g.judge("a", "e1", true, 0), Verdict::Quiet);
        // The quiet hours end (a reload): the next event goes, the quiet one did not cool it.
        always_quiet = Schedule::new(Some("UTC"), Mode::Off, vec![]).unwrap();
        g.set_rules(vec![(
            "a".into(),
            Rule {
                quiet: Some(always_quiet),
                cooldown_ms: 60_000,
                ..Rule::default()
            },
        )]);
        assert_eq!(g.judge("a", "e2", true, 1_000), Verdict::Send);
        assert_eq!(g.judge("a", "e1", false, 2_000), Verdict::Quiet);
        assert_eq!(g.judge("a", "e3", true, 30_000), Verdict::Cooling);
        // Bounded: the oldest held end is forgotten first (and would then be sent).
        for i in 0..HELD_MAX {
            g.judge("a", &format!("h{i}"), true, 40_000);
        }
        assert_eq!(g.judge("a", "e3", false, 50_000), Verdict::Send);
        assert_eq!(g.judge("a", "h999", false, 50_000), Verdict::Cooling);
    }
}
