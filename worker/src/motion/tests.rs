//! Detector tests on synthetic frames: tables, simulated time, no sleeps.

use super::*;

const W: usize = 640;
const H: usize = 360;
const FRAME_NS: u64 = 33_333_333; // 30 fps

/// A grey frame with deterministic pseudo-random noise of ±`noise` and optional bright boxes
/// (x, y, w, h in pixels).
fn frame(seed: u64, noise: u8, level: u8, boxes: &[(usize, usize, usize, usize)]) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    let mut data = vec![level; W * H];
    if noise > 0 {
        for p in data.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n = (state % (2 * u64::from(noise) + 1)) as i32 - i32::from(noise);
            *p = (i32::from(*p) + n).clamp(0, 255) as u8;
        }
    }
    for &(x, y, w, h) in boxes {
        for row in y..(y + h).min(H) {
            for p in &mut data[row * W + x..row * W + (x + w).min(W)] {
                *p = 230;
            }
        }
    }
    data
}

fn luma(data: &[u8]) -> Luma<'_> {
    Luma {
        data,
        stride: W,
        width: W,
        height: H,
    }
}

fn cfg() -> MotionSettings {
    MotionSettings::default()
}

/// Runs `frames` frames; `boxes(i)` gives frame i's boxes; returns (frame index, event) pairs.
fn run(
    det: &mut Detector,
    frames: usize,
    noise: u8,
    level: impl Fn(usize) -> u8,
    boxes: impl Fn(usize) -> Vec<(usize, usize, usize, usize)>,
) -> Vec<(usize, Event)> {
    (0..frames)
        .filter_map(|i| {
            let f = frame(i as u64, noise, level(i), &boxes(i));
            det.process(luma(&f), i as u64 * FRAME_NS, i as i64)
                .event
                .map(|e| (i, e))
        })
        .collect()
}

#[test]
fn working_image_keeps_the_aspect_ratio() {
    for ((w, h), work) in [
        ((640, 360), (192, 108)),
        ((1920, 1080), (192, 108)),
        ((704, 576), (192, 157)),
        ((320, 240), (192, 144)),
        ((64, 48), (64, 48)),
    ] {
        assert_eq!(Detector::new(cfg(), w, h).working_size(), work, "{w}x{h}");
    }
}

#[test]
fn a_moving_box_starts_after_min_motion_and_ends_after_post_motion() {
    let mut det = Detector::new(cfg(), W, H);
    // Static for 60 frames, a 80×80 box moving for 60 frames, then static again for 10 s.
    let moving = |i: usize| {
        if (60..120).contains(&i) {
            vec![(100 + (i - 60) * 6, 140, 80, 80)]
        } else {
            vec![]
        }
    };
    let events = run(&mut det, 120 + 300, 4, |_| 100, moving);
    assert_eq!(events.len(), 2, "{events:?}");
    let (
        i,
        Event::Start {
            first_pts,
            score,
            bbox,
            ..
        },
    ) = &events[0]
    else {
        panic!("{events:?}")
    };
    // min_motion_s = 0.03 s: decided on the second moving frame (33 ms after the first one at
    // 30 fps), stamped with the first.
    assert_eq!((*i, *first_pts), (61, 60));
    assert!(*score > 0.0);
    let b = bbox.unwrap();
    assert!(
        b.x0 > 0.1 && b.x1 < 0.4 && b.y0 > 0.3 && b.y1 < 0.7,
        "{b:?}"
    );
    let (
        j,
        Event::End {
            duration_s,
            peak_score,
            ..
        },
    ) = &events[1]
    else {
        panic!("{events:?}")
    };
    // Ends post_motion_s (5 s = 150 frames) after the last moving frame (119, give or take the
    // frame where the box's trail fades from the background).
    assert!((119 + 150..119 + 150 + 15).contains(j), "ended at {j}");
    assert!(*duration_s > 5.0 && *peak_score >= *score);
}

