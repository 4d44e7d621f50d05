#!/usr/bin/env python3
"""An example driver of the conformance protocol `hadr-adapter/1` (docs/adapter-protocol.md).

It puts hadr's own reference implementation, `hadr replica` processes, behind the protocol, so
that the whole loop can be seen working before a third party writes a driver for theirs:

    hadr certify --sut external:"python3 conformance/examples/driver.py"

    harness ──request──▶ stdin  driver.py ──HTTP /ag/*, /debug/*──▶ hadr replica × N
            ◀──reply──── stdout           ──NDJSON commits─────────▶ (and one etcd, for
                                          ◀──GET /observation──────  CLUSTER_TYPE EXTERNAL)

Where to read: `Driver.serve` (the request loop, at the bottom), `Group.perform` (each action
on the replicas' APIs), `Group.quiesce` (the quiescence rule), `ClientTxn` (commits and their
outcomes), `Replica.observe` (the observation of a running and of a stopped replica).

    python3 driver.py --processes

takes the protocol's optional capability `processes` when the harness offers it: the harness
then starts and stops the replica processes (one network namespace each, one more for etcd)
and makes crashes, restarts, partitions and lost quorums itself, and this driver only writes
each replica's `node.toml` and gives its command line (`Group.command_lines`), creates the
group, acts through the admin and client APIs, waits and observes. The replicas then run with
HADR_FAULT_INJECTION=process: their /debug/partition and /debug/manager routes are off. When
the harness does not offer it (not root), the driver runs its processes itself, as without the
flag.

Standard library only (Python 3.8+). Every line on stdout is a protocol reply; everything else
(progress, timings, warnings) goes to stderr. Environment:

    HADR_BIN              the hadr binary; default: `hadr` on PATH, else target/release/hadr,
                          else target/debug/hadr of this repository. CLUSTER_TYPE EXTERNAL
                          needs a build with `--features etcd`.
    HADR_ETCD_BIN         the etcd binary; default: `etcd` on PATH, else /usr/bin/etcd
                          (Debian: apt-get install -y etcd-server)
    HADR_DRIVER_SETTLE_S  how long the observation must stay unchanged to count as quiescent (3)
    HADR_DRIVER_MARGIN_S  added to the timeout wait after a fault (5)
    HADR_DRIVER_DIR       where scenario directories are made (default: the temp directory)
    HADR_DRIVER_KEEP=1    keep each scenario's directory (node.toml, data, logs) at teardown
    HADR_REPLICA_LOG      RUST_LOG of the replicas (default: info; their logs are in the
                          scenario directory)
"""

import atexit
import errno
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

PROTOCOL = "hadr-adapter/1"
NAME = "hadr reference replicas (conformance/examples/driver.py)"
# The optional capability of the protocol this driver takes with `--processes`.
PROCESSES = "processes"
PROCESSES_NAME = NAME + " with processes run by the harness"

REPOSITORY = Path(__file__).resolve().parents[2]

SETTLE_S = float(os.environ.get("HADR_DRIVER_SETTLE_S", "3"))
MARGIN_S = float(os.environ.get("HADR_DRIVER_MARGIN_S", "5"))
POLL_S = 0.1
# A system that keeps changing for this long after a step is reported as it is then (with a
# warning): the scenario's `quiescent: false` steps expect such systems.
SETTLE_LIMIT_S = 180.0
READY_TIMEOUT_S = 60.0
ADMIN_TIMEOUT_S = 30.0

# The environment actions the harness performs itself under the capability `processes`
# (then the step request says `"performed": true`, and the driver only waits).
HARNESS_ACTIONS = frozenset(
    ["Crash", "Restart", "Partition", "Heal", "LoseQuorum", "RegainQuorum"]
)

# The fixed ports of a replica under `processes`: each has an address of its own.
CLIENT_PORT, ADMIN_PORT, ENDPOINT_PORT = 7100, 7200, 5022

# The environment actions after which the driver first waits out every timeout the
# configuration can start (session timeout, lease TTL), then for quiescence.
TIMEOUT_ACTIONS = frozenset(
    ["Crash", "Restart", "Partition", "LoseQuorum", "RegainQuorum", "HealthFault", "LoseLogBlock"]
)

# FailureCondition (hadr_types) → FAILURE_CONDITION_LEVEL at which it triggers a failover.
CONDITION_LEVEL = {
    "SERVER_DOWN": 1,
    "UNRESPONSIVE": 2,
    "CRITICAL_ERROR": 3,
    "MODERATE_ERROR": 4,
    "QUALIFIED_FAILURE": 5,
}

# Admin error codes that mean the driver asked badly (or set the replica up wrongly): not the
# implementation's refusal of an action, but a failure of the driver.
DRIVER_MISTAKES = frozenset(
    ["MalformedRequest", "UnknownRoute", "FaultInjectionDisabled", "BadRequest", "NotUtf8"]
)


# ---- protocol output: stdout is for replies only -------------------------------------------

# Keep the real stdout for replies and point file descriptor 1 at stderr, so that nothing
# else (a stray print, a child process) can write into the protocol stream.
_REPLIES = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr


