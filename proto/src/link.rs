//! The ipc-channel link between a supervisor and one worker, and how it is set up.
//!
//! Bootstrap: the supervisor opens a [`Listener`] (an `IpcOneShotServer`) and passes its name on the
//! worker's command line. The worker [`connect`]s, creating two byte channels, and sends the supervisor
//! the receiving end of "up" (worker → supervisor) and the sending end of "down" (supervisor → worker).
//! When either process dies the kernel closes its ends, so the other side sees `Disconnected`: that is
//! how a worker notices a dead supervisor.

use crate::{decode, encode, DecodeError, Envelope, ToSupervisor, ToWorker};
use ipc_channel::ipc::{self, IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcSender};
use ipc_channel::IpcError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::sync::mpsc;
use std::time::Duration;

/// What the worker sends through the one-shot server: its pid (0 marks the supervisor's own wake-up
/// call, see [`Listener::accept`]), the up receiver and the down sender.
type Handshake = (u32, IpcBytesReceiver, IpcBytesSender);

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot create the IPC channel: {0}")]
    Setup(std::io::Error),
    #[error("cannot connect to the supervisor at {name:?}: {source}")]
    Connect {
        name: String,
        source: std::io::Error,
    },
    #[error("the worker did not connect within {0:?}")]
    AcceptTimeout(Duration),
    #[error("IPC handshake failed: {0}")]
    Handshake(String),
    #[error("the peer closed the channel")]
    Disconnected,
    #[error("IPC receive failed: {0}")]
    Receive(String),
    #[error("IPC send failed: {0}")]
    Send(std::io::Error),
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Sends typed bodies as envelopes, numbering them.
pub struct Sender<M> {
    tx: IpcBytesSender,
    next_seq: u64,
    _msg: PhantomData<fn(M)>,
}

impl<M: Serialize> Sender<M> {
    fn new(tx: IpcBytesSender) -> Self {
        Sender {
            tx,
            next_seq: 0,
            _msg: PhantomData,
        }
    }

    pub fn send(&mut self, body: &M) -> Result<(), LinkError> {
        let bytes = encode(self.next_seq, body);
        self.next_seq += 1;
        self.tx.send(&bytes).map_err(LinkError::Send)
    }

    /// Sends raw bytes, bypassing the envelope: for tests of the receiver's error handling only.
    #[doc(hidden)]
    pub fn send_raw(&self, bytes: &[u8]) -> Result<(), LinkError> {
        self.tx.send(bytes).map_err(LinkError::Send)
    }
}

/// Receives envelopes. A message that fails to decode is returned as [`LinkError::Decode`]; the channel
/// stays usable.
pub struct Receiver<M> {
    rx: IpcBytesReceiver,
    _msg: PhantomData<fn() -> M>,
}

impl<M: DeserializeOwned> Receiver<M> {
    fn new(rx: IpcBytesReceiver) -> Self {
        Receiver {
            rx,
            _msg: PhantomData,
        }
    }

    /// Blocks for the next message.
    pub fn recv(&self) -> Result<Envelope<M>, LinkError> {
        match self.rx.recv() {
            Ok(bytes) => Ok(decode(&bytes)?),
            Err(IpcError::Disconnected) => Err(LinkError::Disconnected),
            Err(e) => Err(LinkError::Receive(e.to_string())),
        }
    }
}

/// The supervisor's end of a new link, waiting for its worker.
pub struct Listener {
    server: IpcOneShotServer<Handshake>,
    name: String,
}

impl Listener {
    pub fn new() -> Result<Self, LinkError> {
        let (server, name) = IpcOneShotServer::new().map_err(LinkError::Setup)?;
        Ok(Listener { server, name })
    }

    /// The name to pass to the worker (`--ipc NAME`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits up to `timeout` for the worker to connect; returns the worker's pid and the two channel ends.
    ///
    /// `IpcOneShotServer::accept` blocks forever if the worker dies before connecting, so it runs on its
    /// own thread; on timeout this function connects to the server itself with a dummy handshake
    /// (pid 0) so that thread ends instead of leaking.
    pub fn accept(
        self,
        timeout: Duration,
    ) -> Result<(u32, Receiver<ToSupervisor>, Sender<ToWorker>), LinkError> {
        let Listener { server, name } = self;
        let (done_tx, done_rx) = mpsc::channel();
        let acceptor = std::thread::Builder::new()
            .name("ipc-accept".into())
            .spawn(move || {
                let _ = done_tx.send(server.accept());
            })
            .map_err(LinkError::Setup)?;
        let result = match done_rx.recv_timeout(timeout) {
            Ok(r) => r,
            Err(_) => {
                wake_acceptor(&name);
                let r = done_rx
                    .recv()
                    .map_err(|_| LinkError::AcceptTimeout(timeout))?;
                match r {
                    Ok((_, (0, _, _))) => return Err(LinkError::AcceptTimeout(timeout)),
                    other => other, // the worker won the race: use its connection
                }
            }
        };
        let _ = acceptor.join();
        let (_, (pid, up_rx, down_tx)) = result.map_err(|e| LinkError::Handshake(e.to_string()))?;
        Ok((pid, Receiver::new(up_rx), Sender::new(down_tx)))
    }
}

/// Connects to our own one-shot server with a pid-0 handshake so a blocked `accept` returns.
fn wake_acceptor(name: &str) {
    let dummy = || -> Result<(), Box<dyn std::error::Error>> {
        let (_up_tx, up_rx) = ipc::bytes_channel()?;
        let (down_tx, _down_rx) = ipc::bytes_channel()?;
        IpcSender::<Handshake>::connect(name.to_string())?.send((0, up_rx, down_tx))?;
        Ok(())
    };
    // If the worker connected in the meantime the server is gone and this fails: that is fine.
    let _ = dummy();
}

/// The worker's side: connects to the supervisor's listener named on its command line.
pub fn connect(name: &str) -> Result<(Sender<ToSupervisor>, Receiver<ToWorker>), LinkError> {
    let connect_err = |source| LinkError::Connect {
        name: name.to_string(),
        source,
    };
    let (up_tx, up_rx) = ipc::bytes_channel().map_err(LinkError::Setup)?;
    let (down_tx, down_rx) = ipc::bytes_channel().map_err(LinkError::Setup)?;
    let bootstrap = IpcSender::<Handshake>::connect(name.to_string()).map_err(connect_err)?;
    bootstrap
        .send((std::process::id(), up_rx, down_tx))
        .map_err(|e| LinkError::Handshake(e.to_string()))?;
    Ok((Sender::new(up_tx), Receiver::new(down_rx)))
}
