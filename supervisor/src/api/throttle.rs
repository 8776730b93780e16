//! Bounds what login attempts cost, whoever sends them: one Argon2 verification at a time, on one
//! thread, behind a short queue (a full queue is a 429), and per client address one attempt at a
//! time and a growing wait after each failure (also a 429, answered before any hashing).
//!
//! An Argon2 verification with the default parameters takes about 19 MiB and tens of milliseconds
//! of one core; unbounded, 200 parallel attempts took 3.8 GB and both cores.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Verifications that may wait behind the running one.
const QUEUE: usize = 4;
/// Addresses remembered at most; beyond it the one seen longest ago is forgotten.
const MAX_CLIENTS: usize = 10_000;
/// Failures are forgotten after this long without another.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Longest wait after a failure.
const MAX_DELAY: Duration = Duration::from_secs(60);

/// Failures in a row that cost no wait: a typo and a retry with caps lock on are not an attack.
const FREE_FAILURES: u32 = 3;

/// How long a client must wait after its `failures`-th failure in a row: nothing for the first
/// [`FREE_FAILURES`], then 1 s, 2 s, 4 s ... 60 s.
pub fn delay_after(failures: u32) -> Duration {
    match failures.saturating_sub(FREE_FAILURES) {
        0 => Duration::ZERO,
        n => Duration::from_secs(1u64 << (n - 1).min(6)).min(MAX_DELAY),
    }
}

/// Why an attempt is not verified now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This address must wait (after failures, or while its previous attempt runs).
    Wait(Duration),
    /// The verification queue is full.
    Busy,
}

impl Refusal {
    /// Whole seconds for `Retry-After`, at least 1.
    pub fn retry_after_s(self) -> u64 {
        match self {
            Refusal::Wait(d) => d.as_secs() + u64::from(d.subsec_nanos() > 0),
            Refusal::Busy => 1,
        }
        .max(1)
    }
}

#[derive(Debug, Clone, Copy)]
struct Client {
    failures: u32,
    /// No attempt before this.
    not_before: Instant,
    last_seen: Instant,
    in_flight: bool,
}

/// Per-address attempt state: pure bookkeeping on a caller's clock.
#[derive(Debug, Default)]
pub struct Clients {
    by_addr: HashMap<IpAddr, Client>,
}

impl Clients {
    /// Lets `addr` try now (marking its attempt in flight), or says how long it must wait.
    pub fn admit(&mut self, addr: IpAddr, now: Instant) -> Result<(), Refusal> {
        if !self.by_addr.contains_key(&addr) && self.by_addr.len() >= MAX_CLIENTS {
            self.by_addr
                .retain(|_, c| c.in_flight || now.duration_since(c.last_seen) < FORGET_AFTER);
            if self.by_addr.len() >= MAX_CLIENTS {
                let oldest = self
                    .by_addr
                    .iter()
                    .filter(|(_, c)| !c.in_flight)
                    .min_by_key(|(_, c)| c.last_seen)
                    .map(|(a, _)| *a);
                match oldest {
                    Some(a) => {
                        self.by_addr.remove(&a);
                    }
                    None => return Err(Refusal::Busy),
                }
            }
        }
        let c = self.by_addr.entry(addr).or_insert(Client {
            failures: 0,
            not_before: now,
            last_seen: now,
            in_flight: false,
        });
        if now.duration_since(c.last_seen) >= FORGET_AFTER && !c.in_flight {
            c.failures = 0;
        }
        c.last_seen = now;
        if c.in_flight {
            return Err(Refusal::Wait(Duration::from_secs(1)));
        }
        if now < c.not_before {
            return Err(Refusal::Wait(c.not_before - now));
        }
        c.in_flight = true;
        Ok(())
    }

    /// The attempt of `addr` ended: `Some(true)` verified, `Some(false)` failed, `None` not judged
    /// (the client left, or the queue was full). Returns its failures in a row.
    pub fn finish(&mut self, addr: IpAddr, verified: Option<bool>, now: Instant) -> u32 {
        let Some(c) = self.by_addr.get_mut(&addr) else {
            return 0;
        };
        c.in_flight = false;
        c.last_seen = now;
        match verified {
            Some(true) => {
                self.by_addr.remove(&addr);
                return 0;
            }
            Some(false) => {
                c.failures = c.failures.saturating_add(1);
                c.not_before = now + delay_after(c.failures);
            }
            None => {}
        }
        c.failures
    }
}

