//! The primary's lease: keepalive, release, and the planned failover's handover reservation.

use super::*;

/// Renews `lease` every `renew_interval` until a renewal fails or the lease ends on the
/// caller's clock; reports each renewal and the loss, while `generation` is current.
#[allow(clippy::too_many_arguments)]
pub(super) async fn keepalive(
    client: Client,
    config: ManagerConfig,
    clock: Clock,
    state: Arc<Mutex<LeaseState>>,
    events: mpsc::UnboundedSender<LeaseEvent>,
    generation: u64,
    lease: i64,
    mut lease_until_ms: u64,
) {
    let emit = |event: ManagerEvent, lost: bool| {
        let mut state = state.lock().expect("lease state lock");
        if state.generation != generation {
            return false;
        }
        if lost {
            state.held = None;
        } else if let ManagerEvent::LeaseRenewed { lease_until_ms } = event {
            state.until_ms = lease_until_ms;
        }
        // Sent under the lock: a release that bumps the generation happens before or after.
        let _ = events.send(LeaseEvent { generation, event });
        true
    };
    let ttl_ms = config.ttl_ms();
    let margin_ms = config.margin_ms();
    let mut lease_client = client.lease_client();
    let mut keeper = None;
    loop {
        tokio::time::sleep(config.renew_interval).await;
        let t0 = clock.now_ms();
        let Some(left) = lease_until_ms.checked_sub(t0).filter(|&l| l > 0) else {
            break;
        };
        let wait = config.request_timeout.min(Duration::from_millis(left));
        let renewal = async {
            // The stream is opened once; its first exchange is a renewal itself.
            if keeper.is_none() {
                let (k, s) = lease_client.keep_alive(lease).await?;
                keeper = Some((k, s));
                return Ok::<_, etcd_client::Error>(Some(config.lease_ttl.as_secs() as i64));
            }
            let (k, s) = keeper.as_mut().expect("opened above");
            k.keep_alive().await?;
            Ok(s.message().await?.map(|r| r.ttl()))
        };
        match timed(wait, "lease keepalive", renewal).await {
            Ok(Some(ttl)) if ttl > 0 => {
                let ttl_ms = ttl_ms.min(u64::try_from(ttl).unwrap_or(0) * 1000);
                lease_until_ms = (t0 + ttl_ms).saturating_sub(margin_ms);
                if !emit(ManagerEvent::LeaseRenewed { lease_until_ms }, false) {
                    return;
                }
            }
            Ok(_) => {
                tracing::warn!(lease, "lease expired in etcd");
                break;
            }
            Err(error) => {
                tracing::warn!(%error, lease, "lease renewal failed");
                break;
            }
        }
    }
    if !emit(ManagerEvent::LeaseLost, true) {
        return;
    }
    tracing::warn!(lease, "lease lost; revoking what may remain of it");
    drop(keeper);
    let _ = timed(
        config.request_timeout,
        "lease revoke",
        lease_client.revoke(lease),
    )
    .await;
}

impl EtcdManager {
    pub(super) async fn revoke_quietly(&self, lease: i64) {
        let mut lease_client = self.client.lease_client();
        if let Err(error) = timed(
            self.config.request_timeout,
            "lease revoke",
            lease_client.revoke(lease),
        )
        .await
        {
            tracing::debug!(%error, lease, "revoke failed; the lease expires by itself");
        }
    }

    pub(super) fn start_keepalive(&self, lease: i64, lease_until_ms: u64) {
        let mut state = self.state.lock().expect("lease state lock");
        if let Some(old) = state.held.take() {
            old.keepalive.abort();
        }
        state.generation += 1;
        let generation = state.generation;
        let task = tokio::spawn(
            keepalive(
                self.client.clone(),
                self.config.clone(),
                self.clock,
                self.state.clone(),
                self.unsolicited_tx.clone(),
                generation,
                lease,
                lease_until_ms,
            )
            .in_current_span(),
        );
        state.held = Some(Held {
            lease,
            keepalive: task.abort_handle(),
        });
        state.until_ms = lease_until_ms;
    }

    /// Stops the keepalive of the held lease, if any, without revoking it; true if one was
    /// held. Later keepalive events of that lease are dropped (a new generation).
    pub fn stop_renewing(&self) -> bool {
        let mut state = self.state.lock().expect("lease state lock");
        state.generation += 1;
        match state.held.take() {
            Some(held) => {
                held.keepalive.abort();
                tracing::warn!(
                    lease = held.lease,
                    "lease renewal stopped; etcd lets the lease expire"
                );
                true
            }
            None => false,
        }
    }

    /// A fresh etcd lease of one TTL (the leader's, or a handover reservation).
    pub(super) async fn grant_lease(&self) -> Result<LeaseGrantResponse, ManagerError> {
        let mut lease_client = self.client.lease_client();
        timed(
            self.config.request_timeout,
            "lease grant",
            lease_client.grant(self.config.lease_ttl.as_secs() as i64, None),
        )
        .await
    }

    /// R-FAIL-3: reserves the next promotion for `to`, the target of the planned failover this
    /// primary granted, before its lease is released ([`ManagerRequest::HandOver`]): a
    /// `handover` key on a lease of its own (one TTL, not renewed), written only while this
    /// replica still holds the `leader` key. `Ok(false)`: it does not (nothing written).
    pub async fn reserve_handover(&self, to: ReplicaId) -> Result<bool, ManagerError> {
        let Some(held) = self.held_lease() else {
            return Ok(false);
        };
        let reservation = self.grant_lease().await?.id();
        let handover = Handover {
            from: self.config.replica,
            to,
        };
        let txn = Txn::new()
            .when(vec![Compare::lease(
                self.keys.leader.as_str(),
                CompareOp::Equal,
                held,
            )])
            .and_then(vec![TxnOp::put(
                self.keys.handover.as_str(),
                serde_json::to_vec(&handover).expect("Handover serializes"),
                Some(PutOptions::new().with_lease(reservation)),
            )]);
        let mut kv = self.client.kv_client();
        let written = match timed(self.config.request_timeout, "handover txn", kv.txn(txn)).await {
            Ok(answer) => answer.succeeded(),
            Err(error) => {
                self.revoke_quietly(reservation).await;
                return Err(error);
            }
        };
        if written {
            tracing::info!(
                to = to.0,
                "next promotion reserved for the planned failover's target"
            );
        } else {
            self.revoke_quietly(reservation).await;
        }
        Ok(written)
    }

    /// Stops renewing and revokes the lease (the `leader` key goes with it).
    pub async fn release_lease(&self) -> Result<(), ManagerError> {
        let held = {
            let mut state = self.state.lock().expect("lease state lock");
            state.generation += 1;
            state.held.take()
        };
        let Some(held) = held else { return Ok(()) };
        held.keepalive.abort();
        let mut lease_client = self.client.lease_client();
        timed(
            self.config.request_timeout,
            "lease revoke",
            lease_client.revoke(held.lease),
        )
        .await?;
        tracing::info!(lease = held.lease, "lease released");
        Ok(())
    }
}