#[test]
fn sensor_noise_alone_never_fires() {
    let mut det = Detector::new(cfg(), W, H);
    let events = run(&mut det, 900, 12, |_| 100, |_| vec![]);
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn lights_switching_reseeds_instead_of_firing() {
    let mut det = Detector::new(cfg(), W, H);
    let level = |i: usize| {
        if i < 100 {
            60
        } else if i < 200 {
            180
        } else {
            60
        }
    };
    let events = run(&mut det, 300, 4, level, |_| vec![]);
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn a_small_far_object_fires_with_the_defaults_and_a_smaller_one_does_not() {
    // 20×20 px is 3 % of the width (0.17 % of the area): a person far down a driveway.
    for (side, fires) in [(20, true), (40, true), (6, false)] {
        let mut det = Detector::new(cfg(), W, H);
        let moving = |i: usize| {
            if i >= 40 {
                vec![(50 + i * 3, 200, side, side)]
            } else {
                vec![]
            }
        };
        let events = run(&mut det, 80, 4, |_| 100, moving);
        if fires {
            assert!(
                matches!(
                    events.first(),
                    Some((41, Event::Start { first_pts: 40, .. }))
                ),
                "{side} px: {events:?}"
            );
        } else {
            assert!(events.is_empty(), "{side} px: {events:?}");
        }
    }
}

#[test]
fn something_that_stops_moving_is_absorbed_into_the_background() {
    let mut det = Detector::new(cfg(), W, H);
    // A box appears at frame 40 and stays put (a parked car).
    let parked = |i: usize| {
        if i >= 40 {
            vec![(200, 100, 120, 120)]
        } else {
            vec![]
        }
    };
    let events = run(&mut det, 30 * 60, 4, |_| 100, parked);
    assert!(
        matches!(events.first(), Some((41, Event::Start { .. }))),
        "{events:?}"
    );
    assert!(
        matches!(events.get(1), Some((_, Event::End { .. }))),
        "never absorbed: {events:?}"
    );
    assert_eq!(events.len(), 2, "{events:?}");
}

#[test]
fn an_object_in_the_first_frame_leaves_no_ghost_that_swallows_the_next_onset() {
    let mut det = Detector::new(cfg(), W, H);
    // The detector starts mid-motion: a box is in the first frame, moves for 2 s and leaves. Ten
    // seconds later another box starts moving. The first event must end before that and the
    // second must start its own (a ghost of the first box in the background used to keep the
    // first event open for about 13 s, so the second onset was never reported).
    let scene = |i: usize| match i {
        0..60 => vec![(40 + i * 8, 140, 80, 80)],
        330.. => vec![(100 + (i - 330) * 6, 140, 80, 80)],
        _ => vec![],
    };
    let events = run(&mut det, 420, 4, |_| 100, scene);
    let starts: Vec<usize> = events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Start { .. }))
        .map(|(i, _)| *i)
        .collect();
    let first_end = events
        .iter()
        .find(|(_, e)| matches!(e, Event::End { .. }))
        .map(|(i, _)| *i);
    assert!(first_end.is_some_and(|j| j < 330), "{events:?}");
    assert_eq!(starts.len(), 2, "{events:?}");
    assert!((331..334).contains(&starts[1]), "{events:?}");
}

