//! The engine's tables. Expected instants are written in UTC (or with an explicit offset), taken
//! from the zone database by hand (`zdump -v -c 2026,2027 <zone>`), never computed by the code
//! under test.

use super::*;

const ALL: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn rule(days: &[&str], from: &str, to: &str, mode: Mode) -> Rule {
    Rule {
        days: days.iter().map(|d| parse_day(d).unwrap()).collect(),
        from: TimeOfDay::parse(from, false).unwrap(),
        to: TimeOfDay::parse(to, true).unwrap(),
        mode,
    }
}

fn schedule(zone: &str, default: Mode, rules: Vec<Rule>) -> Schedule {
    Schedule::new(Some(zone), default, rules).unwrap()
}

/// Checks `mode_at` at each instant of `table`.
fn check_modes(s: &Schedule, table: &[(&str, Mode)]) {
    for (at, want) in table {
        assert_eq!(s.mode_at(ts(at)), *want, "{} at {at}", s.zone_name());
    }
}

/// Walks `next_transition` from `from` and checks the transitions it finds up to `to`.
fn check_transitions(s: &Schedule, from: &str, to: &str, want: &[(&str, Mode)]) {
    let mut got = Vec::new();
    let mut t = ts(from);
    while let Some(next) = s.next_transition(t) {
        if next.at >= ts(to) {
            break;
        }
        assert!(
            next.at > t,
            "a transition must be after the instant asked about"
        );
        assert_ne!(
            s.mode_at(next.at),
            s.mode_at(t),
            "a transition changes the mode"
        );
        got.push((next.at, next.mode));
        t = next.at;
    }
    let want: Vec<(Timestamp, Mode)> = want.iter().map(|(a, m)| (ts(a), *m)).collect();
    assert_eq!(got, want, "{} from {from}", s.zone_name());
}

#[test]
fn berlin_spring_forward_a_boundary_in_the_gap_takes_effect_when_the_gap_ends() {
    // 2026-03-29: 02:00 CET (01:00Z) jumps to 03:00 CEST. 02:30 does not exist that night.
    let s = schedule(
        "Europe/Berlin",
        Mode::Motion,
        vec![rule(ALL, "02:30", "05:00", Mode::Continuous)],
    );
    check_modes(
        &s,
        &[
            // The night before, an ordinary one: 02:30 CET = 01:30Z to 05:00 CET = 04:00Z.
            ("2026-03-28T01:29:59Z", Mode::Motion),
            ("2026-03-28T01:30:00Z", Mode::Continuous),
            ("2026-03-28T03:59:59Z", Mode::Continuous),
            ("2026-03-28T04:00:00Z", Mode::Motion),
            // The DST night: from the jump (01:00Z = 03:00 CEST) to 05:00 CEST = 03:00Z.
            ("2026-03-29T00:59:59Z", Mode::Motion),
            ("2026-03-29T01:00:00Z", Mode::Continuous),
            ("2026-03-29T02:59:59Z", Mode::Continuous),
            ("2026-03-29T03:00:00Z", Mode::Motion),
            // The night after: 02:30 CEST = 00:30Z.
            ("2026-03-30T00:29:59Z", Mode::Motion),
            ("2026-03-30T00:30:00Z", Mode::Continuous),
        ],
    );
    check_transitions(
        &s,
        "2026-03-28T12:00:00Z",
        "2026-03-30T12:00:00Z",
        &[
            ("2026-03-29T01:00:00Z", Mode::Continuous),
            ("2026-03-29T03:00:00Z", Mode::Motion),
            ("2026-03-30T00:30:00Z", Mode::Continuous),
            ("2026-03-30T03:00:00Z", Mode::Motion),
        ],
    );
}