def reply(message):
    _REPLIES.write(json.dumps(message, separators=(",", ":")) + "\n")
    _REPLIES.flush()


def log(message):
    sys.stderr.write("driver.py %s %s\n" % (time.strftime("%H:%M:%S"), message))
    sys.stderr.flush()


class DriverError(Exception):
    """A request that could not be carried out: `kind` is `unsupported` or `failed`."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


def unsupported(message):
    return DriverError("unsupported", message)


def failed(message):
    return DriverError("failed", message)


# ---- child processes: none is left behind --------------------------------------------------

_CHILDREN = []  # every Popen started, until reaped
_DIRECTORIES = set()  # scenario directories to remove at exit (unless HADR_DRIVER_KEEP=1)
_RESERVED_PORTS = set()  # port reservations to give back at exit


def _die_with_parent():
    """In the child before exec: SIGKILL when the driver dies, even by SIGKILL (Linux)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: atexit and the signal handlers still clean up
        pass


def spawn(argv, log_path, env=None):
    """Starts a child with stdout and stderr appended to `log_path`."""
    with open(log_path, "ab") as out:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
            preexec_fn=_die_with_parent,
        )
    _CHILDREN.append(child)
    return child


def kill(child):
    """SIGCONT (a stopped process must not linger) then SIGKILL, and reap it."""
    if child is None:
        return
    if child.poll() is None:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                child.send_signal(sig)
            except ProcessLookupError:
                break
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log("process %d did not die of SIGKILL within 10 s" % child.pid)
    if child in _CHILDREN:
        _CHILDREN.remove(child)


def clean_up():
    """Stops every process this driver started and removes its scenario directories."""
    for child in list(_CHILDREN):
        kill(child)
    for directory in list(_DIRECTORIES):
        remove_directory(directory)
    release_ports(list(_RESERVED_PORTS))


def remove_directory(directory):
    _DIRECTORIES.discard(directory)
    if os.environ.get("HADR_DRIVER_KEEP") == "1":
        log("kept %s" % directory)
    else:
        shutil.rmtree(directory, ignore_errors=True)


def on_signal(signum, _frame):
    log("signal %d: stopping every process this driver started" % signum)
    clean_up()
    os._exit(128 + signum)


atexit.register(clean_up)
for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_sig, on_signal)


# ---- ports ----------------------------------------------------------------------------------


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_RESERVATIONS = Path(tempfile.gettempdir()) / "hadr-port-reservations"