/// The left half of the picture, as a zone or a mask.
fn left_half() -> Vec<Polygon> {
    vec![vec![[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]]
}

/// A box that appears in the right half at frame 30 and moves right.
fn right_box(i: usize) -> Vec<(usize, usize, usize, usize)> {
    if i >= 30 {
        vec![(400 + i, 100, 120, 120)]
    } else {
        vec![]
    }
}

#[test]
fn zones_and_masks_limit_where_motion_counts() {
    // Watch the left half only.
    let left = left_half();
    let left_box = |i: usize| {
        if i >= 30 {
            vec![(50 + i, 100, 120, 120)]
        } else {
            vec![]
        }
    };

    let zoned = MotionSettings {
        zones: left.clone(),
        ..cfg()
    };
    let mut det = Detector::new(zoned.clone(), W, H);
    assert!(
        run(&mut det, 90, 4, |_| 100, right_box).is_empty(),
        "outside the zone fired"
    );
    let mut det = Detector::new(zoned, W, H);
    assert!(
        !run(&mut det, 90, 4, |_| 100, left_box).is_empty(),
        "inside the zone did not fire"
    );

    // The same left half as a mask.
    let masked = MotionSettings {
        masks: left,
        ..cfg()
    };
    let mut det = Detector::new(masked, W, H);
    assert!(
        run(&mut det, 90, 4, |_| 100, left_box).is_empty(),
        "the mask did not hide it"
    );
}

#[test]
fn new_zones_apply_in_place_and_keep_the_background() {
    let left = left_half();
    // Watching the left half, a box on the right goes unseen; once the zone is dropped in place
    // (no new detector, so no re-learning from a first frame), the same box is seen.
    let mut det = Detector::new(
        MotionSettings {
            zones: left,
            ..cfg()
        },
        W,
        H,
    );
    assert!(run(&mut det, 60, 4, |_| 100, |_| vec![]).is_empty());
    det.set_settings(cfg());
    let events: Vec<_> = (60..150)
        .filter_map(|i| {
            let f = frame(i as u64, 4, 100, &right_box(i - 60));
            det.process(luma(&f), i as u64 * FRAME_NS, i as i64)
                .event
                .map(|e| (i, e))
        })
        .collect();
    assert!(
        matches!(events.first(), Some((i, Event::Start { .. })) if (90..95).contains(i)),
        "{events:?}"
    );
}

#[test]
fn stages_downscale_blur_and_polygons() {
    // Downscale averages blocks.
    let src: Vec<u8> = (0..4 * 4)
        .map(|i| if i % 4 < 2 { 0 } else { 200 })
        .collect();
    let mut out = vec![0; 2 * 2];
    downscale(
        Luma {
            data: &src,
            stride: 4,
            width: 4,
            height: 4,
        },
        2,
        2,
        &mut out,
        &mut Scratch::default(),
    );
    assert_eq!(out, [0, 200, 0, 200]);
    // Blur spreads a single bright pixel over its neighbours.
    let mut img = vec![0u8; 9];
    img[4] = 90;
    let mut blurred = vec![0; 9];
    blur3(&img, 3, 3, &mut blurred, &mut Vec::new());
    assert_eq!(blurred, [22, 15, 22, 15, 10, 15, 22, 15, 22]);
    // Point in polygon (a triangle).
    let tri = vec![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]];
    for (x, y, want) in [
        (0.1, 0.1, true),
        (0.9, 0.9, false),
        (0.4, 0.4, true),
        (0.6, 0.6, false),
    ] {
        assert_eq!(inside(&tri, x, y), want, "({x}, {y})");
    }
}

#[test]
fn the_fast_blur_equals_the_plain_average_of_the_neighbours_that_exist() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    // One scratch buffer for every size, as the detector keeps it: what a larger image left in it
    // must not leak into a smaller one.
    let mut hsum = Vec::new();
    for (w, h) in [(1, 1), (1, 5), (178, 100), (2, 2), (3, 1), (5, 4), (17, 3)] {
        let src: Vec<u8> = (0..w * h)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let mut fast = vec![0; w * h];
        blur3(&src, w, h, &mut fast, &mut hsum);
        for y in 0..h {
            for x in 0..w {
                let (mut sum, mut n) = (0u32, 0u32);
                for yy in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                    for xx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                        sum += u32::from(src[yy * w + xx]);
                        n += 1;
                    }
                }
                assert_eq!(u32::from(fast[y * w + x]), sum / n, "{w}×{h} at ({x}, {y})");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The same scene at 5, 15 and 30 fps (and at several sizes): the same decisions at the same times,
// to within one frame interval. One test per rule that involves time.

/// What happens in a scene at time `t` (s): the picture's brightness and the boxes, in fractions of
/// the picture (x, y, side as a fraction of the width).
type Scene = dyn Fn(f64) -> (u8, Vec<(f64, f64, f64)>);

/// Runs `scene` for `seconds` at `fps` on a `w`×`h` stream; returns each decision with the stream
/// time (s) it was made at and, for a start, the time of its first frame.
fn run_at(fps: f64, (w, h): (usize, usize), seconds: f64, scene: &Scene) -> Vec<(f64, Event)> {
    let mut det = Detector::new(cfg(), w, h);
    let frames = (seconds * fps).round() as usize;
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut data = vec![0u8; w * h];
    (0..frames)
        .filter_map(|i| {
            let t = i as f64 / fps;
            let (level, boxes) = scene(t);
            for p in data.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *p = (i32::from(level) + (state % 9) as i32 - 4).clamp(0, 255) as u8;
            }
            for (x, y, side) in boxes {
                let s = (side * w as f64).round() as usize;
                let (x0, y0) = ((x * w as f64) as usize, (y * h as f64) as usize);
                for row in y0..(y0 + s).min(h) {
                    data[row * w + x0.min(w)..row * w + (x0 + s).min(w)].fill(230);
                }
            }
            let l = Luma {
                data: &data,
                stride: w,
                width: w,
                height: h,
            };
            det.process(l, (t * 1e9) as u64, i as i64)
                .event
                .map(|e| (t, e))
        })
        .collect()
}

