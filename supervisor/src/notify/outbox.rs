//! What the MQTT publisher owes the broker, pure (no IO, no clock): the retained state topics (the
//! latest value of each, re-published on every connect), the event messages waiting to go out
//! (bounded: at the bound the oldest is dropped and counted), and the messages handed to the client
//! that the broker has not acknowledged yet (given back to the queue when the connection drops, so
//! an event is delivered at least once; its `id` lets a subscriber drop a repeat).

use std::collections::{BTreeMap, VecDeque};

/// Event messages kept while the broker is away, at most. One motion event is three messages
/// (`new`, its snapshot, `end`), so this holds a few hundred events: hours of a busy camera.
pub const EVENTS_MAX: usize = 1000;
/// Messages handed to the client and not yet acknowledged, at most (the client's own queue).
pub const IN_FLIGHT_MAX: usize = 64;

/// One MQTT publication.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    /// A state message (retained, superseded by the next value, re-published at every connect) or
    /// an event (delivered once, queued while the broker is away).
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    State,
    Event,
}

/// A message handed to the client: its packet id once the client has sent it.
#[derive(Debug)]
struct InFlight {
    message: Message,
    pkid: Option<u16>,
}

#[derive(Debug, Default)]
pub struct Outbox {
    /// The latest value of every state topic.
    states: BTreeMap<String, Vec<u8>>,
    /// Waiting to be handed to the client, in order.
    queue: VecDeque<Message>,
    /// Handed to the client, in the order it sends them, until acknowledged.
    in_flight: VecDeque<InFlight>,
    connected: bool,
    /// Events dropped at the bound since the start.
    pub dropped: u64,
    /// Messages the broker acknowledged since the start.
    pub delivered: u64,
}

impl Outbox {
    /// Sets a state topic; it goes out (now, or at the next connect) only when it changed.
    pub fn set_state(&mut self, topic: String, payload: Vec<u8>) {
        if self.states.get(&topic) == Some(&payload) {
            return;
        }
        self.states.insert(topic.clone(), payload.clone());
        if self.connected {
            self.queue.push_back(Message {
                topic,
                payload,
                retain: true,
                kind: Kind::State,
            });
        }
    }

    /// Queues an event message; at [`EVENTS_MAX`] waiting events the oldest waiting one is dropped.
    pub fn push_event(&mut self, topic: String, payload: Vec<u8>, retain: bool) {
        let waiting = self.events_waiting();
        if waiting >= EVENTS_MAX {
            if let Some(i) = self.queue.iter().position(|m| m.kind == Kind::Event) {
                self.queue.remove(i);
                self.dropped += 1;
            }
        }
        self.queue.push_back(Message {
            topic,
            payload,
            retain,
            kind: Kind::Event,
        });
    }

    /// Event messages not yet acknowledged (waiting or in flight).
    pub fn events_waiting(&self) -> usize {
        self.queue.iter().filter(|m| m.kind == Kind::Event).count()
            + self
                .in_flight
                .iter()
                .filter(|m| m.message.kind == Kind::Event)
                .count()
    }

    /// The broker accepted the connection: every state goes out again (first, after the
    /// `first` messages such as the availability topic), then the waiting events.
    pub fn connected(&mut self, first: Vec<Message>) {
        self.lost();
        self.connected = true;
        let states = self.states.iter().map(|(t, p)| Message {
            topic: t.clone(),
            payload: p.clone(),
            retain: true,
            kind: Kind::State,
        });
        let front: Vec<Message> = first.into_iter().chain(states).collect();
        for m in front.into_iter().rev() {
            self.queue.push_front(m);
        }
    }

    /// The connection dropped: unacknowledged events wait again (in their order, ahead of the
    /// queue); states need not, the next connect sends them all.
    pub fn lost(&mut self) {
        self.connected = false;
        let back: Vec<Message> = self.in_flight.drain(..).map(|f| f.message).collect();
        for m in back.into_iter().rev() {
            self.queue.push_front(m);
        }
        self.queue.retain(|m| m.kind == Kind::Event);
    }

    /// The next message to hand to the client, if connected and the client has room.
    pub fn next_message(&mut self) -> Option<&Message> {
        if !self.connected || self.in_flight.len() >= IN_FLIGHT_MAX {
            return None;
        }
        self.queue.front()
    }

    /// The message [`Outbox::next_message`] returned was accepted by the client.
    pub fn handed(&mut self) {
        if let Some(message) = self.queue.pop_front() {
            self.in_flight.push_back(InFlight {
                message,
                pkid: None,
            });
        }
    }

