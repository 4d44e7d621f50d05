//! Small clients of the node's two APIs, for the CLI (`hadr demo`, `hadr bench`) and tests:
//! [`Client`] speaks the client API (newline-delimited JSON over TCP), [`AdminClient`] the
//! admin API (HTTP/1.1 + JSON, one request per connection).

use crate::node::{ClientReplyJson, DatabaseRef};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Why a request through [`Client`] or [`AdminClient`] failed before an answer arrived.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The connection failed or closed.
    #[error("connection to {address} failed: {source}")]
    Io {
        /// The server.
        address: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server closed the connection before answering.
    #[error("{address} closed the connection before answering")]
    Closed {
        /// The server.
        address: SocketAddr,
    },
    /// The answer was not what the protocol says.
    #[error("unexpected answer from {address}: {message}")]
    Protocol {
        /// The server.
        address: SocketAddr,
        /// What was wrong.
        message: String,
    },
    /// No answer in time.
    #[error("{address} did not answer within {timeout:?}")]
    Timeout {
        /// The server.
        address: SocketAddr,
        /// How long we waited.
        timeout: Duration,
    },
}

/// One client-API connection; requests are answered one at a time (no pipelining).
pub struct Client {
    address: SocketAddr,
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    next_id: u64,
    line: String,
    /// How long a request may wait for its reply (default 30 s).
    pub timeout: Duration,
}

impl Client {
    /// Connects to a replica's client API.
    pub async fn connect(address: SocketAddr) -> Result<Client, ApiError> {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|source| ApiError::Io { address, source })?;
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        Ok(Client {
            address,
            reader: BufReader::new(r),
            writer: w,
            next_id: 0,
            line: String::new(),
            timeout: Duration::from_secs(30),
        })
    }

    /// Sends one request (an object without `id`) and waits for its reply.
    pub async fn request(&mut self, mut request: Value) -> Result<ClientReplyJson, ApiError> {
        self.next_id += 1;
        request["id"] = json!(self.next_id);
        let mut bytes = serde_json::to_vec(&request).unwrap_or_default();
        bytes.push(b'\n');
        let address = self.address;
        self.writer
            .write_all(&bytes)
            .await
            .map_err(|source| ApiError::Io { address, source })?;
        self.line.clear();
        let n = tokio::time::timeout(self.timeout, self.reader.read_line(&mut self.line))
            .await
            .map_err(|_| ApiError::Timeout {
                address,
                timeout: self.timeout,
            })?
            .map_err(|source| ApiError::Io { address, source })?;
        if n == 0 {
            return Err(ApiError::Closed { address });
        }
        serde_json::from_str(&self.line).map_err(|e| ApiError::Protocol {
            address,
            message: format!("{e}: {}", self.line.trim_end()),
        })
    }

    /// Begin + writes + commit in one request.
    pub async fn transact(
        &mut self,
        db: &DatabaseRef,
        txn: u32,
        writes: &[(String, String)],
    ) -> Result<ClientReplyJson, ApiError> {
        self.request(json!({ "op": "transact", "db": db, "txn": txn, "writes": writes }))
            .await
    }

    /// Reads a key outside any transaction.
    pub async fn read(&mut self, db: &DatabaseRef, key: &str) -> Result<ClientReplyJson, ApiError> {
        self.request(json!({ "op": "read", "db": db, "key": key }))
            .await
    }

    /// Sets the connection's ApplicationIntent (`read_write` or `read_only`).
    pub async fn intent(&mut self, intent: &str) -> Result<ClientReplyJson, ApiError> {
        self.request(json!({ "op": "intent", "intent": intent }))
            .await
    }
}

/// An HTTP response of the admin API.
#[derive(Debug, Clone)]
pub struct AdminResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The JSON body.
    pub body: Value,
}

impl AdminResponse {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A client of one replica's admin API.
#[derive(Clone, Copy, Debug)]
pub struct AdminClient {
    /// The admin API's address.
    pub address: SocketAddr,
    /// How long a request may take.
    pub timeout: Duration,
}

impl AdminClient {
    /// A client of the admin API at `address` (30 s per request: a failover may wait for
    /// a SESSION_TIMEOUT).
    pub fn new(address: SocketAddr) -> AdminClient {
        AdminClient {
            address,
            timeout: Duration::from_secs(30),
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<AdminResponse, ApiError> {
        self.call("GET", path, None, "application/json").await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<AdminResponse, ApiError> {
        let body = serde_json::to_vec(body).unwrap_or_default();
        self.call("POST", path, Some(&body), "application/json")
            .await
    }

    /// `POST path` with a text body (T-SQL).
    pub async fn post_text(&self, path: &str, body: &str) -> Result<AdminResponse, ApiError> {
        self.call("POST", path, Some(body.as_bytes()), "text/plain")
            .await
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        content_type: &str,
    ) -> Result<AdminResponse, ApiError> {
        let address = self.address;
        let work = async {
            let mut stream = TcpStream::connect(address)
                .await
                .map_err(|source| ApiError::Io { address, source })?;
            let body = body.unwrap_or_default();
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream
                .write_all(head.as_bytes())
                .await
                .map_err(|source| ApiError::Io { address, source })?;
            stream
                .write_all(body)
                .await
                .map_err(|source| ApiError::Io { address, source })?;
            let mut raw = Vec::new();
            stream
                .read_to_end(&mut raw)
                .await
                .map_err(|source| ApiError::Io { address, source })?;
            parse_response(address, &raw)
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| ApiError::Timeout {
                address,
                timeout: self.timeout,
            })?
    }
}

fn parse_response(address: SocketAddr, raw: &[u8]) -> Result<AdminResponse, ApiError> {
    let protocol = |message: String| ApiError::Protocol { address, message };
    if raw.is_empty() {
        return Err(ApiError::Closed { address });
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| protocol("no end of headers".to_owned()))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| {
            protocol(format!(
                "bad status line: {}",
                head.lines().next().unwrap_or("")
            ))
        })?;
    let mut body = raw[split + 4..].to_vec();
    if head
        .lines()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"))
    {
        body = dechunk(&body).ok_or_else(|| protocol("bad chunked body".to_owned()))?;
    }
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).map_err(|e| protocol(format!("body is not JSON: {e}")))?
    };
    Ok(AdminResponse { status, body })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).ok()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}
