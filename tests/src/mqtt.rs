//! A real MQTT broker for the tests (Debian's Mosquitto on a free loopback port, with a password
//! file; killed when dropped, so a failing test stops it too) and a subscriber that records every
//! message it receives with the instant it arrived.

use crate::nvr::{free_port, TempDir};
use anyhow::{bail, Context, Result};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A running Mosquitto. Dropping it kills the broker.
pub struct Mosquitto {
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
}

fn mosquitto_bin(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = PathBuf::from(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    PathBuf::from(name)
}

impl Mosquitto {
    /// Starts a broker that accepts only `user` with `password`, without persistence.
    pub fn start(user: &str, password: &str) -> Result<Mosquitto> {
        let dir = TempDir::new("mosquitto");
        let passwd = dir.path().join("passwd");
        let out = Command::new(mosquitto_bin("mosquitto_passwd"))
            .args(["-b", "-c"])
            .arg(&passwd)
            .args([user, password])
            .output()
            .context("running mosquitto_passwd (scripts/setup.sh installs mosquitto)")?;
        if !out.status.success() {
            bail!(
                "mosquitto_passwd failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let port = free_port();
        std::fs::write(
            dir.path().join("mosquitto.conf"),
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence false\nuser root\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n",
                passwd.display()
            ),
        )?;
        let mut m = Mosquitto {
            child: None,
            port,
            dir,
        };
        m.resume()?;
        Ok(m)
    }

    /// Starts the broker (again, on the same port) and waits until it accepts connections.
    pub fn resume(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("mosquitto.log"))?;
        let child = Command::new(mosquitto_bin("mosquitto"))
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting mosquitto (scripts/setup.sh installs it)")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                bail!("mosquitto did not listen on {}: {}", self.port, self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stops the broker (SIGKILL: clients see the connection drop, as with a crash).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One message a [`Subscriber`] received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub topic: String,
    pub payload: Vec<u8>,
    /// Set for a retained message sent because of the subscription.
    pub retain: bool,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

#[derive(Default)]
struct Log {
    messages: Mutex<Vec<Received>>,
    changed: Condvar,
}

/// A client subscribed to `filter` (again after every reconnect) that records what arrives.
pub struct Subscriber {
    log: Arc<Log>,
    client: Client,
}

impl Subscriber {
    pub fn start(port: u16, user: &str, password: &str, filter: &str) -> Subscriber {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let id = format!(
            "test-sub-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_credentials(user, password)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(8 << 20, 8 << 20);
        let (client, mut connection) = Client::new(opts, 100);
        let log: Arc<Log> = Arc::default();
        let sink = Arc::clone(&log);
        let resubscribe = client.clone();
        let filter = filter.to_string();
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = resubscribe.try_subscribe(filter.as_str(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        sink.messages.lock().unwrap().push(Received {
                            at: Instant::now(),
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                        });
                        sink.changed.notify_all();
                    }
                    Ok(_) => {}
                    Err(rumqttc::ConnectionError::RequestsDone) => return,
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
        Subscriber { log, client }
    }

    /// Publishes `payload` to `topic` (QoS 1, not retained), as a home-automation client would.
    pub fn publish(&self, topic: &str, payload: &str) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .expect("queue a publication");
    }

    pub fn messages(&self) -> Vec<Received> {
        self.log.messages.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.log.messages.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first message from index `since` on that matches `pred`, waiting up to `timeout`.
    pub fn wait_since(
        &self,
        since: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Received) -> bool,
    ) -> Received {
        let deadline = Instant::now() + timeout;
        let mut log = self.log.messages.lock().unwrap();
        loop {
            if let Some(m) = log.iter().skip(since).find(|m| pred(m)) {
                return m.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let last: Vec<String> = log
                    .iter()
                    .rev()
                    .take(8)
                    .map(|m| format!("{} {:.80}", m.topic, m.text()))
                    .collect();
                // Not while holding the lock: the receiving thread would find it poisoned.
                drop(log);
                panic!("no MQTT message {what} within {timeout:?}; last ones: {last:?}");
            }
            log = self.log.changed.wait_timeout(log, left).unwrap().0;
        }
    }

    /// The first message on `topic` with `payload` from index `since` on.
    pub fn wait_for(
        &self,
        since: usize,
        topic: &str,
        payload: &str,
        timeout: Duration,
    ) -> Received {
        self.wait_since(since, &format!("{topic} = {payload}"), timeout, |m| {
            m.topic == topic && m.payload == payload.as_bytes()
        })
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
    }
}
