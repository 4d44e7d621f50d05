//! Against a real etcd (`apt-get install -y etcd-server`): promotions, lease expiry,
//! publication order, automatic-failover checks, keepalive and lease loss.

use hadr_core::Epoch;
use hadr_manager::testing::EtcdServer;
use hadr_manager::{
    Clock, EtcdManager, LeaderObservation, ManagerConfig, ManagerEvent, ManagerRequest,
    PromotionKind, SyncStatePublication,
};
use hadr_types::ReplicaId;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const TTL: Duration = Duration::from_secs(2);
const MARGIN_MS: u64 = 300;

fn config(server: &EtcdServer, ag: &str, replica: u8) -> ManagerConfig {
    let mut config = ManagerConfig::new(vec![server.endpoint()], ag, ReplicaId(replica));
    config.lease_ttl = TTL;
    config.safety_margin = Duration::from_millis(MARGIN_MS);
    config.renew_interval = Duration::from_millis(500);
    config.request_timeout = Duration::from_millis(1000);
    config
}

async fn manager(server: &EtcdServer, ag: &str, replica: u8, clock: Clock) -> EtcdManager {
    EtcdManager::connect(config(server, ag, replica), clock)
        .await
        .expect("connect to etcd")
}

fn promote(kind: PromotionKind) -> ManagerRequest {
    ManagerRequest::RequestPromotion { kind }
}

fn publication(term: u64, primary: u8, version: u64, ready: &[u8]) -> SyncStatePublication {
    SyncStatePublication {
        version,
        epoch: Epoch {
            term,
            replica: ReplicaId(primary),
            generation: 0,
        },
        synchronized: vec![ready.iter().copied().map(ReplicaId).collect()],
        failover_ready: ready.iter().copied().map(ReplicaId).collect(),
    }
}

/// Publishes `p` through `m` and asserts etcd stored it.
async fn stored(m: &EtcdManager, clock: Clock, p: SyncStatePublication) {
    let (epoch, version) = (p.epoch, p.version);
    assert_eq!(
        m.handle(clock.now_ms(), ManagerRequest::PublishSyncState(p))
            .await,
        vec![ManagerEvent::SyncStatePublished { epoch, version }]
    );
}

fn promoted(events: &[ManagerEvent]) -> Option<(u64, u64)> {
    match events {
        [ManagerEvent::Promote {
            lease_until_ms,
            term_at_least,
            ..
        }] => Some((*lease_until_ms, *term_at_least)),
        _ => None,
    }
}

