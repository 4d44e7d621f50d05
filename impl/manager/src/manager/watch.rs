//! Watching the `leader` key: who holds the lease, as every replica learns it.

use super::*;

pub(super) async fn watch_once(
    client: &Client,
    keys: &Keys,
    timeout: Duration,
    tx: &mpsc::UnboundedSender<LeaderObservation>,
) -> Result<(), ManagerError> {
    let mut kv = client.kv_client();
    let answer = timed(timeout, "read leader", kv.get(keys.leader.as_str(), None)).await?;
    let revision = answer.header().map_or(0, |h| h.revision());
    let leader = match answer.kvs().first() {
        Some(kv) => Some(parse_json(&keys.leader, kv)?),
        None => None,
    };
    if tx.send(LeaderObservation { leader, revision }).is_err() {
        return Ok(());
    }
    let mut watch_client = client.watch_client();
    let mut stream = timed(
        timeout,
        "watch leader",
        watch_client.watch(
            keys.leader.as_str(),
            Some(WatchOptions::new().with_start_revision(revision + 1)),
        ),
    )
    .await?;
    loop {
        let message = tokio::select! {
            _ = tx.closed() => return Ok(()),
            message = stream.message() => message,
        };
        let Some(response) = message.map_err(|source| ManagerError::Etcd {
            what: "watch leader",
            source,
        })?
        else {
            return Ok(());
        };
        if response.canceled() {
            return Ok(());
        }
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let leader = match event.event_type() {
                EventType::Put => Some(parse_json(&keys.leader, kv)?),
                EventType::Delete => None,
            };
            let observation = LeaderObservation {
                leader,
                revision: kv.mod_revision(),
            };
            if tx.send(observation).is_err() {
                return Ok(());
            }
        }
    }
}

impl EtcdManager {
    /// Follows the `leader` key: first its current value, then every change. The watch
    /// reconnects by itself after errors (sending the then-current value again); it ends when
    /// the receiver is dropped. A SYNC+AUTOMATIC secondary requests an automatic promotion
    /// when it sees `leader: None` (and its own policy, R-FAIL-7, agrees).
    pub fn watch_leader(&self) -> mpsc::UnboundedReceiver<LeaderObservation> {
        let (tx, rx) = mpsc::unbounded_channel();
        let client = self.client.clone();
        let keys = self.keys.clone();
        let timeout = self.config.request_timeout;
        tokio::spawn(
            async move {
                while !tx.is_closed() {
                    if let Err(error) = watch_once(&client, &keys, timeout, &tx).await {
                        tracing::debug!(%error, "leader watch interrupted; restarting");
                    }
                    tokio::select! {
                        _ = tx.closed() => break,
                        _ = tokio::time::sleep(timeout / 4) => {}
                    }
                }
            }
            .in_current_span(),
        );
        rx
    }
}
