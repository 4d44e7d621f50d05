//! The admin API: HTTP + JSON (curl-able). See `docs/node.md` for every route.
//!
//! | route | does |
//! |---|---|
//! | `GET /status` | the replica's status (role, epoch, peers, databases) |
//! | `GET /observation` | the replica as the conformance observation format shows it |
//! | `GET /dm_hadr/availability_replica_states` | rows like `sys.dm_hadr_availability_replica_states` |
//! | `GET /dm_hadr/database_replica_states` | rows like `sys.dm_hadr_database_replica_states` |
//! | `GET /databases` | rows like `sys.databases`: state and `log_reuse_wait_desc` |
//! | `POST /ag/create`, `POST /ag/join` | body: an `AgConfig` as JSON, or a T-SQL `CREATE AVAILABILITY GROUP` script |
//! | `POST /ag/failover`, `/ag/force-failover`, `/ag/set-role-secondary` | R-FAIL-3, R-FAIL-4, R-QUORUM-5 |
//! | `POST /ag/required-synchronized` | body `{"value": k}` (R-COMMIT-5) |
//! | `POST /databases/{db}/suspend`, `/resume` | R-SYNC-7 |
//! | `POST /databases/{db}/accept-data-loss` | a SUSPECT (damaged) database comes online with its intact prefix |
//! | `POST /sql` | T-SQL statements, run in order |
//! | `POST /debug/stall`, `/debug/partition`, `/debug/manager`, `/debug/drop-log`, `/debug/health-fault`, `/debug/disk-stall` | fault injection, only with `HADR_FAULT_INJECTION=1` (see `fault.rs`) |

use super::fault::{self, Fault, FaultRefusal};
use super::{AdminAnswer, AdminRefusal, DatabaseRef, Driver, Event};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hadr_core::{AdminCommand, AdminError, AdminOutcome, ReplicaStatus};
use hadr_types::tsql::{self, AgAction, AgSetting, HadrAction, Statement};
use hadr_types::{AgConfig, DatabaseId, ReplicaObservation};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tracing::Instrument;

/// The admin API's routes.
pub(crate) fn admin_router(driver: Driver) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/observation", get(observation))
        .route("/ag/config", get(current_config))
        .route("/dm_hadr/availability_replica_states", get(replica_states))
        .route("/dm_hadr/database_replica_states", get(database_states))
        .route("/databases", get(databases))
        .route("/ag/create", post(create))
        .route("/ag/join", post(join))
        .route("/ag/failover", post(failover))
        .route("/ag/force-failover", post(force_failover))
        .route("/ag/set-role-secondary", post(set_role_secondary))
        .route("/ag/required-synchronized", post(required_synchronized))
        .route("/databases/{db}/suspend", post(suspend))
        .route("/databases/{db}/resume", post(resume))
        .route("/databases/{db}/accept-data-loss", post(accept_data_loss))
        .route("/sql", post(sql))
        .route("/debug/stall", post(stall))
        .route("/debug/partition", post(partition))
        .route("/debug/manager", post(cut_manager))
        .route("/debug/drop-log", post(drop_log))
        .route("/debug/disk-stall", post(disk_stall))
        .route("/debug/health-fault", post(health_fault))
        .fallback(|| async {
            problem(
                StatusCode::NOT_FOUND,
                "UnknownRoute",
                "no such route; see docs/node.md for the admin API".to_owned(),
            )
        })
        .with_state(driver)
}

/// An error answer: `{"error": message, "code": code}` with an HTTP status.
struct Problem {
    status: StatusCode,
    code: String,
    message: String,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": self.message, "code": self.code })),
        )
            .into_response()
    }
}

fn fail(status: StatusCode, code: &str, message: String) -> Response {
    problem(status, code, message).into_response()
}

fn problem(status: StatusCode, code: &str, message: String) -> Problem {
    Problem {
        status,
        code: code.to_owned(),
        message,
    }
}

/// Asks the driver something only a replica in a group can answer (`ask` builds the event
/// around the reply channel).
async fn ask_in_group<T>(
    driver: &Driver,
    ask: impl FnOnce(oneshot::Sender<Option<T>>) -> Event,
) -> Result<T, Problem> {
    let (tx, rx) = oneshot::channel();
    driver.send(ask(tx));
    match rx.await {
        Ok(Some(answer)) => Ok(answer),
        Ok(None) => Err(problem(
            StatusCode::CONFLICT,
            "NotInAvailabilityGroup",
            "this replica is not in an availability group yet: POST /ag/create or /ag/join"
                .to_owned(),
        )),
        Err(_) => Err(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "ShuttingDown",
            "the replica is shutting down".to_owned(),
        )),
    }
}

