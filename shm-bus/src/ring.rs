//! The ring protocol, free of any OS code: the per-slot seqlock a frame is published and read
//! under, and the waiter handshake that lets the writer skip the wake-up syscall when nobody waits.
//!
//! It works on the [`layout`](crate::layout) structs wherever they live: in a shared mapping in
//! production, in ordinary memory in the `loom` model tests at the bottom of this file.
//!
//! Publishing frame `seq` into its slot (writer):
//! 1. `state = 2*seq - 1` (odd), release fence; 2. write pixels and metadata;
//! 3. `state = 2*seq` (release); 4. `newest_seq = seq` (release); 5. bump `wake_seq` and, if
//!    `waiters != 0`, FUTEX_WAKE.
//!
//! Reading the newest frame (reader): `seq = newest_seq` (acquire); `state` (acquire) must be
//! `2*seq`; read metadata and pixels; acquire fence; `state` must still be `2*seq`. Otherwise the
//! writer lapped the reader and the copy is dropped. Nothing a reader does can make the writer wait.

use crate::frame::FrameMeta;
use crate::layout::{Control, Header, SlotMeta};
use crate::sync::{fence, Ordering};

/// Slot state while frame `seq` (≥ 1) is being written.
fn writing(seq: u64) -> u64 {
    published(seq).wrapping_sub(1)
}

/// Slot state once frame `seq` is published. Wrapping: a reader takes `seq` from the shared
/// header, which a corrupted or hostile segment may set to anything (no writer gets near 2^63).
fn published(seq: u64) -> u64 {
    seq.wrapping_mul(2)
}

impl SlotMeta {
    /// Marks the slot as being overwritten with frame `seq`, before any byte of it changes.
    pub(crate) fn begin_write(&self, seq: u64) {
        self.state.store(writing(seq), Ordering::Relaxed);
        // Keeps the odd store ahead of the pixel stores that follow: a reader that sees any new
        // pixel byte and then fences sees the odd (or a later) state.
        fence(Ordering::Release);
    }

    /// Publishes frame `seq`'s metadata and makes the slot readable again.
    pub(crate) fn end_write(&self, meta: &FrameMeta) {
        let r = Ordering::Relaxed;
        self.pts.store(meta.pts, r);
        self.arrival_ns.store(meta.arrival_ns, r);
        self.decoded_ns.store(meta.decoded_ns, r);
        self.state.store(published(meta.seq), Ordering::Release);
    }

    /// Starts reading frame `seq`: false if the slot does not (or no longer) hold it.
    pub(crate) fn begin_read(&self, seq: u64) -> bool {
        self.state.load(Ordering::Acquire) == published(seq)
    }

    /// The metadata of frame `seq`; only valid if [`end_read`](Self::end_read) says so.
    pub(crate) fn meta(&self, seq: u64) -> FrameMeta {
        let r = Ordering::Relaxed;
        FrameMeta {
            seq,
            pts: self.pts.load(r),
            arrival_ns: self.arrival_ns.load(r),
            decoded_ns: self.decoded_ns.load(r),
        }
    }

    /// Ends a read of frame `seq`: true if nothing was overwritten since `begin_read`.
    pub(crate) fn end_read(&self, seq: u64) -> bool {
        // Keeps every load of the frame ahead of the re-check below.
        fence(Ordering::Acquire);
        self.state.load(Ordering::Relaxed) == published(seq)
    }

    /// Forgets whatever the slot held (used while configuring, under the header seqlock).
    pub(crate) fn clear(&self) {
        self.state.store(0, Ordering::Relaxed);
    }
}

impl Header {
    /// Announces frame `seq` (already published in its slot) as the newest.
    pub(crate) fn set_newest(&self, seq: u64) {
        self.newest_seq.store(seq, Ordering::Release);
    }

    /// The newest published frame's seq, 0 if none.
    pub(crate) fn newest(&self) -> u64 {
        self.newest_seq.load(Ordering::Acquire)
    }

    /// The current generation (odd: configuring or closed).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

impl Control {
    /// Writer, after publishing: bumps the futex word. Returns whether anyone may be waiting, i.e.
    /// whether a FUTEX_WAKE is needed.
    ///
    /// With [`register_waiter`](Self::register_waiter) this is a store-buffer (Dekker) pair: both
    /// sides store, issue a `SeqCst` fence, then load the other's word, so at least one of them
    /// sees the other: the writer sees the waiter (and wakes it), or the waiter sees the new
    /// `wake_seq` (and FUTEX_WAIT returns at once because the word no longer holds the expected
    /// value). The fences are what makes this hold (SeqCst accesses alone are enough in C++20's
    /// model too, but loom models only the fences faithfully); on x86 the fence after a locked
    /// RMW costs a few cycles.
    pub(crate) fn announce(&self) -> bool {
        self.wake_seq.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.waiters.load(Ordering::SeqCst) != 0
    }

    /// Reader, before sleeping: counts itself as a waiter and returns the futex value to wait on.
    /// The caller must re-check for news after this and before sleeping.
    pub(crate) fn register_waiter(&self) -> u32 {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.wake_seq.load(Ordering::SeqCst)
    }

