//! The `evident` binary: one command with subcommands for the service and its tools.
//!
//! # Layout
//!
//! - `cli`: the command line (every subcommand and flag, and the environment variables
//!   that stand in for flags).
//! - `serve`: wiring of store → commit stage → HTTP API, and graceful shutdown.
//! - `config`: the configuration file, turned into each stage's settings.
//! - `privacy`: the master key, the subjects' key store and the personal fields for `serve`.
//! - `keys`: API key management on a data directory or PostgreSQL store.
//! - `client`: the HTTP client the `send`, `query`, `dlq` and `bench` commands share.
//! - `send`, `query`: NDJSON upload and event search from the command line.
//! - `dlq`: listing and replaying dead letters.
//! - `rules`: checking rule files and trying rules on events.
//! - `verify`, `verify_proof`: checking the store against its signed checkpoints, and one
//!   event's inclusion proof offline; the signing key file.
//! - `bench`: the load generator, its reference workload, the naive-table baseline, and
//!   the query, detection, findings and PostgreSQL-baseline benchmarks.

mod agent;
mod bench;
mod cli;
mod client;
mod config;
mod dlq;
mod http;
mod keys;
mod privacy;
mod query;
mod rules;
mod send;
mod serve;
mod tail;
mod verify;
mod verify_proof;

use clap::Parser;

/// mimalloc instead of the system allocator: admission allocates many small, short-lived
/// JSON values across threads, which glibc malloc serves markedly slower.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log.as_deref());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Keys(args) => keys::run(args).await,
            Command::Send(args) => send::run(args).await,
            Command::Query(args) => query::run(args).await,
            Command::Tail(args) => tail::run(args).await,
            Command::Agent(args) => agent::run(*args).await,
            Command::Dlq(args) => dlq::run(args).await,
            Command::Rules(args) => Ok(rules::run(args)),
            Command::Verify(args) => verify::run(args),
            Command::VerifyProof(args) => verify_proof::run(args),
            Command::BenchDetect(args) => bench::detect::run(args),
            Command::BenchFindings(args) => bench::findings::run(args).await,
            Command::BenchStream(args) => bench::stream::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::BenchLoad(args) => bench::loader::run(args).await,
            Command::BenchQueries(args) => bench::queries::run(args).await,
            Command::BenchPgBaselines(args) => bench::peers::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(filter: Option<&str>) {
    let filter = filter
        .map(tracing_subscriber::EnvFilter::new)
        .unwrap_or_else(|| {
            tracing_subscriber::EnvFilter::try_from_env("EVIDENT_LOG")
                .unwrap_or_else(|_| "info".into())
        });
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
