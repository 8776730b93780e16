//! One thread per worker process: accepts its IPC connection, then forwards everything it sends to the
//! manager's inbox, tagged with the worker's generation.

use super::{Inbox, Msg};
use nvr_proto::link::{LinkError, Listener};
use std::time::Duration;

/// Accepts the worker's connection within `timeout`, then forwards its messages until it closes.
pub fn forward(listener: Listener, generation: u64, timeout: Duration, inbox: Inbox) {
    let (pid, rx, tx) = match listener.accept(timeout) {
        Ok(link) => link,
        Err(e) => {
            let _ = inbox.send(Msg::LinkFailed {
                generation,
                error: e.to_string(),
            });
            return;
        }
    };
    if inbox
        .send(Msg::Connected {
            generation,
            pid,
            tx,
        })
        .is_err()
    {
        return;
    }
    loop {
        let msg = match rx.recv() {
            Ok(envelope) => Msg::FromWorker {
                generation,
                received_ns: nvr_proto::unix_ns(),
                envelope: Box::new(envelope),
            },
            Err(LinkError::Decode(e)) => Msg::BadMessage {
                generation,
                error: e.to_string(),
            },
            Err(_) => {
                let _ = inbox.send(Msg::Disconnected { generation });
                return;
            }
        };
        if inbox.send(msg).is_err() {
            return;
        }
    }
}