/// Starts as (first frame s, decided s) and ends as decided s.
fn starts_and_ends(events: &[(f64, Event)]) -> (Vec<(f64, f64)>, Vec<f64>) {
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    for (t, e) in events {
        match e {
            Event::Start { first_frame_ns, .. } => starts.push((*first_frame_ns as f64 / 1e9, *t)),
            Event::End { .. } => ends.push(*t),
        }
    }
    (starts, ends)
}

const RATES: [f64; 3] = [5.0, 15.0, 30.0];

/// A 10 %-wide box that walks across the middle from `from` to `to` seconds.
fn walker(from: f64, to: f64) -> impl Fn(f64) -> (u8, Vec<(f64, f64, f64)>) {
    move |t| {
        let boxes = if (from..to).contains(&t) {
            vec![(0.1 + (t - from) * 0.15, 0.4, 0.1)]
        } else {
            vec![]
        };
        (100, boxes)
    }
}

#[test]
fn min_motion_s_starts_at_the_same_time_at_every_frame_rate() {
    for fps in RATES {
        let (starts, _) = starts_and_ends(&run_at(fps, (W, H), 4.0, &walker(2.0, 4.0)));
        let frame = 1.0 / fps;
        assert_eq!(starts.len(), 1, "{fps} fps: {starts:?}");
        let (first, decided) = starts[0];
        assert!(
            (first - 2.0).abs() < 1e-6,
            "{fps} fps: first frame at {first}"
        );
        // min_motion_s (0.03 s), but at least two frames: the first frame after 2.03 s.
        let expected = 2.0 + (0.03f64).max(frame);
        assert!(
            decided >= expected - 1e-6 && decided < expected + frame,
            "{fps} fps: decided at {decided}, expected {expected}"
        );
    }
}

#[test]
fn post_motion_s_ends_at_the_same_time_at_every_frame_rate() {
    for fps in RATES {
        let (starts, ends) = starts_and_ends(&run_at(fps, (W, H), 12.0, &walker(2.0, 4.0)));
        assert_eq!((starts.len(), ends.len()), (1, 1), "{fps} fps");
        // The last moving frame is the last one before 4 s (plus the frame where the box's trail
        // fades); the end comes post_motion_s (5 s) after it.
        let end = ends[0];
        assert!(
            (9.0 - 1.0 / fps..9.0 + 2.0 / fps + 0.01).contains(&end),
            "{fps} fps: ended at {end}"
        );
    }
}

#[test]
fn a_parked_object_is_absorbed_after_the_same_time_at_every_frame_rate() {
    // A box drives in at 2 s and stops at 2.5 s: still for ABSORB_STILL_S, then post_motion_s.
    let parked = |t: f64| {
        let boxes = if t >= 2.0 {
            vec![(0.1 + (t.min(2.5) - 2.0) * 0.6, 0.4, 0.15)]
        } else {
            vec![]
        };
        (100, boxes)
    };
    let mut ends = Vec::new();
    for fps in RATES {
        let (starts, e) = starts_and_ends(&run_at(fps, (W, H), 14.0, &parked));
        assert_eq!(
            (starts.len(), e.len()),
            (1, 1),
            "{fps} fps: {starts:?} {e:?}"
        );
        ends.push((fps, e[0]));
    }
    // 2.5 s + 3 s (absorbed) + 5 s (post-motion) = 10.5 s, to within a frame or two.
    for (fps, end) in ends {
        assert!(
            (10.5 - 1.0 / fps..10.5 + 2.0 / fps + 0.01).contains(&end),
            "{fps} fps: ended at {end}"
        );
    }
}