    /// The client sent a publication with this packet id: the oldest handed message without one.
    pub fn sent(&mut self, pkid: u16) {
        if let Some(f) = self.in_flight.iter_mut().find(|f| f.pkid.is_none()) {
            f.pkid = Some(pkid);
        }
    }

    /// The broker acknowledged this packet id.
    pub fn acked(&mut self, pkid: u16) {
        if let Some(i) = self.in_flight.iter().position(|f| f.pkid == Some(pkid)) {
            self.in_flight.remove(i);
            self.delivered += 1;
        }
    }

    /// Messages waiting or in flight (for `/status`).
    pub fn pending(&self) -> usize {
        self.queue.len() + self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(o: &mut Outbox, first_pkid: u16) -> Vec<String> {
        let mut out = Vec::new();
        let mut pkid = first_pkid;
        while let Some(m) = o.next_message() {
            out.push(format!(
                "{}={}",
                m.topic,
                String::from_utf8_lossy(&m.payload)
            ));
            o.handed();
            o.sent(pkid);
            pkid += 1;
        }
        out
    }

    fn avail() -> Vec<Message> {
        vec![Message {
            topic: "nvr/available".into(),
            payload: b"online".to_vec(),
            retain: true,
            kind: Kind::State,
        }]
    }

    #[test]
    fn states_are_kept_while_away_and_republished_first_at_connect() {
        let mut o = Outbox::default();
        o.set_state("nvr/a/motion".into(), b"ON".to_vec());
        o.push_event("nvr/events".into(), b"new".to_vec(), false);
        o.set_state("nvr/a/motion".into(), b"OFF".to_vec());
        assert_eq!(
            o.next_message(),
            None,
            "nothing goes out before the connect"
        );
        o.connected(avail());
        assert_eq!(
            drain(&mut o, 1),
            ["nvr/available=online", "nvr/a/motion=OFF", "nvr/events=new"]
        );
        // An unchanged state is not sent again; a changed one is.
        o.set_state("nvr/a/motion".into(), b"OFF".to_vec());
        assert_eq!(drain(&mut o, 10), Vec::<String>::new());
        o.set_state("nvr/a/motion".into(), b"ON".to_vec());
        assert_eq!(drain(&mut o, 10), ["nvr/a/motion=ON"]);
    }

    #[test]
    fn unacknowledged_events_go_out_again_after_a_reconnect() {
        let mut o = Outbox::default();
        o.connected(vec![]);
        o.set_state("nvr/a/motion".into(), b"ON".to_vec());
        o.push_event("nvr/events".into(), b"1".to_vec(), false);
        o.push_event("nvr/events".into(), b"2".to_vec(), false);
        assert_eq!(
            drain(&mut o, 1),
            ["nvr/a/motion=ON", "nvr/events=1", "nvr/events=2"]
        );
        o.acked(2); // event 1 arrived, event 2 did not
        o.lost();
        o.push_event("nvr/events".into(), b"3".to_vec(), false);
        assert_eq!(o.events_waiting(), 2);
        o.connected(avail());
        assert_eq!(
            drain(&mut o, 20),
            [
                "nvr/available=online",
                "nvr/a/motion=ON",
                "nvr/events=2",
                "nvr/events=3"
            ]
        );
        assert_eq!(o.delivered, 1);
    }

    #[test]
    fn at_the_bound_the_oldest_event_is_dropped_and_counted() {
        let mut o = Outbox::default();
        for i in 0..EVENTS_MAX + 5 {
            o.push_event("nvr/events".into(), i.to_string().into_bytes(), false);
        }
        assert_eq!(o.events_waiting(), EVENTS_MAX);
        assert_eq!(o.dropped, 5);
        o.connected(vec![]);
        assert_eq!(o.next_message().unwrap().payload, b"5");
    }

    #[test]
    fn the_client_gets_at_most_in_flight_max_unacknowledged() {
        let mut o = Outbox::default();
        o.connected(vec![]);
        for i in 0..IN_FLIGHT_MAX + 3 {
            o.push_event("nvr/events".into(), i.to_string().into_bytes(), false);
        }
        assert_eq!(drain(&mut o, 1).len(), IN_FLIGHT_MAX);
        o.acked(1);
        assert_eq!(drain(&mut o, 100).len(), 1);
        assert_eq!(o.pending(), IN_FLIGHT_MAX + 2);
    }
}
