//! The command line: `hadr <command> [options]`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// hadr: a model-checked reference of availability-group replication.
#[derive(Debug, Parser)]
#[command(name = "hadr", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
// Parsed once per run: the size of its largest variant (`certify`'s many options) costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Model-check an availability group against the spec (every invariant, every hazard,
    /// every action kind), exhaustively within the configuration's bounds.
    Check(CheckArgs),
    /// Serve Stateright's Explorer on the same model, to walk its states in a browser.
    Explore(ExploreArgs),
    /// Run one availability replica (the reference implementation) until SIGINT or SIGTERM.
    Replica(ReplicaArgs),
    /// Run a 3-replica availability group as local processes: workload, SIGKILL of the
    /// primary, forced failover, a count of lost acknowledged commits, rejoin.
    Demo(DemoArgs),
    /// Measure synchronous-commit throughput and latency of the reference replicas.
    Bench(BenchArgs),
    /// Replay the conformance corpus on an implementation and print its certificate.
    Certify(CertifyArgs),
    /// Check an implementation's own event log (hadr-events/1, docs/event-log.md) against the
    /// model: is there a behaviour of the spec that explains it? Several files (one per
    /// replica, the driver's) are merged by time. Exit 0 valid, 1 invalid, 2 bad input, 3 too
    /// broad to judge.
    Validate(ValidateArgs),
    /// Conformance scenarios: `hadr trace generate` writes the corpus generated from the spec.
    #[command(subcommand)]
    Trace(TraceCommand),
    /// Print the observation of a stopped replica from its files (read only), as
    /// `GET /observation` shows a running one: for conformance drivers (docs/adapter-protocol.md).
    ObserveOffline(ReplicaArgs),
    /// Run the availability group listener: one address that routes read-write connections
    /// to the primary and read-intent ones along READ_ONLY_ROUTING_LIST (R-READ-3).
    Listener(ListenerArgs),
}

