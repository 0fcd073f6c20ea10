//! `evident agent`: follows log files and forwards each new line as an event.
//!
//! Each line is read as a syslog line (auth.log, secure, audit.log and appliance logs
//! are), so the same parsers as the syslog listener type it; a line no parser knows is
//! a `log.syslog` event with its text. An event's id is derived from the host, the
//! file, the file's inode, the truncations seen and the line's offset: a line sent twice
//! (after a crash, or from the spool) is stored once.
//!
//! Offsets are saved (`STATE_DIR/offsets.json`, written whole) only after the lines
//! before them are stored by the server or kept in the spool (`STATE_DIR/spool`):
//! at least once, never silently skipped. Rotation by rename is followed by reading
//! the old file to its end before the new one; truncation (copytruncate) starts over
//! at the top; after a restart a file whose inode changed is looked for under its new
//! name in the same directory, to finish it first.

use crate::cli::AgentArgs;
use anyhow::Context;
use evident_client::{Client, Config, Event};
use evident_sources::syslog::{Networks, Received, Transport, to_event};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// The agent's offsets file in the state directory.
const OFFSETS_FILE: &str = "offsets.json";
/// Longest line kept; longer ones are cut (the rest of the line is skipped).
const MAX_LINE: usize = 32 * 1024;
/// The namespace of line ids (a fixed v4 UUID, so ids are the same on every run).
const LINE_IDS: uuid::Uuid = uuid::uuid!("6f1d2b8e-4c3a-4e5f-9a7b-0c1d2e3f4a5b");

/// Where each file was left.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Offsets {
    files: BTreeMap<PathBuf, Position>,
}

/// A file's identity and how far it was sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    inode: u64,
    offset: u64,
    /// Times the file was truncated in place: a line at an offset the file had before
    /// is another line, with another id.
    #[serde(default)]
    generation: u64,
}

/// Runs the agent until SIGINT or SIGTERM (or, with `--once`, until every file is sent).
pub async fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("cannot create {}", args.state_dir.display()))?;
    let key = match &args.client.key {
        Some(k) => k.clone(),
        None => {
            crate::client::read_key_file(&args.client.data_dir.join(crate::serve::ADMIN_KEY_FILE))?
        }
    };
    let mut config = Config::new(&args.client.url, key.trim()).spool(args.state_dir.join("spool"));
    config.spool_max_bytes = args.spool_mb.max(1) * 1024 * 1024;
    let client = Client::start(config)?;
    let offsets_path = args.state_dir.join(OFFSETS_FILE);
    let saved = load_offsets(&offsets_path)?;
    let host = hostname();
    let mut tails: Vec<Tail> = args
        .files
        .iter()
        .map(|path| Tail::resume(path, saved.files.get(path).copied()))
        .collect();
    println!(
        "evident agent following {} file(s), sending to {}",
        tails.len(),
        args.client.url
    );
    let mut stop = Box::pin(crate::serve::shutdown_signal());
    loop {
        let mut sent = 0usize;
        for tail in &mut tails {
            for line in tail.poll()? {
                let event = line_event(&line, &host, args.facility.as_deref());
                client.send(event).await?;
                sent += 1;
            }
        }
        if sent > 0 {
            // Offsets move only once what came before them is stored or spooled.
            client.flush().await?;
            save_offsets(&offsets_path, &tails)?;
            tracing::debug!(sent, "lines forwarded");
        }
        if args.once && sent == 0 {
            break;
        }
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(Duration::from_millis(args.poll_ms.max(10))) => {}
        }
    }
    client.shutdown().await?;
    save_offsets(&offsets_path, &tails)?;
    let stats = client.stats();
    println!(
        "evident agent stopped: {} stored, {} in the spool, {} refused",
        stats.stored, stats.spooled, stats.refused
    );
    Ok(ExitCode::SUCCESS)
}

/// One complete line of a file, and where it starts.
struct Line {
    path: PathBuf,
    inode: u64,
    generation: u64,
    offset: u64,
    bytes: Vec<u8>,
    cut: bool,
}

/// The event for a line: the syslog parsers' event, with the file and offset in
/// `data.file`, the host as `agent_id`, and an id derived from where the line is.
fn line_event(line: &Line, host: &str, facility: Option<&str>) -> Event {
    let received = Received {
        bytes: bytes::Bytes::copy_from_slice(&line.bytes),
        cut: line
            .cut
            .then_some(evident_sources::syslog::framing::Cut::Line),
        peer: std::net::IpAddr::from([127, 0, 0, 1]),
        transport: Transport::File,
        refused: None,
    };
    let mut fields = to_event(
        &received,
        &Networks::default(),
        time::OffsetDateTime::now_utc(),
    );
    if let Some(serde_json::Value::Object(data)) = fields.get_mut("data") {
        if let Some(serde_json::Value::Object(syslog)) = data.get_mut("syslog") {
            syslog.remove("peer");
        }
        data.insert(
            "file".into(),
            serde_json::json!({"path": line.path.display().to_string(), "offset": line.offset}),
        );
    }
    fields
        .entry("agent_id")
        .or_insert_with(|| serde_json::Value::from(host));
    if let Some(facility) = facility {
        fields
            .entry("facility")
            .or_insert_with(|| serde_json::Value::from(facility));
    }
    let id = uuid::Uuid::new_v5(
        &LINE_IDS,
        format!(
            "{host}\0{}\0{}\0{}\0{}",
            line.path.display(),
            line.inode,
            line.generation,
            line.offset
        )
        .as_bytes(),
    );
    Event::from_fields(fields).with_id(id)
}

