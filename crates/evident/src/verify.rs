//! `evident verify`: walks the store's integrity log (embedded, or PostgreSQL) against its
//! signed checkpoints and names the first event altered, removed, inserted or reordered.
//!
//! Also home of the service's signing key file (`DATA_DIR/integrity.key`): created on
//! first start, readable by the service's user only.

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evident_integrity::verify::Problem;
use evident_integrity::{Signer, key_id};
use evident_store::{IntegrityLog, PgStore, RetentionPolicy, SqliteStore};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// File in the data directory holding the checkpoint signing key (base64 of its secret).
pub const KEY_FILE: &str = "integrity.key";

/// Arguments of `evident verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Data directory of the embedded store to verify (with --database-url, only where
    /// integrity.key is read from when --public-key is not given).
    #[arg(long, default_value = crate::cli::DEFAULT_DATA_DIR, env = "EVIDENT_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Verify the PostgreSQL store at this URL (postgres://user@host:port/db) instead of
    /// the embedded store.
    #[arg(long, env = "EVIDENT_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The service's public key (base64, as `GET /api/v1/integrity/key` publishes it).
    /// Without it, the key is read from DATA_DIR/integrity.key, which anyone who can
    /// rewrite the store may have replaced too: give the published key for a check that
    /// does not trust the directory.
    #[arg(long)]
    pub public_key: Option<String>,
    /// Where to keep the size and head this verification saw, so the next one catches a
    /// rollback of the log together with its checkpoints. Default: a file per key under
    /// $XDG_STATE_HOME/evident (or ~/.local/state/evident), outside the data directory.
    #[arg(long)]
    pub witness: Option<PathBuf>,
    /// Keep no witness.
    #[arg(long, conflicts_with = "witness")]
    pub no_witness: bool,
}

/// The default witness file for the key `id`.
fn default_witness(id: &str) -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(state.join("evident").join(format!("witness-{id}")))
}

/// Reads a witness file: the size, then the head in base64.
fn read_witness(path: &Path) -> anyhow::Result<Option<(u64, evident_integrity::Hash)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut lines = text.lines();
    let size = lines.next().and_then(|l| l.trim().parse().ok());
    let root = lines
        .next()
        .and_then(|l| STANDARD.decode(l.trim()).ok())
        .and_then(|b| b.try_into().ok());
    match (size, root) {
        (Some(size), Some(root)) => Ok(Some((size, root))),
        _ => anyhow::bail!("{} is not a witness file", path.display()),
    }
}

fn write_witness(path: &Path, (size, root): (u64, evident_integrity::Hash)) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = format!("{size}\n{}\n", STANDARD.encode(root));
    crate::serve::write_atomically(path, text.as_bytes(), 0o644)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The signing key in `data_dir`, created (0600) if there is none.
