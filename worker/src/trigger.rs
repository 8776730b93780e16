//! When to record: the pure policy that turns motion decisions and MAIN packets into "open a file",
//! "write", "rotate" and "close". No IO and no clock: every input carries its time (the worker's
//! monotonic arrival clock, which SUB frames and MAIN packets share), so the policy is tested with
//! tables.
//!
//! - `motion` mode: a motion start opens a file (its pre-roll comes from the [`crate::preroll`]
//!   buffer), live packets follow until `post_roll_s` after the last moving frame, and never before
//!   the detector has decided the motion is over; motion that starts again before then extends the
//!   same file.
//! - `continuous` mode: always recording.
//! - Either way a file that has run `max_segment_s` is closed at the next keyframe, which opens the
//!   next file, so segments join without a gap.

use nvr_proto::settings::{RecordingMode, RecordingSettings};

/// What to do with the packet just offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Not recording: the packet only goes into the pre-roll buffer.
    Idle,
    /// Open a file with the pre-roll from the keyframe at or before `preroll_from_ns` (the first
    /// keyframe in the buffer if none is that old), then this packet.
    Open { preroll_from_ns: u64 },
    /// Append the packet to the open file.
    Write,
    /// Close the open file, open the next one starting with this packet (a keyframe).
    Rotate,
    /// Close the open file; this packet is not part of it.
    Close,
}

/// Motion as the recorder knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Motion {
    None,
    /// Moving since the first moving frame at `since_ns`.
    Active {
        since_ns: u64,
    },
    /// The detector said motion ended; its last moving frame was at `last_ns`.
    Ended {
        last_ns: u64,
    },
}

#[derive(Debug)]
pub struct Trigger {
    mode: RecordingMode,
    pre_roll_ns: u64,
    post_roll_ns: u64,
    max_segment_ns: u64,
    motion: Motion,
    /// Arrival time of the open file's first live packet; `None` when no file is open.
    file_since_ns: Option<u64>,
}

fn ns(s: f64) -> u64 {
    (s.max(0.0) * 1e9) as u64
}

impl Trigger {
    pub fn new(cfg: &RecordingSettings) -> Self {
        let mut trigger = Trigger {
            mode: cfg.mode,
            pre_roll_ns: 0,
            post_roll_ns: 0,
            max_segment_ns: 0,
            motion: Motion::None,
            file_since_ns: None,
        };
        trigger.set_settings(cfg);
        trigger
    }

    /// Takes new settings in place: the next packet is judged by them (a switch from `continuous`
    /// to `motion` closes the open file unless motion is going on; the other way opens one).
    pub fn set_settings(&mut self, cfg: &RecordingSettings) {
        self.mode = cfg.mode;
        self.pre_roll_ns = ns(cfg.pre_roll_s);
        self.post_roll_ns = ns(cfg.post_roll_s);
        self.max_segment_ns = ns(cfg.max_segment_s);
    }

    /// The first moving frame arrived at `first_frame_ns`.
    pub fn motion_start(&mut self, first_frame_ns: u64) {
        self.motion = match self.motion {
            // Still within the post-roll of earlier motion, or already moving: one continuous event.
            Motion::Active { since_ns } => Motion::Active { since_ns },
            _ => Motion::Active {
                since_ns: first_frame_ns,
            },
        };
    }

    /// The detector decided the motion is over; its last moving frame arrived at `last_moving_ns`.
    pub fn motion_end(&mut self, last_moving_ns: u64) {
        self.motion = Motion::Ended {
            last_ns: last_moving_ns,
        };
    }

    /// Whether a file is open.
    pub fn recording(&self) -> bool {
        self.file_since_ns.is_some()
    }

    /// The file was closed for another reason (a write failed, the stream was lost): forget it, so
    /// a later packet may open the next one.
    pub fn file_closed(&mut self) {
        self.file_since_ns = None;
    }

    /// Whether this packet, arriving at `arrival_ns`, should be in a recording.
    fn wanted(&self, arrival_ns: u64) -> bool {
        match self.mode {
            RecordingMode::Off => false,
            RecordingMode::Continuous => true,
            RecordingMode::Motion => match self.motion {
                Motion::None => false,
                Motion::Active { .. } => true,
                Motion::Ended { last_ns } => arrival_ns < last_ns.saturating_add(self.post_roll_ns),
            },
        }
    }