async fn next_observation(
    watch: &mut mpsc::UnboundedReceiver<LeaderObservation>,
    within: Duration,
) -> LeaderObservation {
    tokio::time::timeout(within, watch.recv())
        .await
        .expect("leader watch answered in time")
        .expect("leader watch open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_of_two_concurrent_promotions_wins() {
    let server = EtcdServer::start();
    let clock = Clock::new(Instant::now());
    let a = manager(&server, "ag1", 1, clock).await;
    let b = manager(&server, "ag1", 2, clock).await;
    for round in 1..=10u64 {
        let kind = if round % 2 == 0 {
            PromotionKind::Forced
        } else {
            PromotionKind::Planned
        };
        let started = Instant::now();
        let now = clock.now_ms();
        let (ea, eb) = tokio::join!(a.handle(now, promote(kind)), b.handle(now, promote(kind)));
        let elapsed = started.elapsed();
        let (winner, loser_events) = match (promoted(&ea), promoted(&eb)) {
            (Some(grant), None) => ((&a, grant), eb),
            (None, Some(grant)) => ((&b, grant), ea),
            other => panic!("round {round}: not exactly one winner: {ea:?} {eb:?} ({other:?})"),
        };
        assert_eq!(loser_events, vec![ManagerEvent::PromotionDenied]);
        let (manager, (lease_until, term)) = winner;
        assert_eq!(term, round, "every grant bumps the term");
        assert!(lease_until <= now + TTL.as_millis() as u64 - MARGIN_MS);
        let leader = manager.leader().await.unwrap().expect("leader key");
        assert_eq!(leader.replica, manager.config().replica);
        assert_eq!(leader.term, round);
        eprintln!(
            "round {round}: replica {} won term {term} in {elapsed:?}",
            leader.replica.0
        );
        assert!(manager
            .handle(clock.now_ms(), ManagerRequest::ReleaseLease)
            .await
            .is_empty());
        assert_eq!(manager.leader().await.unwrap(), None, "released");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_refused_while_old_lease_lives_and_granted_after_expiry() {
    let server = EtcdServer::start();
    let clock = Clock::new(Instant::now());
    let old = manager(&server, "ag2", 1, clock).await;
    let new = manager(&server, "ag2", 2, clock).await;
    let mut watch = new.watch_leader();
    assert_eq!(next_observation(&mut watch, TTL).await.leader, None);

    let t_request = clock.now_ms();
    let events = old.handle(t_request, promote(PromotionKind::Initial)).await;
    let (lease_until, term) = promoted(&events).expect("initial promotion");
    assert_eq!(term, 1);
    let seen = next_observation(&mut watch, TTL).await;
    assert_eq!(seen.leader.map(|l| l.replica), Some(ReplicaId(1)));

    // The old primary crashes: nothing renews or revokes its lease.
    drop(old);
    let denied = new
        .handle(clock.now_ms(), promote(PromotionKind::Planned))
        .await;
    assert_eq!(
        denied,
        vec![ManagerEvent::PromotionDenied],
        "a planned promotion while the lease lives"
    );
    let gone = next_observation(&mut watch, TTL * 3).await;
    let t_gone = clock.now_ms();
    assert_eq!(gone.leader, None);
    eprintln!(
        "lease granted at ≥{t_request} ms, old primary told to stop at {lease_until} ms, \
         etcd deleted the leader key at ≤{t_gone} ms ({} ms after the request)",
        t_gone - t_request
    );
    // The inequality: the old primary stopped committing before anyone could be promoted.
    assert!(lease_until < t_gone);
    assert!(t_gone - t_request >= TTL.as_millis() as u64);

    let t = Instant::now();
    let events = new
        .handle(clock.now_ms(), promote(PromotionKind::Forced))
        .await;
    let (_, term) = promoted(&events).expect("granted after expiry");
    assert_eq!(term, 2);
    eprintln!("promotion after expiry granted in {:?}", t.elapsed());
    let seen = next_observation(&mut watch, TTL).await;
    assert_eq!(
        seen.leader.map(|l| (l.replica, l.term)),
        Some((ReplicaId(2), 2))
    );
}

/// R-FAIL-4 with R-QUORUM-3: a forced failover takes the lease from a live primary, which
/// loses it; the promotion is told only once every lease end the old primary was told has
/// passed, so the two never commit at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_promotion_takes_the_lease_from_a_live_primary_after_its_last_lease_ends() {
    let server = EtcdServer::start();
    let clock = Clock::new(Instant::now());
    let old = manager(&server, "ag8", 1, clock).await;
    let new = manager(&server, "ag8", 2, clock).await;
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let old = std::sync::Arc::new(old)
        .spawn(move |event| events_tx.send((clock.now_ms(), event)).is_ok());
    assert!(old.send(promote(PromotionKind::Initial)));
    let (_, first) = recv(&mut events).await;
    let ManagerEvent::Promote {
        mut lease_until_ms, ..
    } = first
    else {
        panic!("expected Promote, got {first:?}");
    };
    let t_request = clock.now_ms();
    let events_of_new = new.handle(t_request, promote(PromotionKind::Forced)).await;
    let t_told = clock.now_ms();
    let (_, term) = promoted(&events_of_new).expect("the forced promotion is granted");
    assert_eq!(term, 2);
    let lost_at = loop {
        let (t, event) = recv(&mut events).await;
        match event {
            ManagerEvent::LeaseRenewed { lease_until_ms: u } => lease_until_ms = u,
            ManagerEvent::LeaseLost => break t,
            other => panic!("unexpected {other:?}"),
        }
    };
    eprintln!(
        "forced at {t_request} ms; the old primary lost its lease at {lost_at} ms, its last          lease end {lease_until_ms} ms; the new one told at {t_told} ms"
    );
    assert!(lost_at < t_told, "the old primary loses its lease first");
    assert!(
        lease_until_ms < t_told,
        "the old primary's last lease end passed before the new one was told"
    );
    assert_eq!(
        new.leader().await.unwrap().map(|l| (l.replica, l.term)),
        Some((ReplicaId(2), 2))
    );
}

/// R-QUORUM-2: with nobody holding the lease and no failover-ready replica taking over, etcd
/// brings its recorded primary (the newest publication's) back online, after giving the
/// failover-ready replicas [`RESTORE_AFTER_MS`] to go first; another replica is not restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorded_primary_is_restored_when_no_failover_ready_replica_takes_over() {
    let server = EtcdServer::start();
    let clock = Clock::new(Instant::now());
    let r1 = manager(&server, "ag9", 1, clock).await;
    let r3 = manager(&server, "ag9", 3, clock).await;
    let auto = || promote(PromotionKind::Automatic);
    promoted(
        &r1.handle(clock.now_ms(), promote(PromotionKind::Initial))
            .await,
    )
    .expect("initial promotion");
    let p = publication(1, 1, 1, &[2]);
    stored(&r1, clock, p).await;
    r1.handle(clock.now_ms(), ManagerRequest::ReleaseLease)
        .await;
    assert_eq!(r3.leader().await.unwrap(), None);
    assert_eq!(
        r3.recorded_primary().await.unwrap(),
        Some(ReplicaId(1)),
        "the primary etcd records outlives its lease"
    );
    let started = Instant::now();
    let granted = loop {
        assert_eq!(
            r3.handle(clock.now_ms(), auto()).await,
            vec![ManagerEvent::PromotionDenied],
            "3 is neither failover-ready nor the recorded primary"
        );
        let events = r1.handle(clock.now_ms(), auto()).await;
        if events != vec![ManagerEvent::PromotionDenied] {
            break events;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never restored"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let waited = started.elapsed();
    eprintln!("restored after {waited:?}");
    assert!(waited >= Duration::from_millis(hadr_manager::RESTORE_AFTER_MS));
    assert!(matches!(
        granted.as_slice(),
        [ManagerEvent::Promote {
            kind: PromotionKind::Restore,
            term_at_least: 2,
            ..
        }]
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_publications_are_refused() {
    let server = EtcdServer::start();
    let clock = Clock::new(Instant::now());
    let m = manager(&server, "ag3", 1, clock).await;
    let publish =
        |p: SyncStatePublication| m.handle(clock.now_ms(), ManagerRequest::PublishSyncState(p));
    let stored = |p: &SyncStatePublication| {
        vec![ManagerEvent::SyncStatePublished {
            epoch: p.epoch,
            version: p.version,
        }]
    };
    let t = Instant::now();
    let v2 = publication(1, 1, 2, &[2]);
    assert_eq!(publish(v2.clone()).await, stored(&v2), "first publication");
    eprintln!("first publication stored in {:?}", t.elapsed());
    assert_eq!(
        publish(publication(1, 1, 1, &[])).await,
        vec![],
        "older version"
    );
    assert_eq!(publish(v2.clone()).await, vec![], "same version again");
    let v3 = publication(1, 1, 3, &[]);
    assert_eq!(publish(v3.clone()).await, stored(&v3));
    // Versions compare numerically, not as text (10 > 9).
    let v10 = publication(1, 1, 10, &[2, 3]);
    assert_eq!(publish(publication(1, 1, 9, &[])).await.len(), 1);
    assert_eq!(publish(v10.clone()).await, stored(&v10));
    assert_eq!(publish(publication(1, 1, 9, &[])).await, vec![]);
    // Any version of an older epoch is refused; version 1 of a newer epoch is stored.
    assert_eq!(
        publish(publication(0, 3, 99, &[])).await,
        vec![],
        "older epoch"
    );
    let e2 = publication(2, 2, 1, &[1]);
    assert_eq!(publish(e2.clone()).await, stored(&e2), "newer epoch");
    assert_eq!(
        publish(publication(1, 1, 11, &[])).await,
        vec![],
        "the previous epoch's next version"
    );
    let mut generation = publication(2, 2, 1, &[]);
    generation.epoch.generation = 1;
    assert_eq!(
        publish(generation.clone()).await,
        stored(&generation),
        "a restart of the same primary"
    );
    assert_eq!(m.stored_publication().await.unwrap(), Some(generation));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_promotion_only_for_failover_ready_replicas_of_the_newest_epoch() {
    let server = EtcdServer::start();
    let clock = Clock::new(Instant::now());
    let r1 = manager(&server, "ag4", 1, clock).await;
    let r2 = manager(&server, "ag4", 2, clock).await;
    let r3 = manager(&server, "ag4", 3, clock).await;
    let r4 = manager(&server, "ag4", 4, clock).await;
    let auto = || promote(PromotionKind::Automatic);

    assert_eq!(
        r2.handle(clock.now_ms(), auto()).await,
        vec![ManagerEvent::PromotionDenied],
        "nothing published"
    );
    let (_, term) = promoted(
        &r1.handle(clock.now_ms(), promote(PromotionKind::Initial))
            .await,
    )
    .unwrap();
    assert_eq!(term, 1);
    let p = publication(1, 1, 1, &[2, 3]);
    stored(&r1, clock, p).await;
    assert_eq!(
        r2.handle(clock.now_ms(), auto()).await,
        vec![ManagerEvent::PromotionDenied],
        "primary alive"
    );
    r1.handle(clock.now_ms(), ManagerRequest::ReleaseLease)
        .await;
    assert_eq!(
        r4.handle(clock.now_ms(), auto()).await,
        vec![ManagerEvent::PromotionDenied],
        "4 is not failover-ready"
    );
    let (_, term) =
        promoted(&r2.handle(clock.now_ms(), auto()).await).expect("2 is failover-ready");
    assert_eq!(term, 2);
    // Replica 2 leads term 2 but publishes nothing before it goes: the stored publication is
    // term 1's, stale, and 3 (failover-ready then) may lack term 2's commits.
    r2.handle(clock.now_ms(), ManagerRequest::ReleaseLease)
        .await;
    assert_eq!(
        r3.handle(clock.now_ms(), auto()).await,
        vec![ManagerEvent::PromotionDenied],
        "stale publication"
    );
    // Manual kinds do not look at the publication.
    let (_, term) = promoted(
        &r4.handle(clock.now_ms(), promote(PromotionKind::Forced))
            .await,
    )
    .unwrap();
    assert_eq!(term, 3);
    let p = publication(3, 4, 1, &[3]);
    stored(&r4, clock, p).await;
    r4.handle(clock.now_ms(), ManagerRequest::ReleaseLease)
        .await;
    let (_, term) = promoted(&r3.handle(clock.now_ms(), auto()).await).expect("3 ready in term 3");
    assert_eq!(term, 4);
    assert_eq!(r3.granted_term().await.unwrap(), 4);
}

/// R-FAIL-3 over R-FAIL-2: a primary that granted a planned failover hands its lease over to
/// the target. Until the target is promoted, no automatic failover takes the lease, not even
/// of a failover-ready replica; the target's planned promotion clears the reservation; a
/// reservation whose target never asks runs out after one TTL and automatic failover resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_failover_hands_the_lease_to_its_target_only() {
    let server = EtcdServer::start();
    let clock = Clock::new(Instant::now());
    let r1 = manager(&server, "ag-handover", 1, clock).await;
    let r2 = manager(&server, "ag-handover", 2, clock).await;
    let r3 = manager(&server, "ag-handover", 3, clock).await;
    let auto = || promote(PromotionKind::Automatic);
    let denied = vec![ManagerEvent::PromotionDenied];

    promoted(
        &r1.handle(clock.now_ms(), promote(PromotionKind::Initial))
            .await,
    )
    .unwrap();
    let p = publication(1, 1, 1, &[2, 3]);
    stored(&r1, clock, p).await;
    let hand_over = |to| ManagerRequest::HandOver { to: ReplicaId(to) };
    assert!(r1.handle(clock.now_ms(), hand_over(2)).await.is_empty());
    assert_eq!(r1.leader().await.unwrap(), None, "the lease is released");
    assert_eq!(
        r3.handle(clock.now_ms(), auto()).await,
        denied,
        "3 is not the target"
    );
    assert_eq!(
        r2.handle(clock.now_ms(), auto()).await,
        denied,
        "the target is promoted by its planned request"
    );
    assert_eq!(
        r3.handle(clock.now_ms(), promote(PromotionKind::Planned))
            .await,
        denied,
        "the grant was for 2"
    );
    let (_, term) = promoted(
        &r2.handle(clock.now_ms(), promote(PromotionKind::Planned))
            .await,
    )
    .expect("the target's planned promotion");
    assert_eq!(term, 2);
    let p = publication(2, 2, 1, &[1, 3]);
    stored(&r2, clock, p).await;
    // The reservation is gone with the promotion: an ordinary release lets 3 fail over.
    r2.handle(clock.now_ms(), ManagerRequest::ReleaseLease)
        .await;
    let (_, term) =
        promoted(&r3.handle(clock.now_ms(), auto()).await).expect("3 is failover-ready");
    assert_eq!(term, 3);

    // A target that never asks: the reservation runs out after one TTL.
    let p = publication(3, 3, 1, &[1, 2]);
    stored(&r3, clock, p).await;
    assert!(r3.handle(clock.now_ms(), hand_over(1)).await.is_empty());
    let handed = Instant::now();
    assert_eq!(
        r2.handle(clock.now_ms(), auto()).await,
        denied,
        "reserved for 1"
    );
    let deadline = handed + TTL * 3;
    let term = loop {
        if let Some((_, term)) = promoted(&r2.handle(clock.now_ms(), auto()).await) {
            break term;
        }
        assert!(
            Instant::now() < deadline,
            "the reservation outlived its TTL"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        handed.elapsed() >= TTL - Duration::from_millis(MARGIN_MS),
        "{:?}",
        handed.elapsed()
    );
    assert_eq!(term, 4);
    // A replica that holds no lease reserves nothing.
    assert!(!r1.reserve_handover(ReplicaId(3)).await.unwrap());
}

/// R-FAIL-7: the failure threshold counts automatic failovers in etcd, across replicas; a
/// manual failover is not counted and is not limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_threshold_stops_automatic_failovers_but_not_manual_ones() {
    let server = EtcdServer::start();
    let clock = Clock::new(Instant::now());
    let with_threshold = |replica: u8| {
        let mut c = config(&server, "ag-threshold", replica);
        c.failover_threshold = 1;
        c
    };
    let r1 = EtcdManager::connect(with_threshold(1), clock)
        .await
        .unwrap();
    let r2 = EtcdManager::connect(with_threshold(2), clock)
        .await
        .unwrap();
    let r3 = EtcdManager::connect(with_threshold(3), clock)
        .await
        .unwrap();
    let auto = || promote(PromotionKind::Automatic);
    let publish = |term: u64, primary: u8, ready: &'static [u8]| {
        ManagerRequest::PublishSyncState(publication(term, primary, 1, ready))
    };

    promoted(
        &r1.handle(clock.now_ms(), promote(PromotionKind::Initial))
            .await,
    )
    .unwrap();
    r1.handle(clock.now_ms(), publish(1, 1, &[2, 3])).await;
    r1.handle(clock.now_ms(), ManagerRequest::ReleaseLease)
        .await;
    promoted(&r2.handle(clock.now_ms(), auto()).await).expect("the first automatic failover");
    r2.handle(clock.now_ms(), publish(2, 2, &[1, 3])).await;
    r2.handle(clock.now_ms(), ManagerRequest::ReleaseLease)
        .await;
    assert_eq!(
        r3.handle(clock.now_ms(), auto()).await,
        vec![ManagerEvent::PromotionDenied],
        "a second automatic failover within the period breaks the threshold of 1"
    );
    promoted(
        &r3.handle(clock.now_ms(), promote(PromotionKind::Planned))
            .await,
    )
    .expect("a manual failover is not limited by the threshold");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_renews_and_a_frozen_etcd_loses_the_lease_before_it_ends() {
    let server = EtcdServer::start();
    let clock = Clock::new(Instant::now());
    let m = manager(&server, "ag5", 1, clock).await;
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let handle =
        std::sync::Arc::new(m).spawn(move |event| events_tx.send((clock.now_ms(), event)).is_ok());
    assert!(handle.send(promote(PromotionKind::Initial)));
    let (t, first) = recv(&mut events).await;
    let ManagerEvent::Promote {
        mut lease_until_ms, ..
    } = first
    else {
        panic!("expected Promote, got {first:?}");
    };
    eprintln!("promoted at {t} ms, lease until {lease_until_ms} ms");
    for _ in 0..3 {
        let (t, event) = recv(&mut events).await;
        let ManagerEvent::LeaseRenewed {
            lease_until_ms: until,
        } = event
        else {
            panic!("expected LeaseRenewed, got {event:?}");
        };
        eprintln!("renewed at {t} ms until {until} ms");
        assert!(until > lease_until_ms && until > t);
        lease_until_ms = until;
    }
    server.pause();
    let paused_at = clock.now_ms();
    let last_until = loop {
        let (t, event) = recv(&mut events).await;
        match event {
            ManagerEvent::LeaseRenewed {
                lease_until_ms: until,
            } => {
                // A renewal answered just before the freeze.
                lease_until_ms = until;
            }
            ManagerEvent::LeaseLost => {
                eprintln!(
                    "etcd frozen at {paused_at} ms; LeaseLost at {t} ms; the lease told to the core \
                     ended at {lease_until_ms} ms, etcd's TTL at ≥{} ms",
                    lease_until_ms + MARGIN_MS
                );
                assert!(t <= lease_until_ms + 5, "lost no later than the lease end");
                assert!(
                    t < lease_until_ms + MARGIN_MS,
                    "lost before the TTL ran out"
                );
                break lease_until_ms;
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(last_until > paused_at);
    server.resume();
    // No more events of that lease.
    assert!(
        tokio::time::timeout(Duration::from_millis(700), events.recv())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watching_secondary_fails_over_automatically_when_the_lease_vanishes() {
    let server = EtcdServer::start();
    let clock = Clock::new(Instant::now());
    let primary = manager(&server, "ag6", 1, clock).await;
    assert!(promoted(
        &primary
            .handle(clock.now_ms(), promote(PromotionKind::Initial))
            .await
    )
    .is_some());
    let p = publication(1, 1, 1, &[2]);
    assert_eq!(
        primary
            .handle(clock.now_ms(), ManagerRequest::PublishSyncState(p))
            .await
            .len(),
        1
    );

    let ready = std::sync::Arc::new(manager(&server, "ag6", 2, clock).await);
    let mut watch = ready.watch_leader();
    let (tx2, mut events2) = mpsc::unbounded_channel();
    let handle2 = ready
        .clone()
        .spawn(move |event| tx2.send((clock.now_ms(), event)).is_ok());
    let (tx3, mut events3) = mpsc::unbounded_channel();
    let handle3 = std::sync::Arc::new(manager(&server, "ag6", 3, clock).await)
        .spawn(move |event| tx3.send((clock.now_ms(), event)).is_ok());
    assert!(next_observation(&mut watch, TTL).await.leader.is_some());

    let crashed_at = clock.now_ms();
    drop(primary);
    let gone = next_observation(&mut watch, TTL * 3).await;
    assert_eq!(gone.leader, None);
    let noticed_at = clock.now_ms();
    assert!(
        handle3.ask_promotion(PromotionKind::Automatic),
        "not failover-ready: denied silently"
    );
    assert!(handle2.ask_promotion(PromotionKind::Automatic));
    let (t, event) = recv(&mut events2).await;
    let ManagerEvent::Promote {
        kind,
        term_at_least,
        ..
    } = event
    else {
        panic!("expected Promote, got {event:?}");
    };
    assert_eq!((kind, term_at_least), (PromotionKind::Automatic, 2));
    eprintln!(
        "primary crashed at {crashed_at} ms, lease gone at {noticed_at} ms, replica 2 promoted at {t} ms"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), events3.recv())
            .await
            .is_err(),
        "a denial of an attempt the core did not make is not reported"
    );
    assert_eq!(
        ready.leader().await.unwrap().map(|l| l.replica),
        Some(ReplicaId(2))
    );
}

async fn recv(events: &mut mpsc::UnboundedReceiver<(u64, ManagerEvent)>) -> (u64, ManagerEvent) {
    tokio::time::timeout(TTL * 2, events.recv())
        .await
        .expect("an event in time")
        .expect("driver alive")
}

#[test]
fn configuration_inequalities_are_checked() {
    let mut config = ManagerConfig::new(vec!["http://127.0.0.1:1".into()], "ag", ReplicaId(0));
    assert!(config.validate().is_ok());
    config.safety_margin = config.lease_ttl;
    assert!(config.validate().is_err());
    config.safety_margin = Duration::from_millis(500);
    config.renew_interval = Duration::from_millis(4500);
    assert!(config.validate().is_err());
    config.renew_interval = Duration::from_secs(1);
    config.lease_ttl = Duration::from_millis(2500);
    assert!(config.validate().is_err());
}

#[test]
fn publication_seq_orders_like_the_tuple() {
    let e = |term, replica, generation| Epoch {
        term,
        replica: ReplicaId(replica),
        generation,
    };
    let tuples = [
        (e(0, 0, 0), 0),
        (e(0, 0, 0), 9),
        (e(0, 0, 0), 10),
        (e(1, 0, 0), 1),
        (e(1, 2, 0), 0),
        (e(1, 2, 1), 0),
        (e(1, 10, 0), 0),
        (e(u64::MAX / 2, 255, u32::MAX), u64::MAX),
    ];
    let encoded: Vec<String> = tuples
        .iter()
        .map(|(epoch, version)| hadr_manager::publication_seq(*epoch, *version))
        .collect();
    assert!(tuples.windows(2).all(|w| w[0] < w[1]));
    let mut sorted = encoded.clone();
    sorted.sort();
    assert_eq!(encoded, sorted);
}

fn promotion_kind(events: &[ManagerEvent]) -> Option<PromotionKind> {
    match events {
        [ManagerEvent::Promote { kind, .. }] => Some(*kind),
        _ => None,
    }
}

/// R-FAIL-4: a forced failover onto a replica the newest publication of the last primary
/// records SYNCHRONIZED in every database is granted as `ForcedOntoSynchronized` (no data loss,
/// no partner suspended); onto any other replica, or when the publication predates the last
/// granted term, as `Forced`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_promotion_onto_a_replica_recorded_synchronized_is_lossless() {
    let server = EtcdServer::start();
    let clock = Clock::new(Instant::now());
    let r1 = manager(&server, "ag-forced", 1, clock).await;
    let r2 = manager(&server, "ag-forced", 2, clock).await;
    let r3 = manager(&server, "ag-forced", 3, clock).await;
    let initial = r1
        .handle(clock.now_ms(), promote(PromotionKind::Initial))
        .await;
    assert_eq!(promotion_kind(&initial), Some(PromotionKind::Initial));
    stored(&r1, clock, publication(1, 1, 1, &[2])).await;

    // Not recorded SYNCHRONIZED: a forced recovery fork.
    let events = r3
        .handle(clock.now_ms(), promote(PromotionKind::Forced))
        .await;
    assert_eq!(promotion_kind(&events), Some(PromotionKind::Forced));
    // R1's publication (term 1) predates R3's term 2: stale, although it lists R2.
    let events = r2
        .handle(clock.now_ms(), promote(PromotionKind::Forced))
        .await;
    assert_eq!(promotion_kind(&events), Some(PromotionKind::Forced));
    // The newest primary (R2, term 3) records R3 SYNCHRONIZED.
    stored(&r2, clock, publication(3, 2, 1, &[3])).await;
    let events = r3
        .handle(clock.now_ms(), promote(PromotionKind::Forced))
        .await;
    assert_eq!(
        promotion_kind(&events),
        Some(PromotionKind::ForcedOntoSynchronized)
    );
}