async fn snapshot(driver: &Driver) -> Result<(ReplicaStatus, ReplicaObservation), Problem> {
    ask_in_group(driver, |reply| Event::Status { reply }).await
}

async fn status(State(driver): State<Driver>) -> Response {
    match snapshot(&driver).await {
        Ok((status, _)) => Json(status).into_response(),
        Err(r) => r.into_response(),
    }
}

/// Fault injection for tests: `{"ms": N}` blocks the driver's thread for N ms (at most 10
/// minutes), as a hung replica would. Refused unless the replica runs with
/// `HADR_FAULT_INJECTION=1`.
async fn stall(State(driver): State<Driver>, body: axum::body::Bytes) -> Response {
    if let Err(off) = fault_injection_enabled() {
        return off.into_response();
    }
    let ms = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["ms"].as_u64())
        .filter(|ms| *ms <= 600_000);
    let Some(ms) = ms else {
        return problem(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "expected {\"ms\": N} with N at most 600000".to_owned(),
        )
        .into_response();
    };
    // Answer first: the stall blocks the thread this answer is written on.
    let span = driver.span.clone();
    tokio::spawn(
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            driver.send(Event::Stall { ms });
        }
        .instrument(span),
    );
    Json(json!({ "result": "stalling", "ms": ms })).into_response()
}

/// 404 `FaultInjectionDisabled` without fault injection, `NetworkFaultInjectionDisabled` with
/// `HADR_FAULT_INJECTION=process` (the network's faults come from outside the process).
fn network_fault_injection_enabled() -> Result<(), Problem> {
    fault_injection_enabled()?;
    if fault::network_enabled() {
        return Ok(());
    }
    Err(problem(
        StatusCode::NOT_FOUND,
        "NetworkFaultInjectionDisabled",
        format!(
            "network fault injection is off: start the replica with {}=1 (or cut its network from outside)",
            fault::ENV
        ),
    ))
}

/// 404 `FaultInjectionDisabled` unless the replica runs with `HADR_FAULT_INJECTION=1` or
/// `=process`.
fn fault_injection_enabled() -> Result<(), Problem> {
    if fault::enabled() {
        return Ok(());
    }
    Err(problem(
        StatusCode::NOT_FOUND,
        "FaultInjectionDisabled",
        format!(
            "fault injection is off: start the replica with {}=1 (or =process)",
            fault::ENV
        ),
    ))
}

