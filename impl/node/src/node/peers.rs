//! Replica-to-replica connections: the endpoint listener, the dialers, and one reader and one
//! writer task per connection. Frames are `wire.rs`'s; the first frame each side sends is a
//! [`Preface`] naming the group and both replicas, so that a connection is tied to one peer
//! before hadr-core sees it. The replica with the lower id dials the higher one.
//!
//! A partition injected by `POST /debug/partition` ([`Partitioned`]) is silent, like a cut
//! network: no dial to the peer, its prefaces refused, and the reader and writer of an open
//! connection hold what they read and what they are to write until it heals.

use super::fault::Partitioned;
use super::{Event, SEND_QUEUE_FRAMES};
use crate::config::endpoint_address;
use crate::wire::{decode_frame, encode_frame, Frame, Preface};
use hadr_core::ConnectionId;
use hadr_types::{AgConfig, ReplicaId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tracing::Instrument;

/// How long the peer has to send its preface.
const PREFACE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two attempts to dial a peer.
const REDIAL: Duration = Duration::from_millis(200);

struct Replica {
    id: ReplicaId,
    name: String,
    address: Option<String>,
}

/// The peer network of one replica.
pub(crate) struct PeerNet {
    me: ReplicaId,
    ag_name: String,
    replicas: Vec<Replica>,
    events: mpsc::UnboundedSender<Event>,
    next_connection: AtomicU64,
    /// The current connection to each peer (as the driver last registered it).
    current: Mutex<HashMap<ReplicaId, ConnectionId>>,
    /// Wakes the dialers when a connection went away.
    redial: Notify,
    /// The peers this replica is partitioned from (fault injection).
    partitioned: Partitioned,
    /// The replica's span: every task of the peer network runs in it.
    span: tracing::Span,
}

impl PeerNet {
    /// Starts accepting on `listener` and dialing every peer with a higher id, in tasks of
    /// `span` (the replica's).
    pub(crate) fn start(
        config: &AgConfig,
        me: ReplicaId,
        events: mpsc::UnboundedSender<Event>,
        listener: TcpListener,
        partitioned: Partitioned,
        span: tracing::Span,
    ) -> Arc<PeerNet> {
        let replicas = config
            .replicas
            .iter()
            .enumerate()
            .map(|(i, r)| Replica {
                id: ReplicaId(i as u8),
                name: r.name.clone(),
                address: endpoint_address(&r.name, r.endpoint_url.as_deref()).ok(),
            })
            .collect();
        let net = Arc::new(PeerNet {
            me,
            ag_name: config.name.clone(),
            replicas,
            events,
            next_connection: AtomicU64::new(1),
            current: Mutex::new(HashMap::new()),
            redial: Notify::new(),
            partitioned,
            span,
        });
        tokio::spawn(accept_loop(net.clone(), listener).instrument(net.span.clone()));
        for peer in net.replicas.iter().filter(|r| r.id > me) {
            let mode = config.replicas[usize::from(peer.id.0)].availability_mode;
            if mode == hadr_types::AvailabilityMode::ConfigurationOnly {
                continue;
            }
            match &peer.address {
                Some(address) => {
                    let dial = dial_loop(net.clone(), peer.id, address.clone());
                    tokio::spawn(dial.instrument(net.span.clone()));
                }
                None => tracing::warn!(peer = %peer.name, "no usable ENDPOINT_URL: not dialing it"),
            }
        }
        net
    }

    /// The driver dropped `connection` to `peer`: dial again.
    pub(crate) fn disconnected(&self, peer: ReplicaId, connection: ConnectionId) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.get(&peer) == Some(&connection) {
            current.remove(&peer);
        }
        drop(current);
        self.redial.notify_waiters();
    }

    /// A partition healed: dial at once instead of at the next attempt.
    pub(crate) fn redial_now(&self) {
        self.redial.notify_waiters();
    }

    /// Whether a partition from `peer` is injected.
    fn partitioned_from(&self, peer: ReplicaId) -> bool {
        self.partitioned.borrow().contains(&peer)
    }

    fn connected(&self, peer: ReplicaId) -> bool {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&peer)
    }

    fn preface(&self, to: ReplicaId) -> Frame {
        Frame::Preface(Preface {
            ag_name: self.ag_name.clone(),
            from: self.me,
            from_name: self.replicas[usize::from(self.me.0)].name.clone(),
            to,
        })
    }

    /// Checks the peer's preface; `expected` is the peer we dialed (None when accepting).
    fn check_preface(
        &self,
        preface: &Preface,
        expected: Option<ReplicaId>,
    ) -> Result<ReplicaId, String> {
        if preface.ag_name != self.ag_name {
            return Err(format!(
                "peer belongs to availability group '{}', this replica to '{}'",
                preface.ag_name, self.ag_name
            ));
        }
        if preface.to != self.me {
            return Err(format!("peer wanted {}, this is {}", preface.to, self.me));
        }
        let Some(replica) = self.replicas.get(usize::from(preface.from.0)) else {
            return Err(format!("{} is not in the configuration", preface.from));
        };
        if replica.name != preface.from_name {
            return Err(format!(
                "peer says it is '{}' ({}), the configuration names {} '{}'",
                preface.from_name, preface.from, preface.from, replica.name
            ));
        }
        if preface.from == self.me || expected.is_some_and(|e| e != preface.from) {
            return Err(format!("unexpected peer {}", preface.from));
        }
        Ok(preface.from)
    }
}