#[test]
fn berlin_fall_back_a_boundary_in_the_repeated_hour_takes_effect_at_its_first_occurrence() {
    // 2026-10-25: 03:00 CEST (01:00Z) falls back to 02:00 CET; 02:00-03:00 happens twice.
    let s = schedule(
        "Europe/Berlin",
        Mode::Motion,
        vec![
            rule(ALL, "02:30", "04:00", Mode::Continuous),
            rule(&["sun"], "01:00", "02:30", Mode::Off),
        ],
    );
    check_modes(
        &s,
        &[
            // Off from 01:00 CEST = 23:00Z (Saturday) to the first 02:30 (CEST) = 00:30Z.
            ("2026-10-24T22:59:59Z", Mode::Motion),
            ("2026-10-24T23:00:00Z", Mode::Off),
            ("2026-10-25T00:29:59Z", Mode::Off),
            // Continuous from the first 02:30 through the repeated hour to 04:00 CET = 03:00Z.
            ("2026-10-25T00:30:00Z", Mode::Continuous),
            ("2026-10-25T01:30:00Z", Mode::Continuous), // the second 02:30 (CET)
            ("2026-10-25T02:59:59Z", Mode::Continuous),
            ("2026-10-25T03:00:00Z", Mode::Motion),
        ],
    );
    check_transitions(
        &s,
        "2026-10-24T12:00:00Z",
        "2026-10-25T12:00:00Z",
        &[
            ("2026-10-24T23:00:00Z", Mode::Off),
            ("2026-10-25T00:30:00Z", Mode::Continuous),
            ("2026-10-25T03:00:00Z", Mode::Motion),
        ],
    );
}

#[test]
fn new_york_both_dst_days() {
    let s = schedule(
        "America/New_York",
        Mode::Motion,
        vec![
            // Wholly inside the 2026-03-08 gap (02:00 EST = 07:00Z jumps to 03:00 EDT): that
            // night it is empty; other Sundays it runs half an hour.
            rule(&["sun"], "02:00", "02:30", Mode::Off),
            // Ends inside the gap: that night it ends at the jump.
            rule(&["sun"], "01:30", "02:00", Mode::Continuous),
            // Starts inside the repeated hour of 2026-11-01 (01:00-02:00 twice).
            rule(&["sun"], "03:00", "04:00", Mode::Continuous),
        ],
    );
    check_modes(
        &s,
        &[
            // Spring: 01:30 EST = 06:30Z, continuous until the jump at 07:00Z; the off rule vanishes.
            ("2026-03-08T06:29:59Z", Mode::Motion),
            ("2026-03-08T06:30:00Z", Mode::Continuous),
            ("2026-03-08T06:59:59Z", Mode::Continuous),
            // The off rule (02:00-02:30) lies wholly in the gap: empty that night. The third
            // rule starts at 03:00 EDT, which is the jump itself (07:00Z), and runs to 04:00 EDT
            // = 08:00Z, so continuous goes on without a break.
            ("2026-03-08T07:00:00Z", Mode::Continuous),
            ("2026-03-08T07:15:00Z", Mode::Continuous),
            ("2026-03-08T08:00:00Z", Mode::Motion),
            // A Sunday without a change, for contrast: 02:00-02:30 EST = 07:00Z-07:30Z off.
            ("2026-03-01T07:00:00Z", Mode::Off),
            ("2026-03-01T07:29:59Z", Mode::Off),
            ("2026-03-01T07:30:00Z", Mode::Motion),
            // Fall: 01:30 EDT (first occurrence) = 05:30Z to 02:00 EST = 07:00Z.
            ("2026-11-01T05:29:59Z", Mode::Motion),
            ("2026-11-01T05:30:00Z", Mode::Continuous),
            ("2026-11-01T06:30:00Z", Mode::Continuous), // the second 01:30 (EST)
            ("2026-11-01T06:59:59Z", Mode::Continuous),
            // 02:00-02:30 EST = 07:00Z-07:30Z off.
            ("2026-11-01T07:00:00Z", Mode::Off),
            ("2026-11-01T07:30:00Z", Mode::Motion),
            // 03:00-04:00 EST = 08:00Z-09:00Z.
            ("2026-11-01T08:00:00Z", Mode::Continuous),
            ("2026-11-01T09:00:00Z", Mode::Motion),
        ],
    );
    check_transitions(
        &s,
        "2026-03-08T00:00:00Z",
        "2026-03-08T12:00:00Z",
        &[
            ("2026-03-08T06:30:00Z", Mode::Continuous),
            ("2026-03-08T08:00:00Z", Mode::Motion),
        ],
    );
    check_transitions(
        &s,
        "2026-11-01T00:00:00Z",
        "2026-11-01T12:00:00Z",
        &[
            ("2026-11-01T05:30:00Z", Mode::Continuous),
            ("2026-11-01T07:00:00Z", Mode::Off),
            ("2026-11-01T07:30:00Z", Mode::Motion),
            ("2026-11-01T08:00:00Z", Mode::Continuous),
            ("2026-11-01T09:00:00Z", Mode::Motion),
        ],
    );
}

