//! `hadr`: see `hadr --help`, README.md and docs/cli.md.

use clap::Parser;
use hadr::cli::{Cli, Command};
use hadr::{bench_cmd, check_cmd, demo_cmd, explore_cmd, replica_cmd, Exit};
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Certification replays the reference core many times: its warnings are expected there.
    let quiet = matches!(
        cli.command,
        Command::Certify(_) | Command::Trace(_) | Command::Validate(_)
    );
    let default_filter = if quiet { "error" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // The long commands start replicas, etcd and drivers: a stopping signal stops them all
    // and removes what they made (hadr_testbed::cleanup).
    if matches!(
        cli.command,
        Command::Certify(_) | Command::Demo(_) | Command::Bench(_)
    ) {
        if let Err(e) = hadr_testbed::cleanup::stop_on_signals() {
            eprintln!("hadr: {e}");
            return std::process::ExitCode::from(Exit::Failed as u8);
        }
    }
    let result = match &cli.command {
        Command::Check(args) => check_cmd::run(args),
        Command::Explore(args) => explore_cmd::run(args),
        Command::Replica(args) => {
            return finish(replica_cmd::run(args).map_err(|e| (e.exit(), e.to_string())))
        }
        Command::Demo(args) => {
            return finish(demo_cmd::run(args).map_err(|e| (Exit::Failed, e.to_string())))
        }
        Command::Bench(args) => {
            return finish(bench_cmd::run(args).map_err(|e| (Exit::Failed, e.to_string())))
        }
        Command::Certify(args) => {
            return finish(hadr::certify_cmd::run(args).map_err(|e| (Exit::Usage, e.to_string())))
        }
        Command::Validate(args) => {
            return finish(hadr::validate_cmd::run(args).map_err(|e| (Exit::Usage, e.to_string())))
        }
        Command::Trace(hadr::cli::TraceCommand::Generate(args)) => {
            return finish(hadr::trace_cmd::run(args).map_err(|e| (Exit::Usage, e.to_string())))
        }
        Command::ObserveOffline(args) => {
            return finish(
                hadr::replica_cmd::observe_offline(args).map_err(|e| (e.exit(), e.to_string())),
            )
        }
        Command::Listener(args) => {
            return finish(
                hadr::listener_cmd::run(&args.config)
                    .map(|()| Exit::Passed)
                    .map_err(|e| (Exit::Usage, e.to_string())),
            )
        }
    };
    let exit = result.unwrap_or_else(|e| {
        eprintln!("hadr: {e}");
        e.exit()
    });
    std::process::ExitCode::from(exit as u8)
}

fn finish(result: Result<Exit, (Exit, String)>) -> std::process::ExitCode {
    let exit = result.unwrap_or_else(|(exit, message)| {
        eprintln!("hadr: {message}");
        exit
    });
    std::process::ExitCode::from(exit as u8)
}
