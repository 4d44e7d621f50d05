//! Start-up and the driver's loop: open the data directory (recovering the replica from it),
//! start the client and admin APIs, then take events, timers and redo batches as they come,
//! performing the core's outputs after each batch ([`State::after_input`]).
//!
//! The one liberty the loop takes with arrival order is [`Inbox`]'s: the newest lease renewal
//! waiting goes first, so that a stale lease deadline is never judged before it.

use super::admin::admin_router;
use super::data::DataFiles;
use super::error::NodeError;
use super::flush::BackgroundFlushes;
use super::{client, cluster, event_log, fault, storage, Driver, Event, State};
use crate::config::NodeConfig;
use crate::pages::DataFileOptions;
use crate::wal::Wal;
use hadr_core::{CoreOptions, ManagerEvent, Replica, TimerId};
use hadr_types::DatabaseId;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use storage::DataDir;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

/// Runs one replica until `shutdown` resolves or storage fails.
///
/// Every task of the replica runs in the replica's span: the span `run` is called in (the
/// CLI's `replica` span, named after the instance), or a new `replica` span when there is none.
pub async fn run(config: NodeConfig, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
    let current = tracing::Span::current();
    let span = if current.is_none() {
        tracing::info_span!("replica", name = %config.name)
    } else {
        current
    };
    async {
        let (mut state, mut inbox) = start(&config, tracing::Span::current()).await?;
        state.attach_manager_on_recovery();
        state.after_input(&mut inbox).await?;
        state.run_loop(&mut inbox, shutdown).await
    }
    .instrument(span)
    .await
}

/// Opens the data directory and the event log, recovers the replica, and starts the APIs.
async fn start(config: &NodeConfig, span: tracing::Span) -> Result<(State, Inbox), NodeError> {
    let data_dir = DataDir::open(&config.data_dir)?;
    let event_log = match event_log::path_of(config) {
        Some(path) => Some(event_log::EventLog::open(&path, &config.name)?),
        None => None,
    };
    let (events, events_rx) = mpsc::unbounded_channel();
    let (client_generation, generation_rx) = watch::channel(0u64);
    let data_files = Arc::new(DataFiles::default());
    let data_options = DataFileOptions {
        pool_budget_bytes: config.storage.buffer_pool_bytes,
    };
    let (replica, wals) = open_replica(config, &data_dir, &data_files, data_options)?;
    let driver = Driver {
        events: events.clone(),
        name: config.name.as_str().into(),
        client_generation: generation_rx,
        span: span.clone(),
    };
    serve_apis(config, driver).await?;
    tracing::info!(
        replica = %config.name,
        client = %config.client_listen,
        admin = %config.admin_listen,
        "replica started"
    );
    // With fault injection, the cluster manager reaches etcd through a relay that can be cut.
    let (faults, relayed) = fault::Faults::new(&config.etcd_endpoints);
    let manager_settings = cluster::ManagerSettings {
        etcd_endpoints: config.etcd_endpoints.clone(),
        connect_to: relayed.unwrap_or_else(|| config.etcd_endpoints.clone()),
    };
    let state = State {
        endpoint_override: config.endpoint_listen,
        wals,
        data_files,
        data_options,
        client_generation,
        manager_settings,
        faults,
        event_log,
        ..State::new(config.name.clone(), span, data_dir, replica, events)
    };
    Ok((state, Inbox::new(events_rx)))
}

/// The replica `data_dir` holds, with the write-ahead log of each of its databases open: a
/// new one if it never joined a group, else recovered from its state file and logs.
fn open_replica(
    config: &NodeConfig,
    data_dir: &DataDir,
    data_files: &Arc<DataFiles>,
    data_options: DataFileOptions,
) -> Result<(Replica, HashMap<DatabaseId, Wal>), NodeError> {
    let mut wals = HashMap::new();
    let options = core_options(config)?;
    let Some(mut stored) = data_dir.load_state()? else {
        let mut replica = Replica::with_options(config.name.clone(), options);
        replica.set_data_store(data_files.clone());
        return Ok((replica, wals));
    };
    let mut logs = Vec::new();
    for (i, (wal, records)) in storage::open_wals(data_dir, &mut stored)?
        .into_iter()
        .enumerate()
    {
        let database = DatabaseId(i as u8);
        let checkpointed = stored.databases[i].checkpointed;
        data_files.open(data_dir, database, checkpointed, data_options)?;
        logs.push(records);
        wals.insert(database, wal);
    }
    let records: usize = logs.iter().map(Vec::len).sum();
    let mut replica =
        Replica::recover(0, config.name.clone(), stored, logs, options).map_err(|source| {
            NodeError::Recovery {
                name: config.name.clone(),
                data_dir: config.data_dir.display().to_string(),
                source,
            }
        })?;
    replica.set_data_store(data_files.clone());
    tracing::info!(replica = %config.name, records, role = ?replica.role(), "recovered from disk");
    Ok((replica, wals))
}

