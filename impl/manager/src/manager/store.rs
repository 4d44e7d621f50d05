//! What the manager stores besides the lease: the group's configuration, the synchronization-state publications, the term and the recorded primary.

use super::*;

impl EtcdManager {
    /// The group's configuration stored in etcd, if any.
    pub async fn stored_config(&self) -> Result<Option<AgConfig>, ManagerError> {
        let mut kv = self.client.kv_client();
        let answer = timed(
            self.config.request_timeout,
            "read configuration",
            kv.get(self.keys.config.as_str(), None),
        )
        .await?;
        answer
            .kvs()
            .first()
            .map(|kv| parse_json(&self.keys.config, kv))
            .transpose()
    }

    /// Stores the group's configuration (overwriting).
    pub async fn store_config(&self, config: &AgConfig) -> Result<(), ManagerError> {
        let mut kv = self.client.kv_client();
        let json = serde_json::to_vec(config).expect("AgConfig serializes");
        timed(
            self.config.request_timeout,
            "store configuration",
            kv.put(self.keys.config.as_str(), json, None),
        )
        .await?;
        Ok(())
    }

    /// Checks `config` against the group's configuration in etcd before a CREATE
    /// (`creating`: stores it when etcd has none; the same one again is a retry) or a JOIN
    /// (etcd must hold exactly this configuration, stored by the CREATE on the primary).
    pub async fn register_config(
        &self,
        config: &AgConfig,
        creating: bool,
    ) -> Result<(), ManagerError> {
        let where_ = format!("{}config", self.keys.prefix);
        let remove = format!("etcdctl del --prefix {}", self.keys.prefix);
        match self.stored_config().await? {
            Some(stored) if &stored == config => Ok(()),
            Some(_) if creating => Err(ManagerError::ConfigConflict(format!(
                "an availability group named {:?} already exists in etcd ({where_}) with another configuration: JOIN it with that configuration (GET /ag/config on its primary), or remove it first ({remove})",
                config.name
            ))),
            Some(_) => Err(ManagerError::ConfigConflict(format!(
                "this JOIN's configuration differs from the group's configuration in etcd ({where_}): join with the configuration the primary has (GET /ag/config on the primary)"
            ))),
            None if creating => {
                let json = serde_json::to_vec(config).expect("AgConfig serializes");
                let txn = Txn::new()
                    .when(vec![Compare::version(
                        self.keys.config.as_str(),
                        CompareOp::Equal,
                        0,
                    )])
                    .and_then(vec![TxnOp::put(self.keys.config.as_str(), json, None)]);
                let mut kv = self.client.kv_client();
                let stored = timed(self.config.request_timeout, "store configuration", kv.txn(txn))
                    .await?
                    .succeeded();
                if stored {
                    Ok(())
                } else {
                    // Another CREATE won the race: the same configuration is fine.
                    Box::pin(self.register_config(config, creating)).await
                }
            }
            None => Err(ManagerError::ConfigConflict(format!(
                "no availability group named {:?} in etcd ({where_}): CREATE it on the primary first",
                config.name
            ))),
        }
    }

    /// Stores `publication` unless one with an equal or higher `(epoch, version)` is stored;
    /// `Ok(true)` when stored.
    pub async fn publish(&self, publication: &SyncStatePublication) -> Result<bool, ManagerError> {
        let seq = publication_seq(publication.epoch, publication.version);
        let json = serde_json::to_vec(publication).expect("publication serializes");
        let puts = || {
            vec![
                TxnOp::put(self.keys.sync.as_str(), json.clone(), None),
                TxnOp::put(self.keys.config_seq.as_str(), seq.clone(), None),
            ]
        };
        let mut kv = self.client.kv_client();
        // etcd compares bytes; a value compare on a missing key is false, hence the second
        // transaction for the very first publication.
        let newer = Txn::new()
            .when(vec![Compare::value(
                self.keys.config_seq.as_str(),
                CompareOp::Less,
                seq.clone(),
            )])
            .and_then(puts());
        if timed(self.config.request_timeout, "publish txn", kv.txn(newer))
            .await?
            .succeeded()
        {
            return Ok(true);
        }
        let first = Txn::new()
            .when(vec![Compare::version(
                self.keys.config_seq.as_str(),
                CompareOp::Equal,
                0,
            )])
            .and_then(puts());
        let stored = timed(self.config.request_timeout, "publish txn", kv.txn(first))
            .await?
            .succeeded();
        if !stored {
            tracing::debug!(epoch = %publication.epoch, version = publication.version, "publication refused: not newer than the stored one");
        }
        Ok(stored)
    }

    /// The stored publication, if any.
    pub async fn stored_publication(&self) -> Result<Option<SyncStatePublication>, ManagerError> {
        Ok(self.snapshot().await?.publication)
    }

    /// The highest term granted so far (0: none).
    pub async fn granted_term(&self) -> Result<u64, ManagerError> {
        Ok(self.snapshot().await?.term)
    }

    /// The primary etcd records (R-QUORUM-2): the lease holder, or when nobody holds the
    /// lease the last replica promoted. A linearizable read: an answer means this replica
    /// reaches etcd's majority.
    pub async fn recorded_primary(&self) -> Result<Option<ReplicaId>, ManagerError> {
        let snapshot = self.snapshot().await?;
        Ok(snapshot.leader.map(|l| l.replica).or(snapshot.primary))
    }

    /// Who holds the lease now.
    pub async fn leader(&self) -> Result<Option<LeaderInfo>, ManagerError> {
        Ok(self.snapshot().await?.leader)
    }
}