async fn accept_loop(net: Arc<PeerNet>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                let net = net.clone();
                let span = net.span.clone();
                tokio::spawn(
                    async move {
                        if let Err(error) = handshake(&net, stream, None).await {
                            tracing::warn!(%from, %error, "refused a peer connection");
                        }
                    }
                    .instrument(span),
                );
            }
            Err(error) => {
                tracing::warn!(%error, "accepting a peer connection failed");
                tokio::time::sleep(REDIAL).await;
            }
        }
    }
}

async fn dial_loop(net: Arc<PeerNet>, peer: ReplicaId, address: String) {
    loop {
        if !net.connected(peer) && !net.partitioned_from(peer) {
            let attempt = tokio::time::timeout(PREFACE_TIMEOUT, TcpStream::connect(&address)).await;
            match attempt {
                Ok(Ok(stream)) => {
                    if let Err(error) = handshake(&net, stream, Some(peer)).await {
                        tracing::warn!(%peer, %address, %error, "peer handshake failed");
                    }
                }
                Ok(Err(error)) => tracing::trace!(%peer, %address, %error, "dial failed"),
                Err(_) => tracing::debug!(%peer, %address, "dial timed out"),
            }
        }
        let notified = net.redial.notified();
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep(REDIAL) => {}
        }
    }
}

/// Exchanges prefaces, then hands the connection to the driver.
async fn handshake(
    net: &Arc<PeerNet>,
    mut stream: TcpStream,
    expected: Option<ReplicaId>,
) -> Result<(), String> {
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut buffer = Vec::new();
    if let Some(peer) = expected {
        write_frame(&mut stream, &net.preface(peer)).await?;
    }
    let preface = tokio::time::timeout(PREFACE_TIMEOUT, read_frame(&mut stream, &mut buffer))
        .await
        .map_err(|_| "no preface within 5 s".to_owned())??;
    let Frame::Preface(preface) = preface else {
        return Err("the first frame was not a preface".to_owned());
    };
    let peer = net.check_preface(&preface, expected)?;
    if net.partitioned_from(peer) {
        return Err(format!(
            "{peer} is partitioned from this replica (fault injection)"
        ));
    }
    if expected.is_none() {
        write_frame(&mut stream, &net.preface(peer)).await?;
    }
    let connection = ConnectionId(net.next_connection.fetch_add(1, Ordering::Relaxed));
    net.current
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(peer, connection);
    let (read_half, write_half) = stream.into_split();
    let (writer_tx, writer_rx) = mpsc::channel::<Vec<u8>>(SEND_QUEUE_FRAMES);
    let events = net.events.clone();
    let partitioned = net.partitioned.clone();
    // The reader starts only once `PeerOpened` is queued: the driver must learn of the
    // connection before any message read from it.
    let (go, gate) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(
        {
            let events = events.clone();
            async move {
                if gate.await.is_ok() {
                    read_loop(events, peer, connection, read_half, buffer, partitioned).await;
                }
            }
        }
        .instrument(net.span.clone()),
    );
    let writer = tokio::spawn(
        write_loop(
            events.clone(),
            peer,
            connection,
            write_half,
            writer_rx,
            net.partitioned.clone(),
        )
        .instrument(net.span.clone()),
    );
    tracing::info!(%peer, %connection, "peer connected");
    let _ = events.send(Event::PeerOpened {
        peer,
        connection,
        writer: writer_tx,
        tasks: [reader.abort_handle(), writer.abort_handle()],
    });
    let _ = go.send(());
    Ok(())
}