#[test]
fn the_background_follows_a_slow_lighting_ramp_at_every_frame_rate() {
    // Dusk: the whole picture darkens by 100 levels over 20 s. Nothing moves.
    let dusk = |t: f64| ((180.0 - 5.0 * t.min(20.0)) as u8, vec![]);
    for fps in RATES {
        let events = run_at(fps, (W, H), 25.0, &dusk);
        assert!(events.is_empty(), "{fps} fps: {events:?}");
    }
}

#[test]
fn a_lighting_step_never_fires_at_any_frame_rate() {
    // Lights on at 3 s, IR-like flattening at 6 s: brightness steps of the whole picture.
    let steps = |t: f64| {
        let level = if t < 3.0 {
            60
        } else if t < 6.0 {
            170
        } else {
            140
        };
        (level, vec![])
    };
    for fps in RATES {
        let events = run_at(fps, (W, H), 10.0, &steps);
        assert!(events.is_empty(), "{fps} fps: {events:?}");
    }
}

#[test]
fn motion_in_progress_at_start_up_is_decided_after_the_warm_up_at_every_frame_rate() {
    // The worker connects while a box is walking: the first second only teaches the background.
    for fps in RATES {
        let (starts, ends) = starts_and_ends(&run_at(fps, (W, H), 12.0, &walker(0.0, 3.0)));
        assert_eq!((starts.len(), ends.len()), (1, 1), "{fps} fps: {starts:?}");
        let (first, decided) = starts[0];
        assert!(
            (WARMUP_S..WARMUP_S + 2.0 / fps + 0.06).contains(&decided),
            "{fps} fps: decided at {decided} (first {first})"
        );
    }
}

#[test]
fn min_object_is_a_share_of_the_width_at_every_size() {
    // A 3 %-wide object fires at every size; a 1 %-wide one at none.
    for size in [(320, 240), (640, 360), (704, 576), (1280, 720)] {
        for (side, fires) in [(0.03, true), (0.01, false)] {
            let scene = move |t: f64| {
                let boxes = if t >= 2.0 {
                    vec![(0.1 + (t - 2.0) * 0.3, 0.5, side)]
                } else {
                    vec![]
                };
                (100, boxes)
            };
            let (starts, _) = starts_and_ends(&run_at(15.0, size, 3.0, &scene));
            assert_eq!(!starts.is_empty(), fires, "{size:?}, {side}: {starts:?}");
            if fires {
                assert!((starts[0].0 - 2.0).abs() < 1e-6, "{size:?}: {starts:?}");
            }
        }
    }
}

#[test]
fn events_name_the_zones_their_objects_touch() {
    let right = vec![vec![[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]];
    let settings = MotionSettings {
        zones: [left_half(), right].concat(),
        zone_names: vec!["drive way".into(), "porch".into()],
        post_motion_s: 1.0,
        ..cfg()
    };
    let mut det = Detector::new(settings.clone(), W, H);
    // A box in the left half from frame 30; a second one joins in the right half from frame 60.
    let boxes = |i: usize| {
        let mut b = Vec::new();
        if (30..90).contains(&i) {
            b.push((50 + i, 100, 80, 80));
        }
        if (60..90).contains(&i) {
            b.push((400 + i, 200, 80, 80));
        }
        b
    };
    let mut events = Vec::new();
    let mut levels_at_45 = Vec::new();
    for i in 0..150 {
        let f = frame(i as u64, 4, 100, &boxes(i));
        let r = det.process(luma(&f), i as u64 * FRAME_NS, i as i64);
        if i == 45 {
            levels_at_45 = det.zone_levels().to_vec();
            assert_eq!(r.zones, 0b01, "frame 45's object is in the left zone only");
        }
        events.extend(r.event);
    }
    assert!(
        levels_at_45[0] > 0.5 && levels_at_45[1] == 0.0,
        "{levels_at_45:?}"
    );
    match events.as_slice() {
        [Event::Start { zones: start, .. }, Event::End { zones: end, .. }] => {
            assert_eq!(zone_names(&settings, *start), ["drive way"]);
            assert_eq!(zone_names(&settings, *end), ["drive way", "porch"]);
        }
        other => panic!("expected one event, got {other:?}"),
    }
    // Unnamed zones are called by their position; no zones, no names.
    let unnamed = MotionSettings {
        zone_names: Vec::new(),
        ..settings
    };
    assert_eq!(zone_names(&unnamed, 0b10), ["zone2"]);
    assert!(zone_names(&cfg(), 0).is_empty());
}