/// One verification waiting in the queue. It holds its attempt's [`Ticket`], so the address stays
/// "in flight" until the job has left the queue, even if the client hung up: one address can never
/// hold more than one place in the queue.
struct Job {
    hash: String,
    password: String,
    ticket: Ticket,
    reply: oneshot::Sender<(bool, Ticket)>,
}

/// The login throttle: [`Clients`] plus the one verification thread, started at first use.
#[derive(Default)]
pub struct LoginThrottle {
    clients: Arc<Mutex<Clients>>,
    jobs: OnceLock<SyncSender<Job>>,
}

/// An admitted attempt; dropping it unjudged (the client went away) frees its address.
pub struct Ticket {
    clients: Arc<Mutex<Clients>>,
    addr: IpAddr,
    verified: Option<bool>,
}

impl Ticket {
    /// Records the outcome; returns the address's failures in a row.
    pub fn judge(mut self, verified: bool) -> u32 {
        self.verified = Some(verified);
        lock(&self.clients).finish(self.addr, self.verified, Instant::now())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.verified.is_none() {
            lock(&self.clients).finish(self.addr, None, Instant::now());
        }
    }
}

fn lock(m: &Mutex<Clients>) -> std::sync::MutexGuard<'_, Clients> {
    // The bookkeeping stays consistent even if a holder panicked: every update is one assignment.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LoginThrottle {
    /// Admits an attempt from `addr`, or says why not.
    pub fn admit(&self, addr: IpAddr) -> Result<Ticket, Refusal> {
        lock(&self.clients).admit(addr, Instant::now())?;
        Ok(Ticket {
            clients: Arc::clone(&self.clients),
            addr,
            verified: None,
        })
    }

    /// Checks `password` against the Argon2 PHC string `hash` on the verification thread, for the
    /// attempt `ticket`; returns whether it matched and the ticket to judge. `Busy` when the queue
    /// is full.
    pub async fn verify(
        &self,
        ticket: Ticket,
        hash: String,
        password: String,
    ) -> Result<(bool, Ticket), Refusal> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            hash,
            password,
            ticket,
            reply,
        };
        match self.jobs().try_send(job) {
            // The thread always answers a job whose client still waits.
            Ok(()) => answer.await.map_err(|_| Refusal::Busy),
            Err(TrySendError::Full(_)) => Err(Refusal::Busy),
            Err(TrySendError::Disconnected(job)) => Ok((false, job.ticket)),
        }
    }

    fn jobs(&self) -> &SyncSender<Job> {
        self.jobs.get_or_init(|| {
            let (tx, rx) = sync_channel::<Job>(QUEUE);
            let spawned = std::thread::Builder::new()
                .name("login-verify".into())
                .spawn(move || {
                    let mut verifier = crate::api::auth::Verifier::default();
                    for job in rx {
                        // The client hung up while queued: no Argon2 for nobody. Its ticket is
                        // dropped unjudged, which frees its address.
                        if job.reply.is_closed() {
                            continue;
                        }
                        let ok = verifier.verify(&job.hash, &job.password);
                        // A client that hung up during the check still has its attempt counted.
                        if let Err((ok, ticket)) = job.reply.send((ok, job.ticket)) {
                            ticket.judge(ok);
                        }
                    }
                });
            if let Err(e) = spawned {
                // The receiver is gone with the closure: every attempt then fails (never succeeds).
                tracing::error!(error = %e, "cannot start the login verification thread");
            }
            tx
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::SaltString;
    use argon2::{Argon2, PasswordHasher};

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn delays_grow_and_stop_at_a_minute() {
        let secs: Vec<u64> = (0..13).map(|n| delay_after(n).as_secs()).collect();
        assert_eq!(secs, [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(delay_after(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn one_attempt_per_address_at_a_time_and_a_wait_after_each_failure() {
        let t0 = Instant::now();
        let mut c = Clients::default();
        c.admit(A, t0).unwrap();
        assert!(matches!(c.admit(A, t0), Err(Refusal::Wait(_))));
        c.admit(B, t0).unwrap();
        // The first failures are free ...
        for n in 1..=FREE_FAILURES {
            assert_eq!(c.finish(A, Some(false), t0), n);
            c.admit(A, t0).unwrap();
        }
        // ... then each one makes the address wait.
        assert_eq!(c.finish(A, Some(false), t0), FREE_FAILURES + 1);
        assert_eq!(c.admit(A, t0), Err(Refusal::Wait(Duration::from_secs(1))));
        let t1 = t0 + Duration::from_secs(1);
        c.admit(A, t1).unwrap();
        assert_eq!(c.finish(A, Some(false), t1), FREE_FAILURES + 2);
        assert_eq!(
            c.admit(A, t1 + Duration::from_millis(500)),
            Err(Refusal::Wait(Duration::from_millis(1500)))
        );
        // B's right password is not held up by A, and success forgets B's record.
        assert_eq!(c.finish(B, Some(true), t1), 0);
        let t2 = t1 + Duration::from_secs(2);
        c.admit(A, t2).unwrap();
        // An attempt that was never judged costs nothing.
        assert_eq!(c.finish(A, None, t2), FREE_FAILURES + 2);
        c.admit(A, t2).unwrap();
        // Quarter of an hour later the failures are forgotten.
        c.finish(A, None, t2);
        let later = t2 + FORGET_AFTER;
        c.admit(A, later).unwrap();
        assert_eq!(c.finish(A, Some(false), later), 1);
    }

    #[test]
    fn a_client_that_hangs_up_keeps_one_queue_place_until_its_job_is_skipped() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let throttle = LoginThrottle::default();
        // B's check (an expensive hash: about 0.2 s) keeps the one verification thread busy.
        let slow = Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(64 * 1024, 3, 1, None).unwrap(),
        )
        .hash_password(b"b", &SaltString::encode_b64(b"0123456789abcdef").unwrap())
        .unwrap()
        .to_string();
        let b = throttle.admit(B).unwrap();
        let b_check = throttle.verify(b, slow.clone(), "b".into());
        rt.block_on(async {
            tokio::pin!(b_check);
            // Polled once, B's job is queued and taken by the thread.
            let early = tokio::time::timeout(Duration::from_millis(1), &mut b_check).await;
            assert!(early.is_err(), "B's slow check answered within 1 ms");
            // A queues an attempt behind it and hangs up at once.
            let a = throttle.admit(A).unwrap();
            let hung_up = tokio::time::timeout(
                Duration::from_millis(1),
                throttle.verify(a, slow, "x".into()),
            )
            .await;
            assert!(hung_up.is_err(), "A's attempt was answered within 1 ms");
            // Its job still holds A's place: A cannot queue a second one meanwhile.
            assert!(matches!(throttle.admit(A), Err(Refusal::Wait(_))));
            let (ok, ticket) = b_check.await.unwrap();
            assert!(ok);
            ticket.judge(ok);
        });
        // The abandoned job is skipped (no Argon2) and frees A without counting a failure.
        let deadline = Instant::now() + Duration::from_secs(5);
        let a = loop {
            match throttle.admit(A) {
                Ok(t) => break t,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("A still refused: {e:?}"),
            }
        };
        assert_eq!(a.judge(false), 1);
    }

    #[test]
    fn the_table_of_addresses_is_bounded() {
        let t0 = Instant::now();
        let mut c = Clients::default();
        for i in 0..(MAX_CLIENTS as u32 + 10) {
            let addr = IpAddr::V4(std::net::Ipv4Addr::from(i));
            c.admit(addr, t0 + Duration::from_millis(u64::from(i)))
                .unwrap();
            c.finish(addr, Some(false), t0);
        }
        assert!(c.by_addr.len() <= MAX_CLIENTS);
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        assert_eq!(
            Refusal::Wait(Duration::from_millis(1500)).retry_after_s(),
            2
        );
        assert_eq!(Refusal::Wait(Duration::ZERO).retry_after_s(), 1);
        assert_eq!(Refusal::Busy.retry_after_s(), 1);
    }
}
