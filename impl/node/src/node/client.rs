//! The client API: newline-delimited JSON over TCP (see `docs/node.md`).
//!
//! One JSON object per line each way. Requests carry an `id` the reply echoes; replies may
//! come out of order (a commit waits for hardening while a read is answered). Every commit
//! answer says which of the three outcomes of R-COMMIT-7 it is: `committed`, `refused`
//! (definite: not committed, never will be) or `indefinite`.
//!
//! ```text
//! → {"id":1,"op":"transact","db":"db1","txn":7,"writes":[["k","v"]]}
//! ← {"id":1,"outcome":"committed","lsn":12}
//! ```

use super::{ClientAnswer, Driver, Event, RequestError};
use hadr_core::{ClientError, ClientOp, ClientReply, Write};
use hadr_types::{ApplicationIntent, TxnId};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

/// Longest request line accepted (bytes); a longer one closes the connection.
pub const MAX_LINE: usize = 1 << 20;

/// Requests of one connection that may wait for their replies at the same time; beyond
/// that, the connection is not read until some are answered (backpressure).
pub const MAX_IN_FLIGHT: usize = 1024;

/// A database, by name (as the configuration lists it) or by id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DatabaseRef {
    /// Its id (position in the configuration).
    Id(u8),
    /// Its name.
    Name(String),
}

/// One request line: `{"id": n, "op": "…", …}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRequestJson {
    /// Echoed in the reply.
    pub id: u64,
    /// What to do.
    pub op: ClientOpJson,
}

impl ClientRequestJson {
    /// Parses a request line; the error says what is wrong and carries the id if one was found.
    pub fn parse(line: &[u8]) -> Result<ClientRequestJson, (Option<u64>, String)> {
        let mut value: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| (None, format!("not JSON: {e}")))?;
        let Some(object) = value.as_object_mut() else {
            return Err((None, "a request is a JSON object".to_owned()));
        };
        let id = match object.remove("id") {
            Some(id) => id
                .as_u64()
                .ok_or((None, "`id` must be a non-negative integer".to_owned()))?,
            None => return Err((None, "missing `id`".to_owned())),
        };
        let op = serde_json::from_value(value).map_err(|e| (Some(id), e.to_string()))?;
        Ok(ClientRequestJson { id, op })
    }
}

/// The operations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientOpJson {
    /// Sets the connection's ApplicationIntent (default `read_write`).
    Intent {
        /// `read_write` or `read_only`.
        intent: IntentJson,
    },
    /// Opens transaction `txn` (ids are the client's; never reuse one on a database).
    Begin {
        /// The database.
        db: DatabaseRef,
        /// The transaction.
        txn: u32,
    },
    /// Adds a write to an open transaction.
    Write {
        /// The database.
        db: DatabaseRef,
        /// The transaction.
        txn: u32,
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Reads a key (in a transaction: sees its writes).
    Read {
        /// The database.
        db: DatabaseRef,
        /// The transaction, if any.
        #[serde(default)]
        txn: Option<u32>,
        /// The key.
        key: String,
    },
    /// Commits.
    Commit {
        /// The database.
        db: DatabaseRef,
        /// The transaction.
        txn: u32,
    },
    /// Rolls back.
    Rollback {
        /// The database.
        db: DatabaseRef,
        /// The transaction.
        txn: u32,
    },
    /// Begin, writes and commit in one request; answered like a commit (or with the first
    /// refusal, in which case nothing was committed).
    Transact {
        /// The database.
        db: DatabaseRef,
        /// The transaction.
        txn: u32,
        /// `[key, value]` pairs.
        writes: Vec<(String, String)>,
    },
}

/// ApplicationIntent in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentJson {
    /// `ApplicationIntent=ReadWrite`.
    ReadWrite,
    /// `ApplicationIntent=ReadOnly`.
    ReadOnly,
}

/// One reply line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientReplyJson {
    /// The request's id (absent when the line could not be parsed far enough to find it).
    pub id: Option<u64>,
    /// `committed`, `refused`, `indefinite`, `begun`, `written`, `value`, `rolled_back`,
    /// `ok` (intent set) or `error` (the request was malformed or could not be handed to the
    /// replica; nothing was done).
    pub outcome: String,
    /// The commit's LSN (`committed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<u64>,
    /// The value read (`value`; null when the key is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Option<String>>,
    /// The error's kind (`refused`, `indefinite`, `error`), e.g. `NotPrimary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// A message for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The server instance name of the replica that answered (`ok` to an `intent`), so that
    /// a client that came through the listener knows where it landed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// `redirect`: where to connect instead (the primary's READ_WRITE_ROUTING_URL, for a
    /// read-write connection that reached a secondary, R-READ-3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<String>,
}

