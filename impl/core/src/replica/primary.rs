//! The primary's side: client transactions and commits (R-COMMIT-1..7), shipping log with no
//! gap (R-SYNC-1), each secondary's progress and SYNCHRONIZED state (R-SYNC-3/4/6), the
//! publication to the cluster manager, and releasing commits in the contract's order.

use super::database::{OpenTxn, PendingCommit, Phase, PrimaryDb, Progress};
use super::{ignored, send, Core, Out};
use crate::error::{ClientError, IgnoredReason};
use crate::ids::{Epoch, RequestId};
use crate::input::{ClientOp, ClientRequest};
use crate::log::{common_prefix, LogRecord, Write};
use crate::message::{DatabaseHello, MessageBody};
use crate::mutants::Mutant;
use crate::output::{
    ClientReply, IndefiniteCause, InputSource, ManagerRequest, Output, SyncStatePublication,
};
use hadr_types::{
    ApplicationIntent, AvailabilityMode, DatabaseId, Lsn, PrimaryConnections, ReplicaId, Role,
    SecondaryConnections, SuspendReason, SyncState, TxnId,
};
use std::collections::btree_map::Entry;
use std::collections::BTreeSet;

impl Core {
    /// R-QUORUM-3: a primary whose lease ran out stops committing before anything else happens.
    pub(super) fn check_lease(&mut self, now_ms: u64, out: &mut Out) {
        if self.role == Role::Primary && self.lease_lapsed(now_ms) {
            tracing::warn!(now_ms, "lease expired: the primary stops committing");
            self.step_down(Role::Resolving, IndefiniteCause::LeaseLost, out);
        }
        invariant!(
            self,
            self.role != Role::Primary || !self.lease_lapsed(now_ms),
            "R-QUORUM-3: a primary stands at {now_ms} ms past the end of its lease ({:?})",
            self.lease_until_ms
        );
    }

    /// R-QUORUM-3: with a cluster manager, the lease is not held at `now_ms` (the planted bug
    /// `commit-after-lease-expiry` ignores it).
    fn lease_lapsed(&self, now_ms: u64) -> bool {
        invariant!(
            self,
            self.role == Role::Primary,
            "R-QUORUM-3: the lease of a {} is judged: only a primary holds one",
            self.role
        );
        self.has_manager()
            && self.lease_until_ms.is_none_or(|until| now_ms >= until)
            && !self.planted(Mutant::CommitAfterLeaseExpiry)
    }

    /// REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT may not exceed the data replicas − 1.
    pub(super) fn max_required(&self) -> u32 {
        let max =
            u32::try_from(self.config.data_replica_count().saturating_sub(1)).unwrap_or(u32::MAX);
        let required = self.config.required_synchronized_secondaries_to_commit;
        invariant!(
            self,
            required <= max && (max as usize) < self.config.replicas.len(),
            "R-COMMIT-5: k = {required} with at most {max} allowed, of {} replicas",
            self.config.replicas.len()
        );
        max
    }

    pub(super) fn on_client(&mut self, _now_ms: u64, request: ClientRequest, out: &mut Out) {
        let id = request.request;
        let database = request.database;
        match self.client_op(request, out) {
            Some(reply) => out.push_back(Output::ClientReply { request: id, reply }),
            None => {
                // The answer waits: the commit is the last one waiting (R-COMMIT-2).
                let waiting = self
                    .db_index(database)
                    .and_then(|index| self.dbs[index].primary())
                    .and_then(|primary| primary.pending.back())
                    .is_some_and(|pending| pending.request == id);
                invariant!(
                    self,
                    self.role == Role::Primary && waiting,
                    "R-COMMIT-2: {database}: request {id} left unanswered, yet it is no commit waiting on a primary (a {})",
                    self.role
                );
            }
        }
    }

    /// The reply, or `None` when it comes later (a commit waiting for R-COMMIT-2/3).
    fn client_op(&mut self, request: ClientRequest, out: &mut Out) -> Option<ClientReply> {
        // `check_lease` ran before the request was taken.
        invariant!(
            self,
            self.role != Role::Primary || !self.lease_lapsed(self.now_ms),
            "R-QUORUM-3: a primary takes a client request at {} ms past the end of its lease ({:?})",
            self.now_ms,
            self.lease_until_ms
        );
        let database = request.database;
        let intent = request.intent;
        if let ClientOp::Transact { txn, writes } = request.op {
            return self.transact(request.request, database, intent, txn, writes, out);
        }
        let Some(index) = self.db_index(database) else {
            return Some(ClientReply::Refused(ClientError::UnknownDatabase {
                database,
            }));
        };
        if let ClientOp::Read { txn, key } = &request.op {
            return Some(self.read(index, intent, *txn, key));
        }
        if let ClientOp::Commit { txn } = request.op {
            if !self.txn_open(index, txn) {
                // Only an open transaction can be refused definitely; anything else may be the
                // retry of a commit answered (or lost) before, on any replica (R-COMMIT-7).
                return Some(self.commit_not_open(database, txn));
            }
        }
        if intent == ApplicationIntent::ReadOnly {
            // R-READ-1: a read-intent connection never writes, on any replica; a primary with
            // ALLOW_CONNECTIONS = READ_WRITE refuses it altogether. A transaction belongs to
            // one connection: a commit of it arriving with another intent ends it (rolled
            // back), so the refusal is definite.
            if let (ClientOp::Commit { txn }, Some(primary)) =
                (&request.op, self.dbs[index].primary_mut())
            {
                primary.open_txns.remove(txn);
            }
            let error = if self.role == Role::Primary && self.primary_refuses_read_intent() {
                ClientError::ConnectionNotAllowed {
                    role: self.role,
                    intent,
                }
            } else {
                ClientError::ReadOnlyIntent
            };
            return Some(ClientReply::Refused(error));
        }
        if let Err(error) = self.writable() {
            return Some(ClientReply::Refused(error));
        }
        Some(match request.op {
            ClientOp::Read { .. } => unreachable!("answered above"),
            ClientOp::Begin { txn } => self.begin(index, txn),
            ClientOp::Write { txn, key, value } => self.write(index, txn, Write { key, value }),
            ClientOp::Rollback { txn } => match self.dbs[index].as_primary().open_txns.remove(&txn)
            {
                Some(_) => ClientReply::RolledBack,
                None => ClientReply::Refused(ClientError::UnknownTransaction { txn }),
            },
            ClientOp::Commit { txn } => return self.commit(request.request, index, txn, out),
            ClientOp::Transact { .. } => unreachable!("answered above"),
        })
    }