/// Options of `hadr certify`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CertifyArgs {
    /// `hadr certify merge`: put shard certificates together.
    #[command(subcommand)]
    pub command: Option<CertifyCommand>,
    /// The system under test: `reference-sim` (the reference core in a simulated network),
    /// `reference` (the reference replicas as processes, with etcd for CLUSTER_TYPE
    /// EXTERNAL; `--faults` says how their network is cut), `spec` (the spec itself, or with `--mutant` a spec mutant, run
    /// as a system: how the corpus is measured), or `external:CMD` (any implementation behind
    /// a driver program speaking docs/adapter-protocol.md).
    #[arg(long, default_value = "reference-sim")]
    pub sut: String,
    /// The corpus directory (scenario files from `hadr trace generate`).
    #[arg(long, value_name = "DIR", default_value = "conformance/corpus")]
    pub corpus: PathBuf,
    /// Run these scenario files instead of a corpus directory (a failure saved by
    /// `--save-failures`, a hand-written scenario). May be given more than once.
    #[arg(long, value_name = "FILE", conflicts_with = "corpus")]
    pub scenario: Vec<PathBuf>,
    /// Write each failing scenario, shrunk, as a scenario file named like the corpus' file
    /// into DIR, replayable with `--scenario`.
    #[arg(long, value_name = "DIR")]
    pub save_failures: Option<PathBuf>,
    /// How the certificate is reported.
    #[command(flatten)]
    pub report: ReportArgs,
    /// Also write a page per scenario that did not pass into DIR (`NNN-name.html`, and
    /// `index.html` listing every scenario): the run's timeline, a lane per replica, the
    /// manager and the clients, the failing step highlighted with what the spec allows there.
    #[arg(long, value_name = "DIR")]
    pub html: Option<PathBuf>,
    /// With `--html`: a page for every scenario, passed ones too.
    #[arg(long, requires = "html")]
    pub html_all: bool,
    /// Plant a bug: in the reference implementation (`reference-sim`, `reference`; a build
    /// with the `mutants` feature, `--list-mutants`), or in the spec (`spec`; `hadr check
    /// --list-mutants`). Certification must fail and name the rule it breaks.
    #[arg(long, value_name = "NAME")]
    pub mutant: Option<String>,
    /// List the planted bugs `--mutant` accepts, with the rule each breaks, and exit.
    #[arg(long)]
    pub list_mutants: bool,
    /// Report each failure at the step it failed, without shrinking it first (shrinking
    /// replays shorter scenarios on fresh systems).
    #[arg(long)]
    pub no_shrink: bool,
    /// Also run this many random walks of the corpus' configuration generated from `--seed`
    /// (after the corpus' scenarios): breadth beyond the committed corpus.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// How many random walks `--seed` adds.
    #[arg(long, value_name = "N", default_value_t = 10, requires = "seed")]
    pub walks: usize,
    /// Environment steps per walk of `--seed`.
    #[arg(long, value_name = "N", default_value_t = 8, requires = "seed")]
    pub walk_length: usize,
    /// Give the system under test the shortest timeouts a group may have (SESSION_TIMEOUT
    /// 5 s, a 2 s lease) instead of the scenarios' own: the same expectations (the model has
    /// no clock), far shorter waits on real time.
    #[arg(long)]
    pub short_timeouts: bool,
    /// Run this many scenarios at once, each on its own system; the certificate is the same
    /// as a serial run's. Default: 8 for `reference` (its processes mostly wait out
    /// timeouts), the number of CPUs for `reference-sim` and `spec`, 1 for `external:CMD`
    /// (give more only to a driver whose systems are isolated from each other).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// With `--sut reference`, how network faults are made: `outside` (each replica and etcd
    /// in a network namespace of its own, packets dropped between them; root or
    /// CAP_SYS_ADMIN and CAP_NET_ADMIN), `cooperative` (the replicas on loopback cut
    /// themselves through their /debug routes), or `auto` (outside when this process may make
    /// network namespaces, else cooperative, saying why). With `--sut external:CMD`, whether
    /// the driver is offered the capability `processes` (the harness runs its replicas and
    /// makes crashes, restarts, partitions and lost quorums itself,
    /// docs/adapter-protocol.md): `outside` offers it (an error without namespaces), `auto`
    /// where namespaces can be made, `cooperative` never.
    #[arg(long, value_enum, default_value_t = FaultsArg::Auto)]
    pub faults: FaultsArg,
    /// Run only the K-th of N shards of the scenarios (a stable split by file name), for
    /// `hadr certify merge` to put together; use with `--json`.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<hadr_conformance::certify::ShardSpec>,
}

/// `hadr certify --faults`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FaultsArg {
    /// Outside when possible, else cooperative.
    Auto,
    /// From outside the replicas: network namespaces.
    Outside,
    /// By the replicas themselves.
    Cooperative,
}

/// `hadr certify …`.
#[derive(Debug, Subcommand)]
pub enum CertifyCommand {
    /// Merge the `--json` certificates of every shard of one run (`hadr certify --shard K/N`)
    /// into the certificate one run would print. Exit 0 when it passes, 1 when it fails, 2
    /// when the files are not every shard of one run.
    Merge(MergeArgs),
}

/// How `hadr certify` and `hadr certify merge` report a certificate.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Print the certificate as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write the results as JUnit XML.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also write the certificate as Markdown.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
}

/// Options of `hadr certify merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' certificates (`hadr certify --shard K/N --json`), in any order.
    #[arg(required = true, value_name = "CERT.json")]
    pub files: Vec<PathBuf>,
    /// How the certificate is reported.
    #[command(flatten)]
    pub report: ReportArgs,
}

/// Options of `hadr validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The files of one run (NDJSON, `hadr-events/1`): merged by their events' time.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print the verdict as JSON.
    #[arg(long)]
    pub json: bool,
    /// Give up (exit 3) when the model may be in more states than this at once.
    #[arg(long, value_name = "STATES", default_value_t = hadr_conformance::validate::MAX_FRONTIER)]
    pub max_frontier: usize,
}