    /// Decides what to do with a MAIN packet. `can_start` says a file could begin now: the packet is
    /// a keyframe or the pre-roll buffer holds one.
    pub fn packet(&mut self, arrival_ns: u64, key: bool, can_start: bool) -> Action {
        let wanted = self.wanted(arrival_ns);
        match self.file_since_ns {
            None if wanted && can_start => {
                let preroll_from_ns = match (self.mode, self.motion) {
                    (RecordingMode::Motion, Motion::Active { since_ns }) => {
                        since_ns.saturating_sub(self.pre_roll_ns)
                    }
                    // Continuous: nothing before the first keyframe is needed.
                    _ => arrival_ns,
                };
                self.file_since_ns = Some(arrival_ns);
                Action::Open { preroll_from_ns }
            }
            None => Action::Idle,
            Some(_) if !wanted => {
                self.file_since_ns = None;
                if matches!(self.motion, Motion::Ended { .. }) {
                    self.motion = Motion::None;
                }
                Action::Close
            }
            Some(since) if key && arrival_ns.saturating_sub(since) >= self.max_segment_ns => {
                self.file_since_ns = Some(arrival_ns);
                Action::Rotate
            }
            Some(_) => Action::Write,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn cfg(mode: RecordingMode) -> RecordingSettings {
        RecordingSettings {
            mode,
            pre_roll_s: 5.0,
            post_roll_s: 10.0,
            max_segment_s: 60.0,
            keep_main: true,
        }
    }

    /// Offers one packet per second from `from_s` to `to_s` (keyframe every 2 s), returning the
    /// actions that were not `Write`/`Idle`, with their time in seconds.
    fn run(t: &mut Trigger, from_s: u64, to_s: u64) -> Vec<(u64, Action)> {
        (from_s..to_s)
            .map(|s| (s, t.packet(s * S, s % 2 == 0, true)))
            .filter(|(_, a)| !matches!(a, Action::Write | Action::Idle))
            .collect()
    }

    #[test]
    fn motion_opens_with_pre_roll_and_closes_post_roll_after_the_last_moving_frame() {
        let mut t = Trigger::new(&cfg(RecordingMode::Motion));
        assert_eq!(run(&mut t, 0, 20), vec![]);
        t.motion_start(19 * S);
        assert_eq!(
            run(&mut t, 20, 21),
            vec![(
                20,
                Action::Open {
                    preroll_from_ns: 14 * S
                }
            )]
        );
        assert!(t.recording());
        assert_eq!(run(&mut t, 21, 40), vec![]);
        // Last moving frame at 35 s, decided at 40 s: the file runs to 45 s.
        t.motion_end(35 * S);
        assert_eq!(run(&mut t, 40, 50), vec![(45, Action::Close)]);
        assert!(!t.recording());
    }

    #[test]
    fn the_end_is_never_before_the_detector_says_so() {
        let mut c = cfg(RecordingMode::Motion);
        c.post_roll_s = 1.0;
        let mut t = Trigger::new(&c);
        t.motion_start(10 * S);
        assert!(matches!(t.packet(10 * S, true, true), Action::Open { .. }));
        // Last moving frame at 12 s, but the detector only decides at 20 s: nothing closes earlier.
        assert_eq!(run(&mut t, 11, 20), vec![]);
        t.motion_end(12 * S);
        assert_eq!(run(&mut t, 20, 21), vec![(20, Action::Close)]);
    }

    #[test]
    fn new_motion_during_post_roll_extends_the_same_file() {
        let mut t = Trigger::new(&cfg(RecordingMode::Motion));
        t.motion_start(10 * S);
        assert!(matches!(t.packet(10 * S, true, true), Action::Open { .. }));
        t.motion_end(12 * S);
        assert_eq!(run(&mut t, 11, 20), vec![]);
        t.motion_start(20 * S);
        t.motion_end(25 * S);
        assert_eq!(run(&mut t, 20, 40), vec![(35, Action::Close)]);
    }

    #[test]
    fn opening_waits_for_a_keyframe_when_the_buffer_has_none() {
        let mut t = Trigger::new(&cfg(RecordingMode::Motion));
        t.motion_start(10 * S);
        assert_eq!(t.packet(10 * S, false, false), Action::Idle);
        assert_eq!(
            t.packet(11 * S, true, true),
            Action::Open {
                preroll_from_ns: 5 * S
            }
        );
    }

    #[test]
    fn long_recordings_rotate_at_a_keyframe() {
        let mut t = Trigger::new(&cfg(RecordingMode::Continuous));
        // Continuous starts at once (the first keyframe), with no pre-roll.
        assert_eq!(
            run(&mut t, 0, 1),
            vec![(0, Action::Open { preroll_from_ns: 0 })]
        );
        // 60 s segments; 61 is not a keyframe, so the cut waits for 62... but 60 is one.
        assert_eq!(
            run(&mut t, 1, 130),
            vec![(60, Action::Rotate), (120, Action::Rotate)]
        );
        let mut t = Trigger::new(&cfg(RecordingMode::Continuous));
        let mut acts = vec![t.packet(1, true, true)];
        for s in 1..70u64 {
            acts.push(t.packet(s * S, s % 7 == 0, true));
        }
        let rotated_at: Vec<u64> = (1..70u64)
            .zip(&acts[1..])
            .filter(|(_, a)| **a == Action::Rotate)
            .map(|(s, _)| s)
            .collect();
        assert_eq!(rotated_at, vec![63], "first keyframe at or after 60 s");
    }

    #[test]
    fn a_mode_changed_in_place_rules_the_next_packet() {
        let mut t = Trigger::new(&cfg(RecordingMode::Continuous));
        assert!(matches!(t.packet(0, true, true), Action::Open { .. }));
        assert_eq!(t.packet(S, false, true), Action::Write);
        // To motion mode with no motion going on: the open file closes.
        t.set_settings(&cfg(RecordingMode::Motion));
        assert_eq!(t.packet(2 * S, false, true), Action::Close);
        assert_eq!(t.packet(3 * S, true, true), Action::Idle);
        // Back to continuous: the next packet that can start a file opens one.
        t.set_settings(&cfg(RecordingMode::Continuous));
        assert!(matches!(t.packet(4 * S, true, true), Action::Open { .. }));
        // A shorter segment length cuts at the next keyframe past it.
        let mut short = cfg(RecordingMode::Continuous);
        short.max_segment_s = 2.0;
        t.set_settings(&short);
        assert_eq!(t.packet(5 * S, true, true), Action::Write);
        assert_eq!(t.packet(6 * S, true, true), Action::Rotate);
    }

    #[test]
    fn schedule_switches_never_lose_footage() {
        // Motion -> continuous while a motion clip is open: the same file goes on.
        let mut t = Trigger::new(&cfg(RecordingMode::Motion));
        t.motion_start(10 * S);
        assert!(matches!(t.packet(10 * S, true, true), Action::Open { .. }));
        t.set_settings(&cfg(RecordingMode::Continuous));
        t.motion_end(12 * S);
        assert_eq!(run(&mut t, 11, 40), vec![], "no close, no new file");
        // Continuous -> motion: kept open until the motion logic would close it (post-roll
        // after the last moving frame, 10 s).
        t.motion_start(40 * S);
        t.motion_end(45 * S);
        t.set_settings(&cfg(RecordingMode::Motion));
        assert_eq!(run(&mut t, 46, 60), vec![(55, Action::Close)]);
        // Continuous -> motion with motion going on: kept open while it lasts.
        let mut t = Trigger::new(&cfg(RecordingMode::Continuous));
        assert!(matches!(t.packet(0, true, true), Action::Open { .. }));
        t.motion_start(S);
        t.set_settings(&cfg(RecordingMode::Motion));
        assert_eq!(run(&mut t, 2, 30), vec![]);
        // Anything -> off: closed at the next packet, motion or not.
        t.set_settings(&cfg(RecordingMode::Off));
        assert_eq!(t.packet(30 * S, false, true), Action::Close);
        assert_eq!(run(&mut t, 31, 40), vec![]);
        // Off -> motion during motion (onset at 1 s): opens with the pre-roll before the onset,
        // which the buffer kept filling while off.
        t.set_settings(&cfg(RecordingMode::Motion));
        t.motion_start(38 * S);
        assert_eq!(
            t.packet(40 * S, true, true),
            Action::Open { preroll_from_ns: 0 }
        );
    }

    #[test]
    fn off_never_records_and_a_failed_file_is_retried() {
        let mut t = Trigger::new(&cfg(RecordingMode::Off));
        t.motion_start(0);
        assert_eq!(run(&mut t, 0, 10), vec![]);
        let mut t = Trigger::new(&cfg(RecordingMode::Continuous));
        assert!(matches!(t.packet(0, true, true), Action::Open { .. }));
        t.file_closed();
        assert!(matches!(t.packet(S, false, true), Action::Open { .. }));
    }
}