    /// Opens transaction `txn`, unless its id is taken.
    fn begin(&mut self, index: usize, txn: TxnId) -> ClientReply {
        invariant!(
            self,
            self.role == Role::Primary,
            "R-ROLE-3: a {} opens a transaction",
            self.role
        );
        let database = self.dbs[index].id;
        let used = self.outcomes.contains_key(&(database, txn)) || self.dbs[index].has_txn(txn);
        let reply = match self.dbs[index].as_primary().open_txns.entry(txn) {
            Entry::Occupied(_) => ClientReply::Refused(ClientError::TransactionAlreadyOpen { txn }),
            // R-COMMIT-7: its outcome is on record under this id; a second transaction with
            // the same id would make the answer to a retried commit ambiguous.
            Entry::Vacant(_) if used => {
                ClientReply::Refused(ClientError::TransactionIdReused { database, txn })
            }
            Entry::Vacant(vacant) => {
                vacant.insert(OpenTxn::default());
                ClientReply::Begun
            }
        };
        let opened_empty = self.dbs[index]
            .primary()
            .and_then(|primary| primary.open_txns.get(&txn))
            .is_some_and(|open| open.writes.is_empty() && open.bytes == 0);
        invariant!(
            self,
            !matches!(reply, ClientReply::Begun) || opened_empty,
            "R-COMMIT-7: {database}: transaction {txn} begun, but not open and empty"
        );
        reply
    }

    /// Adds a write to an open transaction, unless it would take the transaction beyond
    /// [`CoreOptions::max_transaction_bytes`](crate::CoreOptions::max_transaction_bytes): then
    /// the transaction is rolled back (its commit is one log record, which must fit a message).
    fn write(&mut self, index: usize, txn: TxnId, write: Write) -> ClientReply {
        let limit = self.options.max_transaction_bytes;
        let bytes_so_far = self.dbs[index]
            .primary()
            .and_then(|primary| primary.open_txns.get(&txn))
            .map(|open| open.bytes);
        // Every earlier write was refused (and rolled back) before it crossed the limit: the
        // commit record fits one `Log` message.
        invariant!(
            self,
            self.role == Role::Primary && bytes_so_far.is_none_or(|bytes| bytes <= limit),
            "R-SYNC-1: {}: a {} takes a write to {txn}, which holds {bytes_so_far:?} bytes (limit {limit})",
            self.dbs[index].id,
            self.role
        );
        let open_txns = &mut self.dbs[index].as_primary().open_txns;
        let Some(open) = open_txns.get_mut(&txn) else {
            return ClientReply::Refused(ClientError::UnknownTransaction { txn });
        };
        let bytes = open.bytes.saturating_add(write.counted_bytes());
        if bytes > limit {
            open_txns.remove(&txn);
            return ClientReply::Refused(ClientError::TransactionTooLarge { limit });
        }
        open.bytes = bytes;
        open.writes.push(write);
        ClientReply::Written
    }

    /// [`ClientOp::Transact`]: begin, the writes and the commit, each as its own request would
    /// be, stopping at the first refusal.
    fn transact(
        &mut self,
        request: RequestId,
        database: DatabaseId,
        intent: ApplicationIntent,
        txn: TxnId,
        writes: Vec<Write>,
        out: &mut Out,
    ) -> Option<ClientReply> {
        let step = |op| ClientRequest {
            request,
            database,
            intent,
            op,
        };
        match self.client_op(step(ClientOp::Begin { txn }), out) {
            Some(ClientReply::Begun) => {}
            // The id is taken: this may be the retry of a commit that went through
            // (R-COMMIT-7). The commit's answer tells: the outcome on record, or indefinite.
            Some(ClientReply::Refused(
                ClientError::TransactionIdReused { .. }
                | ClientError::TransactionAlreadyOpen { .. },
            )) => return self.client_op(step(ClientOp::Commit { txn }), out),
            refused => return refused,
        }
        for Write { key, value } in writes {
            match self.client_op(step(ClientOp::Write { txn, key, value }), out) {
                Some(ClientReply::Written) => {}
                // Too large: the transaction is rolled back, and nothing was committed.
                refused => return refused,
            }
        }
        let reply = self.client_op(step(ClientOp::Commit { txn }), out);
        // Its commit was answered or waits: either way the transaction is no longer open, or a
        // later commit could contradict the answer.
        let still_open = self
            .db_index(database)
            .is_some_and(|index| self.txn_open(index, txn));
        invariant!(
            self,
            !still_open,
            "R-COMMIT-7: {database}: transaction {txn} is still open after its commit ({reply:?})"
        );
        reply
    }

    /// R-READ-1: PRIMARY_ROLE (ALLOW_CONNECTIONS = READ_WRITE) refuses read-intent connections.
    fn primary_refuses_read_intent(&self) -> bool {
        invariant!(
            self,
            self.role == Role::Primary && self.config.replica(self.me).is_some(),
            "R-READ-1: PRIMARY_ROLE's ALLOW_CONNECTIONS of {} applied on a {}",
            self.me,
            self.role
        );
        self.config
            .replica(self.me)
            .is_some_and(|r| r.primary_role.allow_connections == PrimaryConnections::ReadWrite)
    }

    /// R-READ-3: a read-write connection that reaches a SECONDARY accepting connections goes
    /// to the current primary's READ_WRITE_ROUTING_URL, when it has one.
    pub(super) fn read_write_redirect(&self) -> Option<&str> {
        // The replica it redirects to is the group's primary, and only a primary leads itself.
        invariant!(
            self,
            self.primary
                .is_none_or(|p| self.config.replica(p).is_some())
                && (self.primary == Some(self.me)) == (self.role == Role::Primary),
            "R-READ-3: a {} {} knows {:?} as its primary",
            self.role,
            self.me,
            self.primary
        );
        let me = self.config.replica(self.me)?;
        if self.role != Role::Secondary
            || me.secondary_role.allow_connections == SecondaryConnections::No
        {
            return None;
        }
        let primary = self.config.replica(self.primary?)?;
        primary.primary_role.read_write_routing_url.as_deref()
    }

    /// Whether transaction `txn` is open on this primary's database `index`.
    fn txn_open(&self, index: usize, txn: TxnId) -> bool {
        self.dbs[index]
            .primary()
            .is_some_and(|primary| primary.open_txns.contains_key(&txn))
    }

    /// A commit of a transaction that is not open here, on any role: not a definite "not
    /// committed", since it may be a retry of a commit that was answered (or lost) already,
    /// here or through another primary (R-COMMIT-7). The client gets what this replica told
    /// about it before, if anything; otherwise an indefinite reply.
    fn commit_not_open(&self, database: DatabaseId, txn: TxnId) -> ClientReply {
        let open = self
            .db_index(database)
            .is_some_and(|index| self.txn_open(index, txn));
        invariant!(
            self,
            !open,
            "R-COMMIT-7: {database}: the commit of open transaction {txn} answered as not open"
        );
        match self.outcomes.get(&(database, txn)) {
            Some(recorded) => match &recorded.reply {
                Some(reply) => reply.clone(),
                None => ClientReply::Indefinite(IndefiniteCause::CommitInProgress),
            },
            None if self
                .db_index(database)
                .is_some_and(|index| self.dbs[index].has_checkpointed_txn(txn)) =>
            {
                ClientReply::Indefinite(IndefiniteCause::OutcomeCheckpointed)
            }
            None => ClientReply::Indefinite(IndefiniteCause::UnknownTransaction),
        }
    }