/// One followed file.
struct Tail {
    path: PathBuf,
    /// The file being read (the old one, after a rename, until its end).
    file: Option<File>,
    inode: u64,
    /// Truncations seen (see [`Position::generation`]).
    generation: u64,
    /// Where the next complete line starts.
    offset: u64,
    /// Where the next read starts (after the partial line).
    read_pos: u64,
    /// Bytes after the last newline, not yet a line.
    partial: Vec<u8>,
    /// Skipping the rest of a line longer than [`MAX_LINE`].
    skipping: bool,
}

impl Tail {
    /// Follows `path` from where it was left (a saved position), or from its start.
    fn resume(path: &Path, saved: Option<Position>) -> Self {
        let mut tail = Self {
            path: path.to_owned(),
            file: None,
            inode: 0,
            generation: 0,
            offset: 0,
            read_pos: 0,
            partial: Vec::new(),
            skipping: false,
        };
        let Some(saved) = saved else {
            return tail;
        };
        match std::fs::metadata(path) {
            Ok(meta) if meta.ino() == saved.inode => {
                tail.inode = saved.inode;
                tail.generation = saved.generation;
                if meta.len() >= saved.offset {
                    tail.offset = saved.offset;
                } else {
                    // Shorter than the saved offset: truncated while the agent was away.
                    tail.offset = 0;
                    tail.generation += 1;
                }
            }
            _ => {
                // Rotated while the agent was away: finish the old file under its new
                // name first, if it is still in the same directory.
                if let Some(old) = find_inode(path, saved.inode)
                    && let Ok(mut file) = File::open(&old)
                    && file.seek(SeekFrom::Start(saved.offset)).is_ok()
                {
                    tail.file = Some(file);
                    tail.inode = saved.inode;
                    tail.generation = saved.generation;
                    tail.offset = saved.offset;
                    tail.read_pos = saved.offset;
                }
            }
        }
        tail
    }

    /// The complete lines added since the last call, following rotation.
    fn poll(&mut self) -> anyhow::Result<Vec<Line>> {
        let mut lines = Vec::new();
        if self.file.is_none() {
            self.open_current()?;
        }
        self.read_lines(&mut lines)?;
        match std::fs::metadata(&self.path) {
            Ok(meta) if self.file.is_some() && meta.ino() != self.inode => {
                // Renamed away and a new file in its place: the old one was read to
                // its end just now; a last line without a newline is a line too.
                self.finish_partial(&mut lines);
                self.file = None;
                self.inode = meta.ino();
                self.generation = 0;
                self.offset = 0;
                self.open_current()?;
                self.read_lines(&mut lines)?;
            }
            Ok(meta) if meta.len() < self.offset => {
                // Truncated in place: start over at the top.
                self.generation += 1;
                self.offset = 0;
                self.read_pos = 0;
                self.partial.clear();
                self.skipping = false;
                if let Some(file) = &mut self.file {
                    file.seek(SeekFrom::Start(0))?;
                }
                self.read_lines(&mut lines)?;
            }
            _ => {}
        }
        Ok(lines)
    }

    fn open_current(&mut self) -> anyhow::Result<()> {
        match File::open(&self.path) {
            Ok(mut file) => {
                let inode = file.metadata()?.ino();
                if inode != self.inode {
                    self.inode = inode;
                    self.generation = 0;
                    self.offset = 0;
                }
                file.seek(SeekFrom::Start(self.offset))?;
                self.read_pos = self.offset;
                self.partial.clear();
                self.skipping = false;
                self.file = Some(file);
                Ok(())
            }
            // Not there (yet): looked for again next time.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot open {}", self.path.display())),
        }
    }

    fn read_lines(&mut self, lines: &mut Vec<Line>) -> anyhow::Result<()> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            for (i, &byte) in buf[..n].iter().enumerate() {
                if byte != b'\n' {
                    if self.partial.len() < MAX_LINE {
                        self.partial.push(byte);
                    } else {
                        self.skipping = true;
                    }
                    continue;
                }
                let start = self.offset;
                // The next line starts after this newline.
                self.offset = self.read_pos + i as u64 + 1;
                let bytes = std::mem::take(&mut self.partial);
                let cut = std::mem::take(&mut self.skipping);
                if !bytes.is_empty() {
                    lines.push(Line {
                        path: self.path.clone(),
                        inode: self.inode,
                        generation: self.generation,
                        offset: start,
                        bytes,
                        cut,
                    });
                }
            }
            self.read_pos += n as u64;
        }
    }

    fn finish_partial(&mut self, lines: &mut Vec<Line>) {
        if !self.partial.is_empty() || self.skipping {
            lines.push(Line {
                path: self.path.clone(),
                inode: self.inode,
                generation: self.generation,
                offset: self.offset,
                bytes: std::mem::take(&mut self.partial),
                cut: self.skipping,
            });
        }
        self.skipping = false;
    }
}

/// A file in `path`'s directory with this inode, if any.
fn find_inode(path: &Path, inode: u64) -> Option<PathBuf> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find(|e| e.metadata().is_ok_and(|m| m.ino() == inode))
        .map(|e| e.path())
}

fn load_offsets(path: &Path) -> anyhow::Result<Offsets> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not an offsets file; move it away to start over",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Offsets::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn save_offsets(path: &Path, tails: &[Tail]) -> anyhow::Result<()> {
    let offsets = Offsets {
        files: tails
            .iter()
            .map(|t| {
                (
                    t.path.clone(),
                    Position {
                        inode: t.inode,
                        offset: t.offset,
                        generation: t.generation,
                    },
                )
            })
            .collect(),
    };
    crate::serve::write_atomically(path, &serde_json::to_vec_pretty(&offsets)?, 0o600)
        .with_context(|| format!("cannot save {}", path.display()))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
