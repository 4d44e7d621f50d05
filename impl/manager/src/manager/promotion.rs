//! Promotions: the store read into the policy's snapshot, the policy's decision ([`hadr_core::policy`]), and the compare-and-swap transaction that records a grant.

use super::*;

/// What the promotion read found.
pub(super) struct Snapshot {
    pub(super) leader: Option<LeaderInfo>,
    pub(super) leader_rev: i64,
    /// The last replica promoted.
    pub(super) primary: Option<ReplicaId>,
    /// REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT of the stored configuration.
    pub(super) required_synchronized: Option<u32>,
    pub(super) term: u64,
    pub(super) term_rev: i64,
    pub(super) publication: Option<SyncStatePublication>,
    pub(super) sync_rev: i64,
    /// Wall-clock times (ms since the Unix epoch) of the automatic failovers on record.
    pub(super) failovers: Vec<u64>,
    pub(super) failovers_rev: i64,
    /// A planned failover in progress, and the key's revision (0: none).
    pub(super) handover: Option<Handover>,
    pub(super) handover_rev: i64,
}

impl Snapshot {
    /// R-FAIL-7's failure record, on the wall clock (the period is hours, and every replica
    /// must count the same failovers): the automatic failovers within the period before
    /// `wall_ms`.
    fn recent_failovers(&self, wall_ms: u64, period: Duration) -> Vec<u64> {
        let period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
        self.failovers
            .iter()
            .copied()
            .filter(|&at| at.saturating_add(period_ms) > wall_ms)
            .collect()
    }
}

/// Logs why the policy denied a promotion.
fn log_denial(kind: PromotionKind, denial: Denial, snapshot: &Snapshot, config: &ManagerConfig) {
    let me = config.replica.0;
    match denial {
        Denial::LeaseHeld { holder } => tracing::info!(
            ?kind,
            holder = holder.0,
            term = snapshot.leader.map_or(0, |l| l.term),
            "promotion denied: a primary holds the lease"
        ),
        Denial::HandoverReserved { to } => tracing::info!(
            ?kind,
            to = to.0,
            "promotion denied: a planned failover hands the lease to its target"
        ),
        Denial::NoPublication => {
            tracing::info!("automatic promotion denied: no synchronization state published")
        }
        Denial::StalePublication { published, granted } => tracing::info!(
            published,
            granted_term = granted,
            "automatic promotion denied: the publication predates the last granted term"
        ),
        Denial::NotFailoverReady => tracing::info!(
            replica = me,
            failover_ready = ?snapshot.publication.as_ref().map(|p| &p.failover_ready),
            "automatic promotion denied: not failover-ready"
        ),
        Denial::RestoreWaiting { waited_ms } => tracing::info!(
            replica = me,
            waited_ms,
            "restore of the recorded primary: waiting for a failover-ready replica first"
        ),
        Denial::ThresholdReached { threshold } => tracing::warn!(
            threshold,
            period_s = config.failover_period.as_secs(),
            "automatic promotion denied: the failure threshold is reached (R-FAIL-7); fail over manually"
        ),
        Denial::NotRequestable => {
            tracing::warn!(?kind, "promotion denied: not a kind a replica asks for")
        }
    }
}

impl EtcdManager {
    pub(super) async fn snapshot(&self) -> Result<Snapshot, ManagerError> {
        let mut kv = self.client.kv_client();
        let answer = timed(
            self.config.request_timeout,
            "read",
            kv.get(
                self.keys.prefix.as_bytes(),
                Some(GetOptions::new().with_prefix()),
            ),
        )
        .await?;
        let mut snapshot = Snapshot {
            leader: None,
            leader_rev: 0,
            primary: None,
            required_synchronized: None,
            term: 0,
            term_rev: 0,
            publication: None,
            sync_rev: 0,
            failovers: Vec::new(),
            failovers_rev: 0,
            handover: None,
            handover_rev: 0,
        };
        for kv in answer.kvs() {
            let key = kv.key();
            if key == self.keys.leader.as_bytes() {
                snapshot.leader = Some(parse_json(&self.keys.leader, kv)?);
                snapshot.leader_rev = kv.mod_revision();
            } else if key == self.keys.config.as_bytes() {
                let config: AgConfig = parse_json(&self.keys.config, kv)?;
                snapshot.required_synchronized =
                    Some(config.required_synchronized_secondaries_to_commit);
            } else if key == self.keys.primary.as_bytes() {
                snapshot.primary = Some(ReplicaId(parse_json(&self.keys.primary, kv)?));
            } else if key == self.keys.term.as_bytes() {
                snapshot.term = parse_term(&self.keys.term, kv)?;
                snapshot.term_rev = kv.mod_revision();
            } else if key == self.keys.sync.as_bytes() {
                snapshot.publication = Some(parse_json(&self.keys.sync, kv)?);
                snapshot.sync_rev = kv.mod_revision();
            } else if key == self.keys.failovers.as_bytes() {
                snapshot.failovers = parse_json(&self.keys.failovers, kv)?;
                snapshot.failovers_rev = kv.mod_revision();
            } else if key == self.keys.handover.as_bytes() {
                snapshot.handover = Some(parse_json(&self.keys.handover, kv)?);
                snapshot.handover_rev = kv.mod_revision();
            }
        }
        Ok(snapshot)
    }