    /// R-ROLE-3: only the primary accepts writes (its lease was checked on entry).
    fn writable(&self) -> Result<(), ClientError> {
        invariant!(
            self,
            self.role != Role::Primary
                || (self.primary == Some(self.me) && self.epoch.replica == self.me),
            "R-ROLE-1: primary {} writes in {} following {:?}",
            self.me,
            self.epoch,
            self.primary
        );
        if self.role == Role::Primary {
            Ok(())
        } else {
            Err(ClientError::NotPrimary {
                role: self.role,
                primary: self.primary,
            })
        }
    }

    /// The last LSN a read on the primary sees: every record before the first commit still
    /// waiting (its outcome is not known yet), and only hardened ones. Redo lag does not hold
    /// it back: the primary's data is current (only secondaries read redone data, R-READ-2).
    pub(super) fn primary_read_lsn(&self, index: usize) -> Lsn {
        let db = &self.dbs[index];
        let before_waiting = db
            .primary()
            .and_then(|primary| primary.pending.front())
            .map_or(db.end(), |p| Lsn(p.lsn.0.saturating_sub(1)));
        let lsn = before_waiting.min(db.hardened);
        // Every acknowledged commit is hardened and comes before the first one waiting.
        let acknowledged = db.primary().map(|primary| primary.acknowledged);
        invariant!(
            self,
            acknowledged.is_some_and(|acknowledged| acknowledged <= lsn),
            "R-COMMIT-6: {}: a read on the primary sees up to {lsn}, not every acknowledged commit ({acknowledged:?})",
            db.id
        );
        lsn
    }

    /// R-READ-1/2: reads on the primary see every acknowledged commit (and the transaction's
    /// own writes), whatever redo has applied; a readable secondary serves its redone data only
    /// while it follows the primary's history (SYNCHRONIZING or SYNCHRONIZED), so records of an
    /// abandoned fork are never read (R-SYNC-5).
    fn read(
        &self,
        index: usize,
        intent: ApplicationIntent,
        txn: Option<TxnId>,
        key: &str,
    ) -> ClientReply {
        let db = &self.dbs[index];
        invariant!(
            self,
            db.primary().is_some() == (self.role == Role::Primary),
            "R-ROLE-3: a {} reads {}, which holds the books of the other role",
            self.role,
            db.id
        );
        let me = &self.config.replicas[usize::from(self.me.0)];
        let not_allowed = ClientReply::Refused(ClientError::ConnectionNotAllowed {
            role: self.role,
            intent,
        });
        match self.role {
            Role::Primary => {
                if intent == ApplicationIntent::ReadOnly && self.primary_refuses_read_intent() {
                    return not_allowed;
                }
                let writes = match txn {
                    Some(txn) => match db.primary().and_then(|p| p.open_txns.get(&txn)) {
                        Some(open) => Some(open.writes.as_slice()),
                        None => {
                            return ClientReply::Refused(ClientError::UnknownTransaction { txn })
                        }
                    },
                    None => None,
                };
                let store = self.store.as_deref();
                value_reply(db.read_as_of(key, writes, self.primary_read_lsn(index), store))
            }
            Role::Secondary => {
                let allowed = match me.secondary_role.allow_connections {
                    SecondaryConnections::No => false,
                    SecondaryConnections::ReadOnly => intent == ApplicationIntent::ReadOnly,
                    SecondaryConnections::All => true,
                };
                if !allowed {
                    return not_allowed;
                }
                if let Some(txn) = txn {
                    return ClientReply::Refused(ClientError::UnknownTransaction { txn });
                }
                if db.damaged.is_some() {
                    // Not online: a damaged copy may lack what the primary acknowledged.
                    return ClientReply::Refused(ClientError::DatabaseSuspect { database: db.id });
                }
                let state = self.local_sync_state(index);
                if !matches!(state, SyncState::Synchronizing | SyncState::Synchronized) {
                    return ClientReply::Refused(ClientError::NotReadable {
                        database: db.id,
                        state,
                    });
                }
                value_reply(db.read_redone(key, self.store.as_deref()))
            }
            Role::Resolving => not_allowed,
        }
    }

    /// Appends the commit record, asks for its fsync, ships it; the reply waits for
    /// `release_commits`. R-COMMIT-5: with fewer than k SYNCHRONIZED secondaries the commit is
    /// refused *before* anything is logged, so the definite error is true.
    fn commit(
        &mut self,
        request: RequestId,
        index: usize,
        txn: TxnId,
        out: &mut Out,
    ) -> Option<ClientReply> {
        invariant!(
            self,
            self.role == Role::Primary,
            "R-ROLE-3: a {} commits",
            self.role
        );
        let epoch = self.epoch;
        let required = self.config.required_synchronized_secondaries_to_commit;
        let ignore_k = self.planted(Mutant::IgnoreRequiredSynchronized);
        let db = &mut self.dbs[index];
        let database = db.id;
        let primary = db.as_primary();
        let Some(OpenTxn { writes, .. }) = primary.open_txns.remove(&txn) else {
            return Some(self.commit_not_open(database, txn));
        };
        let synchronized = primary
            .secondaries
            .values()
            .filter(|p| p.synchronized)
            .count();
        if (synchronized as u64) < u64::from(required) && !ignore_k {
            let reply = ClientReply::Refused(ClientError::TooFewSynchronized {
                database,
                synchronized,
                required,
            });
            self.record_outcome(database, txn, Some(&reply));
            return Some(reply);
        }
        let lsn = Lsn(db.end().0 + 1);
        let record = LogRecord {
            lsn,
            epoch,
            txn,
            writes,
        };
        db.append([record.clone()]);
        db.fsync_requested = lsn;
        let primary = db.as_primary();
        // The last commit waiting, or else the last one acknowledged: this one comes after.
        let before = primary
            .pending
            .back()
            .map_or(primary.acknowledged, |p| p.lsn);
        primary
            .pending
            .push_back(PendingCommit { request, txn, lsn });
        out.push_back(Output::AppendLog {
            database,
            records: vec![record],
        });
        out.push_back(Output::Fsync {
            database,
            up_to: lsn,
        });
        let peers: Vec<ReplicaId> = primary.secondaries.keys().copied().collect();
        self.record_outcome(database, txn, None);
        invariant!(
            self,
            before < lsn,
            "R-COMMIT-2: {database}: commit {lsn} waits behind {before}: commits wait in LSN order, above the acknowledged LSN"
        );
        self.assert_log_pointers(index);
        for peer in peers {
            self.ship(index, peer, out);
        }
        None
    }

