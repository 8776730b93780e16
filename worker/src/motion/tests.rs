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
    let d = Detector::new(cfg(), 640, 360);
    assert_eq!((d.work_w, d.work_h), (178, 100));
    let d = Detector::new(cfg(), 1920, 1080);
    assert_eq!((d.work_w, d.work_h), (178, 100));
    let d = Detector::new(cfg(), 64, 48);
    assert_eq!((d.work_w, d.work_h), (64, 48));
}

#[test]
fn a_moving_box_starts_after_min_frames_and_ends_after_post_motion() {
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
    // min_frames = 3: decided on the third moving frame, stamped with the first.
    assert_eq!((*i, *first_pts), (62, 60));
    assert!(*score >= 2.0);
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
fn a_small_object_still_fires() {
    let mut det = Detector::new(cfg(), W, H);
    // 40×40 px is ~0.7 % of the frame: below the default 2 %, so use 0.5 % as a camera owner would.
    det.cfg.min_area = 0.5;
    let moving = |i: usize| {
        if i >= 30 {
            vec![(50 + i * 3, 200, 40, 40)]
        } else {
            vec![]
        }
    };
    let events = run(&mut det, 60, 4, |_| 100, moving);
    assert!(
        matches!(
            events.first(),
            Some((32, Event::Start { first_pts: 30, .. }))
        ),
        "{events:?}"
    );
}

#[test]
fn something_that_stops_moving_is_absorbed_into_the_background() {
    let mut det = Detector::new(cfg(), W, H);
    // A box appears at frame 30 and stays put (a parked car).
    let parked = |i: usize| {
        if i >= 30 {
            vec![(200, 100, 120, 120)]
        } else {
            vec![]
        }
    };
    let events = run(&mut det, 30 * 60, 4, |_| 100, parked);
    assert!(
        matches!(events.first(), Some((32, Event::Start { .. }))),
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
    // The detector starts mid-motion: a box is in the first frame, moves for 1 s and leaves. Ten
    // seconds later another box starts moving. The first event must end before that and the
    // second must start its own (a ghost of the first box in the background used to keep the
    // first event open for about 13 s, so the second onset was never reported).
    let scene = |i: usize| match i {
        0..30 => vec![(40 + i * 8, 140, 80, 80)],
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
    assert!((332..335).contains(&starts[1]), "{events:?}");
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
    );
    assert_eq!(out, [0, 200, 0, 200]);
    // Blur spreads a single bright pixel over its neighbours.
    let mut img = vec![0u8; 9];
    img[4] = 90;
    let mut blurred = vec![0; 9];
    blur3(&img, 3, 3, &mut blurred);
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
    for (w, h) in [(1, 1), (1, 5), (2, 2), (3, 1), (5, 4), (178, 100), (17, 3)] {
        let src: Vec<u8> = (0..w * h)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let mut fast = vec![0; w * h];
        blur3(&src, w, h, &mut fast);
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
