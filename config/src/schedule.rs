//! Reading `schedules`: named weekly recording schedules, each problem with its JSON path
//! (`schedules.night_watch.rules[1].from`). The engine that answers "which mode, when" is the
//! `nvr-schedule` crate; this module only turns JSON into its types.

use crate::reader::{kind, ObjReader, Problems};
use nvr_schedule::{parse_day, Mode, Rule, Schedule, TimeOfDay};
use serde_json::Value;
use std::collections::BTreeMap;

/// The valid schedules by name, and the names of every schedule written (valid or not), so a
/// camera that names a broken schedule is not reported a second time as naming a missing one.
pub(crate) fn read_schedules(
    value: &Value,
    problems: &mut Problems,
) -> (BTreeMap<String, Schedule>, Vec<String>) {
    let mut out = BTreeMap::new();
    let Value::Object(map) = value else {
        problems.push(
            "schedules",
            format!(
                "expected an object of named schedules {{\"night_watch\": {{...}}}}, found {}",
                kind(value)
            ),
        );
        return (out, Vec::new());
    };
    let mut names = Vec::new();
    for (name, v) in map {
        if name.starts_with('_') {
            continue;
        }
        let path = format!("schedules.{name}");
        let ok_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok_name {
            problems.push(
                &path,
                format!("{name:?} is not a valid schedule name; use 1 to 64 characters from A-Z, a-z, 0-9, _ and -"),
            );
            continue;
        }
        names.push(name.clone());
        if let Some(s) = read_schedule(v, &path, problems) {
            out.insert(name.clone(), s);
        }
    }
    (out, names)
}

fn read_schedule(value: &Value, path: &str, problems: &mut Problems) -> Option<Schedule> {
    let mut obj = ObjReader::new(value, path, problems)?;
    let zone: Option<String> = obj.get(
        "timezone",
        "write an IANA time zone name such as \"Europe/Berlin\"",
        problems,
    );
    let default = match obj.raw("default") {
        None => Some(Mode::Motion),
        Some(v) => read_mode(v, &obj.field_path("default"), problems),
    };
    let rules = match obj.raw("rules") {
        None => Some(Vec::new()),
        Some(Value::Array(items)) => {
            let rules: Vec<Option<Rule>> = items
                .iter()
                .enumerate()
                .map(|(i, r)| read_rule(r, &format!("{path}.rules[{i}]"), problems))
                .collect();
            rules.into_iter().collect()
        }
        Some(other) => {
            problems.push(
                obj.field_path("rules"),
                format!(
                    "expected an array of rules [{{\"days\": [...], \"from\": \"22:00\", \"to\": \"06:30\", \"mode\": \"continuous\"}}], found {}",
                    kind(other)
                ),
            );
            None
        }
    };
    obj.finish(problems);
    let (Some(default), Some(rules)) = (default, rules) else {
        // Still check the zone, so its problem is reported with the rules' in one run.
        if let Err(errors) = Schedule::new(zone.as_deref(), Mode::Motion, Vec::new()) {
            for e in errors {
                problems.push(format!("{path}.timezone"), e.to_string());
            }
        }
        return None;
    };
    match Schedule::new(zone.as_deref(), default, rules) {
        Ok(s) => Some(s),
        Err(errors) => {
            for e in errors {
                let at = match e.rule() {
                    Some(i) => format!("{path}.rules[{i}]"),
                    None => format!("{path}.timezone"),
                };
                problems.push(at, e.to_string());
            }
            None
        }
    }
}

fn read_mode(value: &Value, path: &str, problems: &mut Problems) -> Option<Mode> {
    let parsed = match value {
        Value::String(s) => Mode::parse(s),
        other => Err(format!(
            "expected a string, found {}; write \"off\", \"motion\" or \"continuous\"",
            kind(other)
        )),
    };
    parsed.map_err(|e| problems.push(path, e)).ok()
}

fn read_rule(value: &Value, path: &str, problems: &mut Problems) -> Option<Rule> {
    let mut obj = ObjReader::new(value, path, problems)?;
    let days = match obj.raw("days") {
        Some(Value::Array(items)) => {
            let days: Vec<Option<_>> = items
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let at = format!("{path}.days[{i}]");
                    let parsed = match d {
                        Value::String(s) => parse_day(s),
                        other => Err(format!(
                            "expected a day name such as \"mon\", found {}",
                            kind(other)
                        )),
                    };
                    parsed.map_err(|e| problems.push(at, e)).ok()
                })
                .collect();
            days.into_iter().collect::<Option<Vec<_>>>()
        }
        Some(other) => {
            problems.push(
                obj.field_path("days"),
                format!(
                    "expected a list of days such as [\"mon\", \"tue\"], found {}",
                    kind(other)
                ),
            );
            None
        }
        None => {
            problems.push(
                obj.field_path("days"),
                "missing; write the days the rule applies on, e.g. [\"sat\", \"sun\"]",
            );
            None
        }
    };
    let mut time = |key: &'static str, end_ok: bool| {
        let at = obj.field_path(key);
        match obj.raw(key) {
            Some(Value::String(s)) => TimeOfDay::parse(s, end_ok)
                .map_err(|e| problems.push(&at, e))
                .ok(),
            Some(other) => {
                problems.push(
                    &at,
                    format!("expected a time \"HH:MM\", found {}", kind(other)),
                );
                None
            }
            None => {
                problems.push(&at, "missing; write a time \"HH:MM\"");
                None
            }
        }
    };
    let from = time("from", false);
    let to = time("to", true);
    let mode = match obj.raw("mode") {
        Some(v) => read_mode(v, &obj.field_path("mode"), problems),
        None => {
            problems.push(
                obj.field_path("mode"),
                "missing; write \"off\", \"motion\" or \"continuous\"",
            );
            None
        }
    };
    obj.finish(problems);
    Some(Rule {
        days: days?,
        from: from?,
        to: to?,
        mode: mode?,
    })
}