#[test]
fn lord_howe_half_hour_dst() {
    // 2026-04-05: 02:00 (+11) = 15:00Z on the 4th falls back to 01:30 (+10:30); 01:30-02:00 twice.
    // 2026-10-04: 02:00 (+10:30) = 15:30Z on the 3rd jumps to 02:30 (+11).
    let s = schedule(
        "Australia/Lord_Howe",
        Mode::Motion,
        vec![rule(&["sun"], "01:45", "03:00", Mode::Continuous)],
    );
    check_modes(
        &s,
        &[
            // Fall: the first 01:45 (+11) = 14:45Z to 03:00 (+10:30) = 16:30Z.
            ("2026-04-04T14:44:59Z", Mode::Motion),
            ("2026-04-04T14:45:00Z", Mode::Continuous),
            ("2026-04-04T15:15:00Z", Mode::Continuous), // the second 01:45
            ("2026-04-04T16:29:59Z", Mode::Continuous),
            ("2026-04-04T16:30:00Z", Mode::Motion),
            // Spring: 01:45 (+10:30) = 15:15Z to 03:00 (+11) = 16:00Z.
            ("2026-10-03T15:14:59Z", Mode::Motion),
            ("2026-10-03T15:15:00Z", Mode::Continuous),
            ("2026-10-03T15:59:59Z", Mode::Continuous),
            ("2026-10-03T16:00:00Z", Mode::Motion),
        ],
    );
    // A boundary in the 30-minute gap: 02:15 does not exist on 2026-10-04; it starts at the jump.
    let gap = schedule(
        "Australia/Lord_Howe",
        Mode::Off,
        vec![rule(&["sun"], "02:15", "06:00", Mode::Continuous)],
    );
    check_transitions(
        &gap,
        "2026-10-03T12:00:00Z",
        "2026-10-04T12:00:00Z",
        &[
            ("2026-10-03T15:30:00Z", Mode::Continuous),
            // 06:00 (+11) = 19:00Z.
            ("2026-10-03T19:00:00Z", Mode::Off),
        ],
    );
}

#[test]
fn a_rule_crossing_midnight_on_dst_nights_belongs_to_the_day_it_starts() {
    let s = schedule(
        "Europe/Berlin",
        Mode::Motion,
        vec![rule(&["sat"], "22:00", "06:30", Mode::Continuous)],
    );
    check_transitions(
        &s,
        "2026-03-28T12:00:00Z",
        "2026-03-29T12:00:00Z",
        // Saturday 22:00 CET = 21:00Z to Sunday 06:30 CEST = 04:30Z: 7.5 hours.
        &[
            ("2026-03-28T21:00:00Z", Mode::Continuous),
            ("2026-03-29T04:30:00Z", Mode::Motion),
        ],
    );
    check_transitions(
        &s,
        "2026-10-24T12:00:00Z",
        "2026-10-25T12:00:00Z",
        // Saturday 22:00 CEST = 20:00Z to Sunday 06:30 CET = 05:30Z: 9.5 hours.
        &[
            ("2026-10-24T20:00:00Z", Mode::Continuous),
            ("2026-10-25T05:30:00Z", Mode::Motion),
        ],
    );
    // Sunday is not in its days: Sunday night is the default.
    assert_eq!(s.mode_at(ts("2026-10-25T22:00:00Z")), Mode::Motion);
}