pub fn load_or_create_key(data_dir: &Path) -> anyhow::Result<Signer> {
    let path = data_dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            read_key(&text).with_context(|| format!("{} is not a signing key", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let signer = Signer::generate();
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            writeln!(file, "{}", STANDARD.encode(signer.secret()))?;
            file.sync_all()?;
            println!(
                "created the checkpoint signing key {} in {}",
                key_id(&signer.public_key()),
                path.display()
            );
            Ok(signer)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn read_key(text: &str) -> anyhow::Result<Signer> {
    let secret: [u8; 32] = STANDARD
        .decode(text.trim())?
        .try_into()
        .map_err(|_| anyhow::anyhow!("the key is not 32 bytes"))?;
    Ok(Signer::from_secret(&secret))
}

/// Runs the verification; exit 0 when everything checked holds, 1 when something was
/// tampered with, 2 when it cannot run.
pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    match verify(args) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(2))
        }
    }
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let public: [u8; 32] = match &args.public_key {
        Some(text) => STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .context("--public-key is not a base64 Ed25519 public key (32 bytes)")?,
        None => {
            let path = args.data_dir.join(KEY_FILE);
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!("cannot read {} (or give --public-key)", path.display())
            })?;
            eprintln!(
                "note: checking with the key in {}; pass --public-key to check against the published key",
                path.display()
            );
            read_key(&text)?.public_key()
        }
    };
    let store: Box<dyn IntegrityLog> = match &args.database_url {
        Some(url) => Box::new(open_postgres(url)?),
        None => {
            Box::new(SqliteStore::open_shared(&args.data_dir).context("cannot open the store")?)
        }
    };
    let progress = ProgressBar::hidden();
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events ({per_sec}, {eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let shown = std::sync::atomic::AtomicBool::new(false);
    let witness_path = if args.no_witness {
        None
    } else {
        args.witness
            .clone()
            .or_else(|| default_witness(&key_id(&public)))
    };
    let witness = match &witness_path {
        Some(path) => read_witness(path)?,
        None => None,
    };
    let walked = store.verify_log(&public, witness, &|done, total| {
        if total > 100_000 && !shown.swap(true, std::sync::atomic::Ordering::Relaxed) {
            progress.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        progress.set_length(total);
        progress.set_position(done);
    })?;
    progress.finish_and_clear();
    let (start_seq, sizes) = (walked.start_seq, walked.checkpoint_sizes);
    let report = walked.report;
    if !walked.beside.is_empty() {
        println!("TAMPERED beside the log: the side tables differ from the log's records of them");
        for problem in &walked.beside {
            println!("  {problem}");
        }
    }
    match &report.problem {
        None if !walked.beside.is_empty() => {
            println!(
                "the log itself verified: {} events against {} signed checkpoints (key {})",
                report.verified,
                report.checkpoints,
                key_id(&public)
            );
            Ok(ExitCode::FAILURE)
        }
        None => {
            println!(
                "verified {} events against {} signed checkpoints (key {})",
                report.verified,
                report.checkpoints,
                key_id(&public)
            );
            if report.pruned > 0 {
                println!(
                    "{} of them were removed by retention: the hashes kept for them, and the signed checkpoint at the log's new start, stand in for them",
                    report.pruned
                );
            }
            if let Some((size, _)) = witness {
                println!("the log still holds the {size} events the last verification saw");
            }
            if let Some(path) = &witness_path
                && report.verified_head.0 >= witness.map_or(0, |(size, _)| size)
                && report.verified_head.0 > 0
            {
                write_witness(path, report.verified_head)?;
            }
            if report.unverified_tail > 0 {
                println!(
                    "{} events after the last checkpoint are unverified (no checkpoint covers them yet)",
                    report.unverified_tail
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(problem) => {
            println!("TAMPERED: {problem}");
            if let Some(id) = walked.problem_event {
                println!("event id: {id}");
            }
            if let Some(range) = checkpoint_range(problem, start_seq, &sizes) {
                println!("affected: {range}");
            }
            println!(
                "verified before it: {} events, {} checkpoints",
                report.verified, report.checkpoints
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Opens the PostgreSQL store at `url` from this blocking command, on the runtime the
/// command runs in (whose tasks then drive the store's connections).
fn open_postgres(url: &str) -> anyhow::Result<PgStore> {
    let runtime = tokio::runtime::Handle::try_current()?;
    tokio::task::block_in_place(|| {
        runtime.block_on(PgStore::connect_shared(url, RetentionPolicy::default()))
    })
    .context("cannot open the PostgreSQL store")
}

/// The checkpoints around the event a problem names, as text.
fn checkpoint_range(problem: &Problem, start_seq: i64, sizes: &[u64]) -> Option<String> {
    let seq = match problem {
        Problem::Altered { seq } | Problem::Missing { seq } | Problem::OutOfOrder { seq, .. } => {
            *seq
        }
        _ => return None,
    };
    let position = u64::try_from(seq - start_seq + 1).ok()?;
    let before = sizes.iter().filter(|&&s| s < position).max();
    let after = sizes.iter().filter(|&&s| s >= position).min();
    let seq_of = |size: u64| start_seq + size as i64 - 1;
    Some(match (before, after) {
        (Some(&b), Some(&a)) => format!(
            "the checkpoint range of events {}..={}",
            seq_of(b) + 1,
            seq_of(a)
        ),
        (None, Some(&a)) => format!(
            "the first checkpoint's range, events {start_seq}..={}",
            seq_of(a)
        ),
        (Some(&b), None) => format!("the unverified tail after event {}", seq_of(b)),
        (None, None) => "events not covered by any checkpoint".into(),
    })
}