    /// R-SYNC-1: sends every record after `last_sent`, in order and with no gap, to a connected
    /// secondary whose database is moving data.
    pub(super) fn ship(&mut self, index: usize, peer: ReplicaId, out: &mut Out) {
        let serving = self.role == Role::Primary || self.handover_to == Some(peer);
        if !serving || !self.peers[usize::from(peer.0)].is_up() {
            return;
        }
        let epoch = self.epoch;
        let max = self.options.max_block_records.max(1) as u64;
        let db = &self.dbs[index];
        if db.suspended.is_some() {
            return;
        }
        let end = db.end();
        let Some(mut last_sent) = db
            .progress(peer)
            .filter(|progress| progress.is_moving())
            .map(|progress| progress.last_sent)
        else {
            return;
        };
        invariant!(
            self,
            last_sent <= end,
            "R-SYNC-1: {}: {last_sent} shipped to {peer}, beyond the end of the log {end}",
            db.id
        );
        if last_sent < db.checkpointed() {
            // Its copy ends before this log's checkpoint: the records it needs are only in
            // the data file. Such a copy needs a reseed, not log (said once per primary term).
            let (database, checkpointed) = (db.id, db.checkpointed());
            let first_time = self.dbs[index]
                .primary_mut()
                .is_some_and(|primary| primary.below_checkpoint.insert(peer));
            if first_time {
                tracing::warn!(
                    database = database.0,
                    peer = peer.0,
                    needs = last_sent.0 + 1,
                    checkpointed = checkpointed.0,
                    "a secondary needs log that was checkpointed and truncated: it must be reseeded"
                );
            }
            return;
        }
        while last_sent < end {
            let first = last_sent.0 + 1;
            let last = end.0.min(last_sent.0 + max);
            let records = db.records(Lsn(first), Lsn(last)).to_vec();
            invariant!(
                self,
                records.first().map(|r| r.lsn) == Some(Lsn(first)),
                "R-SYNC-1: {}: a block to {peer} must start at its next LSN {first}",
                db.id
            );
            send(
                out,
                &self.peers,
                peer,
                epoch,
                MessageBody::Log(crate::message::LogBlock {
                    database: db.id,
                    first_lsn: Lsn(first),
                    records,
                    stable: db.stable,
                }),
            );
            last_sent = Lsn(last);
        }
        invariant!(
            self,
            last_sent == end,
            "R-SYNC-1: {}: shipped to {peer} up to {last_sent}, not to the end of the log {end}",
            db.id
        );
        if let Some(progress) = self.dbs[index].progress_mut(peer) {
            progress.last_sent = last_sent;
        }
    }

    /// Where a secondary database starts, from its handshake (or, `rejoin`, its `Rejoin` after
    /// a RESUME): suspended (R-SYNC-7; R-FAIL-4 after a forced failover it has not accepted),
    /// reverting to the fork point (R-FAIL-6), or streaming from its end of log.
    pub(super) fn setup_secondary(
        &mut self,
        from: ReplicaId,
        hello: DatabaseHello,
        rejoin: bool,
        out: &mut Out,
    ) {
        // Only a primary sets secondaries up (a handover ships to its target from its books).
        invariant!(
            self,
            self.role == Role::Primary && self.is_peer(from),
            "R-SYNC-1: a {} sets up {from} as its secondary",
            self.role
        );
        let Some(index) = self.peer_db(from, hello.database, out) else {
            return;
        };
        let epoch = self.epoch;
        let last_forced = self.last_forced;
        let suspend_partners = !self.planted(Mutant::ForcedFailoverWithoutPartnerSuspend);
        // Planted bugs only: the copy is taken to end where the fork point is.
        let no_revert = (!rejoin && self.planted(Mutant::RejoinWithoutRevert))
            || (rejoin && self.planted(Mutant::ResumeWithoutRevert) && last_forced == epoch);
        let db = &mut self.dbs[index];
        let database = db.id;
        let (forks, end, primary_suspended) = (db.forks(), db.end(), db.suspended.is_some());
        let Some(progress) = db.progress_mut(from) else {
            ignored(
                out,
                InputSource::Peer(from),
                IgnoredReason::Unexpected {
                    what: "handshake from a replica that holds no data".into(),
                    role: self.role,
                    epoch,
                },
            );
            return;
        };
        *progress = Progress::new();
        // A forced failover's suspension comes first and overrides any other (R-FAIL-4).
        if last_forced > hello.accepted_epoch && suspend_partners {
            tracing::info!(
                peer = from.0,
                database = database.0,
                "secondary has not accepted the forced failover: SUSPEND_FROM_PARTNER"
            );
            progress.phase = Phase::Suspended(SuspendReason::Partner);
            let reason = SuspendReason::Partner;
            send(
                out,
                &self.peers,
                from,
                epoch,
                MessageBody::Suspend { database, reason },
            );
            return;
        }
        match hello.suspended {
            // Its own operator's suspension (or a forced failover's) stays what it is.
            Some(reason) if reason != SuspendReason::Primary => {
                progress.phase = Phase::Suspended(reason);
                return;
            }
            _ if primary_suspended => {
                // A copy beyond the fork point reverts all the same (R-FAIL-6): the revert is
                // about its log, the suspension about data movement. It reverts first, then is
                // suspended (it refuses a revert once suspended).
                let fork = common_prefix(&forks, end, &hello.forks, hello.end_of_log);
                if hello.suspended.is_none() && !hello.reverting && hello.end_of_log > fork {
                    tracing::info!(
                        peer = from.0,
                        database = database.0,
                        fork = fork.0,
                        "secondary holds log beyond the fork point: REVERTING, then SUSPEND_FROM_PRIMARY"
                    );
                    send(
                        out,
                        &self.peers,
                        from,
                        epoch,
                        MessageBody::Revert { database, to: fork },
                    );
                }
                progress.phase = Phase::Suspended(SuspendReason::Primary);
                if hello.suspended != Some(SuspendReason::Primary) {
                    let reason = SuspendReason::Primary;
                    send(
                        out,
                        &self.peers,
                        from,
                        epoch,
                        MessageBody::Suspend { database, reason },
                    );
                }
                return;
            }
            Some(_) => {
                // Suspended because of the primary database, which is resumed now.
                send(
                    out,
                    &self.peers,
                    from,
                    epoch,
                    MessageBody::ResumeFromPrimary { database },
                );
                return;
            }
            None => {}
        }
        let fork = if no_revert {
            hello.end_of_log
        } else {
            common_prefix(&forks, end, &hello.forks, hello.end_of_log)
        };
        progress.last_sent = fork;
        progress.received = fork;
        progress.hardened = hello.hardened.min(fork);
        progress.redone = hello.redone.min(progress.hardened);
        if hello.end_of_log > fork {
            tracing::info!(
                peer = from.0,
                database = database.0,
                fork = fork.0,
                "secondary holds log beyond the fork point: REVERTING"
            );
            progress.phase = Phase::Reverting { to: fork };
            send(
                out,
                &self.peers,
                from,
                epoch,
                MessageBody::Revert { database, to: fork },
            );
        } else if hello.reverting {
            // Its own revert (asked by an earlier primary) ends exactly at our fork point:
            // wait for its `Reverted`.
            progress.phase = Phase::Reverting { to: fork };
        } else {
            progress.phase = Phase::Streaming;
            self.ship(index, from, out);
        }
        // The fork point is in this primary's log: the copy is never taken to hold more of it.
        invariant!(
            self,
            fork <= end,
            "R-SYNC-5: {database}: {from} is set up from the fork point {fork}, beyond the end of the log {end}"
        );
    }