/// Binds the client and admin APIs and serves them, each in a task of the replica's span.
async fn serve_apis(config: &NodeConfig, driver: Driver) -> Result<(), NodeError> {
    let bind = |address: std::net::SocketAddr, what: &'static str| async move {
        tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| NodeError::Bind {
                what,
                address: address.to_string(),
                source,
            })
    };
    let client_listener = bind(config.client_listen, "the client API").await?;
    let admin_listener = bind(config.admin_listen, "the admin API").await?;
    let span = driver.span.clone();
    tokio::spawn(client::serve(client_listener, driver.clone()).instrument(span.clone()));
    let router = admin_router(driver);
    tokio::spawn(
        async move {
            if let Err(error) = axum::serve(admin_listener, router).await {
                tracing::error!(%error, "admin API stopped");
            }
        }
        .instrument(span),
    );
    Ok(())
}

/// The core's options: the defaults, plus the planted bug `HADR_MUTANT` names (a build with
/// the `mutants` feature, for `hadr certify --sut reference --mutant NAME`). A build without
/// the feature refuses to start with `HADR_MUTANT` set rather than run without the bug.
fn core_options(config: &NodeConfig) -> Result<CoreOptions, NodeError> {
    #[allow(unused_mut)]
    let mut options = CoreOptions {
        checkpoint_bytes: config.storage.checkpoint_bytes,
        ..CoreOptions::default()
    };
    let Ok(name) = std::env::var("HADR_MUTANT") else {
        return Ok(options);
    };
    if name.is_empty() {
        return Ok(options);
    }
    #[cfg(feature = "mutants")]
    {
        let mutant = name
            .parse()
            .map_err(|e: hadr_core::mutants::UnknownMutant| NodeError::Mutant {
                name: name.clone(),
                reason: e.to_string(),
            })?;
        tracing::warn!(%name, "a planted bug is active (HADR_MUTANT): never use this replica for data");
        options.mutant = Some(mutant);
        Ok(options)
    }
    #[cfg(not(feature = "mutants"))]
    Err(NodeError::Mutant {
        name,
        reason: "this hadr is built without planted bugs: build it with `--features mutants`"
            .to_owned(),
    })
}

// The node runs the core with its default limits, and every `Log` message the core can ask
// for must fit one frame: at most `max_block_records` records, each a record header plus at most
// `max_transaction_bytes` of writes as the core counts them, a count that covers how the codec
// encodes a write (key, value and their lengths).
const _: () = {
    let options = CoreOptions::DEFAULT;
    assert!(crate::codec::MIN_WRITE_LEN <= hadr_core::Write::OVERHEAD_BYTES);
    let largest_record = crate::codec::MIN_LOG_RECORD_LEN + options.max_transaction_bytes;
    assert!(
        crate::codec::LOG_MESSAGE_HEADER_LEN + options.max_block_records * largest_record
            <= crate::wire::MAX_FRAME_BODY as usize
    );
};

/// The events waiting for the driver: the channel, and those taken from it but not handled
/// yet.
pub(super) struct Inbox {
    events: mpsc::UnboundedReceiver<Event>,
    queue: VecDeque<Event>,
}

impl Inbox {
    pub(super) fn new(events: mpsc::UnboundedReceiver<Event>) -> Inbox {
        Inbox {
            events,
            queue: VecDeque::new(),
        }
    }

    /// Waits for an event (between batches, when nothing is queued).
    async fn recv(&mut self) -> Option<Event> {
        match self.queue.pop_front() {
            Some(event) => Some(event),
            None => self.events.recv().await,
        }
    }

    /// The next event to handle, if one is queued or already in the channel: in arrival
    /// order, except that whenever more events arrive, the newest lease renewal waiting goes
    /// first. After this task was held up (a long fsync, a hung thread), the renewals the
    /// manager's thread made meanwhile are news from the past; the core must learn of them
    /// before any other input makes it check its lease deadline against the present
    /// (R-QUORUM-3 stays safe: each renewal's deadline counts from when it was sent).
    pub(super) fn next(&mut self) -> Option<Event> {
        let mut arrived = false;
        while let Ok(event) = self.events.try_recv() {
            self.queue.push_back(event);
            arrived = true;
        }
        if arrived {
            self.newest_renewal_first();
        }
        self.queue.pop_front()
    }