#[test]
fn a_whole_week_of_transitions() {
    // "Continuous at night and all weekend, motion by day", in CEST (+02:00) throughout.
    let s = schedule(
        "Europe/Berlin",
        Mode::Motion,
        vec![
            rule(
                &["mon", "tue", "wed", "thu"],
                "22:00",
                "06:30",
                Mode::Continuous,
            ),
            rule(&["fri"], "22:00", "24:00", Mode::Continuous),
            rule(&["sat", "sun"], "00:00", "24:00", Mode::Continuous),
            rule(&["mon"], "00:00", "06:30", Mode::Continuous),
            rule(&["wed"], "12:00", "13:00", Mode::Off),
        ],
    );
    check_transitions(
        &s,
        "2026-06-01T00:00:00+02:00",
        "2026-06-08T00:00:00+02:00",
        &[
            ("2026-06-01T06:30:00+02:00", Mode::Motion),
            ("2026-06-01T22:00:00+02:00", Mode::Continuous),
            ("2026-06-02T06:30:00+02:00", Mode::Motion),
            ("2026-06-02T22:00:00+02:00", Mode::Continuous),
            ("2026-06-03T06:30:00+02:00", Mode::Motion),
            ("2026-06-03T12:00:00+02:00", Mode::Off),
            ("2026-06-03T13:00:00+02:00", Mode::Motion),
            ("2026-06-03T22:00:00+02:00", Mode::Continuous),
            ("2026-06-04T06:30:00+02:00", Mode::Motion),
            ("2026-06-04T22:00:00+02:00", Mode::Continuous),
            ("2026-06-05T06:30:00+02:00", Mode::Motion),
            // Friday 22:00 to Monday 06:30: one stretch (the rules join at midnights).
            ("2026-06-05T22:00:00+02:00", Mode::Continuous),
        ],
    );
    assert_eq!(
        s.next_transition(ts("2026-06-05T22:00:00+02:00")),
        Some(Transition {
            at: ts("2026-06-08T06:30:00+02:00"),
            mode: Mode::Motion
        })
    );
    let week = s.intervals(
        ts("2026-06-01T00:00:00+02:00"),
        ts("2026-06-08T00:00:00+02:00"),
    );
    assert_eq!(week.len(), 13);
    assert_eq!(week[0].from, ts("2026-06-01T00:00:00+02:00"));
    assert_eq!(
        week.last().map(|i| i.to),
        Some(ts("2026-06-08T00:00:00+02:00"))
    );
    for pair in week.windows(2) {
        assert_eq!(pair[0].to, pair[1].from, "intervals tile the range");
        assert_ne!(
            pair[0].mode, pair[1].mode,
            "adjacent intervals of one mode are merged"
        );
    }
}

#[test]
fn a_schedule_without_changes_has_no_transition() {
    let s = schedule("UTC", Mode::Off, vec![]);
    assert_eq!(s.next_transition(ts("2026-01-01T00:00:00Z")), None);
    assert_eq!(s.mode_at(ts("2026-01-01T00:00:00Z")), Mode::Off);
    let all_day = schedule(
        "UTC",
        Mode::Off,
        vec![rule(ALL, "00:00", "24:00", Mode::Motion)],
    );
    assert_eq!(all_day.next_transition(ts("2026-01-01T00:00:00Z")), None);
    assert_eq!(all_day.mode_at(ts("2026-05-05T05:05:05Z")), Mode::Motion);
    assert_eq!(
        s.intervals(ts("2026-01-02T00:00:00Z"), ts("2026-01-01T00:00:00Z")),
        vec![]
    );
}