def free_port():
    """A free port on 127.0.0.1 *below* the kernel's ephemeral range.

    A replica that is killed and restarted binds its ports again; a port of the ephemeral range
    could meanwhile be taken by an outgoing connection (the other replicas dial theirs all the
    time). The port is also reserved with an empty file in `hadr-port-reservations` under the
    temp directory, the convention of the Rust tools (testbed/src/local_cluster.rs), so that tests
    running beside the driver do not pick it; reservations are released at teardown.
    """
    high = min(_ephemeral_low(), 65536) - 1
    low = 20000 if high > 21000 else 1024
    try:
        _RESERVATIONS.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass
    for _ in range(1000):
        port = random.randint(low, high)
        path = _RESERVATIONS / str(port)
        try:
            age = time.time() - path.stat().st_mtime
            if age > 3600:  # stale: its process died without cleaning up
                path.unlink()
        except OSError:
            pass
        try:
            fd = os.open(str(path), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.close(fd)
        except FileExistsError:
            continue
        except OSError:
            pass  # nowhere to reserve: rely on the bind check
        _RESERVED_PORTS.add(port)
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            probe.bind(("127.0.0.1", port))
            return port
        except OSError:
            release_ports([port])
        finally:
            probe.close()
    raise failed("no free port on 127.0.0.1 between %d and %d after 1000 tries" % (low, high))


def release_ports(ports):
    for port in ports:
        _RESERVED_PORTS.discard(port)
        try:
            (_RESERVATIONS / str(port)).unlink()
        except OSError:
            pass


# ---- HTTP -----------------------------------------------------------------------------------


def http_request(port, method, path, body=None, timeout=ADMIN_TIMEOUT_S, host="127.0.0.1"):
    """One request to `host`:`port`: (status, parsed JSON or text). Raises OSError."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        data = b"" if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(data))}
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text
    except http.client.HTTPException as e:
        raise OSError("HTTP: %s" % e)
    finally:
        connection.close()


def log_tail(path, lines=8):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode("utf-8", "replace")
        return " | ".join(text.strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---- binaries -------------------------------------------------------------------------------


def hadr_binary():
    if os.environ.get("HADR_BIN"):
        path = os.environ["HADR_BIN"]
        if not os.access(path, os.X_OK):
            raise failed("HADR_BIN=%s is not an executable file" % path)
        return path
    candidates = [shutil.which("hadr")]
    candidates += [str(REPOSITORY / "target" / p / "hadr") for p in ("release", "debug")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    raise failed(
        "no hadr binary: set HADR_BIN, put hadr on PATH, or build it "
        "(cargo build --release --features etcd)"
    )


def etcd_binary():
    if os.environ.get("HADR_ETCD_BIN"):
        return os.environ["HADR_ETCD_BIN"]
    for path in (shutil.which("etcd"), "/usr/bin/etcd"):
        if path and os.access(path, os.X_OK):
            return path
    raise failed(
        "etcd not found (CLUSTER_TYPE EXTERNAL needs one): install it "
        "(Debian: apt-get install -y etcd-server) or set HADR_ETCD_BIN"
    )


# ---- etcd -----------------------------------------------------------------------------------


class Etcd:
    """One etcd member on loopback, as impl/manager/src/local.rs `LocalEtcd` starts it."""

    def __init__(self, directory):
        self.directory = directory
        self.process = None
        self.client_port = None
        self.ports = []
        self.log_path = directory / "etcd.log"

    def start(self):
        binary = etcd_binary()
        error = ""
        for attempt in range(3):
            client, peer = free_port(), free_port()
            self.ports += [client, peer]
            client_url = "http://127.0.0.1:%d" % client
            peer_url = "http://127.0.0.1:%d" % peer
            argv = [
                binary,
                "--name=etcd0",
                "--data-dir=%s" % (self.directory / ("etcd-data-%d" % attempt)),
                "--listen-client-urls=" + client_url,
                "--advertise-client-urls=" + client_url,
                "--listen-peer-urls=" + peer_url,
                "--initial-advertise-peer-urls=" + peer_url,
                "--initial-cluster=etcd0=" + peer_url,
                "--initial-cluster-state=new",
                # One member never holds an election: these ticks only set the shortest lease
                # etcd grants (1.5 election timeouts, rounded up to whole seconds).
                "--heartbeat-interval=50",
                "--election-timeout=500",
                "--logger=zap",
                "--log-level=warn",
            ]
            self.process = spawn(argv, self.log_path)
            self.client_port = client
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    error = "etcd exited at start (%s): %s" % (
                        self.process.returncode,
                        log_tail(self.log_path),
                    )
                    break
                if self.healthy():
                    return
                time.sleep(0.05)
            else:
                error = "etcd did not become healthy within 20 s (log: %s)" % self.log_path
            kill(self.process)
        raise failed(error)

    def healthy(self):
        try:
            status, body = http_request(self.client_port, "GET", "/health", timeout=1)
        except OSError:
            return False
        return status == 200 and isinstance(body, dict) and body.get("health") == "true"

    def signal(self, sig):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)

    def stop(self):
        kill(self.process)
        self.process = None
        release_ports(self.ports)


# ---- the link from a replica to etcd -------------------------------------------------------


class ManagerLink:
    """A TCP relay on loopback between one replica and etcd, which the driver can hold cut.

    The replica's own cut (`POST /debug/manager`) is the fault; this relay only bridges a
    restart. A restarted replica attaches to etcd within milliseconds of starting, before its
    admin API could be told to cut it again, so while a replica that is cut from the manager
    is down and restarting, the driver holds this link cut, puts the replica's own cut back,
    and only then opens the link again.
    """

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.port = free_port()
        self.cut = False
        self.lock = threading.Lock()
        self.connections = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def set_cut(self, cut):
        with self.lock:
            self.cut = cut
            dropped, self.connections = (self.connections, []) if cut else ([], self.connections)
        for sock in dropped:
            _close(sock)

    def close(self):
        self.set_cut(True)
        _close(self.listener)
        release_ports([self.port])

    def _accept(self):
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return  # closed at teardown
            upstream = None
            if not self.cut:
                try:
                    upstream = socket.create_connection(("127.0.0.1", self.upstream_port), 2)
                    upstream.settimeout(None)
                except OSError:
                    pass
            with self.lock:
                if upstream is None or self.cut:  # checked again: a cut may have come meanwhile
                    admitted = False
                else:
                    admitted = True
                    self.connections += [downstream, upstream]
            if not admitted:
                _close(downstream)
                if upstream is not None:
                    _close(upstream)
                continue
            for a, b in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        _close(source)
        _close(sink)
        with self.lock:
            self.connections = [c for c in self.connections if c not in (source, sink)]


def _close(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


# ---- replicas -------------------------------------------------------------------------------


class Replica:
    """One `hadr replica` process and its files.

    `host` is None when the driver runs the process itself (on loopback, free ports, etcd
    through a ManagerLink); under `processes` it is the harness' `hosts[i]` (the replica's own
    address, fixed ports, its output in the harness' log file) and `etcd` the URL of the
    harness' etcd."""

    def __init__(self, index, name, directory, etcd, host=None):
        self.index = index
        self.name = name
        self.host = host
        self.data_dir = directory / ("%s-data" % index)
        self.toml = directory / ("%s.toml" % index)
        self.process = None
        self.running = False  # under `processes`: the harness runs it
        self.offline = None  # cached offline observation while down
        self.manager_link = None
        if host is None:
            self.address = "127.0.0.1"
            self.client_port = free_port()
            self.admin_port = free_port()
            self.endpoint_port = free_port()
            self.log_path = directory / ("%s.log" % index)
            if etcd:
                self.manager_link = ManagerLink(etcd.client_port)
            etcd_endpoint = self.manager_link.endpoint() if self.manager_link else None
        else:
            self.address = host["address"]
            self.client_port, self.admin_port = CLIENT_PORT, ADMIN_PORT
            self.endpoint_port = ENDPOINT_PORT
            self.log_path = Path(host.get("log") or directory / ("%s.log" % index))
            etcd_endpoint = etcd
        lines = [
            "name = %s" % json.dumps(name),
            "data_dir = %s" % json.dumps(str(self.data_dir)),
            'client_listen = "%s:%d"' % (self.address, self.client_port),
            'admin_listen = "%s:%d"' % (self.address, self.admin_port),
        ]
        if etcd_endpoint:
            lines.append("etcd_endpoints = [%s]" % json.dumps(etcd_endpoint))
        self.toml.write_text("\n".join(lines) + "\n")

    def ports(self):
        return [self.client_port, self.admin_port, self.endpoint_port] if self.host is None else []

    def endpoint_url(self):
        return "tcp://%s:%d" % (self.address, self.endpoint_port)

    def up(self):
        return self.running if self.host is not None else self.process is not None

    def command_line(self, binary):
        """Under `processes`: how the harness starts this replica (its reply's `replicas[i]`).
        The replica refuses /debug/partition and /debug/manager: the network is the harness'."""
        return {
            "argv": [binary, "replica", "--config", str(self.toml)],
            "env": {
                "HADR_FAULT_INJECTION": "process",
                "RUST_LOG": os.environ.get("HADR_REPLICA_LOG", "info"),
            },
            "cwd": str(self.toml.parent),
        }

    def start(self, binary):
        """Starts the replica (under `processes`: the harness has started it) and waits until
        its admin API answers."""
        self.offline = None
        if self.host is not None:
            self.running = True
        else:
            env = dict(os.environ)
            env["HADR_FAULT_INJECTION"] = "1"
            env["RUST_LOG"] = os.environ.get("HADR_REPLICA_LOG", "info")
            with open(self.log_path, "a") as f:
                f.write("==== driver.py: starting %s (replica %d)\n" % (self.name, self.index))
            argv = [binary, "replica", "--config", str(self.toml)]
            self.process = spawn(argv, self.log_path, env)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            self.check_running()
            try:
                self.http("GET", "/status", timeout=2)
                return  # any answer (409 before CREATE/JOIN) means the admin API is up
            except OSError:
                time.sleep(0.05)
        raise failed(
            "replica %s did not answer on its admin API within %d s; log %s: %s"
            % (self.name, READY_TIMEOUT_S, self.log_path, log_tail(self.log_path))
        )

    def http(self, method, path, body=None, timeout=ADMIN_TIMEOUT_S):
        return http_request(self.admin_port, method, path, body, timeout, host=self.address)

    def check_running(self):
        """A replica the environment did not crash must be running. (Under `processes` the
        harness checks its own processes.)"""
        if self.process is not None and self.process.poll() is not None:
            status = self.process.returncode
            self.process = None
            raise failed(
                "replica %s exited on its own (status %s); log %s: %s"
                % (self.name, status, self.log_path, log_tail(self.log_path))
            )

    def crash(self):
        """SIGKILL (under `processes`: the harness has killed it)."""
        kill(self.process)
        self.process = None
        self.running = False
        self.offline = None

    def admin(self, method, path, body=None):
        """An admin request to this running replica: (status, body)."""
        try:
            return self.http(method, path, body)
        except OSError as e:
            self.check_running()
            raise failed(
                "replica %s: %s %s got no answer: %s; log %s: %s"
                % (self.name, method, path, e, self.log_path, log_tail(self.log_path))
            )

    def observe(self, binary):
        """The replica's ReplicaObservation: GET /observation, or its files while it is down."""
        if self.up():
            status, body = self.admin("GET", "/observation")
            if status != 200 or not isinstance(body, dict):
                raise failed("replica %s: GET /observation: %s %s" % (self.name, status, body))
            return body
        if self.offline is None:
            run = subprocess.run(
                [binary, "observe-offline", "--config", str(self.toml)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                timeout=60,
            )
            stderr = run.stderr.decode("utf-8", "replace").strip()
            if run.returncode != 0:
                hint = ""
                if "observe-offline" in stderr and "unrecognized" in stderr:
                    hint = " (this hadr is too old for observe-offline: build a newer one)"
                raise failed(
                    "hadr observe-offline of stopped replica %s failed (status %d)%s: %s"
                    % (self.name, run.returncode, hint, stderr)
                )
            try:
                self.offline = json.loads(run.stdout.decode())
            except ValueError:
                raise failed("hadr observe-offline printed no JSON: %r" % run.stdout[:200])
        return self.offline


# ---- clients --------------------------------------------------------------------------------


def commit_outcome(answer):
    """The observation's CommitOutcome for one reply line of the client API (docs/node.md)."""
    outcome, code = answer.get("outcome"), answer.get("code")
    if outcome == "committed":
        return {"outcome": "acknowledged"}
    definite = {
        "NotPrimary": "no_primary",
        "NotInAvailabilityGroup": "no_primary",
        "TooFewSynchronized": "too_few_synchronized",
        "UnknownDatabase": "not_in_group",
        "UnknownDatabaseName": "not_in_group",
    }
    if outcome in ("refused", "error") and code in definite:
        return {"outcome": "definite_error", "reason": definite[code]}
    if outcome != "indefinite":
        log("commit answer %s has no place in the observation: counted as indefinite" % answer)
    return {"outcome": "indefinite"}


class ClientTxn:
    """One ClientCommit: a client on its own connection, in its own thread, so that a commit
    that blocks stays `pending` while the driver goes on."""

    def __init__(self, txn, database):
        self.txn = txn
        self.database = database
        self.outcome = {"outcome": "pending"}
        self.sent = threading.Event()
        self.lock = threading.Lock()

    def refuse(self, reason):
        self.outcome = {"outcome": "definite_error", "reason": reason}
        self.sent.set()

    def start(self, replica):
        thread = threading.Thread(
            target=self._run, args=(replica.name, replica.address, replica.client_port), daemon=True
        )
        thread.start()
        if not self.sent.wait(10):
            log("txn %d: the request was not sent within 10 s" % self.txn)

    def _run(self, name, address, port):
        request = {
            "id": 1,
            "op": "transact",
            "db": self.database,
            "txn": self.txn,
            "writes": [["k%d" % self.txn, "v"]],
        }
        answer = None
        try:
            with socket.create_connection((address, port), timeout=10) as sock:
                sock.settimeout(None)  # a commit may wait as long as the scenario lasts
                sock.sendall((json.dumps(request) + "\n").encode())
                self.sent.set()
                line = sock.makefile("rb").readline()
            if line:
                answer = json.loads(line)
        except (OSError, ValueError) as e:
            log("txn %d on %s: %s: the outcome is unknown" % (self.txn, name, e))
        finally:
            self.sent.set()
        with self.lock:
            if answer is None:  # the connection closed before the answer (R-COMMIT-7)
                self.outcome = {"outcome": "indefinite"}
            else:
                self.outcome = commit_outcome(answer)
        log("txn %d on %s: %s" % (self.txn, name, answer))

    def observation(self):
        with self.lock:
            outcome = dict(self.outcome)
        return {"txn": self.txn, "database": self.database, "outcome": outcome}


# ---- the group ------------------------------------------------------------------------------


def node_of(value):
    """A `hadr_model::Node` in JSON: {"Replica": i} → i; "Manager" → None."""
    if value == "Manager":
        return None
    if isinstance(value, dict) and isinstance(value.get("Replica"), int):
        return value["Replica"]
    raise failed("not a Node: %s (expected {\"Replica\": i} or \"Manager\")" % json.dumps(value))


class Group:
    """One scenario's availability group: the replicas, etcd, the clients and the faults.

    `processes` is the harness' `processes` request when it runs the processes (the
    capability), else None."""

    def __init__(self, config, processes=None):
        if not isinstance(config, dict) or not isinstance(config.get("replicas"), list):
            raise failed("setup: `config` is not an AgConfig (no `replicas` list)")
        self.binary = hadr_binary()
        self.config = json.loads(json.dumps(config))  # a copy we may add endpoints to
        self.cluster_type = str(config.get("cluster_type", "EXTERNAL")).upper()
        if self.cluster_type == "WSFC":
            raise unsupported("CLUSTER_TYPE WSFC: the reference replica has no WSFC")
        self.databases = list(config.get("databases", []))
        self.processes = processes
        if processes is None:
            parent = os.environ.get("HADR_DRIVER_DIR") or None
            self.directory = Path(tempfile.mkdtemp(prefix="hadr-driver-", dir=parent))
            _DIRECTORIES.add(self.directory)  # the harness removes its own
        else:
            self.directory = Path(processes["dir"])
        self.etcd = None
        self.replicas = []
        self.clients = []
        self.cut_links = set()  # frozenset({a, b}) of replicas partitioned from each other
        self.cut_from_manager = set()  # replicas partitioned from the cluster manager
        self.quorum_lost = False

    # -- lifecycle --

    def command_lines(self):
        """Under `processes`: writes each replica's node.toml in the harness' directory, at the
        harness' address, and answers with their command lines."""
        hosts = self.processes.get("hosts")
        replicas = self.config["replicas"]
        if not isinstance(hosts, list) or len(hosts) != len(replicas):
            raise failed("processes: `hosts` is not one host per replica: %s" % json.dumps(hosts))
        etcd = self.processes.get("etcd")
        if self.cluster_type == "EXTERNAL" and not etcd:
            raise failed("processes: CLUSTER_TYPE EXTERNAL but the harness runs no etcd")
        for i, (replica, host) in enumerate(zip(replicas, hosts)):
            if not isinstance(host, dict) or not isinstance(host.get("address"), str):
                raise failed("processes: `hosts[%d]` has no `address`" % i)
            r = Replica(i, replica["name"], self.directory, etcd, host)
            replica["endpoint_url"] = r.endpoint_url()
            self.replicas.append(r)
        return [r.command_line(self.binary) for r in self.replicas]

    def setup(self):
        started = time.monotonic()
        if self.processes is None:
            if self.cluster_type == "EXTERNAL":
                self.etcd = Etcd(self.directory)
                self.etcd.start()
            for i, replica in enumerate(self.config["replicas"]):
                r = Replica(i, replica["name"], self.directory, self.etcd)
                replica["endpoint_url"] = r.endpoint_url()  # the driver owns the addresses
                self.replicas.append(r)
        for r in self.replicas:
            r.start(self.binary)
        for r in self.replicas:
            command = "/ag/create" if r.index == 0 else "/ag/join"
            status, body = r.admin("POST", command, self.config)
            if status != 200:
                raise failed("%s on %s refused (%d): %s" % (command, r.name, status, body))
        self.quiesce("setup", long_wait=False)
        first = self.replicas[0].observe(self.binary)
        if first.get("role") != "PRIMARY":
            raise failed(
                "setup: replica 0 (%s) is %s, not PRIMARY, once the group settled"
                % (self.replicas[0].name, first.get("role"))
            )
        log(
            "setup: %d replicas (CLUSTER_TYPE %s) in %s, ready in %.1f s"
            % (len(self.replicas), self.cluster_type, self.directory, time.monotonic() - started)
        )

    def teardown(self):
        for r in self.replicas:
            r.crash()
            if r.manager_link:
                r.manager_link.close()
            release_ports(r.ports())
        if self.etcd:
            self.etcd.stop()
        if self.processes is None:
            remove_directory(self.directory)

    # -- observing --

    def observation(self):
        for r in self.replicas:
            r.check_running()
        if self.etcd and self.etcd.process.poll() is not None:
            log_path = self.etcd.log_path
            raise failed("etcd exited (log %s): %s" % (log_path, log_tail(log_path)))
        return {
            "replicas": [r.observe(self.binary) for r in self.replicas],
            "transactions": [t.observation() for t in self.clients],
        }

    def timeout_wait_s(self):
        """The longest any timeout the configuration starts can take to fire and be acted on."""
        session_s = max(int(r.get("session_timeout_s", 10)) for r in self.config["replicas"])
        lease_s = 0.0
        if self.cluster_type != "NONE":
            lease_s = int(self.config.get("lease", {}).get("ttl_ms", 20000)) / 1000.0
        return session_s + lease_s + MARGIN_S

    def quiesce(self, what, long_wait):
        """Waits (long_wait: first for every timeout) until the whole observation has not
        changed for SETTLE_S seconds."""
        started = time.monotonic()
        wait_until = started + (self.timeout_wait_s() if long_wait else 0.0)
        last = json.dumps(self.observation(), sort_keys=True)
        changed = started
        while True:
            time.sleep(POLL_S)
            now = time.monotonic()
            current = json.dumps(self.observation(), sort_keys=True)
            if current != last:
                last, changed = current, now
            elif now >= wait_until and now - changed >= SETTLE_S:
                break
            if now - started > SETTLE_LIMIT_S + (wait_until - started):
                log(
                    "%s: still changing %.0f s after the step: observed as it is now"
                    % (what, now - started)
                )
                break
        log(
            "%s: quiescent after %.1f s (last change at %.1f s%s)"
            % (
                what,
                time.monotonic() - started,
                changed - started,
                ", timeouts waited %.0f s" % (wait_until - started) if long_wait else "",
            )
        )

    # -- acting --

    def replica(self, index):
        if not isinstance(index, int) or not 0 <= index < len(self.replicas):
            last = len(self.replicas) - 1
            raise failed("replica %s is not in the configuration (0..%d)" % (index, last))
        return self.replicas[index]

    def database_name(self, index):
        if not isinstance(index, int) or not 0 <= index < len(self.databases):
            raise failed("database %s is not in the configuration" % index)
        return self.databases[index]

    def primary(self):
        """The replica a read-write listener would send a client to: the running replica that
        says PRIMARY, the newest epoch's if several do (an old one that has not met the new one
        yet)."""
        best, best_epoch = None, None
        for r in self.replicas:
            if not r.up():
                continue
            status, body = r.admin("GET", "/status")
            if status != 200 or not isinstance(body, dict) or body.get("role") != "PRIMARY":
                continue
            epoch = body.get("epoch") or {}
            key = (epoch.get("term", 0), epoch.get("generation", 0))
            if best is None or key > best_epoch:
                best, best_epoch = r, key
        return best

    def admin_command(self, r, method, path, body=None):
        """An admin command the implementation may refuse: a refusal is its behaviour, and
        the observation shows it. Only a request the driver got wrong is an error."""
        if not r.up():
            log("%s %s: %s is down: not done" % (method, path, r.name))
            return
        status, answer = r.admin(method, path, body)
        code = answer.get("code") if isinstance(answer, dict) else None
        if status == 200:
            log("%s %s on %s: %s" % (method, path, r.name, answer))
        elif (
            code in DRIVER_MISTAKES
            or (status == 404 and code is None)
            or (status >= 500 and status != 503)
        ):
            raise failed("%s %s on %s: %d %s" % (method, path, r.name, status, answer))
        else:
            log("%s %s on %s refused (%d): %s" % (method, path, r.name, status, answer))

    def cut(self, a, b, cut):
        """Partition (cut) or Heal between two nodes (None: the cluster manager)."""
        if a is None and b is None:
            return
        if a is None or b is None:
            r = self.replica(b if a is None else a)
            (self.cut_from_manager.add if cut else self.cut_from_manager.discard)(r.index)
            if self.cluster_type == "NONE":
                log("no cluster manager (CLUSTER_TYPE NONE): nothing to cut")
                return
            self.admin_command(r, "POST", "/debug/manager", {"cut": cut})
            return
        ra, rb = self.replica(a), self.replica(b)
        link = frozenset([ra.index, rb.index])
        (self.cut_links.add if cut else self.cut_links.discard)(link)
        for here, there in ((ra, rb), (rb, ra)):
            self.admin_command(here, "POST", "/debug/partition", {"peer": there.name, "cut": cut})

    def restart(self, r):
        if r.up():
            log("restart: %s is running: not done" % r.name)
            return
        cut_from_manager = r.index in self.cut_from_manager and r.manager_link is not None
        if cut_from_manager:
            r.manager_link.set_cut(True)  # until its own cut is back (see ManagerLink)
        r.start(self.binary)
        # The cuts are the network's, not the process's: put them back. The peers hold their
        # side of a partition meanwhile (they refuse the restarted replica's connections).
        for link in sorted(self.cut_links, key=sorted):
            if r.index in link:
                (other,) = link - {r.index}
                self.admin_command(
                    r, "POST", "/debug/partition", {"peer": self.replicas[other].name, "cut": True}
                )
        if cut_from_manager:
            self.admin_command(r, "POST", "/debug/manager", {"cut": True})
            r.manager_link.set_cut(False)

    def client_commit(self, database):
        t = ClientTxn(len(self.clients) + 1, database)
        self.clients.append(t)
        p = self.primary()
        if p is None:
            log("txn %d: no replica is PRIMARY: the listener refuses it (no_primary)" % t.txn)
            t.refuse("no_primary")
        else:
            log("txn %d: to %s" % (t.txn, p.name))
            t.start(p)

    def step(self, action, performed=False):
        if isinstance(action, str):
            kind, args = action, {}
        elif isinstance(action, dict) and len(action) == 1:
            ((kind, args),) = action.items()
        else:
            raise failed("not an Action: %s" % json.dumps(action))
        if not isinstance(args, dict):
            raise failed("not an Action: %s" % json.dumps(action))
        started = time.monotonic()
        if performed:
            self.performed(kind, args)
        elif self.processes is not None and kind in HARNESS_ACTIONS:
            raise failed("%s without `performed`: under `processes` the harness does it" % kind)
        else:
            self.perform(kind, args)
        self.quiesce("step %s" % json.dumps(action, separators=(",", ":")), kind in TIMEOUT_ACTIONS)
        log("step %s done in %.1f s" % (kind, time.monotonic() - started))

    def performed(self, kind, a):
        """Under `processes`: the harness has done this action; keep track of the replicas it
        crashed and restarted (the network's cuts and etcd are the harness' alone)."""
        if self.processes is None or kind not in HARNESS_ACTIONS:
            raise failed("%s: `performed`, but the harness performs no such action here" % kind)
        if kind == "Crash":
            r = self.replica(a["replica"])
            if r.up():
                r.crash()  # its clients' connections broke: they are indefinite
        elif kind == "Restart":
            r = self.replica(a["replica"])
            if not r.up():
                r.start(self.binary)  # waits for its admin API
        log("%s: performed by the harness" % kind)

    def perform(self, kind, a):
        if kind == "ClientCommit":
            self.client_commit(a["db"])
        elif kind == "Crash":
            r = self.replica(a["replica"])
            if r.up():
                r.crash()  # SIGKILL: its clients' connections break (indefinite)
            else:
                log("crash: %s is down already: not done" % r.name)
        elif kind == "Restart":
            self.restart(self.replica(a["replica"]))
        elif kind in ("Partition", "Heal"):
            self.cut(node_of(a["a"]), node_of(a["b"]), kind == "Partition")
        elif kind in ("LoseQuorum", "RegainQuorum"):
            if self.etcd is None:
                log("%s: no cluster manager (CLUSTER_TYPE NONE): nothing to do" % kind)
                return
            self.quorum_lost = kind == "LoseQuorum"
            self.etcd.signal(signal.SIGSTOP if self.quorum_lost else signal.SIGCONT)
        elif kind == "LoseLogBlock":
            p = self.primary()
            if p is None:
                log("LoseLogBlock: no primary sends log: not done")
                return
            peer = self.replica(a["to"])
            body = {"peer": peer.name, "database": self.database_name(a["db"])}
            self.admin_command(p, "POST", "/debug/drop-log", body)
        elif kind == "HealthFault":
            level = CONDITION_LEVEL.get(str(a["condition"]).upper())
            if level is None:
                raise failed("unknown failure condition %s" % json.dumps(a["condition"]))
            r = self.replica(a["replica"])
            self.admin_command(r, "POST", "/debug/health-fault", {"level": level})
        elif kind == "DiskStall":
            self.admin_command(self.replica(a["replica"]), "POST", "/debug/disk-stall", {})
        elif kind == "PlannedFailover":
            self.admin_command(self.replica(a["target"]), "POST", "/ag/failover")
        elif kind == "ForcedFailover":
            self.admin_command(self.replica(a["target"]), "POST", "/ag/force-failover")
        elif kind == "DemoteToSecondary":
            self.admin_command(self.replica(a["replica"]), "POST", "/ag/set-role-secondary")
        elif kind in ("Suspend", "Resume"):
            name = urllib.parse.quote(self.database_name(a["db"]), safe="")
            path = "/databases/%s/%s" % (name, kind.lower())
            self.admin_command(self.replica(a["replica"]), "POST", path)
        elif kind == "SetRequiredSynchronized":
            p = self.primary()
            if p is None:
                log("SetRequiredSynchronized: no primary to run it: not done")
                return
            self.admin_command(p, "POST", "/ag/required-synchronized", {"value": a["k"]})
        else:
            raise unsupported(
                "%s: the reference replica has no API for it in this driver" % kind
            )


# ---- the request loop -----------------------------------------------------------------------


class Driver:
    def __init__(self, want_processes=False):
        self.group = None
        self.want_processes = want_processes
        self.processes = False  # whether the harness runs the processes (the capability)

    def handle(self, request):
        op = request.get("op")
        if op == "hello":
            if request.get("protocol") != PROTOCOL:
                asked = json.dumps(request.get("protocol"))
                raise unsupported("this driver speaks %s, not %s" % (PROTOCOL, asked))
            offered = request.get("capabilities")
            if self.want_processes and isinstance(offered, list) and PROCESSES in offered:
                self.processes = True
                return {
                    "ok": True,
                    "protocol": PROTOCOL,
                    "name": PROCESSES_NAME,
                    "capabilities": [PROCESSES],
                }
            if self.want_processes:
                log("the harness does not offer `processes`: this driver runs its processes")
            return {"ok": True, "protocol": PROTOCOL, "name": NAME}
        if op == "processes" and self.processes:
            self.teardown()
            if not isinstance(request.get("dir"), str):
                raise failed("processes: no `dir`")
            self.group = Group(request.get("config"), processes=request)
            return {"ok": True, "replicas": self.group.command_lines()}
        if op == "setup":
            if self.processes:
                group = self.need_group()  # made by `processes`, just before
                if group.replicas and group.replicas[0].up():
                    raise failed("setup without `processes` first: the harness sends one")
            else:
                self.teardown()
                self.group = Group(request.get("config"))
            try:
                self.group.setup()
            except DriverError:
                self.teardown()
                raise
            return {"ok": True}
        if op == "step":
            if "action" not in request:
                raise failed("step without an `action`")
            performed = request.get("performed") is True
            self.need_group().step(request["action"], performed)
            return {"ok": True}
        if op == "observe":
            return {"ok": True, "observation": self.need_group().observation()}
        if op == "teardown":
            self.teardown()
            return {"ok": True}
        raise unsupported("unknown op %s" % json.dumps(op))

    def need_group(self):
        if self.group is None:
            raise failed("no availability group: send setup first")
        return self.group

    def teardown(self):
        if self.group is not None:
            group, self.group = self.group, None
            group.teardown()

    def serve(self, lines):
        for raw in lines:
            line = raw.strip()
            if not line:
                continue
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("a request is a JSON object")
            except ValueError as e:
                message = "not a request: %s" % e
                reply({"ok": False, "error": {"kind": "failed", "message": message}})
                continue
            try:
                answer = self.handle(request)
            except DriverError as e:
                log("%s: %s: %s" % (request.get("op"), e.kind, e.message))
                answer = {"ok": False, "error": {"kind": e.kind, "message": e.message}}
            except (KeyError, TypeError) as e:
                message = "malformed %s request: %r" % (request.get("op"), e)
                answer = {"ok": False, "error": {"kind": "failed", "message": message}}
            except (OSError, subprocess.SubprocessError) as e:
                answer = {"ok": False, "error": {"kind": "failed", "message": str(e)}}
            reply(answer)
            if request.get("op") == "teardown":
                return  # the harness starts a new driver for the next scenario


def main():
    driver = Driver(want_processes="--processes" in sys.argv[1:])
    try:
        driver.serve(iter(sys.stdin.readline, ""))
    except BrokenPipeError:  # the harness went away
        pass
    except OSError as e:
        if e.errno != errno.EPIPE:
            raise
    finally:
        driver.teardown()
        clean_up()


if __name__ == "__main__":
    main()