    /// Reader, after waking: uncounts itself (never below zero, should the count have been reset).
    pub(crate) fn unregister_waiter(&self) {
        let _ = self
            .waiters
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// The futex word's current value (for readers that can't register, and polling).
    pub(crate) fn wake_seq(&self) -> u32 {
        self.wake_seq.load(Ordering::SeqCst)
    }
}

#[cfg(loom)]
mod loom_tests {
    //! Model checks of the protocol: `RUSTFLAGS="--cfg loom" cargo test --release -p shm-bus --lib loom`.

    use super::*;
    use crate::sync::{AtomicI64, AtomicU32, AtomicU64};
    use loom::sync::Arc;
    use loom::thread;

    fn slot() -> SlotMeta {
        SlotMeta {
            state: AtomicU64::new(0),
            pts: AtomicI64::new(0),
            arrival_ns: AtomicU64::new(0),
            decoded_ns: AtomicU64::new(0),
            _reserved: [0; 4],
        }
    }

    /// `N_SLOTS` slots of two data words each (the "pixels", relaxed atomics so loom sees every
    /// race) and the newest-frame index.
    struct Ring {
        slots: Vec<SlotMeta>,
        data: Vec<[AtomicU64; 2]>,
        newest: AtomicU64,
    }

    impl Ring {
        fn new(n_slots: usize) -> Ring {
            Ring {
                slots: (0..n_slots).map(|_| slot()).collect(),
                data: (0..n_slots)
                    .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                    .collect(),
                newest: AtomicU64::new(0),
            }
        }

        fn idx(&self, seq: u64) -> usize {
            (seq % self.slots.len() as u64) as usize
        }

        /// Publishes frame `seq` like `Writer::publish`.
        fn publish(&self, seq: u64) {
            let idx = self.idx(seq);
            self.slots[idx].begin_write(seq);
            for word in &self.data[idx] {
                word.store(seq, Ordering::Relaxed);
            }
            self.slots[idx].end_write(&FrameMeta {
                seq,
                pts: seq as i64,
                arrival_ns: seq,
                decoded_ns: seq,
            });
            self.newest.store(seq, Ordering::Release);
        }

        /// Reads the newest frame like `Reader::read_latest`; `Some` only if it validated.
        fn read_latest(&self) -> Option<(FrameMeta, [u64; 2])> {
            let seq = self.newest.load(Ordering::Acquire);
            if seq == 0 {
                return None;
            }
            let idx = self.idx(seq);
            let slot = &self.slots[idx];
            if !slot.begin_read(seq) {
                return None;
            }
            let meta = slot.meta(seq);
            let words = [0, 1].map(|i| self.data[idx][i].load(Ordering::Relaxed));
            slot.end_read(seq).then_some((meta, words))
        }
    }

    /// A writer publishing `n_frames` into `n_slots` (so the last ones overwrite slots a reader
    /// may be reading) races a reader making `n_reads` reads: whatever validates is intact.
    fn check_reads(n_slots: usize, n_frames: u64, n_reads: usize, preemption_bound: usize) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(preemption_bound);
        builder.check(move || {
            let ring = Arc::new(Ring::new(n_slots));
            let writer = {
                let ring = ring.clone();
                thread::spawn(move || (1..=n_frames).for_each(|seq| ring.publish(seq)))
            };
            for _ in 0..n_reads {
                if let Some((meta, words)) = ring.read_latest() {
                    assert_eq!(words, [meta.seq; 2], "torn pixels passed validation");
                    assert_eq!(meta.pts, meta.seq as i64, "torn metadata passed validation");
                }
            }
            writer.join().unwrap();
            let (meta, words) = ring.read_latest().expect("a quiescent ring reads cleanly");
            assert_eq!((meta.seq, words), (n_frames, [n_frames; 2]));
        });
    }

    // Sizes: CI runs these (scripts/test.sh), so each is bounded to finish in under a minute on a
    // shared 2-core machine. One slot, three frames, two reads with 4 preemptions took 195 s; with
    // 3 it takes about 35 s. Two slots with 4 preemptions take about 3 s. Both catch a missing
    // fence in `end_read`.

    #[test]
    fn loom_validated_reads_are_never_torn_one_slot() {
        // Frames 2 and 3 overwrite the slot the two reads may be in.
        check_reads(1, 3, 2, 3);
    }

    #[test]
    fn loom_validated_reads_are_never_torn_two_slots() {
        // Frame 3 overwrites frame 1's slot while a reader may still be in it.
        check_reads(2, 3, 2, 4);
    }

    #[test]
    fn loom_a_waiter_is_never_missed() {
        loom::model(|| {
            let control = Arc::new(Control {
                wake_seq: AtomicU32::new(0),
                waiters: AtomicU32::new(0),
                _reserved: [0; 7],
            });
            let writer = {
                let control = control.clone();
                thread::spawn(move || control.announce())
            };
            // The reader's side: register, then the value FUTEX_WAIT will compare against.
            let expected = control.register_waiter();
            let writer_wakes = writer.join().unwrap();
            // A reader that missed the bump (expected 0) may sleep on it, so the writer must have
            // seen it waiting and woken it; otherwise that is a lost wake-up.
            assert!(expected != 0 || writer_wakes, "lost wake-up");
            control.unregister_waiter();
        });
    }
}