    fn serving(&self, peer: ReplicaId, epoch: Epoch) -> bool {
        invariant!(
            self,
            self.handover_to.is_none() || self.role == Role::Resolving,
            "R-FAIL-3: a {} hands over to {:?}",
            self.role,
            self.handover_to
        );
        epoch == self.epoch && (self.role == Role::Primary || self.handover_to == Some(peer))
    }

    /// The moving progress of `from` for `database`, if this replica serves it log.
    fn moving_progress(
        &mut self,
        from: ReplicaId,
        epoch: Epoch,
        database: DatabaseId,
        what: &'static str,
        out: &mut Out,
    ) -> Option<usize> {
        let index = self.peer_db(from, database, out)?;
        let moving = self.dbs[index]
            .progress(from)
            .is_some_and(|p| p.is_moving());
        if !self.serving(from, epoch) || !moving {
            self.unexpected(from, what, out);
            return None;
        }
        let db = &self.dbs[index];
        let sent = db.progress(from).map(|p| p.last_sent);
        invariant!(
            self,
            sent.is_some_and(|sent| sent <= db.end()),
            "R-SYNC-1: {} of {from}: sent up to {sent:?}, beyond the end of the log {}",
            db.id,
            db.end()
        );
        Some(index)
    }

    pub(super) fn on_rejoin(
        &mut self,
        from: ReplicaId,
        epoch: Epoch,
        hello: DatabaseHello,
        out: &mut Out,
    ) {
        // `on_message` takes a message only from a handshaken peer on its current connection.
        invariant!(
            self,
            self.is_peer(from) && self.peers[usize::from(from.0)].is_up(),
            "R-SYNC-1: a rejoin from {from}, not a handshaken peer with an open connection"
        );
        if self.role != Role::Primary || epoch != self.epoch {
            self.unexpected(from, "rejoin", out);
            return;
        }
        if let Err(error) = crate::log::check_fork_history(&hello.forks, hello.end_of_log) {
            ignored(
                out,
                InputSource::Peer(from),
                IgnoredReason::MalformedLog(error),
            );
            return;
        }
        let database = hello.database;
        self.setup_secondary(from, hello, true, out);
        let db = self.db_index(database).map(|index| &self.dbs[index]);
        let sent = db.and_then(|db| db.progress(from)).map(|p| p.last_sent);
        invariant!(
            self,
            db.is_none_or(|db| sent.is_none_or(|sent| sent <= db.end())),
            "R-SYNC-1: {database} of {from}: sent up to {sent:?} after its rejoin, beyond the end of the log"
        );
    }

    /// R-SYNC-1: the secondary refused a block that did not start at its end of log; resend
    /// from where it is.
    pub(super) fn on_gap_refused(
        &mut self,
        from: ReplicaId,
        epoch: Epoch,
        database: DatabaseId,
        expected: Lsn,
        out: &mut Out,
    ) {
        let Some(index) = self.moving_progress(from, epoch, database, "gap report", out) else {
            return;
        };
        let progress = self.dbs[index]
            .progress_mut(from)
            .expect("checked by moving_progress");
        // It cannot miss what was never sent, nor what it acknowledged hardening: that
        // acknowledgement may already have released a commit (R-COMMIT-2).
        if expected.0 == 0
            || expected.0 > progress.last_sent.0 + 1
            || expected.0 - 1 < progress.hardened.0
        {
            let reason = IgnoredReason::ImpossibleGap {
                database,
                expected,
                sent: progress.last_sent,
                hardened: progress.hardened,
            };
            ignored(out, InputSource::Peer(from), reason);
            return;
        }
        let resume_after = Lsn(expected.0 - 1);
        let acknowledged = progress.hardened;
        progress.last_sent = resume_after;
        progress.received = progress.received.min(resume_after);
        progress.hardened = progress.hardened.min(resume_after);
        progress.redone = progress.redone.min(resume_after);
        invariant!(
            self,
            resume_after >= acknowledged,
            "R-COMMIT-2: {database}: resending to {from} from {expected}, below what it acknowledged hardened ({acknowledged})"
        );
        self.assert_progress(index, from);
        self.ship(index, from, out);
    }