    fn newest_renewal_first(&mut self) {
        let newest = self
            .queue
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match e {
                Event::Manager(ManagerEvent::LeaseRenewed { lease_until_ms }) => {
                    Some((*lease_until_ms, i))
                }
                _ => None,
            })
            .max();
        if let Some((_, i)) = newest {
            if let Some(renewal) = self.queue.remove(i) {
                self.queue.push_front(renewal);
            }
        }
    }
}

/// Sleeps until `deadline`; forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

impl State {
    /// A driver state around `replica`, nothing performed yet, no fault injected, no cluster
    /// manager configured.
    pub(super) fn new(
        name: String,
        span: tracing::Span,
        data_dir: DataDir,
        replica: Replica,
        events: mpsc::UnboundedSender<Event>,
    ) -> State {
        State {
            name,
            span,
            data_dir,
            endpoint_override: None,
            replica,
            start: Instant::now(),
            events,
            timers: BTreeMap::new(),
            wals: HashMap::new(),
            data_files: Arc::new(DataFiles::default()),
            data_options: DataFileOptions::default(),
            checkpointers: HashMap::new(),
            sync_pending: BTreeSet::new(),
            flushes: BackgroundFlushes::default(),
            flushers: HashMap::new(),
            turn_appends: 0,
            redo_pending: BTreeMap::new(),
            redo_due: None,
            sent: false,
            connections: HashMap::new(),
            clients: HashMap::new(),
            admins: HashMap::new(),
            next_request: 0,
            net: None,
            client_generation: watch::channel(0).0,
            manager: None,
            manager_settings: cluster::ManagerSettings::default(),
            stored_config: None,
            faults: fault::Faults::new(&[]).0,
            event_log: None,
        }
    }

    /// Takes events, timers and redo batches until `shutdown` resolves (or the channel
    /// closes), performing the core's outputs after each.
    async fn run_loop(
        &mut self,
        inbox: &mut Inbox,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), NodeError> {
        tokio::pin!(shutdown);
        loop {
            let next_timer = self.timers.values().min().map(|at| {
                tokio::time::Instant::from_std(self.start + std::time::Duration::from_millis(*at))
            });
            tokio::select! {
                _ = &mut shutdown => {
                    tracing::info!(replica = %self.name, "shutting down");
                    return Ok(());
                }
                event = inbox.recv() => {
                    let Some(event) = event else { return Ok(()) };
                    // Take whatever else is already queued before performing the outputs' I/O.
                    self.handle_queued(Some(event), inbox)?;
                }
                () = sleep_until(next_timer) => self.timers_due(inbox)?,
                () = sleep_until(self.redo_due) => self.redo()?,
            }
            self.after_input(inbox).await?;
        }
    }

    /// Handles `first` and everything queued, in [`Inbox::next`]'s order (the newest lease
    /// renewal first). Every path that takes queued events goes through here (the main loop,
    /// the timers, the group-commit gathering): a stall can end inside any of them. Returns
    /// how many events were handled.
    pub(super) fn handle_queued(
        &mut self,
        first: Option<Event>,
        inbox: &mut Inbox,
    ) -> Result<usize, NodeError> {
        inbox.queue.extend(first);
        let mut handled = 0;
        while let Some(event) = inbox.next() {
            self.handle(event)?;
            handled += 1;
        }
        Ok(handled)
    }

    /// A timer is due. Inputs that queued up while this task was busy come first: a lease
    /// renewal that arrived before the lease deadline must count before the deadline fires.
    pub(super) fn timers_due(&mut self, inbox: &mut Inbox) -> Result<(), NodeError> {
        self.handle_queued(None, inbox)?;
        self.fire_timers();
        Ok(())
    }