/// Checks that fault injection is on, reads the body as `B` (`expected` shows its shape in
/// the error), turns it into a fault, has the driver inject it and answers.
async fn inject<B: serde::de::DeserializeOwned>(
    driver: &Driver,
    body: &[u8],
    expected: &str,
    fault: impl FnOnce(B) -> Result<Fault, Problem>,
) -> Response {
    if let Err(off) = fault_injection_enabled() {
        return off.into_response();
    }
    let fault = match serde_json::from_slice::<B>(body) {
        Ok(b) => match fault(b) {
            Ok(fault) => fault,
            Err(r) => return r.into_response(),
        },
        Err(e) => {
            return fail(
                StatusCode::BAD_REQUEST,
                "MalformedRequest",
                format!("expected {expected}: {e}"),
            )
        }
    };
    let (tx, rx) = oneshot::channel();
    driver.send(Event::Fault { fault, reply: tx });
    match rx.await.unwrap_or(Err(FaultRefusal::ShuttingDown)) {
        Ok(reply) => Json(reply).into_response(),
        Err(refusal) => {
            let (status, code) = match &refusal {
                FaultRefusal::NotInAvailabilityGroup => {
                    (StatusCode::CONFLICT, "NotInAvailabilityGroup")
                }
                FaultRefusal::UnknownReplicaName(_) => {
                    (StatusCode::NOT_FOUND, "UnknownReplicaName")
                }
                FaultRefusal::ThisReplica(_) => (StatusCode::BAD_REQUEST, "ThisReplica"),
                FaultRefusal::UnknownDatabase(_) => (StatusCode::NOT_FOUND, "UnknownDatabaseName"),
                FaultRefusal::NotPrimary { .. } => (StatusCode::CONFLICT, "NotPrimary"),
                FaultRefusal::NoClusterManager(_) => (StatusCode::CONFLICT, "NoClusterManager"),
                FaultRefusal::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "ShuttingDown"),
            };
            fail(status, code, refusal.to_string())
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartitionBody {
    peer: String,
    cut: bool,
}

/// `{"peer": name, "cut": bool}`: a silent network partition from another replica, or its
/// end (see `fault.rs`).
async fn partition(State(driver): State<Driver>, body: Bytes) -> Response {
    if let Err(off) = network_fault_injection_enabled() {
        return off.into_response();
    }
    inject(
        &driver,
        &body,
        "{\"peer\": \"<replica name>\", \"cut\": true|false}",
        |b: PartitionBody| {
            Ok(Fault::Partition {
                peer: b.peer,
                cut: b.cut,
            })
        },
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManagerBody {
    cut: bool,
}

/// `{"cut": bool}`: this replica cannot reach the cluster manager (etcd), or can again.
async fn cut_manager(State(driver): State<Driver>, body: Bytes) -> Response {
    if let Err(off) = network_fault_injection_enabled() {
        return off.into_response();
    }
    inject(&driver, &body, "{\"cut\": true|false}", |b: ManagerBody| {
        Ok(Fault::Manager { cut: b.cut })
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DropLogBody {
    peer: String,
    database: DatabaseRef,
}

/// `{"peer": name, "database": name or index}`: the next log block this primary sends to
/// that peer for that database is lost (R-SYNC-1).
async fn drop_log(State(driver): State<Driver>, body: Bytes) -> Response {
    inject(
        &driver,
        &body,
        "{\"peer\": \"<replica name>\", \"database\": \"<name>\" or <index>}",
        |b: DropLogBody| {
            Ok(Fault::DropLog {
                peer: b.peer,
                database: b.database,
            })
        },
    )
    .await
}

/// No body (or `{}`): this secondary's log disk stops completing writes until the process
/// dies (R-COMMIT-2: what it receives is never hardened, so never acknowledged).
async fn disk_stall(State(driver): State<Driver>, body: Bytes) -> Response {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        Bytes::from_static(b"{}")
    } else {
        body
    };
    inject(&driver, &body, "{} (or no body)", |_: DiskStallBody| {
        Ok(Fault::DiskStall)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiskStallBody {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthFaultBody {
    level: u8,
}

/// `{"level": 1..5}`: sp_server_diagnostics reports a failure condition of that level
/// (R-FAIL-7).
async fn health_fault(State(driver): State<Driver>, body: Bytes) -> Response {
    inject(&driver, &body, "{\"level\": 1..5}", |b: HealthFaultBody| {
        if (1..=5).contains(&b.level) {
            Ok(Fault::Health { level: b.level })
        } else {
            Err(problem(
                StatusCode::BAD_REQUEST,
                "MalformedRequest",
                format!(
                    "level {} is not a FAILURE_CONDITION_LEVEL: expected 1 to 5",
                    b.level
                ),
            ))
        }
    })
    .await
}

/// The group's configuration (`AgConfig` as JSON): the listener reads the primary's
/// READ_ONLY_ROUTING_LIST and the replicas' routing URLs from it.
async fn current_config(State(driver): State<Driver>) -> Response {
    match ask_in_group(&driver, |reply| Event::Config { reply }).await {
        Ok(config) => Json(config).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn observation(State(driver): State<Driver>) -> Response {
    match snapshot(&driver).await {
        Ok((_, observation)) => Json(observation).into_response(),
        Err(r) => r.into_response(),
    }
}

fn health(h: impl serde::Serialize) -> Value {
    serde_json::to_value(h).unwrap_or(Value::Null)
}

async fn replica_states(State(driver): State<Driver>) -> Response {
    let (s, _) = match snapshot(&driver).await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let mut rows = vec![json!({
        "replica_id": s.replica.0,
        "replica_server_name": s.name,
        "is_local": 1,
        "role_desc": s.role.as_str(),
        "connected_state_desc": "CONNECTED",
        "synchronization_health_desc": health(s.synchronization_health),
    })];
    for p in &s.peers {
        rows.push(json!({
            "replica_id": p.replica.0,
            "replica_server_name": p.name,
            "is_local": 0,
            "role_desc": p.role.map(|r| r.as_str()),
            "connected_state_desc": health(p.connected_state),
        }));
    }
    Json(rows).into_response()
}

/// `GET /databases`: one row per local database, like `sys.databases`.
async fn databases(State(driver): State<Driver>) -> Response {
    let (s, _) = match snapshot(&driver).await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let rows: Vec<Value> = s
        .databases
        .iter()
        .map(|d| {
            json!({
                "name": d.name,
                "group_database_id": d.database.0,
                "state_desc": d.database_state,
                "log_reuse_wait_desc": d.log_reuse_wait,
                "checkpoint_lsn": d.checkpoint_lsn.0,
                "end_of_log_lsn": d.end_of_log_lsn.0,
            })
        })
        .collect();
    Json(rows).into_response()
}

async fn database_states(State(driver): State<Driver>) -> Response {
    let (s, _) = match snapshot(&driver).await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let mut rows = Vec::new();
    for d in &s.databases {
        rows.push(json!({
            "replica_id": s.replica.0,
            "database_name": d.name,
            "group_database_id": d.database.0,
            "is_local": 1,
            "is_primary_replica": u8::from(s.role == hadr_types::Role::Primary),
            "synchronization_state_desc": d.synchronization_state.map(|x| x.as_str()),
            "synchronization_health_desc": health(d.synchronization_health),
            "is_suspended": u8::from(d.suspended.is_some()),
            "suspend_reason_desc": d.suspended.map(|r| r.as_str()),
            "is_failover_ready": u8::from(d.is_failover_ready),
            "end_of_log_lsn": d.end_of_log_lsn.0,
            "last_received_lsn": d.last_received_lsn.0,
            "last_hardened_lsn": d.last_hardened_lsn.0,
            "last_redone_lsn": d.last_redone_lsn.0,
            "last_commit_lsn": d.last_commit_lsn.0,
            "redo_queue_size": d.redo_queue_size,
        }));
        for r in &d.secondaries {
            rows.push(json!({
                "replica_id": r.replica.0,
                "database_name": d.name,
                "group_database_id": d.database.0,
                "is_local": 0,
                "is_primary_replica": 0,
                "synchronization_state_desc": r.synchronization_state.as_str(),
                "synchronization_health_desc": health(r.synchronization_health),
                "is_suspended": u8::from(r.suspended.is_some()),
                "suspend_reason_desc": r.suspended.map(|x| x.as_str()),
                "is_commit_participant": u8::from(r.is_commit_participant),
                "last_sent_lsn": r.last_sent_lsn.0,
                "last_received_lsn": r.last_received_lsn.0,
                "last_hardened_lsn": r.last_hardened_lsn.0,
                "last_redone_lsn": r.last_redone_lsn.0,
                "log_send_queue_size": r.log_send_queue_size,
                "redo_queue_size": r.redo_queue_size,
            }));
        }
    }
    Json(rows).into_response()
}

/// Runs one command and turns the answer into a response.
async fn run(driver: &Driver, command: AdminCommand) -> Response {
    let (tx, rx) = oneshot::channel();
    driver.send(Event::Admin { command, reply: tx });
    answer(rx.await.unwrap_or(Err(AdminRefusal::ShuttingDown)))
}

fn answer(result: AdminAnswer) -> Response {
    match result {
        Ok(outcome) => Json(outcome_json(outcome)).into_response(),
        Err(refusal) => {
            let (status, code) = refusal_code(&refusal);
            fail(status, &code, refusal.to_string())
        }
    }
}

fn outcome_json(outcome: AdminOutcome) -> Value {
    match outcome {
        AdminOutcome::Done => json!({ "result": "done" }),
        AdminOutcome::BecamePrimary {
            epoch,
            data_loss_possible,
        } => json!({
            "result": "became_primary",
            "epoch": epoch.to_string(),
            "data_loss_possible": data_loss_possible,
        }),
        AdminOutcome::DataLossAccepted {
            database,
            kept,
            lost_through,
        } => json!({
            "result": "data_loss_accepted",
            "database": database.0,
            "log_ends_at": kept.0,
            "lost_from": kept.0 + 1,
            "lost_through": lost_through.0,
        }),
    }
}

fn refusal_code(refusal: &AdminRefusal) -> (StatusCode, String) {
    match refusal {
        AdminRefusal::Core(error) => (StatusCode::CONFLICT, variant(error)),
        AdminRefusal::NeedsClusterManager(_) => {
            (StatusCode::CONFLICT, "NeedsClusterManager".to_owned())
        }
        AdminRefusal::ConfigurationConflict(_) => {
            (StatusCode::CONFLICT, "ConfigurationConflict".to_owned())
        }
        AdminRefusal::ClusterManagerConfig(_) => (
            StatusCode::BAD_REQUEST,
            "InvalidClusterManagerConfig".to_owned(),
        ),
        AdminRefusal::ClusterManager(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "ClusterManagerUnavailable".to_owned(),
        ),
        AdminRefusal::Endpoint(_) => (StatusCode::BAD_REQUEST, "BadEndpointUrl".to_owned()),
        AdminRefusal::EndpointBind { .. } => (StatusCode::CONFLICT, "EndpointInUse".to_owned()),
        AdminRefusal::LeftoverLog { .. } => (StatusCode::CONFLICT, "LeftoverLog".to_owned()),
        AdminRefusal::DiskStalled => (StatusCode::CONFLICT, "DiskStalled".to_owned()),
        AdminRefusal::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "ShuttingDown".to_owned()),
    }
}

fn variant(error: &AdminError) -> String {
    match serde_json::to_value(error) {
        Ok(Value::String(s)) => s,
        Ok(Value::Object(m)) => m.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    }
}

/// An `AgConfig` from a JSON body or a T-SQL script with one CREATE AVAILABILITY GROUP.
fn ag_config(headers: &HeaderMap, body: &[u8]) -> Result<AgConfig, Problem> {
    let bad = |code: &str, message: String| problem(StatusCode::BAD_REQUEST, code, message);
    let text = std::str::from_utf8(body)
        .map_err(|_| bad("NotUtf8", "the body is not UTF-8".to_owned()))?;
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
        || text.trim_start().starts_with('{');
    if json {
        let config: AgConfig = serde_json::from_str(text)
            .map_err(|e| bad("MalformedConfiguration", format!("configuration: {e}")))?;
        config
            .validate()
            .map_err(|e| bad("InvalidConfiguration", e.to_string()))?;
        Ok(config)
    } else {
        let script = tsql::parse_script(text).map_err(|e| bad("TsqlError", e.to_string()))?;
        script
            .ag_config()
            .map_err(|e| bad("TsqlError", e.to_string()))
    }
}

async fn create(State(driver): State<Driver>, headers: HeaderMap, body: Bytes) -> Response {
    match ag_config(&headers, &body) {
        Ok(config) => run(&driver, AdminCommand::CreateAvailabilityGroup(config)).await,
        Err(r) => r.into_response(),
    }
}

async fn join(State(driver): State<Driver>, headers: HeaderMap, body: Bytes) -> Response {
    match ag_config(&headers, &body) {
        Ok(config) => run(&driver, AdminCommand::JoinAvailabilityGroup(config)).await,
        Err(r) => r.into_response(),
    }
}

async fn failover(State(driver): State<Driver>) -> Response {
    run(&driver, AdminCommand::Failover).await
}

async fn force_failover(State(driver): State<Driver>) -> Response {
    run(&driver, AdminCommand::ForceFailoverAllowDataLoss).await
}

async fn set_role_secondary(State(driver): State<Driver>) -> Response {
    run(&driver, AdminCommand::SetRoleSecondary).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequiredBody {
    value: u32,
}

async fn required_synchronized(State(driver): State<Driver>, body: Bytes) -> Response {
    match serde_json::from_slice::<RequiredBody>(&body) {
        Ok(b) => {
            run(
                &driver,
                AdminCommand::SetRequiredSynchronizedSecondariesToCommit(b.value),
            )
            .await
        }
        Err(e) => fail(
            StatusCode::BAD_REQUEST,
            "MalformedRequest",
            format!("expected {{\"value\": k}}: {e}"),
        ),
    }
}

async fn database(driver: &Driver, name: &str) -> Result<DatabaseId, Problem> {
    let (status, _) = snapshot(driver).await?;
    status
        .databases
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(name) || d.database.0.to_string() == name)
        .map(|d| d.database)
        .ok_or_else(|| {
            problem(
                StatusCode::NOT_FOUND,
                "UnknownDatabaseName",
                format!("no availability database named '{name}' in this group"),
            )
        })
}

async fn suspend(State(driver): State<Driver>, Path(db): Path<String>) -> Response {
    match database(&driver, &db).await {
        Ok(id) => run(&driver, AdminCommand::SuspendDatabase(id)).await,
        Err(r) => r.into_response(),
    }
}

async fn resume(State(driver): State<Driver>, Path(db): Path<String>) -> Response {
    match database(&driver, &db).await {
        Ok(id) => run(&driver, AdminCommand::ResumeDatabase(id)).await,
        Err(r) => r.into_response(),
    }
}

async fn accept_data_loss(State(driver): State<Driver>, Path(db): Path<String>) -> Response {
    match database(&driver, &db).await {
        Ok(id) => run(&driver, AdminCommand::AcceptDataLoss(id)).await,
        Err(r) => r.into_response(),
    }
}

/// The admin command a statement of a `/sql` script runs (`at` is where it starts), or the
/// error response: an invalid configuration, an unknown database, a statement the replica
/// does not run.
async fn command_of(
    driver: &Driver,
    at: &str,
    statement: &Statement,
) -> Result<AdminCommand, Response> {
    let command = match statement {
        Statement::CreateAvailabilityGroup(config) => {
            if let Err(e) = config.validate() {
                return Err(fail(
                    StatusCode::BAD_REQUEST,
                    "InvalidConfiguration",
                    format!("{at}: {e}"),
                ));
            }
            Some(AdminCommand::CreateAvailabilityGroup(AgConfig::clone(
                config,
            )))
        }
        Statement::AlterAvailabilityGroup(c) => match &c.action {
            AgAction::Failover => Some(AdminCommand::Failover),
            AgAction::ForceFailoverAllowDataLoss => Some(AdminCommand::ForceFailoverAllowDataLoss),
            AgAction::SetRoleSecondary => Some(AdminCommand::SetRoleSecondary),
            AgAction::Set(AgSetting::RequiredSynchronizedSecondariesToCommit(k)) => {
                Some(AdminCommand::SetRequiredSynchronizedSecondariesToCommit(*k))
            }
            _ => None,
        },
        Statement::AlterDatabase(d) => {
            let id = database(driver, &d.database)
                .await
                .map_err(IntoResponse::into_response)?;
            match d.action {
                HadrAction::Suspend => Some(AdminCommand::SuspendDatabase(id)),
                HadrAction::Resume => Some(AdminCommand::ResumeDatabase(id)),
                _ => None,
            }
        }
    };
    command.ok_or_else(|| fail(
        StatusCode::UNPROCESSABLE_ENTITY,
        "UnsupportedStatement",
        format!("{at}: this statement is not supported by the replica yet (supported: CREATE AVAILABILITY GROUP, ALTER AVAILABILITY GROUP … FAILOVER | FORCE_FAILOVER_ALLOW_DATA_LOSS | SET (ROLE = SECONDARY) | SET (REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT = k), ALTER DATABASE … SET HADR SUSPEND | RESUME); nothing was run"),
    ))
}

/// Runs a T-SQL script's statements in order and stops at the first failure; the answer
/// lists what each statement did.
async fn sql(State(driver): State<Driver>, body: Bytes) -> Response {
    let text = match std::str::from_utf8(&body) {
        Ok(t) => t,
        Err(_) => {
            return fail(
                StatusCode::BAD_REQUEST,
                "NotUtf8",
                "the body is not UTF-8".to_owned(),
            )
        }
    };
    let script = match tsql::parse_script(text) {
        Ok(s) => s,
        Err(e) => {
            return fail(StatusCode::BAD_REQUEST, "TsqlError", e.to_string());
        }
    };
    // Translate everything first: an unsupported statement changes nothing.
    let mut commands = Vec::new();
    for statement in &script.statements {
        let at = format!("{}:{}", statement.line, statement.column);
        match command_of(&driver, &at, &statement.statement).await {
            Ok(command) => commands.push((at, command)),
            Err(response) => return response,
        }
    }
    let mut done = Vec::new();
    for (at, command) in commands {
        let (tx, rx) = oneshot::channel();
        driver.send(Event::Admin { command, reply: tx });
        match rx.await.unwrap_or(Err(AdminRefusal::ShuttingDown)) {
            Ok(outcome) => done.push(json!({ "at": at, "outcome": outcome_json(outcome) })),
            Err(refusal) => {
                let (status, code) = refusal_code(&refusal);
                return (
                    status,
                    Json(
                        json!({ "error": format!("{at}: {refusal}"), "code": code, "done": done }),
                    ),
                )
                    .into_response();
            }
        }
    }
    Json(json!({ "result": "done", "statements": done })).into_response()
}