/// `hadr trace …`.
#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// Generate the conformance corpus from the spec: the shortest scenario to every hazard and
    /// every action kind, plus seeded random walks, each step with the observations the model
    /// allows (docs/trace-format.md). Deterministic for a configuration and seed.
    Generate(TraceGenerateArgs),
}

/// Options of `hadr trace generate`.
#[derive(Debug, Args)]
pub struct TraceGenerateArgs {
    /// Model configuration (TOML, as for `hadr check --config`); default: the embedded
    /// `model/configs/default.toml`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Seed of the random walks.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of random walks.
    #[arg(long, default_value_t = 20, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=10_000))]
    pub walks: usize,
    /// Environment steps per random walk.
    #[arg(long, default_value_t = 8, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100))]
    pub walk_length: usize,
    /// Add scenarios until every spec mutant of the configuration fails on at least N of them
    /// (mutation adequacy; 0: none added).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=10))]
    pub kills_per_mutant: usize,
    /// Where to write the scenarios and index.json (its earlier scenario files are replaced).
    #[arg(long, value_name = "DIR", default_value = "conformance/corpus")]
    pub out: PathBuf,
    /// Print a JSON summary on standard output instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Options of `hadr listener`.
#[derive(Debug, Args)]
pub struct ListenerArgs {
    /// The listener's configuration (listen address; each replica's name, client and admin
    /// addresses); see docs/listener.md.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// Options of `hadr replica`.
#[derive(Debug, Args)]
pub struct ReplicaArgs {
    /// The node's configuration (name, data_dir, client_listen, admin_listen); see
    /// docs/node.md.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// Options of `hadr demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Concurrent clients of the workload.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub clients: u16,
    /// Length of the workload (the primary is killed halfway).
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub seconds: f64,
    /// Keep the replicas' data and logs in this directory (default: a temporary one, removed
    /// after a successful run).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The cluster manager: `none` (CLUSTER_TYPE = NONE, forced failover by the operator) or
    /// `etcd` (CLUSTER_TYPE = EXTERNAL, automatic failover; needs a build with `--features
    /// etcd` and an etcd binary).
    #[arg(long, value_enum, default_value_t = ClusterKind::None)]
    pub cluster: ClusterKind,
}

/// The cluster manager of `hadr demo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ClusterKind {
    /// No cluster manager: CLUSTER_TYPE = NONE.
    None,
    /// A local etcd: CLUSTER_TYPE = EXTERNAL with automatic failover.
    Etcd,
}

/// Options of `hadr bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Client counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32", value_parser = clap::value_parser!(usize))]
    pub clients: Vec<usize>,
    /// Seconds per client count.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// One JSON object per client count on standard output.
    #[arg(long)]
    pub json: bool,
    /// Another benchmark instead of commit throughput.
    #[command(subcommand)]
    pub what: Option<BenchCommand>,
}

/// The benchmarks of `hadr bench` besides commit throughput.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Automatic failover time under etcd: SIGKILL of the primary → first commit acknowledged
    /// by the new primary (needs a build with `--features etcd` and an etcd binary).
    Failover(FailoverBenchArgs),
    /// Storage under a long workload (issue 18): commit a volume of data for a time, sampling
    /// every replica's resident memory and write-ahead log, then SIGKILL the secondary and time
    /// its restart until it serves again. Exit 1 when a bar is missed.
    Storage(StorageBenchArgs),
}