    fn fire_timers(&mut self) {
        let now = self.now();
        let due: Vec<TimerId> = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| *id)
            .collect();
        for timer in due {
            self.timers.remove(&timer);
            self.replica.handle_timer(now, timer);
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use hadr_core::testing::ag_config;
    use hadr_core::{AdminCommand, ClientOp, PromotionKind, RequestId};
    use hadr_types::{ApplicationIntent, AvailabilityMode, ClusterType, Role};
    use std::time::Duration;

    /// A driver around `replica` whose clock reads `now_ms` (it started that long ago), with
    /// its inbox and the channel into it.
    pub(in crate::node) fn driver_at(
        replica: Replica,
        now_ms: u64,
        dir: &tempfile::TempDir,
    ) -> (State, Inbox, mpsc::UnboundedSender<Event>) {
        let (events, events_rx) = mpsc::unbounded_channel();
        let data_dir = DataDir::open(dir.path()).unwrap();
        let mut state = State::new(
            "R0".to_owned(),
            tracing::Span::none(),
            data_dir,
            replica,
            events.clone(),
        );
        state.start = Instant::now() - Duration::from_millis(now_ms);
        (state, Inbox::new(events_rx), events)
    }

    /// The primary of a CLUSTER_TYPE = EXTERNAL group, its lease ending at `lease_until_ms`.
    fn primary_until(lease_until_ms: u64) -> Replica {
        let config = ag_config(
            ClusterType::External,
            &[AvailabilityMode::SynchronousCommit; 2],
            1,
        );
        let mut replica = Replica::new("R0");
        replica.handle_admin(
            0,
            RequestId(1),
            AdminCommand::CreateAvailabilityGroup(config),
        );
        let promote = ManagerEvent::Promote {
            kind: PromotionKind::Initial,
            lease_until_ms,
            term_at_least: 0,
            required_synchronized: None,
        };
        replica.handle_manager(0, promote);
        replica.drain_outputs();
        assert_eq!(replica.role(), Some(Role::Primary));
        replica
    }

    fn renewed(lease_until_ms: u64) -> Event {
        Event::Manager(ManagerEvent::LeaseRenewed { lease_until_ms })
    }

    fn renewal_of(event: &Event) -> Option<u64> {
        match event {
            Event::Manager(ManagerEvent::LeaseRenewed { lease_until_ms }) => Some(*lease_until_ms),
            _ => None,
        }
    }

    #[test]
    fn the_newest_renewal_waiting_goes_first_and_the_rest_keep_their_order() {
        let (events, events_rx) = mpsc::unbounded_channel();
        let mut inbox = Inbox::new(events_rx);
        for event in [
            Event::Ping,
            renewed(5),
            Event::Stall { ms: 0 },
            renewed(9),
            renewed(7),
        ] {
            events.send(event).unwrap();
        }
        let mut order = Vec::new();
        for _ in 0..2 {
            let event = inbox.next().unwrap();
            order.push(renewal_of(&event));
        }
        // More arrive while the first are handled: the newest of all waiting goes next.
        events.send(renewed(12)).unwrap();
        while let Some(event) = inbox.next() {
            order.push(renewal_of(&event));
        }
        assert_eq!(
            order,
            vec![Some(9), None, Some(12), Some(5), None, Some(7)],
            "Ping and Stall are the None"
        );
    }

    /// After the driver was held up past its lease deadline, the renewal the manager's thread
    /// made in time must reach the core before anything that makes it judge the deadline: a
    /// client request, or the lease timer itself.
    #[test]
    fn a_renewal_that_queued_up_counts_before_a_stale_deadline_is_judged() {
        let dir = tempfile::tempdir().unwrap();
        let (mut state, mut inbox, events) = driver_at(primary_until(5_000), 10_000, &dir);
        let (reply, _answer) = tokio::sync::oneshot::channel();
        let read = Event::Client {
            database: crate::node::DatabaseRef::Id(0),
            intent: ApplicationIntent::ReadWrite,
            op: ClientOp::Read {
                txn: None,
                key: "k".to_owned(),
            },
            reply,
        };
        events.send(read).unwrap();
        events.send(renewed(15_000)).unwrap();
        events.send(renewed(20_000)).unwrap();
        state.handle_queued(None, &mut inbox).unwrap();
        assert_eq!(
            state.replica.role(),
            Some(Role::Primary),
            "the read came first, but the renewal counted before it"
        );

        state.timers.insert(TimerId::LeaseExpiry, 5_000);
        state.start = Instant::now() - Duration::from_millis(25_000);
        events.send(renewed(40_000)).unwrap();
        state.timers_due(&mut inbox).unwrap();
        assert_eq!(
            state.replica.role(),
            Some(Role::Primary),
            "the lease timer fired after the renewal that queued up meanwhile"
        );
        assert!(state.timers.is_empty(), "the due timer fired");
    }
}