#[test]
fn bad_schedules_report_every_problem() {
    // The literal example of the feature request: Friday night reaches into Saturday's all-day rule.
    let errors = Schedule::new(
        Some("UTC"),
        Mode::Motion,
        vec![
            rule(
                &["mon", "tue", "wed", "thu", "fri"],
                "22:00",
                "06:30",
                Mode::Continuous,
            ),
            rule(&["sat", "sun"], "00:00", "24:00", Mode::Off),
        ],
    )
    .unwrap_err();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        vec![
            "rules[1] (sat 00:00-24:00) overlaps rules[0] (fri 22:00-06:30) with another mode; a moment may have one mode only",
        ]
    );
    // Sunday night into Monday overlaps across the week's end.
    let errors = Schedule::new(
        Some("UTC"),
        Mode::Motion,
        vec![
            rule(&["sun"], "23:00", "01:00", Mode::Off),
            rule(&["mon"], "00:30", "02:00", Mode::Continuous),
        ],
    )
    .unwrap_err();
    assert!(
        matches!(
            errors[..],
            [ScheduleError::Overlap {
                rule: 1,
                other: 0,
                ..
            }]
        ),
        "{errors:?}"
    );
    // Adjacent rules are fine.
    assert!(Schedule::new(
        Some("UTC"),
        Mode::Motion,
        vec![
            rule(&["sun"], "23:00", "01:00", Mode::Off),
            rule(&["mon"], "01:00", "02:00", Mode::Off),
        ],
    )
    .is_ok());
    let errors = Schedule::new(
        Some("Mars/Olympus_Mons"),
        Mode::Motion,
        vec![
            rule(&[], "01:00", "02:00", Mode::Off),
            rule(&["mon", "mon"], "03:00", "03:00", Mode::Off),
        ],
    )
    .unwrap_err();
    assert!(
        matches!(errors[0], ScheduleError::UnknownZone { .. }),
        "{errors:?}"
    );
    assert_eq!(errors[1], ScheduleError::NoDays { rule: 0 });
    assert_eq!(
        errors[2],
        ScheduleError::DuplicateDay {
            rule: 1,
            day: "mon"
        }
    );
    assert!(
        matches!(errors[3], ScheduleError::Empty { rule: 1, .. }),
        "{errors:?}"
    );
    assert_eq!(errors.len(), 4);
}

#[test]
fn times_days_and_modes_parse_strictly() {
    for (s, end_ok, want) in [
        ("00:00", false, Some(0)),
        ("23:59", false, Some(1439)),
        ("24:00", true, Some(1440)),
        ("24:00", false, None),
        ("24:01", true, None),
        ("7:00", false, None),
        ("07:60", false, None),
        ("0700", false, None),
        ("07:00:00", false, None),
        ("+7:00", false, None),
        ("", false, None),
    ] {
        assert_eq!(
            TimeOfDay::parse(s, end_ok).ok().map(TimeOfDay::minutes),
            want,
            "{s:?}"
        );
    }
    assert_eq!(parse_day("sun"), Ok(Weekday::Sunday));
    assert!(parse_day("Sun").is_err());
    assert!(parse_day("sunday").is_err());
    assert_eq!(Mode::parse("continuous"), Ok(Mode::Continuous));
    assert!(Mode::parse("always").is_err());
}

#[test]
fn rules_of_one_mode_may_overlap_and_the_engine_takes_their_union() {
    // The feature request's own example: weeknights into the morning, and all weekend. Friday
    // night runs into Saturday, which the weekend rule covers with the same mode.
    let s = Schedule::new(
        Some("Europe/Berlin"),
        Mode::Motion,
        vec![
            rule(
                &["mon", "tue", "wed", "thu", "fri"],
                "22:00",
                "06:30",
                Mode::Continuous,
            ),
            rule(&["sat", "sun"], "00:00", "24:00", Mode::Continuous),
        ],
    )
    .unwrap();
    // Friday 2026-06-05 12:00 local to Monday 2026-06-08 12:00: motion until Friday 22:00, then
    // continuous without a break until Monday 06:30 (the Sunday 22:00 rule does not exist, but
    // Sunday's all-day rule ends at 24:00 and Monday's night rule is Monday 22:00).
    let t = |s: &str| s.parse::<jiff::Zoned>().unwrap().timestamp();
    let got = s.intervals(
        t("2026-06-05T12:00[Europe/Berlin]"),
        t("2026-06-08T12:00[Europe/Berlin]"),
    );
    let want = [
        (t("2026-06-05T12:00[Europe/Berlin]"), Mode::Motion),
        (t("2026-06-05T22:00[Europe/Berlin]"), Mode::Continuous),
        (t("2026-06-08T00:00[Europe/Berlin]"), Mode::Motion),
    ];
    let got: Vec<_> = got.iter().map(|i| (i.from, i.mode)).collect();
    assert_eq!(got, want);
}
