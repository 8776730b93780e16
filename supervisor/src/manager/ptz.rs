//! PTZ requests waiting for their worker's answer: each is answered exactly once, with the
//! worker's `PtzReply`, with `timeout` after [`ANSWER_WITHIN`], or with `worker_unavailable` as
//! soon as the worker it was sent to is gone. Pure, with the caller's clock.

use nvr_proto::ptz::{PtzAnswer, PtzError, PtzErrorKind};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// What the API gets for a PTZ request.
pub type PtzResult = Result<PtzAnswer, PtzError>;
/// Where the answer goes (`None`: no such camera).
pub type PtzReply = oneshot::Sender<Option<PtzResult>>;

/// How long the API waits for a worker's answer.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// Requests that may wait for one worker at once; more are answered `busy` (the worker's own
/// queue coalesces moves, so a held button needs one or two).
pub const MAX_WAITING: usize = 16;

struct Waiting {
    /// The worker the request was sent to.
    generation: u64,
    deadline: Instant,
    reply: PtzReply,
}

#[derive(Default)]
pub struct Pending {
    requests: BTreeMap<u64, Waiting>,
}

impl Pending {
    /// Requests waiting for worker `generation`.
    pub fn count_for(&self, generation: u64) -> usize {
        self.requests
            .values()
            .filter(|w| w.generation == generation)
            .count()
    }

    pub fn add(&mut self, request_id: u64, generation: u64, now: Instant, reply: PtzReply) {
        let deadline = now + ANSWER_WITHIN;
        self.requests.insert(
            request_id,
            Waiting {
                generation,
                deadline,
                reply,
            },
        );
    }

    /// Passes on the answer to `request_id` from worker `generation`; false when nothing waits
    /// for it (answered already, or the answer came from another worker).
    pub fn answer(&mut self, request_id: u64, generation: u64, result: PtzResult) -> bool {
        match self.requests.get(&request_id) {
            Some(w) if w.generation == generation => {}
            _ => return false,
        }
        if let Some(w) = self.requests.remove(&request_id) {
            let _ = w.reply.send(Some(result));
        }
        true
    }

    /// Answers the requests whose time is up (`timeout`) and those whose worker is gone
    /// (`worker_unavailable`); `alive` says whether a worker generation still runs.
    pub fn expire(&mut self, now: Instant, alive: impl Fn(u64) -> bool) {
        let done: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, w)| now >= w.deadline || !alive(w.generation))
            .map(|(&id, _)| id)
            .collect();
        for id in done {
            let Some(w) = self.requests.remove(&id) else {
                continue;
            };
            let error = if alive(w.generation) {
                PtzError::new(
                    PtzErrorKind::Timeout,
                    format!(
                        "no answer from the camera within {} s",
                        ANSWER_WITHIN.as_secs()
                    ),
                )
            } else {
                PtzError::new(
                    PtzErrorKind::WorkerUnavailable,
                    "the camera's worker stopped before it answered",
                )
            };
            let _ = w.reply.send(Some(Err(error)));
        }
    }

    /// The earliest deadline.
    pub fn next_due(&self) -> Option<Instant> {
        self.requests.values().map(|w| w.deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(rx: &mut oneshot::Receiver<Option<PtzResult>>) -> Option<Result<(), PtzErrorKind>> {
        rx.try_recv()
            .ok()
            .flatten()
            .map(|r| r.map(|_| ()).map_err(|e| e.kind))
    }

    #[test]
    fn each_request_is_answered_once_by_its_worker_by_the_deadline_or_when_the_worker_dies() {
        let t0 = Instant::now();
        let mut p = Pending::default();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        let (tx3, mut rx3) = oneshot::channel();
        p.add(1, 10, t0, tx1);
        p.add(2, 10, t0 + Duration::from_secs(1), tx2);
        p.add(3, 11, t0, tx3);
        assert_eq!((p.count_for(10), p.count_for(11)), (2, 1));
        assert_eq!(p.next_due(), Some(t0 + ANSWER_WITHIN));
        // An answer from another worker generation (a late reply of a dead worker) is not taken.
        assert!(!p.answer(1, 9, Ok(PtzAnswer::Done)));
        assert!(p.answer(1, 10, Ok(PtzAnswer::Done)));
        assert!(!p.answer(1, 10, Ok(PtzAnswer::Done)), "answered once");
        assert_eq!(kind(&mut rx1), Some(Ok(())));
        // Worker 11 died: its request is answered at once; 2 waits on.
        p.expire(t0 + Duration::from_millis(10), |g| g == 10);
        assert_eq!(kind(&mut rx3), Some(Err(PtzErrorKind::WorkerUnavailable)));
        assert_eq!(kind(&mut rx2), None);
        p.expire(t0 + ANSWER_WITHIN, |_| true);
        assert_eq!(kind(&mut rx2), None, "its deadline is a second later");
        p.expire(t0 + Duration::from_secs(1) + ANSWER_WITHIN, |_| true);
        assert_eq!(kind(&mut rx2), Some(Err(PtzErrorKind::Timeout)));
        assert_eq!(p.next_due(), None);
    }
}