/// Options of `hadr bench storage`.
#[derive(Debug, Args)]
pub struct StorageBenchArgs {
    /// How long to commit, in seconds (the acceptance run is 600).
    #[arg(long, default_value_t = 600.0)]
    pub seconds: f64,
    /// Bytes of values to commit at least (the acceptance run is 1 GiB); the run stops at the
    /// later of `--seconds` and this volume.
    #[arg(long, default_value_t = 1 << 30)]
    pub bytes: u64,
    /// Bytes of each transaction's one value.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=150_000))]
    pub value_bytes: u64,
    /// How many distinct keys the workload writes, over and over (0: every commit a new key).
    #[arg(long, default_value_t = 0)]
    pub keys: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub clients: u64,
    /// The bar for every replica's resident memory, in MiB.
    #[arg(long, default_value_t = 256)]
    pub max_rss_mib: u64,
    /// The bar for a restarted replica to serve again, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub max_restart_s: f64,
    /// Stop the workload early (and fail) once a replica's resident memory passes this, in
    /// MiB: a build whose memory grows with the data must not exhaust the machine.
    #[arg(long, default_value_t = 4096)]
    pub stop_at_rss_mib: u64,
    /// One JSON object per sample, then the summary, on standard output.
    #[arg(long)]
    pub json: bool,
}

/// Options of `hadr bench failover`.
#[derive(Debug, Args)]
pub struct FailoverBenchArgs {
    /// Failovers measured per lease setting.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub rounds: u64,
    /// etcd lease TTLs to measure, in ms, comma-separated (whole seconds: etcd counts leases
    /// in seconds). The primary commits for 3/4 of the lease after each renewal.
    #[arg(long, value_delimiter = ',', default_value = "2000", value_parser = parse_lease_ms)]
    pub lease_ms: Vec<u32>,
    /// One JSON object per lease setting on standard output: lease_ms, rounds, median_ms,
    /// p99_ms, min_ms, lost_commits.
    #[arg(long)]
    pub json: bool,
}

fn parse_lease_ms(text: &str) -> Result<u32, String> {
    let ms: u32 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of milliseconds"))?;
    if ms == 0 || ms % 1000 != 0 || ms > 600_000 {
        return Err(format!(
            "lease {ms} ms: must be a whole number of seconds between 1000 and 600000 (etcd counts leases in seconds)"
        ));
    }
    Ok(ms)
}

/// Options of `hadr check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Check configuration (TOML with `[bounds]` and `[ag]` tables); default: the embedded
    /// `model/configs/default.toml`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Check the availability group a T-SQL script creates (CREATE AVAILABILITY GROUP …),
    /// with --bounds or the embedded script bounds, and print advice derived from the checks.
    #[arg(long, value_name = "FILE.sql", conflicts_with = "config")]
    pub tsql: Option<PathBuf>,
    /// Bounds for --tsql: a TOML file with a `[bounds]` table (default:
    /// `model/configs/script-bounds.toml`, embedded).
    #[arg(long, value_name = "FILE", requires = "tsql")]
    pub bounds: Option<PathBuf>,
    /// Print the advice section (always printed with --tsql).
    #[arg(long)]
    pub advice: bool,
    /// Check a deliberately wrong variant of the spec (see --list-mutants); the check stops
    /// once the rule that the mutant breaks is violated.
    #[arg(long, value_name = "NAME")]
    pub mutant: Option<String>,
    /// List the mutants and the rule each one breaks, then exit.
    #[arg(long)]
    pub list_mutants: bool,
    /// Search depth-first (the default: fast, little memory).
    #[arg(long, conflicts_with = "bfs")]
    pub dfs: bool,
    /// Search breadth-first (shortest paths with one thread; much more memory).
    #[arg(long)]
    pub bfs: bool,
    /// Checker threads (default: the number of cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// Keep the first counterexample found instead of searching for the shortest one.
    #[arg(long)]
    pub no_shorten: bool,
    /// Also find the shortest path to each discovered hazard and print it.
    #[arg(long)]
    pub examples: bool,
    /// Do not merge states that differ only by interchangeable replicas.
    #[arg(long)]
    pub no_symmetry: bool,
    /// Stop after this many seconds (the report then says the search is incomplete).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// No progress line on standard error.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Options of `hadr explore`.
#[derive(Debug, Args)]
pub struct ExploreArgs {
    /// Check configuration, as for `hadr check`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Explore a mutant of the spec.
    #[arg(long, value_name = "NAME")]
    pub mutant: Option<String>,
    /// Address to listen on (loopback by default: the Explorer has no authentication).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
}