    /// R-SYNC-2 / R-COMMIT-2: a secondary's received / hardened / redone pointers.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_progress(
        &mut self,
        from: ReplicaId,
        epoch: Epoch,
        database: DatabaseId,
        received: Lsn,
        hardened: Lsn,
        redone: Lsn,
        out: &mut Out,
    ) {
        // `on_message` takes a message only from a handshaken peer on its current connection.
        invariant!(
            self,
            self.is_peer(from) && self.peers[usize::from(from.0)].is_up(),
            "R-SYNC-1: a progress report from {from}, not a handshaken peer with an open connection"
        );
        let Some(index) = self.moving_progress(from, epoch, database, "progress report", out)
        else {
            return;
        };
        let progress = self.dbs[index]
            .progress_mut(from)
            .expect("checked by moving_progress");
        if !(received >= hardened && hardened >= redone && received <= progress.last_sent) {
            let sent = progress.last_sent;
            ignored(
                out,
                InputSource::Peer(from),
                IgnoredReason::ImpossibleProgress {
                    received,
                    hardened,
                    redone,
                    sent,
                },
            );
            return;
        }
        progress.received = progress.received.max(received);
        progress.hardened = progress.hardened.max(hardened);
        progress.redone = progress.redone.max(redone);
        self.assert_progress(index, from);
    }

    /// R-SYNC-2 in the books of the replica that ships `peer` log: `end_of_log ≥ last_sent ≥
    /// received ≥ hardened ≥ redone`.
    fn assert_progress(&self, index: usize, peer: ReplicaId) {
        let db = &self.dbs[index];
        let Some(p) = db.progress(peer) else {
            return;
        };
        let end = db.end();
        invariant!(
            self,
            p.last_sent <= end,
            "R-SYNC-2: {} of {peer}: sent up to {}, beyond the end of the log {end}",
            db.id,
            p.last_sent
        );
        invariant!(
            self,
            p.received <= p.last_sent,
            "R-SYNC-2: {} of {peer}: received {}, beyond what was sent ({})",
            db.id,
            p.received,
            p.last_sent
        );
        invariant!(
            self,
            p.hardened <= p.received,
            "R-SYNC-2: {} of {peer}: hardened {}, beyond what it received ({})",
            db.id,
            p.hardened,
            p.received
        );
        invariant!(
            self,
            p.redone <= p.hardened,
            "R-SYNC-2: {} of {peer}: redone {}, beyond what it hardened ({})",
            db.id,
            p.redone,
            p.hardened
        );
    }

    /// R-FAIL-4/6: the secondary reverted to the fork point; it is INITIALIZING from there.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_reverted(
        &mut self,
        from: ReplicaId,
        epoch: Epoch,
        database: DatabaseId,
        end: Lsn,
        hardened: Lsn,
        redone: Lsn,
        out: &mut Out,
    ) {
        invariant!(
            self,
            self.is_peer(from) && self.peers[usize::from(from.0)].is_up(),
            "R-FAIL-4: a revert report from {from}, not a handshaken peer with an open connection"
        );
        let Some(index) = self.peer_db(from, database, out) else {
            return;
        };
        let primary_end = self.dbs[index].end();
        let expected = self.dbs[index].progress(from).map(|p| p.phase);
        if self.role != Role::Primary
            || epoch != self.epoch
            || expected != Some(Phase::Reverting { to: end })
        {
            self.unexpected(from, "revert report", out);
            return;
        }
        if !(end >= hardened && hardened >= redone) {
            let reason = IgnoredReason::ImpossibleRevertReport {
                database,
                end,
                hardened,
                redone,
            };
            ignored(out, InputSource::Peer(from), reason);
            return;
        }
        // `end` is the fork point this primary asked for, within its log (which never shrinks).
        invariant!(
            self,
            end <= primary_end,
            "R-FAIL-4: {database}: {from} reverted to {end}, beyond the end of the log {primary_end}"
        );
        let progress = self.dbs[index].progress_mut(from).expect("checked above");
        progress.last_sent = end;
        progress.received = end;
        progress.hardened = hardened;
        progress.redone = redone;
        progress.phase = Phase::Initializing { until: primary_end };
        self.assert_progress(index, from);
        self.ship(index, from, out);
    }

    /// R-SYNC-7: an operator suspended the secondary database; stop sending to it.
    pub(super) fn on_secondary_suspended(
        &mut self,
        from: ReplicaId,
        epoch: Epoch,
        database: DatabaseId,
        out: &mut Out,
    ) {
        let Some(index) = self.peer_db(from, database, out) else {
            return;
        };
        if self.role != Role::Primary || epoch != self.epoch {
            self.unexpected(from, "suspension report", out);
            return;
        }
        if let Some(progress) = self.dbs[index].progress_mut(from) {
            progress.phase = Phase::Suspended(SuspendReason::User);
            progress.reported = None;
        }
        let state = self.dbs[index].progress(from).map(|p| p.sync_state());
        invariant!(
            self,
            state.is_none_or(|state| state == SyncState::NotSynchronizing),
            "R-SYNC-7: {database} of {from} is suspended but {state:?}"
        );
    }

    /// After every input on the primary: update each secondary's state (R-SYNC-3/4/6), tell it
    /// when it changed, publish the SYNCHRONIZED sets to the manager, release commits.
    pub(super) fn settle(&mut self, now_ms: u64, out: &mut Out) {
        invariant!(
            self,
            (self.primary == Some(self.me)) == (self.role == Role::Primary),
            "R-ROLE-1: a {} {} knows {:?} as the primary",
            self.role,
            self.me,
            self.primary
        );
        if (self.role, self.epoch) != self.announced {
            // Peers always learn our current role and epoch (R-ROLE-1 hinges on it).
            self.broadcast_hello(out);
        }
        let primary = (self.primary, self.primary.map(|_| self.epoch));
        if primary != self.announced_primary {
            // R-FAIL-6, R-READ-3: the listener follows the primary.
            self.announced_primary = primary;
            out.push_back(Output::PrimaryChanged {
                primary: self.primary,
                epoch: self.epoch,
            });
        }
        if self.role != Role::Primary {
            self.clear_repaired_damage();
            return;
        }
        let epoch = self.epoch;
        let up: Vec<bool> = self.peers.iter().map(|p| p.is_up()).collect();
        let sync: Vec<bool> = (0..self.peers.len())
            .map(|r| self.pair_is_sync(self.me, ReplicaId(r as u8)))
            .collect();
        let async_synchronized = self.planted(Mutant::AsyncSecondarySynchronized);
        for db in &mut self.dbs {
            let end = db.end();
            let database = db.id;
            let PrimaryDb {
                secondaries,
                hardened_acked,
                ..
            } = db.as_primary();
            for (&peer, progress) in secondaries.iter_mut() {
                let r = usize::from(peer.0);
                if let Phase::Initializing { until } = progress.phase {
                    if progress.hardened >= until {
                        progress.phase = Phase::Streaming;
                    }
                }
                let eligible =
                    up[r] && progress.phase == Phase::Streaming && (sync[r] || async_synchronized);
                if !eligible {
                    progress.synchronized = false;
                } else if eligible && !progress.synchronized && progress.hardened >= end {
                    tracing::info!(
                        peer = peer.0,
                        database = database.0,
                        "secondary SYNCHRONIZED"
                    );
                    progress.synchronized = true;
                }
                let acked = hardened_acked.entry(peer).or_default();
                *acked = (*acked).max(progress.hardened);
                if up[r] && progress.is_moving() {
                    let state = progress.sync_state();
                    if progress.reported != Some(state) {
                        send(
                            out,
                            &self.peers,
                            peer,
                            epoch,
                            MessageBody::SyncState { database, state },
                        );
                        progress.reported = Some(state);
                    }
                }
            }
        }
        // R-SYNC-3/4: SYNCHRONIZED only while connected, streaming, and a synchronous pair;
        // and every hardened LSN a secondary reported is remembered.
        let mut wrong = None;
        for db in &self.dbs {
            for (peer, progress) in db.primary().into_iter().flat_map(|p| &p.secondaries) {
                let r = usize::from(peer.0);
                let acked = db
                    .primary()
                    .and_then(|p| p.hardened_acked.get(peer))
                    .copied();
                let synchronized_ok = !progress.synchronized
                    || (up[r] && sync[r] && progress.phase == Phase::Streaming);
                if !synchronized_ok || acked.is_none_or(|acked| acked < progress.hardened) {
                    wrong = wrong.or(Some((db.id, *peer, *progress, acked)));
                }
            }
        }
        invariant!(
            self,
            wrong.is_none(),
            "R-SYNC-4: (database, secondary, progress, hardened reported) {wrong:?}: SYNCHRONIZED while not a connected, streaming synchronous pair, or reported hardening forgotten"
        );
        self.publish_if_changed(out);
        self.release_commits(now_ms, out);
    }

    fn synchronized_sets(&self) -> Vec<BTreeSet<ReplicaId>> {
        let sets: Vec<BTreeSet<ReplicaId>> = self
            .dbs
            .iter()
            .map(|db| {
                db.primary()
                    .into_iter()
                    .flat_map(|primary| &primary.secondaries)
                    .filter(|(_, p)| p.synchronized)
                    .map(|(r, _)| *r)
                    .collect()
            })
            .collect();
        invariant!(
            self,
            self.role == Role::Primary && sets.iter().all(|set| !set.contains(&self.me)),
            "R-FAIL-2: a {} {} publishes SYNCHRONIZED sets {sets:?}",
            self.role,
            self.me
        );
        sets
    }

    /// With a cluster manager: publish the SYNCHRONIZED sets whenever they change.
    fn publish_if_changed(&mut self, out: &mut Out) {
        if self.role != Role::Primary || !self.has_manager() {
            return;
        }
        let sets = self.synchronized_sets();
        if self.publication.last.as_ref() == Some(&sets) {
            return;
        }
        self.publication.version += 1;
        let version = self.publication.version;
        self.publication.pending.insert(version, sets.clone());
        self.publication.last = Some(sets.clone());
        // R-FAIL-2: both the primary and the target SYNCHRONOUS_COMMIT with an automatic
        // failover mode, the target SYNCHRONIZED in every database.
        let any_partner = self.planted(Mutant::PromoteSynchronizing);
        let failover_ready = if self.is_automatic_failover_partner(self.me) {
            (0..self.config.replicas.len())
                .map(|r| ReplicaId(r as u8))
                .filter(|r| {
                    *r != self.me
                        && self.is_automatic_failover_partner(*r)
                        && (any_partner || !sets.is_empty() && sets.iter().all(|s| s.contains(r)))
                })
                .collect()
        } else {
            Vec::new()
        };
        // Failover-ready only when SYNCHRONIZED in every database; the newest publication is
        // the one the manager may store last.
        invariant!(
            self,
            failover_ready
                .iter()
                .all(|r| sets.iter().all(|set| set.contains(r))),
            "R-FAIL-2: {failover_ready:?} published failover-ready, not SYNCHRONIZED in every database of {sets:?}"
        );
        invariant!(
            self,
            self.publication.pending.last_key_value().map(|(v, _)| *v) == Some(version),
            "R-COMMIT-6: publication {version} is not the newest one pending ({:?})",
            self.publication.pending.keys().last()
        );
        out.push_back(Output::Manager(ManagerRequest::PublishSyncState(
            SyncStatePublication {
                version,
                epoch: self.epoch,
                synchronized: sets.into_iter().map(|s| s.into_iter().collect()).collect(),
                failover_ready,
            },
        )));
    }

    /// R-FAIL-1/2: SYNCHRONOUS_COMMIT with FAILOVER_MODE AUTOMATIC or EXTERNAL.
    fn is_automatic_failover_partner(&self, replica: ReplicaId) -> bool {
        // The configuration was validated: automatic failover needs synchronous commit and a
        // cluster manager.
        invariant!(
            self,
            self.config.replica(replica).is_some_and(|r| {
                !r.failover_mode.allows_automatic_failover()
                    || (r.availability_mode == AvailabilityMode::SynchronousCommit
                        && self.has_manager())
            }),
            "R-FAIL-1: {replica} is no replica of the group, or fails over automatically without synchronous commit or a manager"
        );
        self.is_sync(replica)
            && self
                .config
                .replica(replica)
                .is_some_and(|r| r.failover_mode.allows_automatic_failover())
    }

    /// The manager stored publication `version`: from now on commits wait for the sets it
    /// holds and for every set published after it (still in flight, the manager may store any
    /// of them next), not for older ones. Returns whether it was pending.
    pub(super) fn on_sync_state_published(&mut self, version: u64) -> bool {
        let confirmed = match self.publication.pending.remove(&version) {
            Some(sets) => {
                self.publication.confirmed = sets;
                self.publication.pending.retain(|v, _| *v > version);
                true
            }
            None => false,
        };
        // What the manager confirmed was published by this primary, for every database, and
        // only later publications stay in flight.
        let publication = &self.publication;
        invariant!(
            self,
            !confirmed
                || (version <= publication.version
                    && publication.confirmed.len() == self.dbs.len()
                    && publication
                        .pending
                        .first_key_value()
                        .is_none_or(|(v, _)| *v > version)),
            "R-COMMIT-6: publication {version} confirmed (published up to {}, {} sets for {} databases, oldest pending {:?})",
            publication.version,
            publication.confirmed.len(),
            self.dbs.len(),
            publication.pending.keys().next()
        );
        confirmed
    }

    /// Whether a commit at `lsn` must still wait: for the local fsync, for R-COMMIT-2
    /// (participants), R-COMMIT-5 (at least k of them), and R-COMMIT-4 with a manager: also for
    /// every replica the manager may hold as SYNCHRONIZED, i.e. in the last confirmed
    /// publication **or in any publication sent since** (the manager may store any of those
    /// next and promote from it, R-FAIL-5).
    pub(super) fn commit_blocked(&self, index: usize, lsn: Lsn) -> bool {
        let db = &self.dbs[index];
        let Some(PrimaryDb { secondaries, .. }) = db.primary() else {
            return true; // only a primary acknowledges
        };
        invariant!(
            self,
            lsn.0 >= 1 && lsn <= db.end(),
            "R-COMMIT-2: {}: a commit at {lsn} judged, outside the log (end {})",
            db.id,
            db.end()
        );
        if db.hardened < lsn {
            return true;
        }
        let ack_on_sending = self.planted(Mutant::AckBeforeSecondaryHardens);
        let durable = |p: &Progress| {
            if ack_on_sending {
                p.last_sent
            } else {
                p.hardened
            }
        };
        // Planted bug only: asynchronous peers moving data are waited for.
        let async_waited = |r: &ReplicaId, p: &Progress| {
            self.planted(Mutant::AsyncSecondaryParticipant)
                && !self.pair_is_sync(self.me, *r)
                && p.is_moving()
                && self.peers[usize::from(r.0)].is_up()
        };
        let participants: Vec<(&ReplicaId, &Progress)> = secondaries
            .iter()
            .filter(|(r, p)| p.synchronized || p.lingering || async_waited(r, p))
            .collect();
        let counted = participants.iter().filter(|(_, p)| p.synchronized).count();
        let required = self.config.required_synchronized_secondaries_to_commit as usize;
        let ignore_k = self.planted(Mutant::IgnoreRequiredSynchronized);
        if (counted < required && !ignore_k) || participants.iter().any(|(_, p)| durable(p) < lsn) {
            return true;
        }
        if self.has_manager() {
            let hardened = |r: &ReplicaId| secondaries.get(r).is_some_and(|p| durable(p) >= lsn);
            if self
                .manager_may_hold(index)
                .any(|set| !set.iter().all(hardened))
            {
                return true;
            }
        }
        false
    }

    /// The SYNCHRONIZED sets of database `index` the manager holds or may store next: the
    /// last confirmed publication and every one still pending.
    pub(super) fn manager_may_hold(
        &self,
        index: usize,
    ) -> impl Iterator<Item = &BTreeSet<ReplicaId>> + '_ {
        let publication = &self.publication;
        // Publications go to a manager only, one set per database.
        invariant!(
            self,
            index < self.dbs.len()
                && (self.has_manager()
                    || (publication.confirmed.is_empty() && publication.pending.is_empty()))
                && (publication.confirmed.is_empty()
                    || publication.confirmed.len() == self.dbs.len()),
            "R-COMMIT-6: database {index} of {}: {} confirmed sets, {} pending publications (manager: {})",
            self.dbs.len(),
            publication.confirmed.len(),
            publication.pending.len(),
            self.has_manager()
        );
        publication.confirmed.get(index).into_iter().chain(
            publication
                .pending
                .values()
                .filter_map(move |s| s.get(index)),
        )
    }

    /// The log is hardened up to `up_to` (beyond what it was): the primary's data is current as
    /// soon as its log is hardened (the spec's primary has redone what it hardened), so it is
    /// redone here, with no round trip through the shell. A secondary's redo is the shell's,
    /// asynchronous (R-SYNC-2).
    pub(super) fn primary_hardened(&mut self, index: usize, up_to: Lsn, redo: bool) {
        if redo {
            self.dbs[index].apply_redo(up_to);
        }
        let db = &self.dbs[index];
        invariant!(
            self,
            !redo || db.redone == up_to,
            "R-SYNC-2: {}: the primary hardened up to {up_to} but its data is redone up to {}",
            db.id,
            db.redone
        );
    }

    /// Acknowledges, in LSN order, every waiting commit that nothing blocks any more.
    fn release_commits(&mut self, now_ms: u64, out: &mut Out) {
        if self.role != Role::Primary || self.lease_lapsed(now_ms) {
            return;
        }
        for index in 0..self.dbs.len() {
            let mut released = false;
            while let Some(front) = self.dbs[index].as_primary().pending.front().copied() {
                if self.commit_blocked(index, front.lsn) {
                    break;
                }
                self.assert_releasable(index, front.lsn);
                let db = &mut self.dbs[index];
                let database = db.id;
                let primary = db.as_primary();
                primary.pending.pop_front();
                primary.acknowledged = front.lsn;
                let reply = ClientReply::Committed { lsn: front.lsn };
                self.record_outcome(database, front.txn, Some(&reply));
                out.push_back(Output::ClientReply {
                    request: front.request,
                    reply,
                });
                released = true;
            }
            if released {
                self.assert_acknowledged_reported(index);
            }
            // R-COMMIT-6: what was acknowledged is hardened here, and what waits comes after it.
            let db = &self.dbs[index];
            let books = db
                .primary()
                .map(|p| (p.acknowledged, p.pending.front().map(|f| f.lsn)));
            invariant!(
                self,
                books.is_some_and(|(acknowledged, front)| acknowledged <= db.hardened
                    && front.is_none_or(|front| front > acknowledged)),
                "R-COMMIT-6: {}: (acknowledged, first waiting) {books:?} with hardened {}",
                db.id,
                db.hardened
            );
        }
    }

    /// The ordering contract, restated where it matters: the commit at `lsn`, the first one
    /// waiting, may be acknowledged only now (R-COMMIT-2).
    fn assert_releasable(&self, index: usize, lsn: Lsn) {
        let db = &self.dbs[index];
        let Some(books) = db.primary() else {
            return; // only a primary releases commits
        };
        invariant!(
            self,
            db.hardened >= lsn,
            "R-COMMIT-2: {}: commit {lsn} acknowledged before the local fsync (hardened {})",
            db.id,
            db.hardened
        );
        invariant!(
            self,
            books.acknowledged < lsn,
            "R-COMMIT-2: {}: commit {lsn} acknowledged after {}: acknowledgements go in LSN order",
            db.id,
            books.acknowledged
        );
        for (replica, progress) in &books.secondaries {
            invariant!(
                self,
                !progress.synchronized || progress.hardened >= lsn,
                "R-COMMIT-2: {}: commit {lsn} acknowledged before participant {replica} hardened it (hardened {})",
                db.id,
                progress.hardened
            );
        }
    }

    /// After a batch of acknowledgements: the highest LSN acknowledged was reported hardened
    /// by at least REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT secondaries (R-COMMIT-5) and by
    /// every replica the cluster manager holds or may store as SYNCHRONIZED (R-COMMIT-6).
    fn assert_acknowledged_reported(&self, index: usize) {
        let db = &self.dbs[index];
        let Some(books) = db.primary() else {
            return; // only a primary releases commits
        };
        let acknowledged = books.acknowledged;
        let reported = |replica: &ReplicaId| {
            books
                .hardened_acked
                .get(replica)
                .is_some_and(|hardened| *hardened >= acknowledged)
        };
        let required = self.config.required_synchronized_secondaries_to_commit as usize;
        let reporting = books.hardened_acked.keys().filter(|r| reported(r)).count();
        invariant!(
            self,
            reporting >= required,
            "R-COMMIT-5: {}: {acknowledged} acknowledged, reported hardened by {reporting} secondaries of the {required} required",
            db.id
        );
        for set in self.manager_may_hold(index) {
            for replica in set {
                invariant!(
                    self,
                    reported(replica),
                    "R-COMMIT-6: {}: {acknowledged} acknowledged, not reported hardened by {replica}, which the manager may hold as SYNCHRONIZED",
                    db.id
                );
            }
        }
    }
}

/// A value read, or the data file's failure to give it (never a wrong value).
fn value_reply(read: Result<Option<String>, crate::store::StoreError>) -> ClientReply {
    match read {
        Ok(value) => ClientReply::Value(value),
        Err(error) => {
            tracing::error!(%error, "a read failed in the data file");
            ClientReply::Refused(ClientError::DataUnreadable {
                database: error.database(),
                detail: error.to_string(),
            })
        }
    }
}