impl ClientReplyJson {
    fn new(id: Option<u64>, outcome: &str) -> Self {
        ClientReplyJson {
            id,
            outcome: outcome.to_owned(),
            lsn: None,
            value: None,
            code: None,
            error: None,
            replica: None,
            redirect: None,
        }
    }

    fn error(id: Option<u64>, code: &str, message: String) -> Self {
        ClientReplyJson {
            code: Some(code.to_owned()),
            error: Some(message),
            ..ClientReplyJson::new(id, "error")
        }
    }

    /// The reply line for an answer; `commit` says whether the request was a commit (a
    /// commit whose answer was lost to a shutdown has an unknown outcome, R-COMMIT-7).
    fn from_answer(id: u64, answer: ClientAnswer, commit: bool) -> Self {
        let id = Some(id);
        match answer {
            Err(RequestError::ShuttingDown) if commit => ClientReplyJson {
                code: Some("ShuttingDown".to_owned()),
                error: Some("the replica shut down while the commit waited; reconnect and check whether the transaction committed".to_owned()),
                ..ClientReplyJson::new(id, "indefinite")
            },
            Err(error) => ClientReplyJson::error(id, request_error_code(&error), error.to_string()),
            Ok(reply) => match reply {
                ClientReply::Begun => ClientReplyJson::new(id, "begun"),
                ClientReply::Written => ClientReplyJson::new(id, "written"),
                ClientReply::RolledBack => ClientReplyJson::new(id, "rolled_back"),
                ClientReply::Value(value) => ClientReplyJson {
                    value: Some(value),
                    ..ClientReplyJson::new(id, "value")
                },
                ClientReply::Committed { lsn } => ClientReplyJson {
                    lsn: Some(lsn.0),
                    ..ClientReplyJson::new(id, "committed")
                },
                // Too large for one log record: the request was not carried out (an `error`
                // reply, as docs/node.md lists it), and the transaction was rolled back.
                ClientReply::Refused(error @ ClientError::TransactionTooLarge { .. }) => {
                    ClientReplyJson::error(id, "TransactionTooLarge", error.to_string())
                }
                ClientReply::Refused(error) => ClientReplyJson {
                    code: Some(variant_name(&error)),
                    error: Some(error.to_string()),
                    ..ClientReplyJson::new(id, "refused")
                },
                ClientReply::Indefinite(cause) => ClientReplyJson {
                    code: Some(variant_name(&cause)),
                    error: Some(cause.to_string()),
                    ..ClientReplyJson::new(id, "indefinite")
                },
            },
        }
    }
}

fn request_error_code(error: &RequestError) -> &'static str {
    match error {
        RequestError::NotInAvailabilityGroup => "NotInAvailabilityGroup",
        RequestError::UnknownDatabaseName(_) => "UnknownDatabaseName",
        RequestError::ShuttingDown => "ShuttingDown",
    }
}

/// The serde name of an enum value's variant (`{"NotPrimary":{…}}` → `NotPrimary`).
fn variant_name(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Object(map)) => map.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    }
}

/// The primary's READ_WRITE_ROUTING_URL if this replica is a secondary that redirects
/// read-write connections there.
async fn read_write_redirect(driver: &Driver) -> Option<String> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    driver.send(Event::ReadWriteRedirect { reply });
    answer.await.ok().flatten()
}