    /// `Ok(None)`: denied by the policy ([`hadr_core::policy`]) or lost to a concurrent
    /// change; `Ok(Some(Promote))`: granted.
    pub(super) async fn request_promotion(
        &self,
        now_ms: u64,
        kind: PromotionKind,
    ) -> Result<Option<ManagerEvent>, ManagerError> {
        let snapshot = self.promotion_snapshot(kind).await?;
        let wall_ms = wall_clock_ms();
        let failovers = snapshot.recent_failovers(wall_ms, self.config.failover_period);
        let decision = {
            let mut restore = self.restore_wait.lock().expect("restore state lock");
            policy::decide(
                &policy::Snapshot {
                    lease_holder: snapshot.leader.map(|l| l.replica),
                    handover_to: snapshot.handover.map(|h| h.to),
                    granted_term: snapshot.term,
                    publication: snapshot.publication.as_ref(),
                    recent_automatic_failovers: u32::try_from(failovers.len()).unwrap_or(u32::MAX),
                    failover_threshold: self.config.failover_threshold,
                },
                policy::Request {
                    replica: self.config.replica,
                    kind,
                },
                &mut restore,
                self.clock.now_ms(),
            )
        };
        let grant = match decision {
            policy::Decision::Grant(grant) => grant,
            policy::Decision::Deny(denial) => {
                log_denial(kind, denial, &snapshot, &self.config);
                return Ok(None);
            }
        };
        if let Some(holder) = grant.takes_lease_from {
            tracing::warn!(
                holder = holder.0,
                "forced failover: taking the lease from the primary that holds it"
            );
        }
        if grant.kind == PromotionKind::ForcedOntoSynchronized {
            tracing::info!(
                replica = self.config.replica.0,
                "forced failover onto a replica recorded SYNCHRONIZED: no data loss"
            );
        }
        let mut failovers = failovers;
        if grant.counts_against_threshold {
            failovers.push(wall_ms);
        }
        self.commit_promotion(now_ms, &snapshot, grant, &failovers)
            .await
    }

    /// The store as a promotion finds it. R-FAIL-3: the primary that granted a planned failover
    /// stepped down and its shell releases its lease on another thread, which may reach etcd
    /// after this request: a planned promotion waits a little for that release rather than be
    /// refused a handover both sides agreed on.
    async fn promotion_snapshot(&self, kind: PromotionKind) -> Result<Snapshot, ManagerError> {
        let me = self.config.replica;
        let mut snapshot = self.snapshot().await?;
        if kind == PromotionKind::Planned {
            let until = self.clock.now_ms() + PLANNED_HANDOVER_WAIT_MS;
            while snapshot.leader.is_some_and(|leader| leader.replica != me)
                && self.clock.now_ms() < until
            {
                tokio::time::sleep(Duration::from_millis(25)).await;
                snapshot = self.snapshot().await?;
            }
        }
        Ok(snapshot)
    }