async fn write_frame(stream: &mut TcpStream, frame: &Frame) -> Result<(), String> {
    let mut bytes = Vec::new();
    encode_frame(frame, &mut bytes).map_err(|e| e.to_string())?;
    stream.write_all(&bytes).await.map_err(|e| e.to_string())
}

/// Reads one frame (the buffer keeps what follows it).
async fn read_frame(
    stream: &mut (impl AsyncReadExt + Unpin),
    buffer: &mut Vec<u8>,
) -> Result<Frame, String> {
    loop {
        match decode_frame(buffer) {
            Ok(Some((frame, used))) => {
                buffer.drain(..used);
                return Ok(frame);
            }
            Ok(None) => {}
            Err(error) => return Err(format!("bad frame: {error}")),
        }
        let mut chunk = [0u8; 64 * 1024];
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".to_owned());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

async fn read_loop(
    events: mpsc::UnboundedSender<Event>,
    peer: ReplicaId,
    connection: ConnectionId,
    mut stream: tokio::net::tcp::OwnedReadHalf,
    mut buffer: Vec<u8>,
    mut partitioned: Partitioned,
) {
    loop {
        let read = read_frame(&mut stream, &mut buffer).await;
        // A partition holds what arrived, the end of the connection included.
        reachable(&mut partitioned, peer).await;
        match read {
            Ok(Frame::Message(message)) => {
                if events
                    .send(Event::PeerMessage {
                        peer,
                        connection,
                        message,
                    })
                    .is_err()
                {
                    return;
                }
            }
            Ok(Frame::Preface(_)) => {
                tracing::warn!(%peer, %connection, "a second preface on an open connection: closing it");
                break;
            }
            Err(error) => {
                tracing::info!(%peer, %connection, %error, "peer connection ended");
                break;
            }
        }
    }
    let _ = events.send(Event::PeerClosed { peer, connection });
}

async fn write_loop(
    events: mpsc::UnboundedSender<Event>,
    peer: ReplicaId,
    connection: ConnectionId,
    mut stream: tokio::net::tcp::OwnedWriteHalf,
    mut frames: mpsc::Receiver<Vec<u8>>,
    mut partitioned: Partitioned,
) {
    let mut batch = Vec::new();
    while let Some(frame) = frames.recv().await {
        // A partition holds what is to be sent (in the queue, which may fill up).
        reachable(&mut partitioned, peer).await;
        batch.clear();
        batch.extend_from_slice(&frame);
        while let Ok(more) = frames.try_recv() {
            batch.extend_from_slice(&more);
        }
        if let Err(error) = stream.write_all(&batch).await {
            tracing::info!(%peer, %connection, %error, "write to peer failed");
            let _ = events.send(Event::PeerClosed { peer, connection });
            return;
        }
    }
    // The driver dropped the sender: close our side (a dropped connection's writer is
    // aborted instead, so that a peer that stopped reading cannot hold it).
    let _ = stream.shutdown().await;
}

/// Returns once no partition from `peer` is injected (at once, normally).
async fn reachable(partitioned: &mut Partitioned, peer: ReplicaId) {
    // An error means the driver is gone: nothing to wait for.
    let _ = partitioned.wait_for(|cut| !cut.contains(&peer)).await;
}