pub(crate) async fn serve(listener: TcpListener, driver: Driver) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let span = driver.span.clone();
                tokio::spawn(connection(stream, driver.clone()).instrument(span));
            }
            Err(error) => {
                tracing::warn!(%error, "accepting a client connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves one client connection until it closes, or the role changes.
async fn connection(stream: TcpStream, driver: Driver) {
    let _ = stream.set_nodelay(true);
    let (read_half, write_half) = stream.into_split();
    let (replies_tx, replies_rx) = mpsc::unbounded_channel::<ClientReplyJson>();
    let writer =
        tokio::spawn(write_replies(write_half, replies_rx).instrument(driver.span.clone()));
    let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut generation = driver.client_generation.clone();
    generation.borrow_and_update();
    let mut reader = BufReader::new(read_half);
    let mut intent = ApplicationIntent::ReadWrite;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = tokio::select! {
            read = read_line(&mut reader, &mut line) => read,
            _ = generation.changed() => {
                tracing::debug!("role changed: closing a client connection");
                break;
            }
        };
        match read {
            Ok(true) => {}
            Ok(false) => break,
            Err(message) => {
                let _ = replies_tx.send(ClientReplyJson::error(None, "LineTooLong", message));
                break;
            }
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let request = match ClientRequestJson::parse(&line) {
            Ok(request) => request,
            Err((id, message)) => {
                let _ = replies_tx.send(ClientReplyJson::error(
                    id,
                    "MalformedRequest",
                    format!("malformed request: {message}"),
                ));
                continue;
            }
        };
        // Backpressure: a client that pipelines more than MAX_IN_FLIGHT requests without
        // reading the replies is not read from until some are answered.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        match request.op {
            ClientOpJson::Intent { intent: new } => {
                intent = match new {
                    IntentJson::ReadWrite => ApplicationIntent::ReadWrite,
                    IntentJson::ReadOnly => ApplicationIntent::ReadOnly,
                };
                let _ = replies_tx.send(intent_set(&driver, request.id, intent).await);
                drop(permit);
            }
            op => {
                let replies = replies_tx.clone();
                answer_later(&driver, request.id, intent, op, replies, permit);
            }
        }
    }
    drop(replies_tx);
    let _ = writer.await;
}

/// Writes the replies of a connection as they come, several per write when they queue up.
async fn write_replies(
    mut write_half: tokio::net::tcp::OwnedWriteHalf,
    mut replies: mpsc::UnboundedReceiver<ClientReplyJson>,
) {
    let mut out = Vec::new();
    while let Some(reply) = replies.recv().await {
        out.clear();
        push_line(&mut out, &reply);
        while let Ok(more) = replies.try_recv() {
            push_line(&mut out, &more);
        }
        if write_half.write_all(&out).await.is_err() {
            return;
        }
    }
    let _ = write_half.shutdown().await;
}

/// The answer to an `intent` request: `ok`, or, for a read-write connection that reached a
/// secondary sending those to the primary, `redirect` (R-READ-3).
async fn intent_set(driver: &Driver, id: u64, intent: ApplicationIntent) -> ClientReplyJson {
    let redirect = match intent {
        ApplicationIntent::ReadWrite => read_write_redirect(driver).await,
        ApplicationIntent::ReadOnly => None,
    };
    match redirect {
        Some(url) => ClientReplyJson {
            replica: Some(driver.name.to_string()),
            redirect: Some(url),
            ..ClientReplyJson::new(Some(id), "redirect")
        },
        None => ClientReplyJson {
            replica: Some(driver.name.to_string()),
            ..ClientReplyJson::new(Some(id), "ok")
        },
    }
}

/// Hands a request to the driver now and sends its reply when the core answers (a commit
/// waits for R-COMMIT-2/3); `permit` is held until then.
fn answer_later(
    driver: &Driver,
    id: u64,
    intent: ApplicationIntent,
    op: ClientOpJson,
    replies: mpsc::UnboundedSender<ClientReplyJson>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let (db, op) = core_op(op);
    let commit = matches!(op, ClientOp::Commit { .. } | ClientOp::Transact { .. });
    let rx = submit(driver, db, intent, op);
    let reply = async move {
        let answer = rx.await.unwrap_or(Err(RequestError::ShuttingDown));
        let _ = replies.send(ClientReplyJson::from_answer(id, answer, commit));
        drop(permit);
    };
    tokio::spawn(reply.instrument(driver.span.clone()));
}

fn push_line(out: &mut Vec<u8>, reply: &ClientReplyJson) {
    if serde_json::to_writer(&mut *out, reply).is_ok() {
        out.push(b'\n');
    }
}

/// Reads a line into `line` (without the newline): `Ok(false)` at end of stream.
async fn read_line(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: &mut Vec<u8>,
) -> Result<bool, String> {
    loop {
        let available = reader.fill_buf().await.map_err(|e| e.to_string())?;
        if available.is_empty() {
            return Ok(!line.is_empty());
        }
        let (take, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        line.extend_from_slice(&available[..take]);
        reader.consume(take);
        if line.len() > MAX_LINE {
            return Err(format!("request line longer than {MAX_LINE} bytes"));
        }
        if done {
            line.pop();
            return Ok(true);
        }
    }
}

/// The core's operation for a request (every one but `intent`, which the connection keeps).
fn core_op(op: ClientOpJson) -> (DatabaseRef, ClientOp) {
    match op {
        ClientOpJson::Begin { db, txn } => (db, ClientOp::Begin { txn: TxnId(txn) }),
        ClientOpJson::Write {
            db,
            txn,
            key,
            value,
        } => (
            db,
            ClientOp::Write {
                txn: TxnId(txn),
                key,
                value,
            },
        ),
        ClientOpJson::Read { db, txn, key } => (
            db,
            ClientOp::Read {
                txn: txn.map(TxnId),
                key,
            },
        ),
        ClientOpJson::Commit { db, txn } => (db, ClientOp::Commit { txn: TxnId(txn) }),
        ClientOpJson::Rollback { db, txn } => (db, ClientOp::Rollback { txn: TxnId(txn) }),
        ClientOpJson::Transact { db, txn, writes } => (
            db,
            ClientOp::Transact {
                txn: TxnId(txn),
                writes: writes
                    .into_iter()
                    .map(|(key, value)| Write { key, value })
                    .collect(),
            },
        ),
        ClientOpJson::Intent { .. } => unreachable!("handled by the caller"),
    }
}

fn submit(
    driver: &Driver,
    database: DatabaseRef,
    intent: ApplicationIntent,
    op: ClientOp,
) -> oneshot::Receiver<ClientAnswer> {
    let (tx, rx) = oneshot::channel();
    driver.send(Event::Client {
        database,
        intent,
        op,
        reply: tx,
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_bad_ones_say_why() {
        let r = ClientRequestJson::parse(
            br#"{"id":3,"op":"transact","db":"db1","txn":7,"writes":[["k","v"]]}"#,
        )
        .unwrap();
        assert_eq!(r.id, 3);
        assert_eq!(
            r.op,
            ClientOpJson::Transact {
                db: DatabaseRef::Name("db1".to_owned()),
                txn: 7,
                writes: vec![("k".to_owned(), "v".to_owned())]
            }
        );
        let r = ClientRequestJson::parse(br#"{"id":4,"op":"read","db":0,"key":"k"}"#).unwrap();
        assert_eq!(
            r.op,
            ClientOpJson::Read {
                db: DatabaseRef::Id(0),
                txn: None,
                key: "k".to_owned()
            }
        );
        let (id, e) =
            ClientRequestJson::parse(br#"{"id":5,"op":"commit","db":0,"txn":1,"extra":1}"#)
                .unwrap_err();
        assert_eq!(id, Some(5));
        assert!(e.contains("extra"), "{e}");
        let (id, e) = ClientRequestJson::parse(br#"{"id":6,"op":"launch"}"#).unwrap_err();
        assert_eq!(id, Some(6));
        assert!(e.contains("launch"), "{e}");
        assert_eq!(
            ClientRequestJson::parse(b"{\"op\":\"begin\"}")
                .unwrap_err()
                .1,
            "missing `id`"
        );
        assert!(ClientRequestJson::parse(b"[1]").is_err());
        assert!(ClientRequestJson::parse(b"{")
            .unwrap_err()
            .1
            .starts_with("not JSON"));
    }

    #[test]
    fn commit_outcomes_map_to_the_three_answers_of_r_commit_7() {
        use hadr_core::IndefiniteCause;
        let c = ClientReplyJson::from_answer(
            1,
            Ok(ClientReply::Committed {
                lsn: hadr_types::Lsn(9),
            }),
            true,
        );
        assert_eq!((c.outcome.as_str(), c.lsn), ("committed", Some(9)));
        let r = ClientReplyJson::from_answer(
            2,
            Ok(ClientReply::Refused(ClientError::ReadOnlyIntent)),
            true,
        );
        assert_eq!(
            (r.outcome.as_str(), r.code.as_deref()),
            ("refused", Some("ReadOnlyIntent"))
        );
        let i = ClientReplyJson::from_answer(
            3,
            Ok(ClientReply::Indefinite(IndefiniteCause::RoleChanged)),
            true,
        );
        assert_eq!(
            (i.outcome.as_str(), i.code.as_deref()),
            ("indefinite", Some("RoleChanged"))
        );
        let e = ClientReplyJson::from_answer(
            4,
            Err(RequestError::UnknownDatabaseName("x".to_owned())),
            true,
        );
        assert_eq!(
            (e.outcome.as_str(), e.code.as_deref()),
            ("error", Some("UnknownDatabaseName"))
        );
        // A commit whose answer was lost to a shutdown may have committed: indefinite.
        let s = ClientReplyJson::from_answer(5, Err(RequestError::ShuttingDown), true);
        assert_eq!(s.outcome, "indefinite");
        let s = ClientReplyJson::from_answer(6, Err(RequestError::ShuttingDown), false);
        assert_eq!(s.outcome, "error");
    }
}