    /// Records a granted promotion in one transaction, if the store is still as the snapshot
    /// found it, with a fresh lease; then renews it (and, for a forced takeover, waits out the
    /// old primary's lease). `failovers`: the failure-threshold record to store.
    async fn commit_promotion(
        &self,
        now_ms: u64,
        snapshot: &Snapshot,
        grant: policy::Grant,
        failovers: &[u64],
    ) -> Result<Option<ManagerEvent>, ManagerError> {
        let t0 = now_ms.min(self.clock.now_ms());
        let lease_grant = self.grant_lease().await?;
        let lease = lease_grant.id();
        let ttl_ms = self
            .config
            .ttl_ms()
            .min(u64::try_from(lease_grant.ttl()).unwrap_or(0) * 1000);
        let lease_until_ms = (t0 + ttl_ms).saturating_sub(self.config.margin_ms());
        let txn = self.promotion_txn(snapshot, grant, lease, failovers);
        let mut kv = self.client.kv_client();
        let granted = match timed(self.config.request_timeout, "promotion txn", kv.txn(txn)).await {
            Ok(answer) => answer.succeeded(),
            Err(error) => {
                self.revoke_quietly(lease).await;
                return Err(error);
            }
        };
        if !granted {
            tracing::info!(
                kind = ?grant.kind,
                "promotion denied: the leader, term or publication changed meanwhile"
            );
            self.revoke_quietly(lease).await;
            return Ok(None);
        }
        if self.clock.now_ms() >= lease_until_ms {
            // The core would refuse a grant that already ended and stay where it is; the
            // lease must then not block every other promotion until it expires.
            tracing::warn!(
                lease_until_ms,
                "promotion granted too late to use; releasing it"
            );
            self.revoke_quietly(lease).await;
            return Ok(None);
        }
        self.start_keepalive(lease, lease_until_ms);
        let lease_until_ms = match snapshot.leader {
            None => lease_until_ms,
            Some(old) => match self.take_over(old.lease, lease).await {
                Some(until) => until,
                None => return Ok(None),
            },
        };
        tracing::info!(
            kind = ?grant.kind,
            replica = self.config.replica.0,
            term = grant.term,
            lease,
            lease_until_ms,
            "promoted"
        );
        Ok(Some(ManagerEvent::Promote {
            kind: grant.kind,
            lease_until_ms,
            term_at_least: grant.term,
            required_synchronized: snapshot.required_synchronized,
        }))
    }

    /// The compare-and-swap of a promotion: the leader, term and handover keys (and the
    /// publication and failure record the grant rests on) unchanged since the snapshot; then
    /// the new leader under `lease`, its term, the recorded primary, the handover ended.
    fn promotion_txn(
        &self,
        snapshot: &Snapshot,
        grant: policy::Grant,
        lease: i64,
        failovers: &[u64],
    ) -> Txn {
        let me = self.config.replica;
        let info = LeaderInfo {
            replica: me,
            term: grant.term,
            lease,
        };
        let leader_unchanged = match snapshot.leader {
            None => Compare::version(self.keys.leader.as_str(), CompareOp::Equal, 0),
            Some(_) => Compare::mod_revision(
                self.keys.leader.as_str(),
                CompareOp::Equal,
                snapshot.leader_rev,
            ),
        };
        let mut compares = vec![
            leader_unchanged,
            Compare::mod_revision(self.keys.term.as_str(), CompareOp::Equal, snapshot.term_rev),
            // No planned failover began since the snapshot (0: the key is absent).
            Compare::mod_revision(
                self.keys.handover.as_str(),
                CompareOp::Equal,
                snapshot.handover_rev,
            ),
        ];
        let mut puts = vec![
            TxnOp::put(
                self.keys.leader.as_str(),
                serde_json::to_vec(&info).expect("LeaderInfo serializes"),
                Some(PutOptions::new().with_lease(lease)),
            ),
            TxnOp::put(self.keys.term.as_str(), grant.term.to_string(), None),
            TxnOp::put(self.keys.primary.as_str(), me.0.to_string(), None),
        ];
        if snapshot.handover.is_some() {
            // The handover is done (or overridden by a forced failover).
            puts.push(TxnOp::delete(self.keys.handover.as_str(), None));
        }
        if grant.needs_publication_unchanged {
            compares.push(Compare::mod_revision(
                self.keys.sync.as_str(),
                CompareOp::Equal,
                snapshot.sync_rev,
            ));
        }
        if grant.counts_against_threshold {
            compares.push(Compare::mod_revision(
                self.keys.failovers.as_str(),
                CompareOp::Equal,
                snapshot.failovers_rev,
            ));
            puts.push(TxnOp::put(
                self.keys.failovers.as_str(),
                serde_json::to_vec(failovers).expect("timestamps serialize"),
                None,
            ));
        }
        Txn::new().when(compares).and_then(puts)
    }

    /// The end of a forced takeover: the new lease is recorded and renewed; revoke the old
    /// primary's (its renewals fail, so it steps down), then wait one TTL before the promotion
    /// is told, so that every lease end the old primary was told has passed (they are below
    /// the TTL by the safety margin): the two never commit at the same time (R-QUORUM-3).
    /// Returns the new lease's end, or `None` if it was lost meanwhile.
    pub(super) async fn take_over(&self, old_lease: i64, lease: i64) -> Option<u64> {
        self.revoke_quietly(old_lease).await;
        tokio::time::sleep(self.config.lease_ttl).await;
        let state = self.state.lock().expect("lease state lock");
        match &state.held {
            Some(held) if held.lease == lease && state.until_ms > self.clock.now_ms() => {
                Some(state.until_ms)
            }
            _ => {
                tracing::warn!(
                    lease,
                    "forced promotion: the new lease was lost while the old one ran out"
                );
                None
            }
        }
    }
}
